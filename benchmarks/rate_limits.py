"""Rate-limit benchmark: how close the limiter runs to a provider's budgets, and how rarely
it is refused, against a naive client.

    python benchmarks/rate_limits.py [--rpm 600] [--tpm 60000] [--duration 60] [--warmup 10]
                                     [--clients limiter,sdk,naive] [--sdk-max-retries 10] [--json]

The mock server runs in a separate process with the given budgets (buckets that start full
and refill continuously, as the providers' do; 429 with their headers when a request does
not fit). Each call sends a prompt of about 150 tokens and gets about 40 back, so with the
default budgets the token budget binds (about 5 calls a second) before the request budget
(10 a second). The clients run in turn, each against a fresh server, with 64 calls in flight:

* **limiter**: ``LimitedBackend`` whose budgets are learned from the response headers (pass
  ``--manual`` to set them by hand instead), with cooldowns and backoff on 429;
* **sdk**: what a careful user writes: the official ``openai`` SDK's own retries
  (``max_retries``, ``--sdk-max-retries``; it waits as ``retry-after-ms``/``retry-after``
  say, else backs off exponentially with jitter) under a semaphore of 64; a call whose
  retries run out is counted and the worker goes on to its next call;
* **naive**: a semaphore of 64 and an immediate retry on 429, no backoff at all (the floor).

Reported per client, over the steady-state window after ``--warmup`` seconds (the first
seconds spend the full starting buckets): achieved requests and tokens per minute as
fractions of the budgets, and the share of attempts in the window answered with 429. Attempts
and 429s are counted by the server (its ``/mock/stats``), the same way for every client.
Goal for the limiter: at least 0.95 of the binding budget with at most 1% 429s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import anyio
import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import anyio.lowlevel

from open_strawberry import ChatMessage
from open_strawberry.backends import ChatRequest, OpenAIChatBackend
from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.errors import RateLimitedError
from open_strawberry.limiter import LimitedBackend, Limiter, LimiterConfig, RetryPolicy
from open_strawberry.mock import MockConfig

CONCURRENCY = 64
PROMPT = ("You count letters carefully, one small step at a time, and you check each step before the next. " * 7
          + "How many 'r's are in 'strawberry'?")


@dataclass
class Tally:
    started: float
    warmup: float
    calls: int = 0
    tokens: int = 0
    gave_up: int = 0  # calls whose retries ran out (the sdk client)
    server: dict[str, int] = field(default_factory=dict)  # the server's counts over the window

    def in_window(self, now: float) -> bool:
        return now - self.started >= self.warmup

    def done(self, now: float, tokens: int) -> None:
        if self.in_window(now):
            self.calls += 1
            self.tokens += tokens


async def server_counts(base_url: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as session, session.get(base_url.removesuffix("/v1") + "/mock/stats") as reply:
        stats = await reply.json()
    return {"requests": stats["requests"], "rate_limited": stats["rate_limited"]}


async def count_on_the_server(base_url: str, tally: Tally) -> None:
    """The server's attempts and 429s between the end of the warm-up and the end of the run."""
    await anyio.sleep(tally.warmup)
    before = await server_counts(base_url)
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            after = await server_counts(base_url)
        tally.server = {key: after[key] - before[key] for key in before}
        tally.server.update({f"{key}_whole_run": value for key, value in after.items()})


async def run_clients(base_url: str, args: argparse.Namespace, tally: Tally, worker) -> None:  # type: ignore[no-untyped-def]
    with anyio.move_on_after(args.duration):
        async with anyio.create_task_group() as tg:
            tg.start_soon(count_on_the_server, base_url, tally)
            for index in range(CONCURRENCY):
                tg.start_soon(worker, index)


def request_for(worker: int, call: int) -> ChatRequest:
    """The same request shape for every client; a distinct seed for every call."""
    return ChatRequest(messages=(ChatMessage(role="user", content=PROMPT),), max_tokens=200,
                       seed=worker * 100_000 + call)


async def run_limiter(base_url: str, args: argparse.Namespace) -> Tally:
    config = LimiterConfig(rpm=args.rpm, tpm=args.tpm) if args.manual else LimiterConfig()
    backend = LimitedBackend(OpenAIChatBackend(base_url=base_url, model="mock", provider="vllm"), Limiter(config),
                             RetryPolicy(max_attempts=100, deadline_s=3600))
    tally = Tally(time.monotonic(), args.warmup)

    async def worker(index: int) -> None:
        call = 0
        while True:
            call += 1
            completion = await backend.complete(request_for(index, call))
            tally.done(time.monotonic(), completion.usage.input_tokens + completion.usage.output_tokens)

    await run_clients(base_url, args, tally, worker)
    await backend.aclose()
    return tally


