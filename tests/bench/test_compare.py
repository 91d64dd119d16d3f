"""``bench compare`` reads what ``bench`` wrote: a summary.json, a sweep.json, or the --out
directory of either; two sweeps compare point by point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from open_strawberry.bench.compare import compared_points, load_run
from open_strawberry.bench.report import write_sweep
from tests.cli.test_careless_input import run


def summary(throughput: float, ttft: float) -> dict[str, Any]:
    latency = {"mean": ttft, "p50": ttft, "p99": ttft}
    return {"request_throughput": throughput, "output_token_throughput": throughput * 10, "goodput": None,
            "failed": 0, "ttft_ms": latency, "tpot_ms": latency, "itl_ms": latency, "e2e_ms": latency}


def sweep(out: Path, points: dict[int, tuple[float, float]]) -> Path:
    """A sweep's --out directory as bench writes it: sweep.json and a summary.json a point."""
    for value, (throughput, ttft) in points.items():
        (out / f"concurrency-{value}").mkdir(parents=True)
        (out / f"concurrency-{value}" / "summary.json").write_text(json.dumps(summary(throughput, ttft)))
    write_sweep(out, "concurrency", [(float(v), summary(*figures)) for v, figures in points.items()])
    return out


def test_two_sweeps_compare_point_by_point_at_the_loads_both_measured(tmp_path: Path) -> None:
    a = sweep(tmp_path / "a", {1: (10.0, 100.0), 8: (40.0, 200.0)})
    b = sweep(tmp_path / "b", {1: (20.0, 50.0), 8: (60.0, 400.0), 32: (90.0, 900.0)})
    result = run("bench", "compare", a, b)
    assert result.code == 0, result.err
    first, second = result.out.index("concurrency 1"), result.out.index("concurrency 8")
    assert first < second
    assert "2.000" in result.out[first:second] and "0.500" in result.out[first:second]  # throughput, ttft
    assert "1.500" in result.out[second:] and "2.000" in result.out[second:]
    assert "only in" in result.out and "concurrency 32" in result.out


@pytest.mark.parametrize("where", ["directory", "sweep.json"])
def test_a_sweep_is_read_from_its_directory_or_its_sweep_json(tmp_path: Path, where: str) -> None:
    out = sweep(tmp_path / "s", {1: (10.0, 100.0), 4: (30.0, 120.0)})
    run_ = load_run(out if where == "directory" else out / "sweep.json")
    assert run_.load == "concurrency" and sorted(v for v in run_.points if v is not None) == [1.0, 4.0]
    assert run_.points[4.0]["request_throughput"] == 30.0


def test_a_single_run_is_read_from_its_directory_or_its_summary(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "summary.json").write_text(json.dumps(summary(5.0, 10.0)))
    by_dir, by_file = load_run(tmp_path / "one"), load_run(tmp_path / "one" / "summary.json")
    assert by_dir.points == by_file.points == {None: summary(5.0, 10.0)}
    assert [title for title, _, _ in compared_points(by_dir, by_file)] == [""]


def test_one_point_of_a_sweep_compares_with_a_single_run(tmp_path: Path) -> None:
    out = sweep(tmp_path / "s", {1: (10.0, 100.0), 4: (30.0, 120.0)})
    (tmp_path / "one.json").write_text(json.dumps(summary(15.0, 100.0)))
    result = run("bench", "compare", out / "concurrency-4", tmp_path / "one.json")
    assert result.code == 0, result.err
    assert "0.500" in result.out


def test_a_sweep_against_a_single_run_names_both_and_the_way_out(tmp_path: Path) -> None:
    out = sweep(tmp_path / "s", {1: (10.0, 100.0), 4: (30.0, 120.0)})
    (tmp_path / "one.json").write_text(json.dumps(summary(15.0, 100.0)))
    run("bench", "compare", out, tmp_path / "one.json").one_line_error(
        "(a sweep over concurrency 1, 4)", "(one run)", "LOAD-VALUE/summary.json")


def test_sweeps_that_share_no_load_or_sweep_another_load_are_refused(tmp_path: Path) -> None:
    a = sweep(tmp_path / "a", {1: (10.0, 100.0)})
    b = sweep(tmp_path / "b", {2: (10.0, 100.0)})
    run("bench", "compare", a, b).one_line_error("share no load")
    (tmp_path / "rate.json").write_text(json.dumps({"load": "rate", "points": [{"rate": 1, **summary(1, 1)}]}))
    run("bench", "compare", a, tmp_path / "rate.json").one_line_error("two sweeps over the same load")


@pytest.mark.parametrize(("content", "message"), [
    ('{"load": "concurrency", "points": []}', "not a sweep.json of bench"),
    ('{"load": "concurrency", "points": [{"ttft_ms": 1}]}', "a point without its concurrency"),
    ('{"load": "concurrency", "points": [{"concurrency": 1, "name": "x"}]}', "not a summary.json of bench"),
])
def test_a_damaged_sweep_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "sweep.json").write_text(content)
    run("bench", "compare", tmp_path / "sweep.json", tmp_path / "sweep.json").one_line_error(message)


def test_a_directory_without_a_run_is_one_line(tmp_path: Path) -> None:
    run("bench", "compare", tmp_path, tmp_path).one_line_error(f"{tmp_path}: no summary.json or sweep.json")


def test_ttfa_is_compared_only_where_a_run_thought() -> None:
    from open_strawberry.bench.compare import compared_rows

    plain = summary(10.0, 100.0)
    assert not any(name.startswith("ttfa") for name, *_ in compared_rows(plain, summary(12.0, 90.0)))
    thought = {**summary(12.0, 90.0), "ttfa_ms": {"mean": 300.0, "p50": 300.0, "p99": 600.0}}
    rows = {name: (left, right, ratio) for name, left, right, ratio in compared_rows(plain, thought)}
    assert rows["ttfa_ms p50"] == (None, 300.0, None)  # A sent no thinking: nothing to divide by
    both = {name: ratio for name, _, _, ratio in compared_rows(thought, {**thought, "ttfa_ms": {"p50": 150.0}})}
    assert both["ttfa_ms p50"] == 0.5
