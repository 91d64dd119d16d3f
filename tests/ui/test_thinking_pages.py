"""A reasoning model's thinking on every page, against the mock in reasoning mode: folded under
its turn (a closed <details>), with its tokens, as text (a thinking holding <img onerror> runs
nothing), and streamed apart from the answer by the monitor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from open_strawberry import Usage
from open_strawberry.events import ReasoningDelta, TextDelta, TurnFinished, TurnStarted
from open_strawberry.messages import Timings, json_encoder
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.mock.reasoner import DECOY_ANSWER
from open_strawberry.pipeline import generate
from open_strawberry.ui import open_monitor, open_viewer
from tests.ui.support import PAYLOAD, Tab, read_records

pytestmark = pytest.mark.ui
expect = pytest.importorskip("playwright.async_api").expect

DECOY = f"<final_answer>{DECOY_ANSWER}</final_answer>"  # in each of the mock's thinkings: text, never a tag


async def nothing_ran(tab: Tab) -> None:
    assert await tab.page.evaluate("() => window.pw") is None
    assert tab.dialogs == []
    assert await tab.page.locator("main img, main script, main final_answer").count() == 0
    assert not tab.errors and not tab.csp_violations()


async def expect_folded(reply: Any, thinking: str, answer: str, tokens: int | None = None) -> None:
    """``reply`` shows ``thinking`` folded above its ``answer``: closed, then open on a click."""
    folded = reply.get_by_test_id("thinking")
    await expect(folded).to_have_count(1)
    await expect(folded).not_to_have_attribute("open", re.compile(".*"))  # collapsed by default
    await expect(folded.locator(".thinking-text")).to_be_hidden()
    if tokens is not None:
        await expect(folded.locator("summary")).to_have_text(f"thinking · {tokens:,} tokens")
    await folded.locator("summary").click()
    await expect(folded.locator(".thinking-text")).to_be_visible()
    await expect(folded.locator(".thinking-text")).to_have_text(thinking)
    await expect(reply.locator(":scope > pre.text")).to_have_text(answer)  # the answer alone


async def test_the_browser_and_the_playground_fold_each_turns_thinking_as_text(tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    out = tmp_path / "traces.jsonl"
    async with open_mock_server(MockConfig(thinking="reasoning_content")) as server:
        model = f"mock:reasoner@{server.url}/v1"
        await generate(problems="builtin:arithmetic:2", model=model, out=str(out), max_turns=3)
        records = read_records(out)
        # the first reply of the first trace thought something that would run as HTML
        first = records[0]
        at = next(i for i, m in enumerate(first.messages) if m.role == "assistant")
        messages = list(first.messages)
        messages[at] = msgspec.structs.replace(messages[at], reasoning_content=PAYLOAD)
        records[0] = msgspec.structs.replace(first, messages=tuple(messages))
        out.write_bytes(b"".join(json_encoder.encode(r) + b"\n" for r in records))

        async with open_viewer(out, save_to=tmp_path / "saved.jsonl", default_model=model) as viewer:
            await page.goto(viewer.url)
            await page.locator("[data-testid=results] tr").first.click()
            replies = page.locator("#conversation .msg.assistant")
            shown = [m for m in records[0].messages if m.role == "assistant"]
            await expect(replies).to_have_count(len(shown))
            for number, (message, turn) in enumerate(zip(shown, records[0].turns, strict=True)):
                assert message.reasoning_content and isinstance(turn.usage.reasoning_tokens, int)
                await expect_folded(replies.nth(number), message.reasoning_content, message.content,
                                    turn.usage.reasoning_tokens)
            await expect(replies.first.get_by_test_id("turn-tokens")).to_contain_text(
                f"(thinking {records[0].turns[0].usage.reasoning_tokens})")
            await nothing_ran(tab)

            await page.goto(viewer.page_url("playground"))
            await page.get_by_test_id("problem").select_option("letters-0")
            await page.get_by_test_id("max-turns").fill("2")
            await page.get_by_test_id("start").click()
            await expect(page.get_by_test_id("status")).to_have_text("stopped")
            replies = page.locator("#conversation .msg.assistant")
            await expect(replies).to_have_count(2)
            await expect(page.locator("#conversation [data-testid=thinking]")).to_have_count(2)
            folded = replies.first.get_by_test_id("thinking")
            await expect(folded).not_to_have_attribute("open", re.compile(".*"))
            await expect(folded.locator("summary")).to_have_text(re.compile(r"^thinking · \d+ tokens$"))
            await folded.locator("summary").click()
            await expect(folded.locator(".thinking-text")).to_contain_text(DECOY)
            await expect(replies.first.locator(":scope > pre.text")).not_to_contain_text("Let me think")
            await nothing_ran(tab)


async def test_the_monitor_streams_the_thinking_of_the_trace_watched_apart_from_the_answer(
        tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    async with open_monitor(traces=tmp_path / "traces.jsonl", tick_s=0.1) as monitor:
        await page.goto(monitor.url)
        await expect(page.get_by_test_id("tokens-thinking")).to_be_hidden()  # no thinking yet: nothing said of it
        events = monitor.events
        events.publish(TurnStarted(trace_id="t-1", turn=1, kind="first"))
        events.publish(ReasoningDelta(trace_id="t-1", turn=1, text=PAYLOAD))
        events.publish(TextDelta(trace_id="t-1", turn=1, text="Two"))
        row = page.locator("[data-testid=traces-in-flight] tr[data-trace-id='t-1']")
        await row.click()
        reply = page.locator("#watch-turns .msg.assistant")
        folded = reply.get_by_test_id("thinking")
        await expect(folded).not_to_have_attribute("open", re.compile(".*"))
        await folded.locator("summary").click()
        await expect(folded.locator(".thinking-text")).to_have_text(PAYLOAD)  # the page is watching now
        events.publish(ReasoningDelta(trace_id="t-1", turn=1, text=" and on"))
        events.publish(TextDelta(trace_id="t-1", turn=1, text=" steps."))
        await expect(folded.locator(".thinking-text")).to_have_text(PAYLOAD + " and on")
        await expect(reply.locator(":scope > pre.text")).to_have_text("Two steps.")
        events.publish(TurnFinished(trace_id="t-1", turn=1, usage=Usage(input_tokens=9, output_tokens=12,
                                                                        reasoning_tokens=8),
                                    timings=Timings(ttft_s=0.1, e2e_s=0.5), text="Two steps.",
                                    reasoning=PAYLOAD + " and on"))
        await expect(folded.locator("summary")).to_have_text("thinking · 8 tokens")
        await expect(reply.get_by_test_id("turn-tokens")).to_contain_text("out 12 (thinking 8)")
        await expect(page.get_by_test_id("tokens-thinking")).to_have_text("8")
        await nothing_ran(tab)


async def test_the_monitor_shows_a_finished_traces_thinking_from_a_run_on_a_reasoning_model(
        tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    out = tmp_path / "traces.jsonl"
    async with (open_mock_server(MockConfig(thinking="reasoning")) as server,
                open_monitor(traces=out, tick_s=0.1) as monitor):
        await page.goto(monitor.url)
        await generate(problems="builtin:arithmetic:1", model=f"mock:reasoner@{server.url}/v1", out=str(out),
                       max_turns=2, **monitor.generate_options())
        [record] = read_records(out)
        await expect(page.get_by_test_id("run-state")).to_have_text("finished")
        # the run's thinking tokens beside its output tokens
        await expect(page.get_by_test_id("tokens-thinking")).to_have_text(str(record.usage.reasoning_tokens))
        await expect(page.get_by_test_id("tokens-thinking")).to_be_visible()
        await page.locator("[data-testid=recent] tr").first.click()
        replies = page.locator("#watch-turns .msg.assistant")
        shown = [m for m in record.messages if m.role == "assistant"]
        await expect(replies).to_have_count(len(shown))
        for number, (message, turn) in enumerate(zip(shown, record.turns, strict=True)):
            assert message.reasoning_content and isinstance(turn.usage.reasoning_tokens, int)
            await expect_folded(replies.nth(number), message.reasoning_content, message.content,
                                turn.usage.reasoning_tokens)
        with anyio.fail_after(1):
            await nothing_ran(tab)
