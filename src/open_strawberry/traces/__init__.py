"""Tools for traces files, after (or between) runs.

- :mod:`~open_strawberry.traces.files`: resume (finished pairs, torn-line repair), reading
  records, the manifest, writing derived files whole;
- :mod:`~open_strawberry.traces.stats`: per-problem and overall figures, unbiased pass@k;
- :mod:`~open_strawberry.traces.exports`: SFT and DPO datasets in TRL's formats;
- :mod:`~open_strawberry.traces.select`: the barely-solvable problems for the next round.
"""

from open_strawberry.traces.exports import ExportCounts, export_dpo, export_sft, prompt_messages
from open_strawberry.traces.files import finished_pairs, manifest_path, read_traces, write_manifest
from open_strawberry.traces.select import select_problems
from open_strawberry.traces.stats import ProblemStats, TraceStats, pass_at_k, trace_stats

__all__ = [
    "ExportCounts",
    "ProblemStats",
    "TraceStats",
    "export_dpo",
    "export_sft",
    "finished_pairs",
    "manifest_path",
    "pass_at_k",
    "prompt_messages",
    "read_traces",
    "select_problems",
    "trace_stats",
    "write_manifest",
]
