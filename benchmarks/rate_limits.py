"""Rate-limit benchmark: how close the limiter runs to a provider's budgets, and how rarely
it is refused, against a naive client.

    python benchmarks/rate_limits.py [--rpm 600] [--tpm 60000] [--duration 60] [--warmup 10] [--json]

The mock server runs in a separate process with the given budgets (buckets that start full
and refill continuously, as the providers' do; 429 with their headers when a request does
not fit). Each call sends a prompt of about 150 tokens and gets about 40 back, so with the
default budgets the token budget binds (about 5 calls a second) before the request budget
(10 a second). Two clients run in turn, each against a fresh server, with 64 calls in flight:

* **limiter**: ``LimitedBackend`` whose budgets are learned from the response headers (pass
  ``--manual`` to set them by hand instead), with cooldowns and backoff on 429;
* **naive**: an ``asyncio``-style semaphore of 64 and an immediate retry on 429.

Reported per client, over the steady-state window after ``--warmup`` seconds (the first
seconds spend the full starting buckets): achieved requests and tokens per minute as
fractions of the budgets, and the share of attempts in the window answered with 429. Goal for the limiter:
at least 0.95 of the binding budget with at most 1% 429s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import anyio.lowlevel

from open_strawberry import ChatMessage
from open_strawberry.backends import ChatRequest, OpenAIChatBackend
from open_strawberry.errors import RateLimitedError
from open_strawberry.limiter import LimitedBackend, Limiter, LimiterConfig, RetryPolicy

CONCURRENCY = 64
PROMPT = ("You count letters carefully, one small step at a time, and you check each step before the next. " * 7
          + "How many 'r's are in 'strawberry'?")


@dataclass
class Tally:
    started: float
    warmup: float
    calls: int = 0
    tokens: int = 0
    attempts: int = 0
    refused: int = 0
    refused_whole_run: int = 0
    attempts_whole_run: int = 0
    log: list[tuple[float, int]] = field(default_factory=list)

    def in_window(self, now: float) -> bool:
        return now - self.started >= self.warmup

    def done(self, now: float, tokens: int) -> None:
        if self.in_window(now):
            self.calls += 1
            self.tokens += tokens


def start_server(rpm: float, tpm: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([sys.executable, "-m", "open_strawberry.cli", "mock-server", "--port", "0",
                               "--rpm", str(rpm), "--tpm", str(tpm), "--tokens-per-chunk", "8"],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("mock server listening on "):
        raise SystemExit(f"the mock server did not start: {line!r}")
    return server, line.split()[4] + "/v1"


def request_for(worker: int, call: int) -> ChatRequest:
    """The same request shape for both clients; a distinct seed for every call."""
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

    async def count_attempts_in_window() -> None:
        await anyio.sleep(args.warmup)
        before = backend.limiter.statistics()
        try:
            await anyio.sleep_forever()
        finally:
            after = backend.limiter.statistics()
            tally.attempts = after.admitted - before.admitted
            tally.refused = after.rate_limited - before.rate_limited
            tally.attempts_whole_run, tally.refused_whole_run = after.admitted, after.rate_limited

    with anyio.move_on_after(args.duration):
        async with anyio.create_task_group() as tg:
            tg.start_soon(count_attempts_in_window)
            for index in range(CONCURRENCY):
                tg.start_soon(worker, index)
    await backend.aclose()
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
                    counted = tally.in_window(time.monotonic())
                    tally.attempts += counted
                    tally.attempts_whole_run += 1
                    try:
                        completion = await backend.complete(request)
                    except RateLimitedError:
                        tally.refused += counted
                        tally.refused_whole_run += 1
                        await anyio.lowlevel.checkpoint()  # retry at once
                        continue
                tally.done(time.monotonic(), completion.usage.input_tokens + completion.usage.output_tokens)
                break

    with anyio.move_on_after(args.duration):
        async with anyio.create_task_group() as tg:
            for index in range(CONCURRENCY):
                tg.start_soon(worker, index)
    await backend.aclose()
    return tally


def summarise(tally: Tally, args: argparse.Namespace) -> dict[str, float]:
    window_min = (args.duration - args.warmup) / 60
    rpm_ratio = tally.calls / window_min / args.rpm
    tpm_ratio = tally.tokens / window_min / args.tpm
    return {
        "requests_per_min": round(tally.calls / window_min, 1),
        "tokens_per_min": round(tally.tokens / window_min),
        "rpm_fraction": round(rpm_ratio, 3),
        "tpm_fraction": round(tpm_ratio, 3),
        "binding_fraction": round(max(rpm_ratio, tpm_ratio), 3),
        "share_429": round(tally.refused / tally.attempts, 4) if tally.attempts else 0.0,
        "attempts": tally.attempts,
        "share_429_whole_run": round(tally.refused_whole_run / max(1, tally.attempts_whole_run), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--tpm", type=float, default=60_000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per client (default 60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds left out of the figures (default 10)")
    parser.add_argument("--manual", action="store_true", help="give the limiter the budgets instead of headers")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    results = {}
    for name, run in (("limiter", run_limiter), ("naive", run_naive)):
        server, base_url = start_server(args.rpm, args.tpm)
        try:
            results[name] = summarise(anyio.run(run, base_url, args), args)
        finally:
            server.terminate()
            server.wait(timeout=30)
    report = {"rpm": args.rpm, "tpm": args.tpm, "duration_s": args.duration, "warmup_s": args.warmup,
              "concurrency": CONCURRENCY, "budgets": "manual" if args.manual else "learned from headers",
              **results, "goal": {"binding_fraction": 0.95, "share_429": 0.01}}
    if args.json:
        print(json.dumps(report))
        return
    print(f"budgets {args.rpm:g} RPM, {args.tpm:g} TPM ({report['budgets']}); {CONCURRENCY} calls in flight; "
          f"window {args.warmup:g}-{args.duration:g} s")
    for name, row in results.items():
        print(f"  {name:8}: {row['requests_per_min']:>7} req/min ({row['rpm_fraction']:.3f} of RPM), "
              f"{row['tokens_per_min']:>7} tok/min ({row['tpm_fraction']:.3f} of TPM), "
              f"429s {row['share_429'] * 100:.2f}% of {row['attempts']} attempts "
              f"({row['share_429_whole_run'] * 100:.2f}% over the whole run)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
