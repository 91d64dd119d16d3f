"""The trace browser in headless Chromium, on a traces file written by a run on the mock."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import msgspec
import pytest

from open_strawberry.messages import json_encoder
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import generate
from open_strawberry.ui import open_viewer
from tests.ui.support import Tab, read_records, screenshot_path

pytestmark = pytest.mark.ui
expect = pytest.importorskip("playwright.async_api").expect


async def test_the_browser_filters_searches_opens_a_trace_and_follows_a_growing_file(
        tab: Tab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tab.page
    monkeypatch.chdir(tmp_path)
    out = Path("traces.jsonl")
    async with open_mock_server(MockConfig(accuracy=0.5)) as server:
        await generate(problems="builtin:mixed:12", model=f"mock:reasoner@{server.url}/v1", out=str(out),
                       max_turns=5, verify_every=2)
    records = read_records(out)
    rows = page.locator("[data-testid=results] tr")
    async with open_viewer(out, playground=False) as viewer:
        await page.goto(viewer.url)
        await expect(page.get_by_test_id("indexed")).to_have_text(str(len(records)))
        await expect(rows).to_have_count(len(records))

        await page.get_by_test_id("filter-status").select_option("final")
        await expect(rows).to_have_count(sum(r.status == "final" for r in records))
        await page.get_by_test_id("filter-correct").select_option("false")
        await expect(rows).to_have_count(sum(r.status == "final" and r.correct is False for r in records))
        await page.get_by_role("button", name="Clear").click()
        await expect(rows).to_have_count(len(records))

        await page.get_by_test_id("filter-problem").fill("letters")
        await page.get_by_test_id("filter-problem").press("Enter")
        await expect(rows).to_have_count(sum("letters" in r.problem_id for r in records))
        await page.get_by_role("button", name="Clear").click()
        needle = "pieces fit together"  # a step of the mock's replies to the puzzles it has no plan for
        lines = (await anyio.Path(out).read_bytes()).splitlines()
        await page.get_by_test_id("filter-text").fill(needle.upper())
        await page.get_by_test_id("filter-text").press("Enter")
        await expect(rows).to_have_count(sum(needle.encode() in line.lower() for line in lines))
        await page.get_by_role("button", name="Clear").click()
        await expect(rows).to_have_count(len(records))

        # open a trace the verifier scored: the conversation, per-turn tokens, timings and scores
        index, record = next((i, r) for i, r in enumerate(records)
                             if any(t.verifier_score is not None for t in r.turns))
        await rows.nth(index).click()
        conversation = page.get_by_test_id("conversation")
        await expect(conversation.locator(".msg")).to_have_count(len(record.messages))
        await expect(conversation.locator(".msg.assistant [data-testid=turn-tokens]")).to_have_count(len(record.turns))
        await expect(conversation.locator("[data-testid=score]")).to_have_count(
            sum(t.verifier_score is not None for t in record.turns))
        await expect(page.get_by_test_id("fact-ground-truth")).to_have_text(record.ground_truth)
        assistant = conversation.locator(".msg.assistant pre")
        for number, message in enumerate(m for m in record.messages if m.role == "assistant"):
            await expect(assistant.nth(number)).to_have_text(message.content)
        nudges = conversation.locator(".msg.nudge")
        assert await nudges.count() > 0
        await page.get_by_test_id("show-nudges").uncheck()
        for number in range(await nudges.count()):
            await expect(nudges.nth(number)).to_be_hidden()
        await expect(conversation.locator(".msg.assistant").first).to_be_visible()
        await page.screenshot(path=screenshot_path("traces"))
        await page.get_by_test_id("show-nudges").check()
        await expect(nudges.first).to_be_visible()

        # the file grows (a run still writing it): the new line shows up, a torn one waits
        extra = msgspec.structs.replace(records[0], trace_id="appended", problem_id="appended-problem")
        async with await anyio.open_file(out, "ab") as file:
            await file.write(json_encoder.encode(extra) + b"\n" + b'{"trace_id": "torn"')
        await expect(page.get_by_test_id("indexed")).to_have_text(str(len(records) + 1))
        await expect(rows).to_have_count(len(records) + 1)
        await expect(rows.last).to_contain_text("appended-problem")
        await expect(page.get_by_test_id("scan-note")).to_have_text(re.compile(rf"{len(records) + 1} shown"))
    assert not tab.errors and not tab.dialogs and not tab.csp_violations()


async def test_the_browser_shows_an_oversized_line_and_a_file_that_goes_and_comes_back(
        tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    out = tmp_path / "traces.jsonl"
    async with open_mock_server(MockConfig()) as server:
        await generate(problems="builtin:mixed:2", model=f"mock:reasoner@{server.url}/v1", out=str(out), max_turns=2)
    content = out.read_bytes()
    huge = b'{"trace_id": "huge", "text": "' + b"x" * 30_000 + b'"}\n'
    out.write_bytes(content + huge)
    rows = page.locator("[data-testid=results] tr")
    async with open_viewer(out, playground=False, max_line_bytes=10_000) as viewer:
        await page.goto(viewer.url)
        await expect(rows).to_have_count(3)
        await expect(rows.last).to_contain_text(f"oversized (a line of {len(huge):,} bytes)")
        await rows.last.click()
        await expect(page.locator("#detail-facts")).to_contain_text(f"{len(huge):,} bytes")

        out.unlink()  # the file goes: the page says so, and the list empties
        await expect(page.locator("#facet-summary")).to_contain_text("is not there")
        await expect(page.locator("#connection")).to_have_text("file unavailable")
        await expect(rows).to_have_count(0)

        out.write_bytes(content)  # and comes back
        await expect(rows).to_have_count(2)
        await expect(page.locator("#connection")).to_have_text("up to date")
    assert not tab.errors and not tab.dialogs and not tab.csp_violations()