async def run_sdk(base_url: str, args: argparse.Namespace) -> Tally:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=args.sdk_max_retries)
    semaphore = anyio.Semaphore(CONCURRENCY)
    tally = Tally(time.monotonic(), args.warmup)

    async def worker(index: int) -> None:
        call = 0
        while True:
            call += 1
            request = request_for(index, call)
            tokens = 0
            try:
                async with semaphore:
                    stream = await client.chat.completions.create(
                        model="mock", messages=[{"role": "user", "content": request.messages[0].content}],
                        max_tokens=request.max_tokens, seed=request.seed, stream=True,
                        stream_options={"include_usage": True})
                    async for chunk in stream:
                        if chunk.usage is not None:
                            tokens = chunk.usage.prompt_tokens + chunk.usage.completion_tokens
            except openai.RateLimitError:
                tally.gave_up += tally.in_window(time.monotonic())
                continue
            tally.done(time.monotonic(), tokens)

    await run_clients(base_url, args, tally, worker)
    await client.close()
    return tally


async def run_naive(base_url: str, args: argparse.Namespace) -> Tally:
    backend = OpenAIChatBackend(base_url=base_url, model="mock", provider="vllm")
    semaphore = anyio.Semaphore(CONCURRENCY)
    tally = Tally(time.monotonic(), args.warmup)

    async def worker(index: int) -> None:
        call = 0
        while True:
            call += 1
            request = request_for(index, call)
            while True:
                async with semaphore:
                    try:
                        completion = await backend.complete(request)
                    except RateLimitedError:
                        await anyio.lowlevel.checkpoint()  # retry at once
                        continue
                tally.done(time.monotonic(), completion.usage.input_tokens + completion.usage.output_tokens)
                break

    await run_clients(base_url, args, tally, worker)
    await backend.aclose()
    return tally


CLIENTS = {"limiter": run_limiter, "sdk": run_sdk, "naive": run_naive}


def summarise(tally: Tally, args: argparse.Namespace) -> dict[str, float]:
    window_min = (args.duration - args.warmup) / 60
    rpm_ratio = tally.calls / window_min / args.rpm
    tpm_ratio = tally.tokens / window_min / args.tpm
    server = tally.server
    return {
        "requests_per_min": round(tally.calls / window_min, 1),
        "tokens_per_min": round(tally.tokens / window_min),
        "rpm_fraction": round(rpm_ratio, 3),
        "tpm_fraction": round(tpm_ratio, 3),
        "binding_fraction": round(max(rpm_ratio, tpm_ratio), 3),
        "share_429": round(server["rate_limited"] / server["requests"], 4) if server["requests"] else 0.0,
        "attempts": server["requests"],
        "share_429_whole_run": round(server["rate_limited_whole_run"] / max(1, server["requests_whole_run"]), 4),
        "calls_given_up": tally.gave_up,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--tpm", type=float, default=60_000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per client (default 60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds left out of the figures (default 10)")
    parser.add_argument("--manual", action="store_true", help="give the limiter the budgets instead of headers")
    parser.add_argument("--clients", default="limiter,sdk,naive", help="which clients, in order (default all)")
    parser.add_argument("--sdk-max-retries", type=int, default=10, help="the sdk client's max_retries (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    results = {}
    for name in args.clients.split(","):
        with mock_server_process(MockConfig(rpm=args.rpm, tpm=args.tpm, tokens_per_chunk=8)) as url:
            results[name] = summarise(anyio.run(CLIENTS[name], url + "/v1", args), args)
    report = {"rpm": args.rpm, "tpm": args.tpm, "duration_s": args.duration, "warmup_s": args.warmup,
              "concurrency": CONCURRENCY, "budgets": "manual" if args.manual else "learned from headers",
              "sdk_max_retries": args.sdk_max_retries, **results, "goal": {"binding_fraction": 0.95, "share_429": 0.01}}
    if args.json:
        print(json.dumps(report))
        return
    print(f"budgets {args.rpm:g} RPM, {args.tpm:g} TPM ({report['budgets']}); {CONCURRENCY} calls in flight; "
          f"window {args.warmup:g}-{args.duration:g} s; attempts and 429s counted by the server")
    for name, row in results.items():
        print(f"  {name:8}: {row['requests_per_min']:>7} req/min ({row['rpm_fraction']:.3f} of RPM), "
              f"{row['tokens_per_min']:>7} tok/min ({row['tpm_fraction']:.3f} of TPM), "
              f"429s {row['share_429'] * 100:.2f}% of {row['attempts']} attempts "
              f"({row['share_429_whole_run'] * 100:.2f}% over the whole run)"
              + (f", {row['calls_given_up']} calls gave up" if row["calls_given_up"] else ""))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
