"""llama-server's prompt cache, as the server itself counts it: each turn of a trace reads the
previous turn from the slot that served it, and ``bench`` prompts are never served from it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from open_strawberry.pipeline import generate
from open_strawberry.traces import read_traces
from tests.real.servers import RealServer

pytestmark = pytest.mark.timeout(900)


async def test_each_turn_reads_the_previous_one_from_the_cache(llamacpp: RealServer, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    # twice as many traces as slots: a trace's next turn finds its slot again
    summary = await generate(problems="builtin:arithmetic:8", model=llamacpp.model(), out=str(out), seed=1,
                             max_turns=3, max_tokens=32, final_every=0, temperature=0.0)
    assert summary.failed == 0
    cached = ideal = 0
    for record in read_traces(out):
        for before, turn in itertools.pairwise(record.turns):
            cached += turn.usage.cache_read_tokens
            ideal += min(turn.usage.input_tokens, before.usage.input_tokens + before.usage.output_tokens)
    assert ideal > 0 and cached >= 0.9 * ideal


def test_bench_prompts_are_new_each_run_and_sized_by_the_server(llamacpp: RealServer, tmp_path: Path) -> None:
    from open_strawberry.cli import main

    for run in ("first", "second"):  # the same command twice: the second finds nothing of the first in the cache
        assert main(["bench", "--model", llamacpp.model(), "--concurrency", "4", "--requests", "8",
                     "--input-tokens", "64", "--output-tokens", "8", "--out", str(tmp_path / run)]) == 0
    summary = json.loads((tmp_path / "second" / "summary.json").read_text())
    assert summary["prompt"]["sized_by"] == "the server's tokenizer (/tokenize)"
    assert 64 * 0.9 <= summary["input_tokens_mean"] <= 64 * 1.1
    requests = [json.loads(line) for line in (tmp_path / "second" / "requests.jsonl").read_text().splitlines()]
    # at most the chat template's own first tokens are shared between prompts
    assert all(r["cached_tokens"] < r["input_tokens"] / 2 for r in requests)
    assert summary["cached_share"] < 0.5
