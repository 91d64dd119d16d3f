"""What ``open-strawberry bench`` writes: ``requests.jsonl`` (one line a request),
``summary.json`` (metrics, client health, run metadata) and ``report.md``."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from open_strawberry.bench.metrics import RequestRecord
from open_strawberry.bench.plots import plot_cdfs, plot_context, plot_load, plot_throughput, plot_timeline
from open_strawberry.bench.runner import ClientHealth
from open_strawberry.pipeline.preflight import run_versions

__all__ = ["brief", "brief_traces", "write_outputs", "write_sweep", "write_trace_outputs"]

_METRICS = ("ttft_ms", "ttfa_ms", "tpot_ms", "itl_ms", "e2e_ms")  # ttfa_ms: only where the server sent thinking


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except OSError:
        return None
    return result.stdout.strip() or None


def _metadata(arguments: dict[str, Any]) -> dict[str, Any]:
    versions = run_versions(("open-strawberry", "aiohttp", "anyio", "msgspec"))
    return {"command": sys.argv, "arguments": arguments, "versions": versions, "git_commit": _git_commit(),
            "finished_at": time.time(), "machine": platform.platform()}


def write_outputs(out_dir: Path, records: Sequence[RequestRecord], summary: dict[str, Any], health: ClientHealth,
                  arguments: dict[str, Any]) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = msgspec.json.Encoder()
    with (out_dir / "requests.jsonl").open("wb") as file:
        for record in records:
            file.write(encoder.encode({**msgspec.to_builtins(record), "tpot_s": record.tpot_s}) + b"\n")
    document = {**summary, "client": msgspec.to_builtins(health), "metadata": _metadata(arguments)}
    (out_dir / "summary.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    plots = [p for p in (plot_cdfs(records, out_dir), plot_timeline(records, out_dir),
                         plot_throughput(records, out_dir)) if p]
    (out_dir / "report.md").write_text(_markdown(document, plots))
    return document


def write_sweep(out_dir: Path, load: str, points: Sequence[tuple[float, dict[str, Any]]]) -> str:
    """The sweep's own report: a table and a plot of latency and throughput against load."""
    plot = plot_load(points, load, out_dir)
    thought = any("ttfa_ms" in s for _, s in points)  # a TTFA column only where the server sent thinking
    rows = [f"| {load} | TTFT p50 | TTFT p99 | {'TTFA p50 | ' if thought else ''}TPOT p50 | E2E p50 | E2E p99 | "
            "req/s | out tok/s | goodput |", "|---" * (10 if thought else 9) + "|"]
    for value, s in points:
        ttfa = f"{_cell(s.get('ttfa_ms', {}).get('p50'))} | " if thought else ""
        rows.append(f"| {value:g} | {_cell(s['ttft_ms']['p50'])} | {_cell(s['ttft_ms']['p99'])} | {ttfa}"
                    f"{_cell(s['tpot_ms']['p50'])} | {_cell(s['e2e_ms']['p50'])} | {_cell(s['e2e_ms']['p99'])} | "
                    f"{s['request_throughput']:,.2f} | {s['output_token_throughput']:,.1f} | {_cell(s['goodput'])} |")
    text = "\n".join(["# Sweep", "", f"Latency (ms) and throughput against {load}; each point has its own "
                       "directory with a full report.", "", *rows, ""] + ([f"![latency against load]({plot})", ""]
                                                                         if plot else []))
    (out_dir / "sweep.md").write_text(text)
    (out_dir / "sweep.json").write_text(json.dumps({"load": load, "points": [{load: v, **s} for v, s in points]},
                                                   indent=2, default=str) + "\n")
    return text


def _cell(value: object) -> str:
    return "—" if value is None else f"{value:,.2f}" if isinstance(value, float) else str(value)


def _targets(slo_ms: dict[str, float]) -> str:
    """``{"ttft": 500.0, "e2e": 5000.0}`` as ``ttft ≤ 500 ms, e2e ≤ 5,000 ms``."""
    return ", ".join(f"{name} ≤ {target:,g} ms" for name, target in slo_ms.items())


