"""A checkpoint cut short by Ctrl-C while it was saved (no trainer_state.json, which
transformers writes last) no longer breaks resuming for good: the rerun sets it aside, says
so, and goes on from the newest complete one (issue 22)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import structlog

from open_strawberry.training import TrainConfig, train
from tests.training.test_train import PAIRS

pytestmark = pytest.mark.train


def test_a_checkpoint_cut_short_is_set_aside_and_the_run_resumes(smollm2_checkpoint: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class CrashAfterTheFirstSave(TrainerCallback):  # type: ignore[misc]
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise RuntimeError("killed after step 1")

    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": [*p["prompt"], *p["chosen"]]}) + "\n" for p in PAIRS))
    out = tmp_path / "out"
    config = TrainConfig(kind="sft", data=str(data), model=str(smollm2_checkpoint), out=str(out), max_steps=3,
                         batch_size=1, grad_accum=1, save_steps=1, max_length=128, progress=False)
    with pytest.raises(RuntimeError, match="killed after step 1"):
        train(config, callbacks=[CrashAfterTheFirstSave()])
    checkpoints = out / "checkpoints"
    shutil.copytree(checkpoints / "checkpoint-1", checkpoints / "checkpoint-2",
                    ignore=shutil.ignore_patterns("trainer_state.json"))  # Ctrl-C before its state was written
    with structlog.testing.capture_logs() as logs:
        result = train(config)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-1")
    assert result.steps == 3
    assert (out / "incomplete-checkpoint-2" / "model.safetensors").is_file()  # set aside, not deleted
    assert [e["moved_to"] for e in logs if e["event"] == "incomplete_checkpoint_set_aside"] == [
        str(out / "incomplete-checkpoint-2")]
