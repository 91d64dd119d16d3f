"""A custom grader: run the model's answer as a Python expression, in a separate process with
a timeout, and compare its value with the ground truth.

    python examples/custom_grader.py [OUT_DIR]

A grader is any function ``(answer, truth, problem) -> bool | GradeResult``, named to
``generate`` as ``"module:function"``. Graders run in a worker thread, so a slow one does
not hold up the rest of the pipeline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import msgspec

from open_strawberry import Problem, generate
from open_strawberry.grading import GradeResult
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.problems.builtin import builtin_problems


def python_value(answer: str, truth: str, problem: Problem) -> GradeResult:
    """Right when ``answer``, evaluated by a separate Python process in isolated mode within
    two seconds, equals the number in ``truth``."""
    try:
        result = subprocess.run([sys.executable, "-I", "-c", "import sys; print(eval(sys.argv[1], {}))", answer],
                                capture_output=True, text=True, timeout=2, check=False)
    except subprocess.TimeoutExpired:
        return GradeResult(correct=False, grader="python_value", detail=f"{answer!r} ran past 2 s")
    if result.returncode != 0:
        error = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
        return GradeResult(correct=False, grader="python_value", detail=f"{answer!r}: {error}")
    value = result.stdout.strip()
    try:
        correct = float(value) == float(truth)
    except ValueError:
        correct = False
    return GradeResult(correct=correct, grader="python_value", detail=f"{answer!r} evaluates to {value}")


def write_problems(out_dir: Path) -> Path:
    """Problems without a grader of their own, so that the run's grader decides."""
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = out_dir / "problems.jsonl"
    problems.write_bytes(b"".join(msgspec.json.encode(msgspec.structs.replace(p, grader=None)) + b"\n"
                                  for p in builtin_problems("arithmetic", 10)))
    return problems


async def main(out_dir: Path) -> None:
    problems = await anyio.to_thread.run_sync(write_problems, out_dir)
    module = "__main__" if __name__ == "__main__" else __name__
    async with open_mock_server(MockConfig(accuracy=0.7, confident_after=1)) as server:
        summary = await generate(problems=str(problems), model=f"mock:reasoner@{server.openai_base_url}",
                                 out=str(out_dir / "traces.jsonl"), samples=2, final_every=1,
                                 grader=f"{module}:python_value")
    print(f"{summary.correct} of {summary.graded} answers evaluate to the ground truth")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "out/custom_grader"))
