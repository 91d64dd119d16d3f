"""Client benchmark: the native OpenAI-compatible client against the official ``openai`` SDK.

    python benchmarks/clients.py [--calls N] [--concurrency C] [--rounds R] [--json]

Both clients make the same streamed chat calls (``stream_options.include_usage``) against
the mock server, which runs in a separate process (``open-strawberry mock-server``, one
token per chunk, about 40 chunks a call, paced at ``--mock-tokens-per-s`` so that chunks
arrive one by one as from a real server), at the same concurrency. Rounds
alternate native and SDK; the best round of each counts, to damp the noise of a shared
2-core machine. Reported per client: calls per second, and client CPU seconds per call
(``time.process_time`` of this process, which only runs the client). Goal: the native
client uses at most half the CPU per call of the SDK.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry import ChatMessage
from open_strawberry.backends import ChatRequest, OpenAIChatBackend
from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.mock import MockConfig

QUESTION = "How many 'r's are in 'strawberry'?"


async def drive(call: Callable[[int], Awaitable[int]], calls: int, concurrency: int) -> tuple[float, float]:
    """(calls per second, CPU seconds per call) of ``calls`` calls at ``concurrency``."""
    counter = iter(range(calls))
    chars = 0

    async def worker() -> None:
        nonlocal chars
        for index in counter:
            chars += await call(index)

    cpu, wall = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert chars > 0
    return calls / wall, cpu / calls


async def native_round(base_url: str, calls: int, concurrency: int) -> tuple[float, float]:
    async with OpenAIChatBackend(base_url=base_url, model="mock-reasoner", provider="vllm") as backend:
        async def call(index: int) -> int:
            request = ChatRequest(messages=(ChatMessage(role="user", content=QUESTION),), seed=index)
            return len((await backend.complete(request)).text)

        await call(-1)  # open the pool outside the measurement
        return await drive(call, calls, concurrency)


async def sdk_round(base_url: str, calls: int, concurrency: int) -> tuple[float, float]:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        async def call(index: int) -> int:
            stream = await client.chat.completions.create(
                model="mock-reasoner", messages=[{"role": "user", "content": QUESTION}], seed=index,
                stream=True, stream_options={"include_usage": True})
            parts = []
            async for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        parts.append(choice.delta.content)
            return len("".join(parts))

        await call(-1)
        return await drive(call, calls, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="calls per round and client (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight (default 32)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per client (default 3)")
    parser.add_argument("--mock-tokens-per-s", type=float, default=1000.0,
                        help="streaming pace of the mock, per call (default 1000; 0: unpaced)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    with mock_server_process(MockConfig(tokens_per_s=args.mock_tokens_per_s)) as url:
        base_url = url + "/v1"
        native, sdk = [], []
        for _ in range(args.rounds):
            native.append(anyio.run(native_round, base_url, args.calls, args.concurrency))
            sdk.append(anyio.run(sdk_round, base_url, args.calls, args.concurrency))

    best_native = min(native, key=lambda r: r[1])
    best_sdk = min(sdk, key=lambda r: r[1])
    result = {
        "calls_per_round": args.calls,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "mock_tokens_per_s": args.mock_tokens_per_s,
        "native_calls_per_s": round(best_native[0], 1),
        "sdk_calls_per_s": round(best_sdk[0], 1),
        "native_cpu_ms_per_call": round(best_native[1] * 1000, 3),
        "sdk_cpu_ms_per_call": round(best_sdk[1] * 1000, 3),
        "cpu_ratio_native_to_sdk": round(best_native[1] / best_sdk[1], 3),
        "goal_cpu_ratio": 0.5,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"streamed calls against the mock (separate process), concurrency {args.concurrency}, "
          f"{args.calls} calls a round, best of {args.rounds}:")
    for name, key in (("native client", "native"), ("openai SDK   ", "sdk")):
        rate, cpu = result[f"{key}_calls_per_s"], result[f"{key}_cpu_ms_per_call"]
        print(f"  {name} : {rate:>8} calls/s  {cpu:>7} ms CPU/call")
    print(f"  CPU ratio     : {result['cpu_ratio_native_to_sdk']}  (goal <= 0.5)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
