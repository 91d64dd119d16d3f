"""Calibration: the highest request rate the bench client sustains on this machine before its
own overhead shows, against a bare aiohttp client measured the same way in the same run.

    python benchmarks/calibration.py [--rates 400,800,1200,1600,2000] [--seconds 3] [--rounds 2] [--json]

The mock server runs in a separate process with a short, fixed latency (20 ms to the first
token, 16 tokens in chunks of 4, unpaced after the first). For each rate and round, an open
loop runs once through ``open-strawberry``'s bench runner (native client, SSE and JSON
decoding, per-request records, health checks) and once through a bare loop (aiohttp, the
body read as it comes, first-byte and end times noted), in alternating order (the first of
a pair may find the server colder or warmer, so the pair's order flips every round).

Both clients are measured the same way:

* the same schedule: Poisson arrivals over ``--seconds``, seeded, drawn by the same
  generator (``BenchPlan(rate=..., requests=N)`` draws the same N times); each sends all N
  requests, however late;
* the same connection pool cap (1,024, the native client's default);
* the same clocks: *lag* is the time between a request's scheduled time and the moment its
  task is about to send it; *achieved* is completed requests divided by the elapsed time
  from the first scheduled arrival to the last completion (not the nominal duration);
* the same CPU account: this process's CPU time (``time.process_time``; the mock runs in
  another process) over the run, per request.

The bench client's TTFT (p50, p99) is shown beside the mock's 20 ms: what the client adds to
what it measures at each rate (the tests check only that it never measures less).

A rate is *sustained* when achieved is at least 0.95 of the offered rate (N over the
schedule's span) and the p99 lag stays under 10 ms. A client's limit is the highest rate it
sustains in every round; above it, numbers describe the client, not the server. On a busy
machine the lag test fails now and then for either client, so the highest rate each *keeps
pace* with (achieved at least 0.95 in every round, lag aside) is reported too.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry.backends import OpenAIChatBackend
from open_strawberry.bench import BenchPlan, run_bench
from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.mock import MockConfig
from open_strawberry.runtime.statistics import percentile

POOL = 1024  # HTTPBackend's default max_connections, given to the bare client too
SEED = 1


def schedule(rate: float, seconds: float) -> list[float]:
    """Arrival times in [0, seconds), drawn exactly as ``run_bench`` draws them (burstiness 1)."""
    rng = random.Random(SEED)
    times, at = [], 0.0
    while at < seconds:
        times.append(at)
        at += rng.gammavariate(1.0, 1.0 / rate)
    return times


def judge(rows: list[tuple[float, float, float, bool]], offered: float, cpu_s: float,
          ttfts: list[float] | None = None) -> dict[str, Any]:
    """rows: (scheduled, sent, finished, ok) in seconds from the start of the schedule."""
    ok = sum(1 for row in rows if row[3])
    elapsed = max(row[2] for row in rows)
    achieved = ok / elapsed if elapsed > 0 else 0.0
    lag_ms = (percentile([sent - scheduled for scheduled, sent, _, _ in rows], 99) or 0.0) * 1000
    result = {"requests": len(rows), "failed": len(rows) - ok, "achieved_rps": round(achieved, 1),
              "achieved_fraction": round(achieved / offered, 3), "lag_p99_ms": round(lag_ms, 2),
              "cpu_us_per_request": round(cpu_s / len(rows) * 1e6, 1),
              "sustained": achieved >= 0.95 * offered and lag_ms < 10.0}
    if ttfts:  # what the client adds to the server's 20 ms: the measurement's own error
        result.update({f"ttft_{name}_ms": round((percentile(ttfts, pct) or 0.0) * 1000, 2)
                       for name, pct in (("p50", 50), ("p99", 99))})
    return result


Rows = list[tuple[float, float, float, bool]]


async def bench_client(url: str, rate: float, arrivals: list[float]) -> tuple[Rows, float, list[float]]:
    backend = OpenAIChatBackend(base_url=f"{url}/v1", model="m", provider="vllm", max_connections=POOL)
    async with backend:
        cpu = time.process_time()
        records, _ = await run_bench(BenchPlan(rate=rate, requests=len(arrivals), input_tokens=32,
                                               output_tokens=16, seed=SEED), backend)
        cpu = time.process_time() - cpu
    assert [r.scheduled_s for r in records] == arrivals, "the bench runner drew another schedule"
    ttfts = [r.ttft_s for r in records if r.ttft_s is not None]
    return [(r.scheduled_s, r.sent_s, r.finished_s, r.ok) for r in records], cpu, ttfts


async def bare_client(url: str, rate: float, arrivals: list[float]) -> tuple[Rows, float, list[float]]:
    body = msgspec.json.encode({"model": "m", "messages": [{"role": "user", "content": "alpha " * 26}],
                                "max_tokens": 16, "stream": True, "ignore_eos": True})
    rows: Rows = []
    first_bytes: list[float] = []  # noted as a latency benchmark must, at the least
    started = 0.0

    async def one(session: aiohttp.ClientSession, scheduled: float) -> None:
        sent = time.perf_counter() - started
        first = None
        async with session.post(f"{url}/v1/chat/completions", data=body) as response:
            async for _ in response.content.iter_any():
                if first is None:
                    first = time.perf_counter() - started
            ok = response.status == 200
        first_bytes.append(first or 0.0)
        rows.append((scheduled, sent, time.perf_counter() - started, ok))

    connector = aiohttp.TCPConnector(limit=POOL, limit_per_host=POOL)
    cpu = time.process_time()
    async with aiohttp.ClientSession(connector=connector) as session, anyio.create_task_group() as tg:
        started = time.perf_counter()
        for at in arrivals:
            delay = at - (time.perf_counter() - started)
            if delay > 0:
                await anyio.sleep(delay)
            tg.start_soon(one, session, at)
    cpu = time.process_time() - cpu
    return rows, cpu, []  # the first byte is the role chunk, sent before the 20 ms: no TTFT to compare


def spread(values: list[float]) -> str:
    return f"{min(values):g}" if min(values) == max(values) else f"{min(values):g}-{max(values):g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="400,800,1200,1600,2000")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2, help="pairs per rate, the order flipped each round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    clients = {"bench": bench_client, "bare": bare_client}
    rows = []
    with mock_server_process(MockConfig(ttft_s=0.02, tokens_per_chunk=4)) as url:
        anyio.run(bare_client, url, 100.0, schedule(100.0, 1.0))  # warm the server up once, outside the figures
        for index, rate in enumerate(rates):
            arrivals = schedule(rate, args.seconds)
            offered = len(arrivals) / args.seconds
            rounds: dict[str, list[dict[str, Any]]] = {"bench": [], "bare": []}
            for round_ in range(args.rounds):
                order = ["bench", "bare"] if (index + round_) % 2 == 0 else ["bare", "bench"]
                for name in order:
                    result, cpu, ttfts = anyio.run(clients[name], url, rate, arrivals)
                    rounds[name].append({**judge(result, offered, cpu, ttfts), "first": name == order[0]})
            rows.append({"rate": rate, "offered_rps": round(offered, 1), **rounds})

    def limit(client: str, test: str = "sustained") -> float | None:
        passed = [row["rate"] for row in rows if all(test_run(r, test) for r in row[client])]
        return max(passed) if passed else None

    def test_run(run: dict[str, Any], test: str) -> bool:
        return bool(run["sustained"]) if test == "sustained" else run["achieved_fraction"] >= 0.95

    def cpu_of(client: str, row: dict[str, Any]) -> float:
        return float(statistics.median(r["cpu_us_per_request"] for r in row[client]))

    bench_limit, bare_limit = limit("bench"), limit("bare")
    bench_pace, bare_pace = limit("bench", "pace"), limit("bare", "pace")
    report = {"seconds_per_rate": args.seconds, "rounds": args.rounds, "rows": rows,
              "bench_limit_rps": bench_limit, "bare_limit_rps": bare_limit,
              "limit_ratio": round(bench_limit / bare_limit, 3) if bench_limit and bare_limit else None,
              "bench_pace_rps": bench_pace, "bare_pace_rps": bare_pace,
              "pace_ratio": round(bench_pace / bare_pace, 3) if bench_pace and bare_pace else None,
              "cpu_ratio_median": round(statistics.median(cpu_of("bench", r) / cpu_of("bare", r) for r in rows), 3)}
    if args.json:
        print(json.dumps(report))
        return
    print(f"open loop against the mock (separate process), {args.seconds:g} s a rate, {args.rounds} rounds "
          "(order alternating); achieved req/s, lag p99 ms and CPU us/request as min-max over rounds:")
    for row in rows:
        cells = []
        for name in ("bench", "bare"):
            runs = row[name]
            tag = "sustained" if all(r["sustained"] for r in runs) else "NOT sustained"
            cells.append(f"{name} {spread([r['achieved_rps'] for r in runs])} req/s, lag "
                         f"{spread([r['lag_p99_ms'] for r in runs])}, "
                         f"CPU {spread([r['cpu_us_per_request'] for r in runs])} ({tag})")
        print(f"  {row['rate']:>6g} req/s: " + "; ".join(cells))
        print(f"         bench TTFT p50 {spread([r['ttft_p50_ms'] for r in row['bench']])} ms, p99 "
              f"{spread([r['ttft_p99_ms'] for r in row['bench']])} ms (the server's: 20 ms)")
    print(f"  sustained (every round): bench {bench_limit} req/s, bare aiohttp {bare_limit} req/s (ratio "
          f"{report['limit_ratio']}); kept pace (achieved >= 0.95, lag aside): bench {bench_pace}, bare {bare_pace} "
          f"(ratio {report['pace_ratio']}); CPU per request, bench/bare, median over rates: "
          f"{report['cpu_ratio_median']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
