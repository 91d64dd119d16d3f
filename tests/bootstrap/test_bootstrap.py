"""Bootstrap rounds with a stand-in server (the mock LLM) and trainer: the loop, its run
directory, resuming at the stage reached, the level ladder, held-out problems."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from open_strawberry.bootstrap import BootstrapConfig, StageEvent, bootstrap, wilson_interval
from open_strawberry.errors import ConfigurationError
from tests.bootstrap.fakes import MockModels, RaisingTrainer, make_model

SMALL = {"problems": "arithmetic", "level": 2, "eval_problems": 6, "eval_samples": 2, "pool": 8, "samples": 2,
         "max_turns": 3, "max_tokens": 64, "min_pass": 0.01, "max_pass": 0.99}


def config(tmp_path: Path, **options: object) -> BootstrapConfig:
    base = tmp_path / "base"
    if not base.exists():
        make_model(base, 0.5)
    return BootstrapConfig(run_dir=str(tmp_path / "run"), base=str(base), **{**SMALL, **options})  # type: ignore[arg-type]


async def run(cfg: BootstrapConfig, server: MockModels, trainer: RaisingTrainer) -> tuple[object, list[StageEvent]]:
    events: list[StageEvent] = []
    with anyio.fail_after(120):
        result = await bootstrap(cfg, server=server, trainer=trainer, on_stage=events.append)
    return result, events


def finished(events: list[StageEvent]) -> list[tuple[int, str, str]]:
    return [(e.round, e.stage, e.status) for e in events if e.status != "started"]


async def test_each_round_serves_the_model_the_round_before_trained(tmp_path: Path) -> None:
    server, trainer = MockModels(), RaisingTrainer()
    result, events = await run(config(tmp_path, rounds=1), server, trainer)
    run_dir = tmp_path / "run"
    assert server.served == [tmp_path / "base", run_dir / "round-00" / "sft"]
    assert [r.model for r in trainer.requests] == [tmp_path / "base"]
    assert finished(events) == [(0, "serve", "done"), (0, "evaluate", "done"), (0, "generate", "done"),
                                (0, "select", "done"), (0, "export", "done"), (0, "train", "done"),
                                (1, "serve", "done"), (1, "evaluate", "done")]
    for name in ("pool.jsonl", "traces.jsonl", "selected.jsonl", "sft.jsonl", "dpo.jsonl", "eval-L2.jsonl",
                 "stages.json"):
        assert (run_dir / "round-00" / name).is_file(), name
    stages = json.loads((run_dir / "round-01" / "stages.json").read_text())["stages"]
    assert stages["serve"]["model"] == str(run_dir / "round-00" / "sft")
    report = json.loads((run_dir / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    assert report["rounds"][0]["sft_rows"] > 0 and report["rounds"][0]["train_loss"] is not None
    markdown = (run_dir / "report.md").read_text()
    assert "| 0 | base | 2 |" in markdown and "| 1 | round-00/sft | 2 |" in markdown
    assert result.final_model == str(run_dir / "round-00" / "sft")  # type: ignore[attr-defined]


async def test_a_rerun_skips_every_finished_stage_and_starts_no_server(tmp_path: Path) -> None:
    cfg = config(tmp_path, rounds=1)
    await run(cfg, MockModels(), RaisingTrainer())
    before = (tmp_path / "run" / "report.json").read_text()
    server, trainer = MockModels(), RaisingTrainer()
    _, events = await run(cfg, server, trainer)
    assert server.served == [] and trainer.requests == []
    assert {status for _, _, status in finished(events)} == {"skipped"}
    rows = json.loads((tmp_path / "run" / "report.json").read_text())["rounds"]
    assert [r["evaluations"] for r in rows] == [r["evaluations"] for r in json.loads(before)["rounds"]]


async def test_a_run_that_crashed_in_training_goes_on_from_training(tmp_path: Path) -> None:
    cfg = config(tmp_path, rounds=1)
    with pytest.raises(RuntimeError, match="the trainer crashed"):
        await run(cfg, MockModels(), RaisingTrainer(fail=True))
    server, trainer = MockModels(), RaisingTrainer()
    _, events = await run(cfg, server, trainer)
    assert finished(events)[:5] == [(0, "evaluate", "skipped"), (0, "generate", "skipped"), (0, "select", "skipped"),
                                    (0, "export", "skipped"), (0, "train", "done")]
    assert server.served == [tmp_path / "run" / "round-00" / "sft"]  # round 0 needed no server again
    assert len(trainer.requests) == 1


async def test_a_cancelled_run_stops_its_server_and_resumes_at_the_stage_it_was_in(tmp_path: Path) -> None:
    cfg, server = config(tmp_path, rounds=1), MockModels()
    with anyio.fail_after(120), anyio.CancelScope() as scope:
        def cancel_in_generate(number: int, stage: str, progress: object) -> None:
            if stage == "generate":
                scope.cancel()

        await bootstrap(cfg, server=server, trainer=RaisingTrainer(), on_progress=cancel_in_generate,
                        progress_every_s=0.01)
    assert scope.cancelled_caught and server.serving == 0
    stages = json.loads((tmp_path / "run" / "round-00" / "stages.json").read_text())["stages"]
    assert "evaluate" in stages and "generate" not in stages
    _, events = await run(cfg, MockModels(), RaisingTrainer())
    assert finished(events)[:3] == [(0, "serve", "done"), (0, "evaluate", "skipped"), (0, "generate", "done")]


async def test_more_rounds_continue_a_finished_run(tmp_path: Path) -> None:
    await run(config(tmp_path, rounds=1), MockModels(), RaisingTrainer(step=0.1))
    server, trainer = MockModels(), RaisingTrainer(step=0.1)
    result, events = await run(config(tmp_path, rounds=2), server, trainer)
    assert (1, "generate", "done") in finished(events) and (2, "evaluate", "done") in finished(events)
    assert [r.round for r in result.rounds] == [0, 1, 2]  # type: ignore[attr-defined]


async def test_a_mastered_level_moves_the_round_up_the_ladder(tmp_path: Path) -> None:
    make_model(tmp_path / "base", 1.0)
    result, _ = await run(config(tmp_path, rounds=1, level=1, max_level=3, mastery=0.8), MockModels(),
                          RaisingTrainer())
    first = result.rounds[0]  # type: ignore[attr-defined]
    assert [e.level for e in first.evaluations] == [1, 2, 3] and first.level == 3
    pool = [json.loads(line) for line in (tmp_path / "run" / "round-00" / "pool.jsonl").read_text().splitlines()]
    assert pool and {p["meta"]["level"] for p in pool} == {3}


async def test_held_out_problems_never_reach_a_pool_and_trained_ones_do_not_return(tmp_path: Path) -> None:
    make_model(tmp_path / "base", 0.4)
    await run(config(tmp_path, rounds=2, level=1, mastery=1.0, pool=20, samples=3), MockModels(),
              RaisingTrainer(step=0.05))
    run_dir = tmp_path / "run"

    def ids(path: Path) -> set[str]:
        return {json.loads(line)["id"] for line in path.read_text().splitlines()}

    held_out = ids(run_dir / "eval" / "L1.jsonl")
    assert len(held_out) == 6
    for number in (0, 1):
        assert not ids(run_dir / f"round-0{number}" / "pool.jsonl") & held_out
    assert ids(run_dir / "round-00" / "selected.jsonl")
    assert not ids(run_dir / "round-00" / "selected.jsonl") & ids(run_dir / "round-01" / "pool.jsonl")
    sft = [json.loads(line) for line in (run_dir / "round-00" / "sft.jsonl").read_text().splitlines()]
    assert sft and all(row["messages"][-1]["role"] == "assistant" for row in sft)


async def test_another_config_in_the_same_run_dir_is_refused(tmp_path: Path) -> None:
    await run(config(tmp_path, rounds=0), MockModels(), RaisingTrainer())
    with pytest.raises(ConfigurationError, match=r"other settings \(pool\)"):
        await run(config(tmp_path, rounds=0, pool=9), MockModels(), RaisingTrainer())


@pytest.mark.parametrize(("options", "message"), [
    ({"problems": "riddles"}, "problems 'riddles'"), ({"level": 9}, "goes up to level 7"),
    ({"min_pass": 0.8, "max_pass": 0.5}, "above max_pass"), ({"eval_samples": 0}, "eval_samples must be at least 1"),
])
def test_bad_options_are_refused_before_anything_runs(tmp_path: Path, options: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        config(tmp_path, **options).check()


def test_wilson_intervals() -> None:
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("args", "message"), [
    (["--level", "9"], "--level 9: arithmetic goes up to level 7"),
    (["--mix", "builtin:chat"], "--mix 'builtin:chat': write FILE:FRACTION"),
    (["--max-pass", "1.5"], "--max-pass must be between 0 and 1"),
])
def test_the_command_checks_its_options_before_starting_anything(tmp_path: Path, args: list[str], message: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from open_strawberry.cli import main

    assert main(["bootstrap", "--run-dir", str(tmp_path / "run"), *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--base", "@/missing.gguf"], "@/missing.gguf: no such GGUF file"),
    (["--base", "@/notes.txt"], "@/notes.txt: not a GGUF file"),
    (["--base", "@"], "--base @: not a model folder (no config.json)"),
    (["--base", "@/model.gguf", "--mix", "@/missing.jsonl:0.2"], "--mix @/missing.jsonl:0.2: no such file"),
])
def test_the_files_a_run_starts_from_are_checked_before_its_directory_is_claimed(
        tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from open_strawberry.cli import main

    (tmp_path / "notes.txt").write_text("not a model\n")
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + bytes(60))  # its start only: nothing loads it here
    args = [arg.replace("@", str(tmp_path)) for arg in args]
    assert main(["bootstrap", "--run-dir", str(tmp_path / "run"), *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.replace("@", str(tmp_path)) in err, err
    assert not (tmp_path / "run").exists()


async def test_a_level_without_fresh_problems_stops_with_a_clear_error(tmp_path: Path) -> None:
    # one-digit sums: 81 problems, nearly all held out; what is left is selected round after round
    make_model(tmp_path / "base", 0.5)
    cfg = config(tmp_path, rounds=4, level=1, eval_problems=81, eval_samples=1, pool=40, samples=2, mastery=1.0,
                 min_pass=0.0, max_pass=1.0)
    with pytest.raises(ConfigurationError, match="level 1 of arithmetic has no fresh problem left"):
        await run(cfg, MockModels(), RaisingTrainer(step=0.0))


async def test_progress_is_reported_while_traces_are_generated(tmp_path: Path) -> None:
    seen: list[tuple[int, str]] = []
    with anyio.fail_after(120):
        await bootstrap(config(tmp_path, rounds=0), server=MockModels(), trainer=RaisingTrainer(),
                        on_progress=lambda number, stage, progress: seen.append((number, stage)),
                        progress_every_s=0.01)
    assert (0, "evaluate") in seen
