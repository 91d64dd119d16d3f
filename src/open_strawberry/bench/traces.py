"""The multi-turn workload of ``bench``: whole traces through the pipeline, so that latency is
measured as the product meets it, turn by turn, with the context growing.

Per turn: TTFT, TTFA (only where the server sent thinking), TPOT, ITL and E2E (as in
:mod:`.metrics`), and apart from the service time
the wait in the Generator's inbox and for the backend's limiter, and the failed attempts
(retries, 429s) before the final one. Per trace: end-to-end time and turns. TTFT against
context length shows what a longer prompt costs. The run's per-actor inbox waits come from
the actor system's statistics. Where the server states its cached prompt tokens, the share of
the later turns' prompts read from its cache, against the most it could be (:func:`cache_use`);
where a llama.cpp server states its slots and metrics, the busy share of its decode steps over
the run (:mod:`.server_metrics`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import anyio
from msgspec import UNSET

from open_strawberry.backends.capacity import probe_capacity
from open_strawberry.backends.models import ModelSpec, parse_model
from open_strawberry.bench.metrics import describe, tpot_s
from open_strawberry.bench.server_metrics import busy_share, llamacpp_metrics
from open_strawberry.messages import TraceRecord
from open_strawberry.pipeline import generate
from open_strawberry.traces.files import read_traces

__all__ = ["cache_use", "run_trace_bench"]


def cache_use(records: Iterable[TraceRecord]) -> dict[str, float | None]:
    """How well the server's prompt cache served the turns after each trace's first, by its own
    counts: ``cached_share`` of their prompt tokens read from the cache, ``ideal_share`` the most
    it could be (a turn can reuse its previous turn's prompt and reply, no more), and
    ``cached_over_ideal`` (None where there is no later turn, or the server states no cache)."""
    cached = ideal = prompt = 0
    for record in records:
        for before, turn in itertools.pairwise(record.turns):
            prompt += turn.usage.input_tokens
            cached += turn.usage.cache_read_tokens
            ideal += min(turn.usage.input_tokens, before.usage.input_tokens + before.usage.output_tokens)
    return {"cached_share": cached / prompt if prompt else None, "ideal_share": ideal / prompt if prompt else None,
            "cached_over_ideal": cached / ideal if ideal and cached else None}


async def _server_figures(spec: ModelSpec) -> tuple[int | None, dict[str, float] | None]:
    """The slots of a llama.cpp server and its metrics now, where it states them."""
    capacity = await probe_capacity(spec)
    if capacity is None or capacity.server != "llama.cpp" or capacity.slots is None:
        return None, None
    return capacity.slots, await llamacpp_metrics(spec.base_url)


async def run_trace_bench(model: str, out_dir: Path, *, traces: int, concurrency: int,
                          strategy: Literal["nudge", "verify"], max_turns: int,
                          percentiles: Sequence[float]) -> dict[str, Any]:
    out = out_dir / "traces.jsonl"
    await anyio.Path(out_dir).mkdir(parents=True, exist_ok=True)
    await anyio.Path(out).unlink(missing_ok=True)
    spec = parse_model(model)
    slots, before = await _server_figures(spec)
    run = await generate(problems=f"builtin:mixed:{traces}", model=model, out=str(out), max_traces=concurrency,
                         max_concurrency=concurrency, strategy=strategy, verify_every=1 if strategy == "verify" else 0,
                         max_turns=max_turns)
    after = await llamacpp_metrics(spec.base_url) if before is not None else None
    records = await anyio.to_thread.run_sync(lambda: list(read_traces(out)))
    turns = [turn for record in records for turn in record.turns]
    timings = [turn.timings for turn in turns]
    failed = [attempt for t in timings for attempt in t.failed_attempts]
    tpots = [tpot for turn in turns
             if (tpot := tpot_s(turn.timings.ttft_s, turn.timings.e2e_s, turn.usage.output_tokens)) is not None]
    by_context: dict[int, list[float]] = {}  # {context bucket (512 tokens): [ttft ms]}
    for turn in turns:
        if turn.timings.ttft_s is not None:
            by_context.setdefault(turn.usage.input_tokens // 512 * 512, []).append(turn.timings.ttft_s * 1000)
    elapsed = run.elapsed_s or 1e-9
    answers = [t.first_answer_s for t in timings if t.first_answer_s is not UNSET]  # only turns that thought
    return {
        "workload": "traces", "strategy": strategy, "traces": len(records), "turns": len(turns),
        "statuses": run.statuses, "duration_s": run.elapsed_s,
        "turn_throughput": len(turns) / elapsed, "trace_throughput": len(records) / elapsed,
        "output_token_throughput": sum(t.usage.output_tokens for t in turns) / elapsed,
        "total_token_throughput": sum(t.usage.total_tokens for t in turns) / elapsed,
        "ttft_ms": describe((t.ttft_s for t in timings if t.ttft_s is not None), percentiles),
        **({"ttfa_ms": describe((a for a in answers if a is not None), percentiles)} if answers else {}),
        "tpot_ms": describe(tpots, percentiles),
        "itl_ms": describe((gap for t in timings for gap in t.chunk_gaps_s), percentiles),
        "e2e_ms": describe((t.e2e_s for t in timings), percentiles),
        "queue_ms": describe((t.queued_s for t in timings), percentiles),
        "limiter_wait_ms": describe((t.limiter_wait_s for t in timings), percentiles),
        "failed_attempts": len(failed), "rate_limited": sum(1 for a in failed if a.status == 429),
        "trace_e2e_ms": describe((r.finished_at - r.started_at for r in records), percentiles),
        "turns_per_trace": describe((len(r.turns) for r in records), percentiles, scale=1.0),
        "ttft_by_context_ms": {str(bucket): sum(v) / len(v) for bucket, v in sorted(by_context.items())},
        "actor_queue_ms": run.actor_queue_ms,
        **cache_use(records),
        "server_slots": slots,
        "server_busy_share": busy_share(before, after, slots) if before and after and slots else None,
        "points": [[turn.usage.input_tokens, turn.timings.ttft_s * 1000] for turn in turns
                   if turn.timings.ttft_s is not None],
        "requests": [{"trace_id": record.trace_id, "turn": number, "kind": turn.kind,
                      "input_tokens": turn.usage.input_tokens, "output_tokens": turn.usage.output_tokens,
                      "cached_tokens": turn.usage.cache_read_tokens, "ttft_s": turn.timings.ttft_s,
                      "e2e_s": turn.timings.e2e_s, "queued_s": turn.timings.queued_s,
                      "limiter_wait_s": turn.timings.limiter_wait_s, "attempts": turn.timings.attempts,
                      **({} if turn.timings.first_answer_s is UNSET else {"ttfa_s": turn.timings.first_answer_s})}
                     for record in records for number, turn in enumerate(record.turns, start=1)],
    }