def _counts(counts: dict[str, int]) -> str:
    """``{"final": 18, "failed": 2}`` as ``failed 2, final 18``."""
    return ", ".join(f"{name} {count:,}" for name, count in sorted(counts.items())) or "none"


def brief(document: dict[str, Any], report: Path) -> list[str]:
    """What ``bench`` prints of one run (``report`` has the rest): requests, throughputs,
    latency percentiles, the client's warnings, and where the report is."""
    latencies = (f"{metric.removesuffix('_ms').upper()} p50 {_cell(document[metric]['p50'])} ms, "
                 f"p99 {_cell(document[metric]['p99'])} ms"
                 for metric in ("ttft_ms", "ttfa_ms", "tpot_ms", "e2e_ms") if metric in document)
    lines = [f"{document['requests']:,} requests ({document['failed']:,} failed) in {document['duration_s']:,.2f} s: "
             f"{document['request_throughput']:,.2f} req/s, {document['output_token_throughput']:,.1f} output tok/s"
             + (f", goodput {document['goodput']:,.2f} req/s" if document.get("goodput") is not None else ""),
             "  " + " · ".join(latencies)]
    if document.get("prompt"):
        lines.append(f"  {_prompt_line(document)}")
    if document["errors"]:
        lines.append(f"  errors: {_counts(document['errors'])}")
    if document.get("empty"):
        lines.append(f"  WARNING: {_empty(document)}")
    lines += [f"  WARNING: {warning}" for warning in document["client"]["warnings"]]
    return [*lines, f"  report: {report} (summary.json and requests.jsonl beside it)"]


def _empty(document: dict[str, Any]) -> str:
    return (f"{document['empty']:,} of {document['succeeded']:,} successful replies had no content (no text, no "
            "thinking): the server answered nothing, so its latencies and throughput say little")


def _prompt_line(document: dict[str, Any]) -> str:
    """The prompt as asked and as the server counted it: ``prompt: asked 64 tokens (sized by
    ...), server counted 63.0 on average, 3% read from its cache``."""
    prompt, counted, cached = document["prompt"], document.get("input_tokens_mean"), document.get("cached_share")
    shared = f", {prompt['prefix_tokens']} shared" if prompt["prefix_tokens"] else ""
    return (f"prompt: asked {prompt['input_tokens']} tokens{shared} (sized by {prompt['sized_by']}), server counted "
            f"{_cell(counted)} on average, {'—' if cached is None else f'{cached:.0%}'} read from its cache")


def brief_traces(document: dict[str, Any], report: Path) -> list[str]:
    """What ``bench --workload traces`` prints: traces, turns, throughputs, latency, the report."""
    return [f"{document['traces']:,} traces ({document['strategy']} strategy), {document['turns']:,} turns in "
            f"{document['duration_s']:,.2f} s (statuses: {_counts(document['statuses'])}): "
            f"{document['turn_throughput']:,.2f} turns/s, {document['output_token_throughput']:,.1f} output tok/s",
            f"  per turn: TTFT p50 {_cell(document['ttft_ms']['p50'])} ms · "
            + (f"TTFA p50 {_cell(document['ttfa_ms']['p50'])} ms · " if "ttfa_ms" in document else "")
            + f"E2E p50 {_cell(document['e2e_ms']['p50'])} ms; "
            f"per trace: p50 {_cell(document['trace_e2e_ms']['p50'])} ms",
            *(f"  {line}" for line in _server_lines(document)),
            f"  report: {report} (summary.json, requests.jsonl and traces.jsonl beside it)"]


def _server_lines(document: dict[str, Any]) -> list[str]:
    """What the server stated of the traces run: its prompt cache, its slots' busy share."""
    lines = []
    if document.get("cached_over_ideal") is not None:
        lines.append(f"prompt cache: {document['cached_share']:.0%} of later turns' prompt tokens read from it, "
                     f"{document['cached_over_ideal']:.2f} of the most it could be")
    if document.get("server_busy_share") is not None:
        lines.append(f"server: its {document['server_slots']} slots busy in {document['server_busy_share']:.1%} of "
                     "its decode steps (llama.cpp /metrics)")
    return lines


