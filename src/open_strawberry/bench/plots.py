"""Plots for the benchmark report, with matplotlib (the ``bench`` extra). Each function writes
one PNG and returns its file name, or returns None when matplotlib is not installed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from open_strawberry.bench.metrics import RequestRecord

__all__ = ["plot_cdfs", "plot_context", "plot_load", "plot_throughput", "plot_timeline"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no screen
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt: Any, figure: Any, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def plot_cdfs(records: Sequence[RequestRecord], out_dir: Path) -> str | None:
    plt = _pyplot()
    ok = [r for r in records if r.ok and not r.warmup]
    if plt is None or not ok:
        return None
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    series = {"TTFT": [r.ttft_s for r in ok if r.ttft_s is not None],
              "TPOT": [t for r in ok if (t := r.tpot_s) is not None],
              "E2E": [r.e2e_s for r in ok if r.e2e_s is not None]}
    for axis, (name, values) in zip(axes, series.items(), strict=True):
        ordered = sorted(v * 1000 for v in values)
        if ordered:
            axis.step(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], where="post")
        axis.set(title=f"{name} CDF", xlabel="ms", ylabel="share of requests", ylim=(0, 1.02))
        axis.grid(alpha=0.3)
    return _save(plt, figure, out_dir / "cdf.png")


def plot_timeline(records: Sequence[RequestRecord], out_dir: Path) -> str | None:
    plt = _pyplot()
    if plt is None or not records:
        return None
    figure, axis = plt.subplots(figsize=(10, 4))
    for record in records:
        colour = "tab:gray" if record.warmup else "tab:blue" if record.ok else "tab:red"
        axis.plot([record.sent_s, record.finished_s], [record.index, record.index], color=colour, linewidth=1)
        if record.ttft_s is not None:
            axis.plot(record.sent_s + record.ttft_s, record.index, marker="|", color="tab:orange", markersize=4)
    axis.set(title="requests over time (bar: sent to done; tick: first token)", xlabel="seconds",
             ylabel="request")
    return _save(plt, figure, out_dir / "timeline.png")


def plot_throughput(records: Sequence[RequestRecord], out_dir: Path, bucket_s: float = 1.0) -> str | None:
    plt = _pyplot()
    ok = [r for r in records if r.ok]
    if plt is None or not ok:
        return None
    end = max(r.finished_s for r in ok)
    buckets = [0.0] * (int(end / bucket_s) + 1)
    for record in ok:  # spread each request's output tokens over its streaming time
        start = record.sent_s + (record.ttft_s or 0.0)
        span = max(record.finished_s - start, 1e-6)
        for index in range(int(start / bucket_s), int(record.finished_s / bucket_s) + 1):
            low, high = max(start, index * bucket_s), min(record.finished_s, (index + 1) * bucket_s)
            if high > low:
                buckets[index] += record.output_tokens * (high - low) / span / bucket_s
    figure, axis = plt.subplots(figsize=(10, 3.5))
    axis.plot([i * bucket_s for i in range(len(buckets))], buckets)
    axis.set(title="output tokens per second over time", xlabel="seconds", ylabel="tokens/s")
    axis.grid(alpha=0.3)
    return _save(plt, figure, out_dir / "throughput.png")


def plot_load(points: Sequence[tuple[float, dict[str, Any]]], load: str, out_dir: Path) -> str | None:
    """Latency against load, for a sweep: p50 and p99 of TTFT and E2E at each point."""
    plt = _pyplot()
    if plt is None or len(points) < 2:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    loads = [value for value, _ in points]
    for axis, metric in zip(axes, ("ttft_ms", "e2e_ms"), strict=True):
        for stat in ("p50", "p99"):
            axis.plot(loads, [summary[metric][stat] for _, summary in points], marker="o", label=stat)
        axis.set(title=f"{metric.removesuffix('_ms').upper()} against load", xlabel=load, ylabel="ms")
        axis.legend()
        axis.grid(alpha=0.3)
    return _save(plt, figure, out_dir / "latency_vs_load.png")


def plot_context(points: Sequence[Sequence[float]], out_dir: Path) -> str | None:
    """TTFT against the context length (input tokens) of each turn."""
    plt = _pyplot()
    if plt is None or not points:
        return None
    figure, axis = plt.subplots(figsize=(8, 3.8))
    axis.scatter([p[0] for p in points], [p[1] for p in points], s=6, alpha=0.5)
    axis.set(title="TTFT against context length", xlabel="input tokens", ylabel="TTFT (ms)")
    axis.grid(alpha=0.3)
    return _save(plt, figure, out_dir / "ttft_vs_context.png")
