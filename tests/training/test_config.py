"""Training options, data files and the mix are checked before anything heavy loads; a missing
train extra is one clear line. None of this needs torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from open_strawberry.cli import main
from open_strawberry.errors import ConfigurationError
from open_strawberry.training import MixSource, TrainConfig, chat_data, mixed_rows, parse_mix, read_rows
from open_strawberry.training import extra as extra_module

SFT_ROW = {"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]}
DPO_ROW = {"prompt": [{"role": "user", "content": "What is 2 + 2?"}], "chosen": [{"role": "assistant", "content": "4"}],
           "rejected": [{"role": "assistant", "content": "5"}]}


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_mix_specs_parse_and_bad_ones_say_how_to_write_them() -> None:
    assert parse_mix("builtin:chat:0.2") == MixSource(path="builtin:chat", fraction=0.2)
    assert parse_mix("data/chat.jsonl:0.5") == MixSource(path="data/chat.jsonl", fraction=0.5)
    for bad in ("chat.jsonl", "chat.jsonl:1", "chat.jsonl:0", ":0.2", "chat.jsonl:x", "chat.jsonl:nan"):
        with pytest.raises(ConfigurationError, match="FILE:FRACTION"):
            parse_mix(bad)


@pytest.mark.parametrize(("options", "message"), [
    ({"batch_size": 0}, "batch_size must be at least 1"), ({"learning_rate": -1.0}, "learning_rate must be"),
    ({"max_steps": 0}, "max_steps must be at least 1"), ({"warmup_ratio": 1.0}, "warmup_ratio"),
    ({"mix": [MixSource(path="a", fraction=0.6), MixSource(path="b", fraction=0.5)]}, "add up to 1 or more"),
])
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TrainConfig(kind="sft", data="d", model="m", out="o", **options).check()  # type: ignore[arg-type]


def test_default_learning_rates_follow_the_method() -> None:
    assert TrainConfig(kind="sft", data="", model="", out="").rate == 2e-5
    assert TrainConfig(kind="dpo", data="", model="", out="").rate == 5e-6
    assert TrainConfig(kind="sft", data="", model="", out="", lora=True).rate == pytest.approx(2e-4)


def test_the_shipped_chat_set_is_ordinary_sft_data() -> None:
    rows = read_rows("builtin:chat", "sft")
    assert rows == read_rows(chat_data(), "sft") and len(rows) >= 50
    assert all([m["role"] for m in row["messages"]] == ["user", "assistant"] for row in rows)


@pytest.mark.parametrize(("content", "kind", "message"), [
    ("{not json}\n", "sft", r":1: not valid JSON"),
    (json.dumps(DPO_ROW) + "\n", "sft", r":1: a SFT row needs the fields messages"),
    (json.dumps(SFT_ROW) + "\n", "dpo", r":1: a DPO row needs the fields prompt, chosen, rejected"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n", "sft", "must end with the assistant"),
    (json.dumps({"messages": [{"role": "robot", "content": "hi"}]}) + "\n", "sft", "not .*role"),
    ("\n", "sft", "holds no training rows"),
])
def test_bad_data_files_name_the_line(tmp_path: Path, content: str, kind: str, message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        read_rows(path, kind)  # type: ignore[arg-type]


def test_a_mix_makes_up_its_fraction_of_the_set(tmp_path: Path) -> None:
    data = write(tmp_path / "sft.jsonl", [SFT_ROW] * 40)
    rows, mixed = mixed_rows(data, "sft", [parse_mix("builtin:chat:0.2")], seed=1)
    assert (len(rows), mixed) == (50, 10)
    assert sum(row != SFT_ROW for row in rows) == 10
    assert rows == mixed_rows(data, "sft", [parse_mix("builtin:chat:0.2")], seed=1)[0]  # seeded
    many, mixed = mixed_rows(data, "sft", [parse_mix("builtin:chat:0.8")])  # more than the chat set holds
    assert mixed == 160 and len(many) == 200


def test_a_dpo_run_cannot_mix_in_chat_rows(tmp_path: Path) -> None:
    data = write(tmp_path / "dpo.jsonl", [DPO_ROW])
    with pytest.raises(ConfigurationError, match="DPO row needs"):
        mixed_rows(data, "dpo", [parse_mix("builtin:chat:0.2")])


def test_a_missing_train_extra_is_one_line_naming_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    model = model_folder(tmp_path / "model")
    data = write(tmp_path / "sft.jsonl", [SFT_ROW])
    real = extra_module.importlib.util.find_spec
    monkeypatch.setattr(extra_module.importlib.util, "find_spec",
                        lambda name, *a: None if name in {"trl", "torch"} else real(name, *a))
    assert main(["train", "sft", str(data), "--model", str(model), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    missing = re.search(r"the 'train' extra \(missing: ([^)]*)\): "
                        r"pip install torch==2\.13\.0 -e '\.\[train\]'", err)
    assert missing is not None, err
    assert {"torch", "trl"} <= set(missing[1].split(", "))  # and whatever else this machine lacks


def model_folder(path: Path, *, leave_out: str = "") -> Path:
    """A folder with the files of a model (empty ones), but ``leave_out``."""
    path.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if name != leave_out:
            (path / name).write_text("{}")
    return path


@pytest.mark.parametrize(("leave_out", "named"), [("model.safetensors", "weights"), ("tokenizer.json", "tokenizer")])
def test_a_model_folder_missing_its_weights_or_tokenizer_is_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], leave_out: str, named: str) -> None:
    model = model_folder(tmp_path / "model", leave_out=leave_out)
    data = write(tmp_path / "sft.jsonl", [SFT_ROW])
    assert main(["train", "sft", str(data), "--model", str(model), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"a model folder without its {named}" in err, err
    assert not (tmp_path / "out").exists()


def test_import_gguf_of_a_file_that_is_not_gguf_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path / "sft.jsonl", [SFT_ROW])
    assert main(["model", "import-gguf", str(data), "--out", str(tmp_path / "model")]) == 1
    err = capsys.readouterr().err
    assert err == f"open-strawberry: error: {data}: not a GGUF file (it does not start with the bytes GGUF)\n"
    assert not (tmp_path / "model").exists()


def test_a_gguf_is_not_trained_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path / "sft.jsonl", [SFT_ROW])
    assert main(["train", "sft", str(data), "--model", str(tmp_path / "m.gguf"), "--out", str(tmp_path / "o")]) == 1
    assert "model import-gguf" in capsys.readouterr().err


def test_training_help_and_import_load_no_ml_library() -> None:
    code = ("import sys, contextlib, io\n"
            "import open_strawberry.training, open_strawberry.bootstrap\n"
            "from open_strawberry.cli.main import main\n"
            "for command in (['train', '--help'], ['model', '--help'], ['bootstrap', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main(command)\n"
            "heavy = {'torch', 'transformers', 'trl', 'peft', 'datasets', 'matplotlib'} & set(sys.modules)\n"
            "print(sorted(heavy))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_llama_cpp_folder_without_the_conversion_script_is_named(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from open_strawberry.training import find_converter

    monkeypatch.setenv("OPEN_STRAWBERRY_LLAMA_CPP", str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"OPEN_STRAWBERRY_LLAMA_CPP=.*no convert_hf_to_gguf\.py there"):
        find_converter()
    (tmp_path / "convert_hf_to_gguf.py").write_text("")
    assert find_converter() == tmp_path / "convert_hf_to_gguf.py"