def _markdown(document: dict[str, Any], plots: Sequence[str] = ()) -> str:
    lines = ["# Benchmark report", "", f"Command: `{' '.join(document['metadata']['command'])}`", "",
             f"- requests: {document['requests']} ({document['succeeded']} succeeded, {document['failed']} failed)"
             + (f"; {_empty(document)}" if document.get("empty") else ""),
             f"- duration: {document['duration_s']:,.2f} s",
             f"- request throughput: {document['request_throughput']:,.2f} req/s",
             f"- output token throughput: {document['output_token_throughput']:,.1f} tok/s",
             f"- total token throughput: {document['total_token_throughput']:,.1f} tok/s"]
    if document.get("goodput") is not None:
        lines.append(f"- goodput: {document['goodput']:,.2f} req/s meeting {_targets(document['slo_ms'])}")
    if document.get("prompt"):
        lines.append(f"- {_prompt_line(document)}")
    if document["errors"]:
        lines.append(f"- errors: {_counts(document['errors'])}")
    keys = [k for k in document["ttft_ms"] if k != "count"]
    lines += ["", "| metric (ms) | count | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for metric in (*(m for m in _METRICS if m in document), "schedule_lag_ms"):
        row = document[metric]
        cells = " | ".join(_cell(row[k]) for k in keys)
        lines.append(f"| {metric.removesuffix('_ms')} | {row['count']} | {cells} |")
    client = document["client"]
    lines += ["", "## Client", "", f"- event-loop lag p99: {client['loop_lag_p99_ms']:,.2f} ms",
              f"- client CPU share: {client['cpu_share']:.0%}",
              f"- schedule lag p99: {client['schedule_lag_p99_ms']:,.2f} ms"]
    lines += [f"- WARNING: {warning}" for warning in client["warnings"]] or ["- the client kept up"]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots]
    else:
        lines += ["", "(no plots: pip install -e '.[bench]' for matplotlib)"]
    return "\n".join(lines) + "\n"


def write_trace_outputs(out_dir: Path, document: dict[str, Any], arguments: dict[str, Any]) -> str:
    """summary.json, requests.jsonl (one line a turn) and report.md of the multi-turn workload
    (its traces file is already there)."""
    points = document.pop("points")
    with (out_dir / "requests.jsonl").open("w") as file:
        file.writelines(json.dumps(row) + "\n" for row in document.pop("requests"))
    document = {**document, "metadata": _metadata(arguments)}
    (out_dir / "summary.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    plot = plot_context(points, out_dir)
    keys = [k for k in document["ttft_ms"] if k != "count"]
    lines = ["# Benchmark report: multi-turn traces", "",
             f"- {document['traces']} traces ({document['strategy']} strategy), {document['turns']} turns "
             f"in {document['duration_s']:,.2f} s; statuses: {_counts(document['statuses'])}",
             f"- {document['turn_throughput']:,.2f} turns/s, {document['trace_throughput']:,.2f} traces/s, "
             f"{document['output_token_throughput']:,.1f} output tok/s",
             f"- failed attempts before the final one: {document['failed_attempts']} "
             f"({document['rate_limited']} were 429s)", *(f"- {line}" for line in _server_lines(document)), "",
             "| per turn (ms) | count | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for metric in (*(m for m in _METRICS if m in document), "queue_ms", "limiter_wait_ms", "trace_e2e_ms"):
        row = document[metric]
        cells = " | ".join(_cell(row[k]) for k in keys)
        lines.append(f"| {metric.removesuffix('_ms')} | {row['count']} | {cells} |")
    lines += ["", "Mean TTFT by context length (input tokens, in buckets of 512):", ""]
    lines += [f"- {bucket}+: {value:,.1f} ms" for bucket, value in document["ttft_by_context_ms"].items()]
    lines += ["", "Wait in each actor's inbox (ms):", ""]
    lines += [f"- {name}: mean {w['mean']:,.2f}, p50 {w['p50']:,.2f}, p99 {w['p99']:,.2f} ({w['handled']:,.0f} handled)"
              for name, w in document["actor_queue_ms"].items()]
    if plot:
        lines += ["", f"![TTFT against context length]({plot})"]
    text = "\n".join(lines) + "\n"
    (out_dir / "report.md").write_text(text)
    return text
