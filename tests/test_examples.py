"""Every example runs as a user would run it (a subprocess, the mock in-process) and does what it says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from open_strawberry.messages import record_decoder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str, out: Path) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), str(out)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def records(path: Path) -> list:  # type: ignore[type-arg]
    return [record_decoder.decode(line) for line in path.read_bytes().splitlines()]


def test_minimal_system_writes_a_graded_record_per_problem(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    assert "100 traces written" in run("minimal_system", out)
    assert len(records(out)) == 100 and all(r.correct for r in records(out))


def test_quickstart_generates_and_exports_dpo_pairs(tmp_path: Path) -> None:
    printed = run("quickstart", tmp_path)
    pairs = [json.loads(line) for line in (tmp_path / "dpo.jsonl").read_text().splitlines()]
    assert f"{len(pairs)} DPO pairs" in printed and pairs
    assert len(records(tmp_path / "traces.jsonl")) == 80


def test_custom_grader_grades_every_answer_with_python(tmp_path: Path) -> None:
    printed = run("custom_grader", tmp_path)
    graded = [r for r in records(tmp_path / "traces.jsonl") if r.correct is not None]
    assert graded and {r.grader for r in graded} == {"python_value"}
    assert all("evaluates to" in r.grade_detail for r in graded)
    assert f"{sum(r.correct for r in graded)} of {len(graded)}" in printed


def test_custom_actor_shortens_long_histories(tmp_path: Path) -> None:
    printed = run("custom_actor", tmp_path)
    shortened = int(re.search(r"shortened (\d+) requests", printed)[1])  # type: ignore[index]
    assert shortened > 0
    assert all(len(r.messages) > 6 for r in records(tmp_path / "traces.jsonl"))


def test_custom_strategy_asks_questions(tmp_path: Path) -> None:
    run("custom_strategy", tmp_path)
    for record in records(tmp_path / "traces.jsonl"):
        assert record.strategy == "socratic"
        assert {t.kind for t in record.turns} <= {"first", "question", "final_request"}


def test_two_models_split_the_work(tmp_path: Path) -> None:
    printed = run("two_models", tmp_path)
    strong, cheap = map(int, re.search(r"answered (\d+) calls, the cheap one verified (\d+)", printed).groups())  # type: ignore[union-attr]
    assert strong == sum(len(r.turns) for r in records(tmp_path / "traces.jsonl"))
    assert cheap > 0


def test_watch_events_prints_a_trace_as_it_streams(tmp_path: Path) -> None:
    printed = run("watch_events", tmp_path)
    assert "[trace finished:" in printed
    counts = eval(printed.strip().splitlines()[-1])  # the example prints a dict of counts
    assert counts["TraceFinished"] == 6 and counts["TextDelta"] > counts["TurnStarted"]


def test_bootstrap_custom_replaces_the_server_and_the_trainer(tmp_path: Path) -> None:
    printed = run("bootstrap_custom", tmp_path)  # the mock serves, a stand-in trains: no train extra needed
    assert "served 4 models" in printed
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1, 2, 3]
    first, second = (report["rounds"][i]["evaluations"][0] for i in (0, 1))
    assert first["level"] == second["level"] == 2 and second["pass_at_1"] > first["pass_at_1"]
    assert (tmp_path / "run" / "report.md").is_file()


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.py")))
def test_every_example_is_tested(name: str) -> None:
    assert f'run("{name}"' in Path(__file__).read_text()
