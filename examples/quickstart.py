"""Quick start: generate traces for a built-in problem set, then export DPO pairs.

    python examples/quickstart.py [OUT_DIR]

With no model server at hand, it starts the mock LLM in-process; to use a real model, pass
its model string instead (for example "anthropic:claude-3-5-haiku-latest", key from
ANTHROPIC_API_KEY).
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from open_strawberry import generate
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.traces.exports import export_dpo


async def run(model: str, out_dir: Path) -> None:
    traces = out_dir / "traces.jsonl"
    summary = await generate(problems="builtin:mixed:20", model=model, out=str(traces), samples=4, max_traces=32)
    print(f"{summary.written} traces, pass rate {summary.pass_rate:.0%}")
    pairs = export_dpo(traces, out_dir / "dpo.jsonl")  # correct vs incorrect traces of the same problem
    print(f"{pairs.written} DPO pairs from {pairs.problems} problems in {out_dir / 'dpo.jsonl'}")


async def main(out_dir: Path) -> None:
    async with open_mock_server(MockConfig(accuracy=0.6)) as server:  # a stand-in for a real model
        await run(f"mock:reasoner@{server.openai_base_url}", out_dir)


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "out/quickstart"))
