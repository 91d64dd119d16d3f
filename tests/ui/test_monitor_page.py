"""The run monitor in headless Chromium, against a run on the mock."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import anyio
import pytest

from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import RunSummary, generate
from open_strawberry.ui import open_monitor
from tests.ui.support import Tab, read_records, screenshot_path

pytestmark = pytest.mark.ui
expect = pytest.importorskip("playwright.async_api").expect

TRACES = 12


def number(text: str | None) -> int:
    return int((text or "0").replace(",", ""))


async def test_the_monitor_moves_with_the_run_streams_a_trace_and_ends_matching_the_file(
        tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    out = tmp_path / "traces.jsonl"
    mock = MockConfig(ttft_s=0.05, tokens_per_s=120, accuracy=0.6)
    async with (open_mock_server(mock) as server,
                open_monitor(traces=out, tick_s=0.2, prices={"mock:reasoner": (3.0, 15.0)}) as monitor):
        await page.goto(monitor.url)
        await expect(page.get_by_test_id("run-state")).to_have_text("running")
        summaries: list[RunSummary] = []

        async def run() -> None:
            summaries.append(await generate(problems=f"builtin:mixed:{TRACES}", model=f"mock:reasoner@{server.url}/v1",
                                            out=str(out), max_traces=3, **monitor.generate_options()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            # the counts move while the run goes: some traces done, not all
            await page.wait_for_function(
                f"""() => {{ const done = +document.querySelector('[data-testid=done]').textContent.replace(/,/g, '');
                             return done > 0 && done < {TRACES}; }}""")
            await expect(page.get_by_test_id("total")).to_have_text(str(TRACES))
            assert not summaries, "the run was still going"
            await expect(page.get_by_test_id("turns")).not_to_have_text("0")
            # click a trace in flight: its reply streams in, token by token
            # the trace in flight with the most turns to go: it will still be streaming
            least_done = await page.wait_for_function(
                """() => [...document.querySelectorAll('[data-testid=traces-in-flight] tr')]
                           .sort((a, b) => +a.children[1].textContent - +b.children[1].textContent)
                           .map((row) => row.dataset.traceId)[0]""")
            trace_id = await least_done.json_value()
            await page.locator(f"[data-testid=traces-in-flight] tr[data-trace-id='{trace_id}']").click()
            await expect(page.get_by_test_id("watch-id")).to_have_text(trace_id)
            await page.wait_for_function(
                """() => [...document.querySelectorAll('#watch-turns .msg.streaming pre')]
                           .some((pre) => pre.textContent.length > 0)""")
            finished_turn = page.locator("#watch-turns .msg:not(.streaming) [data-testid=turn-tokens]").first
            await expect(finished_turn).to_have_text(re.compile(r"in \d+ · out \d+ · cache read \d+ · cache write \d+"))
            await page.locator(".split").screenshot(path=screenshot_path("monitor-trace"))
            await page.evaluate("() => window.scrollTo(0, 0)")
            await page.screenshot(path=screenshot_path("monitor"))

        await expect(page.get_by_test_id("run-state")).to_have_text("finished")
        records = read_records(out)
        statuses = Counter(r.status for r in records)
        assert len(records) == TRACES == summaries[0].written
        await expect(page.get_by_test_id("done")).to_have_text(str(len(records)))
        await expect(page.get_by_test_id("correct")).to_have_text(str(sum(r.correct is True for r in records)))
        await expect(page.get_by_test_id("graded")).to_have_text(str(sum(r.correct is not None for r in records)))
        await expect(page.get_by_test_id("failed")).to_have_text(str(statuses["error"]))
        await expect(page.get_by_test_id("statuses")).to_have_text(
            " · ".join(f"{status} {count}" for status, count in sorted(statuses.items())))
        turns = sum(len(r.turns) for r in records)
        assert number(await page.get_by_test_id("turns").text_content()) == turns
        await expect(page.get_by_test_id("cost")).to_have_text(re.compile(r"^\$\d"))
        await expect(page.locator("#limiters")).to_contain_text("generator")
        await expect(page.get_by_test_id("ttft-p50")).to_have_text(re.compile(r"p50 \d+ ms"))
    await expect(page.locator("#connection")).to_have_text(re.compile("stopped"))
    assert not tab.errors and not tab.dialogs
