"""Folders and files that are not a run's own are never written into (issue 22): ``train
--out`` onto someone's folder or the model, ``model export-gguf`` onto a file of another
kind, ``import-gguf`` beside a folder of the partial's name; a rerun with other settings is
refused; a checkpoint cut short is set aside and the run resumes from the one before. None
of this needs torch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from open_strawberry.cli import main
from open_strawberry.errors import ConfigurationError
from open_strawberry.training import TrainConfig, train
from open_strawberry.training.claim import check_apart, check_ours
from open_strawberry.training.models import check_gguf_output
from open_strawberry.training.trainer import last_complete_checkpoint
from tests.training.test_config import SFT_ROW, model_folder, write


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_onto_a_folder_of_someone_elses_is_refused_and_touches_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = model_folder(tmp_path / "base")
    data = write(tmp_path / "sft.jsonl", [SFT_ROW])
    important = tmp_path / "important"
    (important / "checkpoints").mkdir(parents=True)
    (important / "checkpoints" / "precious.txt").write_text("mine\n")
    (important / "config.json").write_text('{"mine": true}\n')
    before = files(important)
    assert main(["train", "sft", str(data), "--model", str(model), "--out", str(important), "--max-steps", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files but no training run (no train_config.json)" in err, err
    assert files(important) == before


@pytest.mark.parametrize("where", ["base", "base/trained"])
def test_train_into_or_inside_the_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   where: str) -> None:
    model = model_folder(tmp_path / "base")
    data = write(tmp_path / "sft.jsonl", [SFT_ROW])
    before = files(model)
    (tmp_path / "base" / "train_config.json").write_text("{}")  # even a folder that looks like a run of ours
    assert main(["train", "sft", str(data), "--model", str(model), "--out", str(tmp_path / where)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--model {model}" in err and ("is inside" in err or " is " in err), err
    assert {k: v for k, v in files(model).items() if k != "train_config.json"} == before


def test_a_model_inside_the_output_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="holds --model"):
        check_apart(tmp_path / "out", "--out", {"--model": tmp_path / "out" / "checkpoints" / "checkpoint-1"})
    check_apart(tmp_path / "out", "--out", {"--model": tmp_path / "out-base", "--ref-model": None})  # apart: fine


def test_an_empty_or_missing_folder_or_a_run_of_ours_may_be_written(tmp_path: Path) -> None:
    check_ours(tmp_path / "missing", "train_config.json", option="--out", run="training run")
    (tmp_path / "empty").mkdir()
    check_ours(tmp_path / "empty", "train_config.json", option="--out", run="training run")
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "train_config.json").write_text("{}")
    (tmp_path / "ours" / "losses.jsonl").write_text("")
    check_ours(tmp_path / "ours", "train_config.json", option="--out", run="training run")


def test_a_rerun_with_other_settings_is_refused_before_anything_loads(tmp_path: Path) -> None:
    model = model_folder(tmp_path / "base")
    data = write(tmp_path / "sft.jsonl", [SFT_ROW, SFT_ROW])
    out = tmp_path / "out"
    out.mkdir()
    first = TrainConfig(kind="sft", data=str(data), model=str(model), out=str(out), epochs=1.0)
    recorded = {k: v for k, v in json.loads(json.dumps(__import__("msgspec").to_builtins(first))).items()
                if k != "progress"}
    (out / "train_config.json").write_text(json.dumps(recorded))
    again = TrainConfig(kind="sft", data=str(data), model=str(model), out=str(out), epochs=2.0)
    with pytest.raises(ConfigurationError, match=r"holds a training run with other settings \(epochs\)"):
        train(again)
    # and a finished run (its result written) is refused the same way, not handed back as done
    (out / "train_result.json").write_text(json.dumps({
        "kind": "sft", "out": str(out), "base_model": str(model), "rows": 2, "mixed_rows": 0, "steps": 1,
        "epochs": 1.0, "train_loss": 1.0, "last_loss": 1.0, "losses": [1.0], "elapsed_s": 0.0}))
    with pytest.raises(ConfigurationError, match=r"other settings \(epochs\)"):
        train(again)
    assert train(first).steps == 1  # the same settings: the finished result


def test_export_gguf_onto_a_file_of_another_kind_or_into_the_model_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = model_folder(tmp_path / "base")
    weights = model / "model.safetensors"
    before = weights.read_bytes()
    assert main(["model", "export-gguf", str(model), "--out", str(weights)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not a GGUF file" in err, err
    assert weights.read_bytes() == before
    with pytest.raises(ConfigurationError, match="inside the checkpoint folder"):
        check_gguf_output(model / "new.gguf", model)
    (tmp_path / "old.gguf").write_bytes(b"GGUF\x03\x00")
    check_gguf_output(tmp_path / "old.gguf", model)  # a GGUF of ours may be replaced


def test_import_gguf_onto_an_existing_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "gguf").write_bytes(b"GGUF" + b"\x00" * 16)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert main(["model", "import-gguf", str(tmp_path / "gguf"), "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert files(out) == {"notes.txt": b"mine\n"}


def checkpoint(folder: Path, step: int, *, complete: bool) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_a_checkpoint_cut_short_is_set_aside_and_the_one_before_resumes(tmp_path: Path) -> None:
    checkpoints = tmp_path / "out" / "checkpoints"
    checkpoint(checkpoints, 1, complete=True)
    checkpoint(checkpoints, 2, complete=False)
    (checkpoint(checkpoints, 3, complete=False) / "trainer_state.json").write_text('{"global_st')  # cut mid-write
    assert last_complete_checkpoint(checkpoints) == str(checkpoints / "checkpoint-1")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-1"]
    for step in (2, 3):  # moved, not deleted, and out of the trainer's way
        assert (tmp_path / "out" / f"incomplete-checkpoint-{step}" / "model.safetensors").read_bytes() == b"weights"
    checkpoint(checkpoints, 2, complete=False)  # cut short again: set aside beside the first
    assert last_complete_checkpoint(checkpoints) == str(checkpoints / "checkpoint-1")
    assert (tmp_path / "out" / "incomplete-checkpoint-2.1").is_dir()


def test_no_complete_checkpoint_starts_afresh(tmp_path: Path) -> None:
    assert last_complete_checkpoint(tmp_path / "none") is None
    checkpoint(tmp_path / "checkpoints", 5, complete=False)
    assert last_complete_checkpoint(tmp_path / "checkpoints") is None
    assert (tmp_path / "incomplete-checkpoint-5").is_dir()
