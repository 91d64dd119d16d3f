"""``open-strawberry demo``: the whole pipeline, offline, against the mock server in-process.

It generates traces for the built-in ``mixed`` problem set (letter counting, arithmetic,
crack-the-code) with both prompt strategies, one file each, and returns their summaries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import anyio

from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import GenerateConfig, Progress, RunSummary, generate

__all__ = ["DEMO_MOCK", "run_demo"]

DEMO_MOCK = MockConfig(ttft_s=0.03, tokens_per_s=400, tokens_per_chunk=3, jitter=0.3, accuracy=0.75,
                       confident_after=3)


async def run_demo(out_dir: Path, *, problems: int = 40, samples: int = 2, max_traces: int = 64, seed: int = 0,
                   handle_signals: bool = False,
                   progress: Callable[[str], Callable[[Progress], None] | None] | None = None,
                   ) -> list[tuple[str, RunSummary]]:
    """Run both strategies; ``progress(name)`` may return a progress callback for that run."""
    results: list[tuple[str, RunSummary]] = []
    async with open_mock_server(DEMO_MOCK) as server:
        strategies: tuple[tuple[Literal["nudge", "verify"], int], ...] = (("nudge", 0), ("verify", 1))
        for strategy, verify_every in strategies:
            out = out_dir / f"{strategy}.jsonl"
            await anyio.Path(out).unlink(missing_ok=True)
            config = GenerateConfig(problems=f"builtin:mixed:{problems}",
                                    model=f"mock:reasoner@{server.openai_base_url}", out=str(out), samples=samples,
                                    max_traces=max_traces, strategy=strategy, verify_every=verify_every,
                                    max_turns=12, seed=seed)
            summary = await generate(config, on_progress=progress(strategy) if progress else None,
                                     handle_signals=handle_signals)
            results.append((strategy, summary))
            if summary.interrupted:
                break
    return results
