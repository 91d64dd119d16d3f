"""UI benchmark: does watching a run in the browser slow it down?

    python benchmarks/ui.py [--traces 400] [--turns 4] [--in-flight 64] [--latency-ms 100] [--rounds 3] [--json]

The same run, measured in the same process, alternately:

* **without the UI**: ``generate()`` alone (no event stream, no server);
* **with the UI open**: ``generate()`` fed to :func:`open_strawberry.ui.open_monitor` (events,
  progress, records), the monitor page open in headless Chromium (Debian's ``chromium``, driven
  by Playwright: ``make test-ui`` installs both; one page for every round, as a user keeps a
  tab), and one trace in flight clicked, so that its reply streams token by token to the page
  while the run goes.

A short run of each, not counted, warms up the browser, the page and this process first.

The mock server runs in a separate process and answers every streamed call after
``--latency-ms``, the whole reply at once in chunks of one token (every chunk is a text delta,
so the event stream carries as much as it ever does), and never gives a final answer, so
every trace runs exactly ``--turns`` turns. Rounds alternate the two (which goes first
alternates too). Reported: turns per second of each, the ratio of the best rounds and the
median of the rounds' ratios (goal: at least 0.95), the CPU time per turn of this process and
of Chromium, and what the UI dropped rather than wait for (events the monitor could not take,
messages a page could not take). On a small machine the mock server, this process and
Chromium share the cores: the CPU figures say what the UI costs when the cores are busy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from open_strawberry.bench.mock_process import mock_server_process
from open_strawberry.mock import MockConfig
from open_strawberry.pipeline import GenerateConfig, generate
from open_strawberry.problems.builtin import builtin_problems

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def config(url: str, args: argparse.Namespace, problems: Path, out: Path) -> GenerateConfig:
    return GenerateConfig(problems=str(problems), model=f"mock:reasoner@{url}/v1", out=str(out),
                          max_traces=args.in_flight, max_concurrency=args.in_flight, max_turns=args.turns,
                          final_every=0, temperature=None, max_tokens=256)


def chromium_cpu_s() -> float:
    """CPU seconds used so far by every Chromium process (from /proc; 0 where it cannot be read)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                if b"chromium" not in file.read():
                    continue
            with open(f"/proc/{pid}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


async def without_ui(run: GenerateConfig) -> float:
    summary = await generate(run)
    return summary.written * run.max_turns / summary.elapsed_s


async def with_ui(run: GenerateConfig, page: Any) -> tuple[float, dict[str, int]]:
    from open_strawberry.ui import open_monitor

    async with open_monitor(traces=run.out) as monitor:
        await page.goto(monitor.url)
        await page.wait_for_selector("#connection.live")
        summaries = []

        async def go() -> None:
            summaries.append(await generate(run, **monitor.generate_options()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(go)
            row = page.locator("[data-testid=traces-in-flight] tr").first
            await row.click(timeout=60_000)  # watch one trace stream while the run goes
    summary = summaries[0]
    return summary.written * run.max_turns / summary.elapsed_s, msgspec.to_builtins(monitor.snapshot().dropped)


async def measure(url: str, args: argparse.Namespace, problems: Path, directory: Path) -> dict[str, Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise SystemExit("needs Playwright: pip install -e '.[ui]' (make test-ui installs it)") from None
    if not await anyio.Path(CHROMIUM).exists():
        raise SystemExit(f"needs {CHROMIUM}: apt-get install chromium (make test-ui installs it)")
    rates: dict[str, list[float]] = {"bare": [], "ui": []}
    cpu: dict[str, list[float]] = {"bare": [], "ui": [], "chromium": []}  # ms per turn
    dropped = {"events": 0, "pages": 0}
    turns = args.traces * args.turns
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 800})  # one page, as a user has
            warmup = msgspec.structs.replace(config(url, args, problems, directory / "warmup.jsonl"),
                                             problems=f"builtin:mixed:{args.in_flight}")
            await with_ui(warmup, page)  # not counted: the browser, the page and this process warm up
            await without_ui(msgspec.structs.replace(warmup, out=str(directory / "warmup-bare.jsonl")))
            for number in range(args.rounds):
                for mode in ("bare", "ui") if number % 2 == 0 else ("ui", "bare"):
                    run = config(url, args, problems, directory / f"{mode}-{number}.jsonl")
                    started, chromium = time.process_time(), chromium_cpu_s()
                    if mode == "bare":
                        rate = await without_ui(run)
                    else:
                        rate, lost = await with_ui(run, page)
                        dropped = {name: dropped[name] + lost[name] for name in dropped}
                        cpu["chromium"].append((chromium_cpu_s() - chromium) * 1000 / turns)
                    cpu[mode].append((time.process_time() - started) * 1000 / turns)
                    rates[mode].append(rate)
        finally:
            await browser.close()
    return {"without_ui_turns_per_s": [round(r, 1) for r in rates["bare"]],
            "with_ui_turns_per_s": [round(r, 1) for r in rates["ui"]],
            "median_ratio": round(statistics.median(u / b for u, b in zip(rates["ui"], rates["bare"], strict=True)), 3),
            "cpu_ms_per_turn": {"without_ui": round(statistics.median(cpu["bare"]), 3),
                                "with_ui": round(statistics.median(cpu["ui"]), 3),
                                "chromium": round(statistics.median(cpu["chromium"]), 3)},
            "dropped": dropped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=400)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (alternating)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    mock = MockConfig(ttft_s=args.latency_ms / 1000, tokens_per_chunk=1, confident_after=1000)
    with tempfile.TemporaryDirectory() as directory, mock_server_process(mock) as url:
        problems = Path(directory) / "problems.jsonl"
        problems.write_bytes(b"".join(msgspec.json.encode(p) + b"\n" for p in builtin_problems("mixed", args.traces)))
        found = anyio.run(measure, url, args, problems, Path(directory))
    best_bare, best_ui = max(found["without_ui_turns_per_s"]), max(found["with_ui_turns_per_s"])
    result = {
        "traces": args.traces, "turns_per_trace": args.turns, "in_flight": args.in_flight,
        "latency_ms": args.latency_ms, "rounds": args.rounds,
        "ideal_turns_per_s": round(args.in_flight / (args.latency_ms / 1000), 1),
        **found, "best_without_ui": best_bare, "best_with_ui": best_ui,
        "ratio": round(best_ui / best_bare, 3), "goal": {"ratio": 0.95},
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.traces:,} traces x {args.turns} turns, {args.in_flight} in flight, {args.latency_ms:g} ms per call "
          "(mock in a separate process, one token per chunk):")
    print(f"  without the UI : {result['without_ui_turns_per_s']} turns/s (best {best_bare})")
    print(f"  with the UI    : {result['with_ui_turns_per_s']} turns/s (best {best_ui}; monitor page open in headless "
          "Chromium, one trace streaming)")
    print(f"  ratio          : {result['ratio']} of the best rounds, {found['median_ratio']} median of the rounds "
          "(goal >= 0.95)")
    spent = found["cpu_ms_per_turn"]
    print(f"  CPU per turn   : {spent['without_ui']} ms without, {spent['with_ui']} ms with the UI in this process, "
          f"and {spent['chromium']} ms in Chromium")
    print(f"  dropped        : {found['dropped']['events']} events, {found['dropped']['pages']} page messages")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
