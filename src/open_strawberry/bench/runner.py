"""Load generation for ``open-strawberry bench``: closed and open loops, and the client's
own health checks.

* **Closed loop** (``concurrency``): that many workers, each sending its next request as soon
  as the previous one is done.
* **Open loop** (``rate``): requests are scheduled by arrival times drawn from a gamma
  distribution with mean ``1 / rate`` (``burstiness`` 1 is a Poisson process; below 1 is
  burstier), seeded; ``max_concurrency`` optionally caps requests in flight (a capped request
  waits, and its wait shows as schedule lag).

The client can be the bottleneck on a small machine, so the run also measures event-loop lag
(how late a 10 ms timer fires), the client's share of one CPU, and the lag between each
request's scheduled and actual send time, and warns when they say the client, not the
server, limited the result.
"""

from __future__ import annotations

import hashlib
import math
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
from msgspec import UNSET

from open_strawberry.backends.base import Backend, ChatRequest
from open_strawberry.bench.calibrate import PromptSize, estimated_size, filler
from open_strawberry.bench.metrics import RequestRecord
from open_strawberry.errors import BackendError, ConfigurationError
from open_strawberry.messages import ChatMessage
from open_strawberry.runtime.statistics import percentile

__all__ = ["BenchPlan", "ClientHealth", "run_bench"]

_IGNORE_EOS = {"ignore_eos": True}  # vLLM's: write max_tokens tokens; shared by every request (only read)


@dataclass(frozen=True)
class BenchPlan:
    concurrency: int | None = None
    rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None
    requests: int | None = None
    duration_s: float | None = None
    warmup: int = 0
    input_tokens: int = 128
    output_tokens: int = 128
    seed: int = 0
    stream: bool = True
    ignore_eos: bool = True
    prefix_tokens: int = 0  # a prefix every request of the run shares (0: none)
    size: PromptSize | None = None  # the word counts sized by the server's tokenizer (None: estimated)

    def prompt_size(self) -> PromptSize:
        """The word counts of the prompts: as sized by the server's tokenizer, else estimated."""
        return self.size or estimated_size(self.input_tokens, self.prefix_tokens)

    def check(self) -> None:
        """ConfigurationError, naming the option, for a plan no run can carry out."""
        if (self.concurrency is None) == (self.rate is None):
            raise ConfigurationError("give either --concurrency (closed loop) or --rate (open loop)")
        if self.requests is None and self.duration_s is None:
            raise ConfigurationError("give --requests or --duration (or both)")
        counts = {"--concurrency": (self.concurrency, 1), "--max-concurrency": (self.max_concurrency, 1),
                  "--requests": (self.requests, 1), "--warmup": (self.warmup, 0),
                  "--input-tokens": (self.input_tokens, 1), "--output-tokens": (self.output_tokens, 1),
                  "--prefix-tokens": (self.prefix_tokens, 0)}
        for option, (count, least) in counts.items():
            if count is not None and count < least:
                raise ConfigurationError(f"{option} must be at least {least}, got {count}")
        for option, amount in {"--rate": self.rate, "--burstiness": self.burstiness,
                               "--duration": self.duration_s}.items():
            if amount is not None and not (math.isfinite(amount) and amount > 0):
                raise ConfigurationError(f"{option} must be a number above 0, got {amount}")
        if self.prefix_tokens >= self.input_tokens:
            raise ConfigurationError(f"--prefix-tokens ({self.prefix_tokens}) must be below --input-tokens "
                                     f"({self.input_tokens})")


class ClientHealth(msgspec.Struct, frozen=True, kw_only=True):
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    cpu_share: float  # client CPU seconds per wall second (1.0: one core busy)
    schedule_lag_p99_ms: float
    warnings: list[str]


