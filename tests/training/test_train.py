"""Real training with TRL on SmolLM2-135M-Instruct (a step or two each): SFT with a mix,
resumed after a crash; DPO with a local reference; LoRA merged; GGUF import and export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from open_strawberry.cli import main
from open_strawberry.pipeline import generate
from open_strawberry.traces import export_sft
from open_strawberry.training import TrainConfig, parse_mix, read_result, train
from tests.real.servers import easy_problems, thinking_llama_server

pytestmark = pytest.mark.train

PAIRS = [{"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
          "chosen": [{"role": "assistant", "content": f"{a} + {b} = {a + b}. <final_answer>{a + b}</final_answer>"}],
          "rejected": [{"role": "assistant", "content": f"{a} + {b} = {a + b + 1}. <final_answer>{a + b + 1}"
                                                        "</final_answer>"}]} for a, b in [(2, 3), (4, 4), (7, 1)]]


def tensor(model: Path, name: str = "model.layers.0.self_attn.q_proj.weight") -> Any:
    from safetensors.numpy import load_file

    return load_file(str(model / "model.safetensors"))[name]


def test_import_gguf_makes_a_trainable_fp32_checkpoint(smollm2_checkpoint: Path) -> None:
    config = json.loads((smollm2_checkpoint / "config.json").read_text())
    assert config["model_type"] == "llama" and config["dtype"] == "float32" and "quantization_config" not in config
    assert (smollm2_checkpoint / "tokenizer.json").is_file()
    assert tensor(smollm2_checkpoint).dtype.name == "float32"


def test_sft_with_a_mix_resumes_from_its_checkpoint_after_a_crash(smollm2_checkpoint: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class CrashAfterTheFirstSave(TrainerCallback):  # type: ignore[misc]
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise RuntimeError("killed after step 1")

    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": [*p["prompt"], *p["chosen"]]}) + "\n" for p in PAIRS))
    config = TrainConfig(kind="sft", data=str(data), model=str(smollm2_checkpoint), out=str(tmp_path / "out"),
                         mix=[parse_mix("builtin:chat:0.25")], max_steps=2, batch_size=1, grad_accum=1,
                         save_steps=1, max_length=128, progress=False)
    with pytest.raises(RuntimeError, match="killed after step 1"):
        train(config, callbacks=[CrashAfterTheFirstSave()])
    assert (tmp_path / "out" / "checkpoints" / "checkpoint-1").is_dir() and read_result(tmp_path / "out") is None

    result = train(config)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-1")
    assert (result.steps, result.rows, result.mixed_rows) == (2, 4, 1)
    logged = [json.loads(line) for line in (tmp_path / "out" / "losses.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [1, 2] and result.losses == [e["loss"] for e in logged]
    assert json.loads((tmp_path / "out" / "train_config.json").read_text())["mix"] == [
        {"path": "builtin:chat", "fraction": 0.25}]
    assert not (tmp_path / "out" / "checkpoints").exists()  # dropped once the model is saved
    assert (tensor(tmp_path / "out") != tensor(smollm2_checkpoint)).any()
    assert train(config) == result  # finished: a rerun only reads the result


@pytest.mark.timeout(900)  # a real server's traces, then training: minutes on a busy 2-core machine
def test_sft_trains_on_the_thinking_of_real_traces(smollm2_checkpoint: Path, tmp_path: Path) -> None:
    """llama-server makes SmolLM2 think (as in tests/real/test_reasoning.py); the right traces,
    exported with their thinking in ``reasoning_content``, train. SmolLM2's chat template does not
    render that key, so training puts each turn's thinking inline before its answer, and says so."""
    from structlog.testing import capture_logs

    (tmp_path / "server").mkdir()
    with thinking_llama_server(tmp_path / "server") as server:
        summary = anyio.run(lambda: generate(
            problems=str(easy_problems(tmp_path / "easy.jsonl")), model=server.model(), samples=4, max_turns=2,
            max_tokens=48, final_every=1, last_call=True, answer_fallback="last_number", out=str(tmp_path / "t.jsonl"),
            grader="tests.real.servers:every_answer"))  # every answer passes: the test is where thinking goes
    counts = export_sft(summary.out, tmp_path / "sft.jsonl", thinking="field")
    assert counts.written >= 1, "no trace of 16 gave an answer: nothing to train on"
    rows = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    thought = sum(1 for row in rows for message in row["messages"] if message.get("reasoning_content"))
    assert thought >= 1

    config = TrainConfig(kind="sft", data=str(tmp_path / "sft.jsonl"), model=str(smollm2_checkpoint),
                         out=str(tmp_path / "out"), max_steps=1, batch_size=1, grad_accum=1, max_length=256,
                         progress=False)
    with capture_logs() as logs:
        result = train(config)
    assert result.rows == counts.written and result.steps == 1
    assert [log["messages"] for log in logs if log["event"] == "thinking_put_inline"] == [thought]
    kept = [json.loads(line) for line in (tmp_path / "out" / "train_data.jsonl").read_text().splitlines()]
    # the data as given is recorded (in training's shuffled order); the thinking moved only for the template
    assert sorted(map(json.dumps, kept)) == sorted(map(json.dumps, rows))


