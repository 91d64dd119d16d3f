"""Calibration: the highest request rate the bench client sustains on this machine before its
own overhead shows, against a bare aiohttp client measured in the same run.

    python benchmarks/calibration.py [--rates 25,50,100,200,400,800] [--seconds 4] [--json]

The mock server runs in a separate process with a short, fixed latency (20 ms to the first
token, 16 tokens unpaced). For each rate, an open loop (Poisson arrivals, seeded) runs for
``--seconds``: once through ``open-strawberry``'s bench runner (native client, record keeping,
health checks) and once through a bare loop (aiohttp, minimal SSE parsing, same schedule).
A rate is *sustained* when the achieved request rate is at least 0.95 of the target and the
p99 lag between scheduled and actual send stays under 10 ms. The client's limit is the
highest sustained rate; above it, numbers describe the client, not the server.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import aiohttp
import anyio
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry.backends import OpenAIChatBackend
from open_strawberry.bench import BenchPlan, run_bench, summarize
from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.mock import MockConfig
from open_strawberry.runtime.statistics import percentile


def judge(requests: int, rate: float, seconds: float, lags: list[float]) -> dict[str, float | bool]:
    achieved = requests / seconds
    lag = (percentile(lags, 99) or 0.0) * 1000
    return {"achieved_rps": round(achieved, 1), "schedule_lag_p99_ms": round(lag, 2),
            "sustained": achieved >= 0.95 * rate and lag < 10.0}


async def bench_client(url: str, rate: float, seconds: float) -> dict[str, float | bool]:
    async with OpenAIChatBackend(base_url=f"{url}/v1", model="m", provider="vllm") as backend:
        records, _ = await run_bench(BenchPlan(rate=rate, duration_s=seconds, input_tokens=32, output_tokens=16,
                                               seed=1), backend)
    summary = summarize(records)
    ok = summary["succeeded"]
    assert isinstance(ok, int)
    return judge(ok, rate, seconds, [r.sent_s - r.scheduled_s for r in records])


async def bare_client(url: str, rate: float, seconds: float) -> dict[str, float | bool]:
    rng = random.Random(1)
    lags: list[float] = []
    done = 0
    body = msgspec.json.encode({"model": "m", "messages": [{"role": "user", "content": "alpha " * 26}],
                                "max_tokens": 16, "stream": True, "ignore_eos": True})

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal done
        async with session.post(f"{url}/v1/chat/completions", data=body) as response:
            async for _ in response.content.iter_any():
                pass
        done += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session, \
            anyio.create_task_group() as tg:
        at = 0.0
        while at < seconds:
            delay = at - (time.perf_counter() - started)
            if delay > 0:
                await anyio.sleep(delay)
            lags.append(time.perf_counter() - started - at)
            tg.start_soon(one, session)
            at += rng.expovariate(rate)
    return judge(done, rate, seconds, lags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="25,50,100,200,400,800")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    with mock_server_process(MockConfig(ttft_s=0.02, tokens_per_chunk=4)) as url:
        for rate in rates:
            rows.append({"rate": rate, "bench": anyio.run(bench_client, url, rate, args.seconds),
                         "bare": anyio.run(bare_client, url, rate, args.seconds)})

    def limit(client: str) -> float | None:
        sustained = [row["rate"] for row in rows if row[client]["sustained"]]  # type: ignore[index]
        return max(sustained) if sustained else None

    report = {"seconds_per_rate": args.seconds, "rows": rows, "bench_limit_rps": limit("bench"),
              "bare_limit_rps": limit("bare")}
    if args.json:
        print(json.dumps(report))
        return
    print(f"open loop against the mock (separate process), {args.seconds:g} s a rate:")
    for row in rows:
        b, r = row["bench"], row["bare"]
        print(f"  {row['rate']:>6g} req/s: bench {b['achieved_rps']:>7} req/s (lag p99 {b['schedule_lag_p99_ms']} ms"
              f"{', sustained' if b['sustained'] else ''}); bare {r['achieved_rps']:>7} req/s "
              f"(lag p99 {r['schedule_lag_p99_ms']} ms{', sustained' if r['sustained'] else ''})")
    print(f"  client limit: bench {report['bench_limit_rps']} req/s, bare aiohttp {report['bare_limit_rps']} req/s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
