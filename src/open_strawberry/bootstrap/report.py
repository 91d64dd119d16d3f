"""The bootstrap report: one row per round and level evaluated, as Markdown and JSON, and a
plot of held-out pass@1 by round (matplotlib, the ``bench`` extra, imported only to draw it).

Intervals are Wilson score intervals (95%) over the held-out traces of the row. The traces of
one problem are not independent draws (a problem may be easy or hard for the model), so with
several samples per problem the interval is narrower than a per-problem view would give; with
one sample per problem it is exact in that respect.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["EvalResult", "RoundReport", "render_markdown", "wilson_interval", "write_report"]


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% with the default ``z``); (0, 1) with no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


class EvalResult(msgspec.Struct, frozen=True, kw_only=True):
    """A model on the held-out problems of one level."""

    level: int
    problems: int
    traces: int
    correct: int
    pass_at_1: float
    low: float  # Wilson 95% interval of pass@1
    high: float
    k: int
    pass_at_k: float | None
    traces_file: str


class RoundReport(msgspec.Struct, kw_only=True):
    """What one round did (a field stays None until its stage has run)."""

    round: int
    model: str  # the checkpoint evaluated and used to generate
    served: str | None = None  # the file the server loaded, as it said
    level: int | None = None  # the level of the round's pool
    evaluations: list[EvalResult] = []
    pool_traces: int | None = None
    pool_pass_rate: float | None = None
    selected: int | None = None
    sft_rows: int | None = None
    dpo_pairs: int | None = None
    train_loss: float | None = None
    train_steps: int | None = None
    trained_model: str | None = None
    elapsed_s: float = 0.0


def _number(value: float | None, form: str = "{:.3f}") -> str:
    return "—" if value is None else form.format(value)


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _shown(model: str) -> str:
    """A round's model as ``round-00/sft``; another as its folder's name."""
    path = Path(model)
    return f"{path.parent.name}/{path.name}" if path.parent.name.startswith("round-") else path.name


def render_markdown(rounds: Sequence[RoundReport], *, title: str = "Bootstrap report",
                    notes: Sequence[str] = ()) -> str:
    """The report table: one row per round and level evaluated."""
    lines = [f"# {title}", "",
             "| round | model | level | held-out pass@1 [95% CI] | pass@k | pool traces (pass rate) | selected "
             "| SFT rows | DPO pairs | train loss | time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rounds:
        evaluations: list[EvalResult | None] = [*row.evaluations] or [None]
        for index, result in enumerate(evaluations):
            first = index == 0
            if result is None:
                held_out, at_k, level = "—", "—", _count(row.level)
            else:
                held_out = (f"{result.pass_at_1:.3f} [{result.low:.3f}, {result.high:.3f}] "
                            f"({result.correct}/{result.traces})")
                at_k = f"{_number(result.pass_at_k)} (k={result.k})"
                level = str(result.level)
            pool = "—" if row.pool_traces is None else f"{row.pool_traces:,} ({_number(row.pool_pass_rate, '{:.2f}')})"
            rest = [pool, _count(row.selected), _count(row.sft_rows), _count(row.dpo_pairs),
                    _number(row.train_loss), f"{row.elapsed_s:,.0f} s"] if first else [""] * 6
            model = _shown(row.model) if first else ""
            lines.append("| " + " | ".join([str(row.round) if first else "", model, level, held_out, at_k, *rest])
                         + " |")
    lines += ["", "Held-out pass@1 is measured on problems no round trains on; the interval is a Wilson 95% "
              "interval over the held-out traces. The pool, selection, data and training columns are what the "
              "round made from its model: the next round's model is trained on them.", *notes]
    return "\n".join(lines) + "\n"


def _plot(rounds: Sequence[RoundReport], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_level: dict[int, list[tuple[int, EvalResult]]] = {}
    for row in rounds:
        for result in row.evaluations:
            by_level.setdefault(result.level, []).append((row.round, result))
    figure, axes = plt.subplots(figsize=(6, 4))
    for level, points in sorted(by_level.items()):
        xs = [r for r, _ in points]
        ys = [e.pass_at_1 for _, e in points]
        errors = [[e.pass_at_1 - e.low for _, e in points], [e.high - e.pass_at_1 for _, e in points]]
        axes.errorbar(xs, ys, yerr=errors, marker="o", capsize=4, label=f"level {level}")
    axes.set_xlabel("round (model after that many rounds of training)")
    axes.set_ylabel("held-out pass@1 (95% Wilson CI)")
    axes.set_ylim(0, 1)
    axes.set_xticks(sorted({row.round for row in rounds}))
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def write_report(run_dir: Path, rounds: Sequence[RoundReport], *, config: dict[str, Any],
                 notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and (with matplotlib) ``pass_at_1.png`` into ``run_dir``."""
    paths = {"markdown": run_dir / "report.md", "json": run_dir / "report.json"}
    notes = list(notes)
    plotted = _plot(rounds, run_dir / "pass_at_1.png")
    if plotted:
        paths["plot"] = run_dir / "pass_at_1.png"
        notes.append("")
        notes.append("![held-out pass@1 by round](pass_at_1.png)")
    paths["markdown"].write_text(render_markdown(rounds, notes=notes))
    payload = {"config": config, "rounds": msgspec.to_builtins(list(rounds))}
    paths["json"].write_text(json.dumps(payload, indent=2) + "\n")
    return paths