def test_dpo_trains_on_preference_pairs_with_a_local_reference(smollm2_checkpoint: Path, tmp_path: Path) -> None:
    data = tmp_path / "dpo.jsonl"
    data.write_text("".join(json.dumps(pair) + "\n" for pair in PAIRS))
    result = train(TrainConfig(kind="dpo", data=str(data), model=str(smollm2_checkpoint), out=str(tmp_path / "dpo"),
                               max_steps=1, batch_size=2, grad_accum=1, max_length=128, learning_rate=1e-5,
                               progress=False))
    assert result.steps == 1 and result.losses and result.losses[0] == pytest.approx(0.6931, abs=1e-3)  # ln 2
    assert (tensor(tmp_path / "dpo") != tensor(smollm2_checkpoint)).any()


def test_lora_from_the_command_line_saves_a_merged_model_and_exports_to_gguf(
        smollm2_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gguf

    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": [*p["prompt"], *p["chosen"]]}) + "\n" for p in PAIRS))
    out = tmp_path / "lora"
    assert main(["train", "sft", str(data), "--model", str(smollm2_checkpoint), "--out", str(out), "--lora",
                 "--max-steps", "1", "--batch-size", "2", "--grad-accum", "1", "--max-length", "128",
                 "--no-progress"]) == 0
    assert "trained sft on 3 rows (0 mixed in) for 1 steps" in capsys.readouterr().err
    assert not (out / "adapter_config.json").exists()  # merged: a plain checkpoint
    assert (tensor(out) != tensor(smollm2_checkpoint)).any()

    assert main(["model", "export-gguf", str(out), "--out", str(tmp_path / "lora.gguf")]) == 0
    reader = gguf.GGUFReader(str(tmp_path / "lora.gguf"))
    assert len(reader.tensors) == 272
    assert reader.fields["general.architecture"].contents() == "llama"


def test_a_damaged_model_folder_is_one_line_naming_it(smollm2_checkpoint: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (damaged / name).write_bytes((smollm2_checkpoint / name).read_bytes()[:100])  # cut short
    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    assert main(["train", "sft", str(data), "--model", str(damaged), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--model {damaged}:" in err and "could not be loaded" in err, err
    assert not (tmp_path / "out").exists()  # a start that failed leaves no claim to trip the corrected rerun


def test_import_gguf_of_a_cut_short_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from open_strawberry.serving import smollm2_gguf

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2_gguf().read_bytes()[:5000])
    assert main(["model", "import-gguf", str(cut), "--out", str(tmp_path / "model")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{cut}: its tokenizer could not be loaded" in err, err
    assert not (tmp_path / "model").exists()
