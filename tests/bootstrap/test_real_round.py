"""One whole bootstrap round on SmolLM2-135M-Instruct with a tiny budget: llama.cpp's
llama-server serves the model, TRL trains it, and the next round serves the trained one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from open_strawberry.bootstrap import BootstrapConfig, StageEvent, TrainRequest, bootstrap
from open_strawberry.training import TrainResult

pytestmark = [pytest.mark.train, pytest.mark.timeout(1200)]

# 24 pool traces: the base model answers about one trace in five right at level 1 (mostly, it
# forgets to give the number when asked for it), so a round without a correct trace to train on
# is rare (0.8 ** 24 < 1%)
TINY = {"base": "smollm2", "problems": "arithmetic", "level": 1, "rounds": 1, "eval_problems": 3, "eval_samples": 2,
        "pool": 8, "samples": 3, "min_pass": 0.0, "max_pass": 1.0, "max_turns": 1, "final_every": 1,
        "max_tokens": 48, "train": "sft+dpo", "max_steps": 1, "batch_size": 2, "grad_accum": 1, "max_length": 384,
        "parallel": 2, "context": 4096}


class CrashingTrainer:
    def __call__(self, request: TrainRequest) -> TrainResult:
        raise RuntimeError("the machine went down while training")


def gguf_tensor(path: Path, name: str = "blk.0.attn_q.weight") -> Any:
    import gguf

    return next(t for t in gguf.GGUFReader(str(path)).tensors if t.name == name).data.copy()


def safetensor(model: Path, name: str = "model.layers.0.self_attn.q_proj.weight") -> Any:
    from safetensors.numpy import load_file

    return load_file(str(model / "model.safetensors"))[name]


async def test_a_round_trains_serves_the_trained_model_and_resumes_by_stage(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="needs the train extra (make test-train)")
    import datasets

    config = BootstrapConfig(run_dir=str(tmp_path / "run"), **TINY)  # type: ignore[arg-type]
    run = tmp_path / "run"
    events: list[StageEvent] = []
    with anyio.fail_after(900):
        with pytest.raises(RuntimeError, match="went down"):  # a crash in the train stage
            await bootstrap(config, trainer=CrashingTrainer(), on_stage=events.append)
        assert [e.stage for e in events if e.status == "done"] == ["import", "serve", "evaluate", "generate", "select",
                                                                   "export"]
        events.clear()
        result = await bootstrap(config, on_stage=events.append)  # resumed: the real trainer this time
    done = [(e.round, e.stage, e.status) for e in events if e.status != "started"]
    assert done[:6] == [(-1, "import", "skipped"), (0, "evaluate", "skipped"), (0, "generate", "skipped"),
                        (0, "select", "skipped"), (0, "export", "skipped"), (0, "train", "done")]
    assert [stage for _, stage, _ in done[6:]] == ["serve", "evaluate"]

    # the model served in round 1 is the trained one, as the server itself says
    round0, round1 = run / "round-00", run / "round-01"
    served = json.loads((round1 / "stages.json").read_text())["stages"]["serve"]
    trained = Path(json.loads((round0 / "stages.json").read_text())["stages"]["train"]["model"])
    assert served["model"] == str(trained) and trained.parent == round0
    assert await anyio.Path(served["loaded"]).samefile(round1 / "model.gguf")
    assert (safetensor(trained) != safetensor(run / "base")).any()
    assert (gguf_tensor(round1 / "model.gguf") != gguf_tensor(round0 / "model.gguf")).any()

    # every artifact is valid: datasets loads them, TRL trained on them
    sft_rows = result.rounds[0].sft_rows
    assert sft_rows, "no correct trace to train on: the tiny budget was unlucky"
    for name in ("traces.jsonl", "traces.selected.jsonl", "sft.jsonl", "eval-L1.jsonl", "pool.jsonl"):
        assert len(datasets.load_dataset("json", data_files=str(round0 / name), split="train")) > 0, name
    sft = datasets.load_dataset("json", data_files=str(round0 / "sft.jsonl"), split="train")
    assert len(sft) == sft_rows and sft[0]["messages"][-1]["role"] == "assistant"
    sft_result = json.loads((round0 / "sft" / "train_result.json").read_text())
    assert sft_result["steps"] == 1 and sft_result["rows"] == sft_rows and sft_result["losses"]
    if result.rounds[0].dpo_pairs:
        dpo = datasets.load_dataset("json", data_files=str(round0 / "dpo.jsonl"), split="train")
        assert set(dpo.column_names) == {"prompt", "chosen", "rejected"}
        assert json.loads((round0 / "dpo" / "train_result.json").read_text())["steps"] == 1
        assert trained == round0 / "dpo"
    report = json.loads((run / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1] and (run / "report.md").is_file()
    held_out = report["rounds"][1]["evaluations"][0]
    assert held_out["traces"] == 6 and held_out["low"] <= held_out["pass_at_1"] <= held_out["high"]

    # a finished run reruns nothing and starts no server
    events.clear()
    with anyio.fail_after(120):
        await bootstrap(config, on_stage=events.append)
    assert {e.status for e in events} == {"skipped"} and "serve" not in {e.stage for e in events}
