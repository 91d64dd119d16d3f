"""The playground in headless Chromium, on the mock: start, continue, stop, reset, save."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.ui import open_viewer
from tests.ui.support import Tab, read_records, screenshot_path

pytestmark = pytest.mark.ui
expect = pytest.importorskip("playwright.async_api").expect

TOKENS = re.compile(r"^in \d+ · out \d+ · cache read \d+ · cache write \d+$")


async def turns_shown(page: Any) -> list[str]:
    """The turn numbers of the replies on the page, in order (each must appear once)."""
    found: list[str] = await page.eval_on_selector_all("#conversation .msg.assistant",
                                                       "nodes => nodes.map((n) => n.dataset.turn)")
    return found


async def expect_clean_turns(page: Any, count: int) -> None:
    """Exactly ``count`` finished replies, numbered 1..count, each with its token counts; nothing streaming."""
    conversation = page.get_by_test_id("conversation")
    await expect(conversation.locator(".msg.streaming")).to_have_count(0)
    await expect(conversation.locator(".msg.assistant")).to_have_count(count)
    assert await turns_shown(page) == [str(n) for n in range(1, count + 1)]
    tokens = conversation.locator(".msg.assistant [data-testid=turn-tokens]")
    await expect(tokens).to_have_count(count)
    for number in range(count):
        await expect(tokens.nth(number)).to_have_text(TOKENS)
    indexes = await page.eval_on_selector_all("#conversation .msg", "nodes => nodes.map((n) => n.dataset.index)")
    assert indexes == [str(n) for n in range(len(indexes))], "every message once, in order"


@pytest.mark.parametrize("provider", ["mock", "mock-anthropic"])
async def test_the_playground_runs_continues_and_resets_with_no_stale_turns(
        tab: Tab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str) -> None:
    page = tab.page
    monkeypatch.chdir(tmp_path)
    saved = Path("playground.jsonl")
    mock = MockConfig(ttft_s=0.05, tokens_per_s=100, confident_after=4)  # a turn streams for ~0.3 s
    async with open_mock_server(mock) as server:
        base = f"{server.url}/v1" if provider == "mock" else server.url
        async with open_viewer(save_to=saved, default_model=f"{provider}:reasoner@{base}") as viewer:
            await page.goto(viewer.url)
            status = page.get_by_test_id("status")
            await page.get_by_test_id("problem").select_option("letters-0")
            await page.get_by_test_id("max-turns").fill("2")
            await page.get_by_test_id("final-every").fill("2")
            await page.get_by_test_id("start").click()
            # streams turn by turn: a reply is on the page before it is finished
            await page.wait_for_function(
                "() => [...document.querySelectorAll('#conversation .msg.streaming pre')].some((p) => p.textContent)")
            await expect(status).to_have_text("stopped")
            await expect(page.get_by_test_id("banner")).to_have_text(re.compile("^max_turns: no final answer"))
            await expect_clean_turns(page, 2)

            await page.get_by_test_id("continue").click()
            await expect(status).to_have_text("running…")
            await expect(status).to_have_text("stopped")
            await expect_clean_turns(page, 4)
            if provider == "mock-anthropic":  # the prompt cache: every turn after the first reads it
                last = page.locator("#conversation .msg.assistant [data-testid=turn-tokens]").last
                await expect(last).not_to_have_text(re.compile("cache read 0 "))

            await page.get_by_test_id("continue").click()
            await expect(status).to_have_text("stopped")
            # asked for a final answer after turn 4, and confident after 4 turns: it answers
            await expect(page.get_by_test_id("banner")).to_have_text(re.compile("^final: "))
            count = 5
            await expect_clean_turns(page, count)
            if provider == "mock-anthropic":  # its turns show prompt-cache reads and writes
                await page.screenshot(path=screenshot_path("playground"))

            await page.get_by_test_id("save").click()
            await expect(page.locator("#save-note")).to_contain_text("saved")
            [record] = read_records(saved)
            assert len(record.turns) == count and record.status == "final"
            assert all(turn.usage.output_tokens > 0 for turn in record.turns)

            await page.get_by_test_id("reset").click()
            await expect(page.locator("#conversation .msg")).to_have_count(0)
            await expect(status).to_have_text("not started")
            await page.get_by_test_id("start").click()
            await expect(status).to_have_text("stopped")
            await expect_clean_turns(page, 2)
    assert not tab.errors and not tab.dialogs and not tab.csp_violations()
