"""Whole runs against a faulty, rate-limited mock: every trace is accounted for."""

from __future__ import annotations

from collections import Counter

import anyio

from open_strawberry import ActorSpec, open_actor_system
from open_strawberry.actors import Generator
from open_strawberry.backends import OpenAIChatBackend
from open_strawberry.limiter import LimitedBackend, Limiter, LimiterConfig, RetryPolicy
from open_strawberry.mock import FaultRates, MockConfig, open_mock_server
from tests.helpers import Finisher, Looper, MemorySink, Prompter, new_traces


def specs(backend: LimitedBackend, sink: MemorySink, turns: int) -> list[ActorSpec]:
    return [
        ActorSpec("prompter", Prompter()),
        ActorSpec("generator", Generator(backend, max_tokens=200), workers=64),
        ActorSpec("looper", Looper(turns)),
        ActorSpec("finisher", Finisher()),
        ActorSpec("sink", sink),
    ]


async def test_500_traces_with_10_percent_faults_of_every_kind_all_come_out() -> None:
    config = MockConfig(faults=FaultRates.spread(0.10), stall_s=3.0, fault_retry_after_s=0.05,
                        tokens_per_chunk=2, seed=5)
    sink = MemorySink()
    async with open_mock_server(config) as server:
        backend = LimitedBackend(
            OpenAIChatBackend(base_url=server.openai_base_url, model="mock", timeout_s=0.5),
            Limiter(LimiterConfig(max_concurrency=64, default_cooldown_s=0.05)),
            RetryPolicy(max_attempts=6, initial_backoff_s=0.02, max_backoff_s=0.2),
        )
        with anyio.fail_after(120):
            async with backend, open_actor_system(specs(backend, sink, turns=2), max_traces=128) as system:
                await system.feed(new_traces(500))
        injected = dict(server.faults)
    assert len(sink.records) == 500
    assert Counter(r.trace_id for r in sink.records) == Counter(f"t{i}" for i in range(500))
    assert set(injected) == set(FaultRates.__struct_fields__)  # every kind of fault happened
    assert sum(injected.values()) >= 50
    errors = [r for r in sink.records if r.status == "error"]
    assert len(errors) <= 25  # at most 5%: retries absorb the transient faults
    for record in errors:
        assert record.error is not None and record.error.type and record.error.message and record.error.attempts
    done = [r for r in sink.records if r.status == "final"]
    assert all(len(r.turns) == 2 and r.messages[-1].content for r in done)  # no half-written turn
    assert backend.limiter.statistics().retries >= sum(injected.values()) * 0.9
    assert system.statistics().finished == 500


async def test_a_call_that_fails_for_good_becomes_a_failed_record_with_its_attempts() -> None:
    sink = MemorySink()
    async with open_mock_server(MockConfig(faults=FaultRates(http_500=1.0))) as server:
        backend = LimitedBackend(OpenAIChatBackend(base_url=server.openai_base_url, model="mock"),
                                 Limiter(), RetryPolicy(max_attempts=3, initial_backoff_s=0.001))
        async with backend, open_actor_system(specs(backend, sink, turns=2), max_traces=4) as system:
            await system.feed(new_traces(3))
    assert [r.status for r in sink.records] == ["error"] * 3
    error = sink.records[0].error
    assert error is not None
    assert (error.type, error.attempts, error.actor) == ("ServerError", 3, "generator")
    assert "HTTP 500" in error.message
    assert system.statistics().failed == 3