@dataclass
class _Run:
    plan: BenchPlan
    backend: Backend
    started: float = 0.0
    records: list[RequestRecord] = field(default_factory=list)
    next_index: int = 0
    # new for every run (and sweep point): no prompt is ever sent twice, so no cache answers it
    nonce: str = field(default_factory=lambda: secrets.token_hex(4))
    prefix: str = ""  # the words every request shares (--prefix-tokens), then a space

    def __post_init__(self) -> None:
        shared = self.plan.prompt_size().prefix_words if self.plan.prefix_tokens else 0
        if shared:
            self.prefix = filler(hashlib.shake_128(b"prefix:%d" % self.plan.seed).digest(shared)) + " "

    def now(self) -> float:
        return time.perf_counter() - self.started

    def more(self) -> bool:
        plan = self.plan
        if plan.requests is not None and self.next_index >= plan.requests + plan.warmup:
            return False
        return plan.duration_s is None or self.now() < plan.duration_s

    def prompt(self, index: int) -> ChatRequest:
        """Request ``index``: a system prompt of the shared prefix when one was asked for, then
        the run's nonce and the index (a system prompt of our own also keeps out the default one
        some chat templates add, which every prompt would share), then a user turn of words
        picked by the bytes of a hash of the plan's seed and the index. Each prompt differs from
        other requests', sweep points' and runs' right after the template's first tokens (and the
        prefix): no prefix cache helps. A hash, not a seeded
        generator: seeding one costs more than the rest of the prompt."""
        picks = hashlib.shake_128(b"%d:%d" % (self.plan.seed, index)).digest(self.plan.prompt_size().words)
        return ChatRequest(system=f"{self.prefix}{self.nonce}-{index}",
                           messages=(ChatMessage(role="user", content=filler(picks)),),
                           max_tokens=self.plan.output_tokens, temperature=0.0, seed=index,
                           extra_body=_IGNORE_EOS if self.plan.ignore_eos else None)

    async def one(self, index: int, scheduled: float) -> None:
        request = self.prompt(index)
        sent = self.now()
        try:
            completion = await self.backend.complete(request, stream=self.plan.stream)
        except BackendError as exc:
            self.records.append(RequestRecord(index=index, scheduled_s=scheduled, sent_s=sent,
                                              finished_s=self.now(), ok=False,
                                              error=type(exc).__name__, warmup=index < self.plan.warmup))
            return
        finished = self.now()
        timings, usage = completion.timings, completion.usage
        self.records.append(RequestRecord(
            index=index, scheduled_s=scheduled, sent_s=sent, finished_s=finished, ok=True,
            ttft_s=timings.ttft_s, e2e_s=timings.e2e_s, itl_s=timings.chunk_gaps_s,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cached_tokens=usage.cache_read_tokens, warmup=index < self.plan.warmup,
            ttfa_s=timings.first_answer_s,
            empty=True if not (completion.text or completion.reasoning) else UNSET))


async def _watch_loop(lags: list[float], interval: float = 0.01) -> None:
    while True:
        before = time.perf_counter()
        await anyio.sleep(interval)
        lags.append(max(0.0, time.perf_counter() - before - interval))


async def run_bench(plan: BenchPlan, backend: Backend, *,
                    on_request: Callable[[int], None] | None = None) -> tuple[list[RequestRecord], ClientHealth]:
    """Run ``plan`` against ``backend``; return every request's record and the client's health."""
    plan.check()
    run = _Run(plan, backend)
    lags: list[float] = []
    cpu_before = time.process_time()
    run.started = time.perf_counter()
    async with anyio.create_task_group() as watch:
        watch.start_soon(_watch_loop, lags)
        if plan.concurrency is not None:
            async def worker() -> None:
                while run.more():
                    index = run.next_index
                    run.next_index += 1
                    await run.one(index, run.now())
                    if on_request:
                        on_request(index)

            async with anyio.create_task_group() as tg:
                for _ in range(plan.concurrency):
                    tg.start_soon(worker)
        else:
            assert plan.rate is not None
            rng = random.Random(plan.seed)
            limit = anyio.Semaphore(plan.max_concurrency) if plan.max_concurrency else None
            shape = plan.burstiness
            scale = 1.0 / (plan.rate * shape)

            async def capped(index: int, scheduled: float) -> None:
                if limit is None:
                    await run.one(index, scheduled)
                else:
                    async with limit:
                        await run.one(index, scheduled)
                if on_request:
                    on_request(index)

            # the bare request when nothing wraps it: one coroutine a request fewer
            send = capped if limit is not None or on_request is not None else run.one
            async with anyio.create_task_group() as tg:
                at = 0.0
                while run.more():
                    index = run.next_index
                    run.next_index += 1
                    delay = at - run.now()
                    if delay > 0:
                        await anyio.sleep(delay)
                    tg.start_soon(send, index, at)
                    at += rng.gammavariate(shape, scale)
        watch.cancel_scope.cancel()
    wall = time.perf_counter() - run.started
    cpu = (time.process_time() - cpu_before) / wall if wall else 0.0
    return sorted(run.records, key=lambda r: r.index), _health(lags, cpu, run.records)


def _health(lags: list[float], cpu_share: float, records: list[RequestRecord]) -> ClientHealth:
    def p99(values: list[float]) -> float:
        return percentile(values, 99) or 0.0

    schedule = [r.sent_s - r.scheduled_s for r in records]
    health: dict[str, Any] = {"loop_lag_p99_ms": p99(lags) * 1000, "loop_lag_max_ms": max(lags, default=0.0) * 1000,
                              "cpu_share": cpu_share, "schedule_lag_p99_ms": p99(schedule) * 1000}
    warnings = []
    if health["loop_lag_p99_ms"] > 10:
        warnings.append(f"event-loop lag p99 {health['loop_lag_p99_ms']:.1f} ms: the client is busy, "
                        "so latencies include client delay")
    if cpu_share > 0.9:
        warnings.append(f"the client used {cpu_share:.0%} of a CPU: it may be what limits throughput")
    if health["schedule_lag_p99_ms"] > 20:
        warnings.append(f"requests went out {health['schedule_lag_p99_ms']:.0f} ms late (p99): the client could not "
                        "keep the schedule (or --max-concurrency held them back)")
    return ClientHealth(warnings=warnings, **health)
