"""A bootstrap run directory is the run's own (issue 22): a folder of someone else's, or one
inside the base model, is refused untouched; a rerun may add rounds, never drop them; the
mastery boundary (pass@1 equal to --mastery moves the round up)."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_strawberry.errors import ConfigurationError
from tests.bootstrap.fakes import MockModels, RaisingTrainer, make_model
from tests.bootstrap.test_bootstrap import config, run


async def test_a_folder_that_holds_no_bootstrap_run_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.md").write_text("my notes\n")
    server = MockModels()
    with pytest.raises(ConfigurationError, match=r"--run-dir .*run holds files but no bootstrap run"):
        await run(config(tmp_path, rounds=1), server, RaisingTrainer())
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["report.md"]
    assert (tmp_path / "run" / "report.md").read_text() == "my notes\n" and server.served == []


async def test_a_run_dir_inside_the_base_folder_is_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path, rounds=1)
    inside = cfg.__class__(**{**{f: getattr(cfg, f) for f in cfg.__struct_fields__},
                              "run_dir": str(tmp_path / "base" / "run")})
    with pytest.raises(ConfigurationError, match=r"--run-dir .* is inside --base"):
        await run(inside, MockModels(), RaisingTrainer())
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == ["accuracy.txt"]


async def test_fewer_rounds_than_the_run_has_are_refused_and_the_report_kept(tmp_path: Path) -> None:
    await run(config(tmp_path, rounds=1), MockModels(), RaisingTrainer())
    report = (tmp_path / "run" / "report.md").read_text()
    with pytest.raises(ConfigurationError, match=r"--rounds 0: the run in .* has 1 rounds"):
        await run(config(tmp_path, rounds=0), MockModels(), RaisingTrainer())
    assert (tmp_path / "run" / "report.md").read_text() == report
    again, _ = await run(config(tmp_path, rounds=1), MockModels(), RaisingTrainer())  # the same: resumes
    assert [r.round for r in again.rounds] == [0, 1]  # type: ignore[attr-defined]


async def test_pass_at_1_equal_to_mastery_moves_the_round_up(tmp_path: Path) -> None:
    make_model(tmp_path / "base", 1.0)  # every held-out trace correct: pass@1 exactly 1.0
    result, _ = await run(config(tmp_path, rounds=0, level=1, max_level=2, mastery=1.0), MockModels(),
                          RaisingTrainer())
    first = result.rounds[0]  # type: ignore[attr-defined]
    assert [e.pass_at_1 for e in first.evaluations] == [1.0, 1.0]
    assert [e.level for e in first.evaluations] == [1, 2] and first.level == 2
