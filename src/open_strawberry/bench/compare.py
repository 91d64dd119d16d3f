"""Two benchmark runs side by side (``bench compare``): what a run is on disk, and the figures
compared.

A run is what ``bench`` wrote: a ``summary.json`` (one load), a ``sweep.json`` (several: one
point a load, each with its own summary), or the ``--out`` directory that holds either (a
sweep's directory holds both its ``sweep.json`` and one ``LOAD-VALUE/summary.json`` a point;
the sweep is the run). Two single runs compare figure by figure; two sweeps over the same load
point by point, at the loads both measured. Everything that cannot be compared is a one-line
:class:`~open_strawberry.errors.OpenStrawberryError` naming the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from open_strawberry.errors import OpenStrawberryError

__all__ = ["COMPARED", "LATENCIES", "BenchRun", "compared_points", "compared_rows", "load_run"]

COMPARED = ("request_throughput", "output_token_throughput", "total_token_throughput", "goodput", "failed")
LATENCIES = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")


@dataclass(frozen=True)
class BenchRun:
    """A run read back: ``load`` is the swept option (``concurrency``, ``rate``) of a sweep,
    None for one summary; ``points`` its summaries by load value (one, keyed None, for a
    summary)."""

    path: Path
    load: str | None
    points: dict[float | None, dict[str, Any]]

    def describe(self) -> str:
        if self.load is None:
            return f"{self.path} (one run)"
        return f"{self.path} (a sweep over {self.load} {', '.join(f'{v:g}' for v in self.points if v is not None)})"


def load_run(path: Path) -> BenchRun:
    """The run at ``path``: a summary.json, a sweep.json, or a directory holding either (its
    sweep.json first)."""
    if path.is_dir():
        found = [path / name for name in ("sweep.json", "summary.json") if (path / name).is_file()]
        if not found:
            raise OpenStrawberryError(f"{path}: no summary.json or sweep.json of bench in this directory")
        path = found[0]
    document = _read(path)
    if "points" in document and "load" in document:
        return _sweep(path, document)
    _check_summary(path, document)
    return BenchRun(path, None, {None: document})


def compared_points(a: BenchRun, b: BenchRun) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(title, A's summary, B's summary)``: the one pair of two single runs (title ``""``),
    or a sweep's points at the loads both measured (title ``concurrency 8``), in order."""
    if a.load is None and b.load is None:
        return [("", a.points[None], b.points[None])]
    if a.load is None or b.load is None or a.load != b.load:
        hint = " (or name one point's LOAD-VALUE/summary.json)" if (a.load is None) != (b.load is None) else ""
        raise OpenStrawberryError(f"cannot compare {a.describe()} with {b.describe()}: compare two runs, or two "
                                  f"sweeps over the same load{hint}")
    common = sorted(value for value in a.points.keys() & b.points.keys() if value is not None)
    if not common:
        raise OpenStrawberryError(f"{a.describe()} and {b.describe()} share no load: nothing to compare")
    return [(f"{a.load} {value:g}", a.points[value], b.points[value]) for value in common]


def compared_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any, float | None]]:
    """``(metric, A's figure, B's figure, B / A)`` for the throughputs, goodput, failures and
    the latencies' mean, p50 and p99 (TTFA's too where either run's server sent thinking);
    B / A is None where either is no number, or A is 0."""
    rows: list[tuple[str, Any, Any]] = [(name, a.get(name), b.get(name)) for name in COMPARED]
    latencies = list(LATENCIES)
    if "ttfa_ms" in a.keys() | b.keys():  # only where a run's server sent thinking
        latencies.insert(1, "ttfa_ms")
    for metric in latencies:
        for stat in ("mean", "p50", "p99"):
            rows.append((f"{metric} {stat}", _stat(a, metric, stat), _stat(b, metric, stat)))
    return [(name, left, right, _ratio(left, right)) for name, left, right in rows]


def _read(path: Path) -> dict[str, Any]:
    try:
        document = msgspec.json.decode(path.read_bytes())
    except OSError as exc:
        raise OpenStrawberryError(f"{path}: cannot read the summary: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise OpenStrawberryError(f"{path}: not a summary.json of bench ({exc})") from None
    if not isinstance(document, dict):
        raise OpenStrawberryError(f"{path}: not a summary.json of bench (a JSON {_json_kind(document)}, "
                                  "not an object)")
    return document


def _check_summary(path: Path, document: dict[str, Any]) -> None:
    if not document.keys() & {*COMPARED, *LATENCIES}:
        raise OpenStrawberryError(f"{path}: not a summary.json of bench (none of {', '.join(COMPARED)} "
                                  f"or {', '.join(LATENCIES)})")


def _sweep(path: Path, document: dict[str, Any]) -> BenchRun:
    """A sweep.json: ``{"load": NAME, "points": [{NAME: VALUE, ...summary}, ...]}``."""
    load, points = document["load"], document["points"]
    if not isinstance(load, str) or not isinstance(points, list) or not points:
        raise OpenStrawberryError(f"{path}: not a sweep.json of bench (a load name and a list of points)")
    runs: dict[float | None, dict[str, Any]] = {}
    for point in points:
        value = point.get(load) if isinstance(point, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise OpenStrawberryError(f"{path}: not a sweep.json of bench (a point without its {load})")
        _check_summary(path, point)
        runs[float(value)] = point
    return BenchRun(path, load, runs)


def _ratio(left: Any, right: Any) -> float | None:
    numbers = [v for v in (left, right) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) < 2 or not left:
        return None
    try:
        return float(right / left)
    except (OverflowError, ZeroDivisionError):
        return None


def _stat(run: dict[str, Any], metric: str, stat: str) -> Any:
    figures = run.get(metric)
    return figures.get(stat) if isinstance(figures, dict) else None


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
