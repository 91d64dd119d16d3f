"""Several backends at once: a strong model generates, a cheaper one verifies.

    python examples/two_models.py [OUT_DIR]

Each model gets its own limiter (budgets, retries); the Verifier critiques the last turns of
every trace with the cheap model, and its critique is the next user message. Here two mock
servers stand in for, say, "anthropic:claude-3-5-sonnet-latest" and "openai:gpt-4o-mini".
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from open_strawberry import generate
from open_strawberry.mock import MockConfig, open_mock_server


async def main(out_dir: Path) -> None:
    async with open_mock_server(MockConfig(accuracy=0.8)) as strong, open_mock_server() as cheap:
        summary = await generate(problems="builtin:mixed:9", model=f"mock:strong@{strong.openai_base_url}",
                                 verifier_model=f"mock:cheap@{cheap.openai_base_url}", verify_every=2,
                                 out=str(out_dir / "traces.jsonl"), samples=2)
        print(f"{summary.written} traces; the strong model answered {strong.requests} calls, "
              f"the cheap one verified {cheap.requests} times")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "out/two_models"))
