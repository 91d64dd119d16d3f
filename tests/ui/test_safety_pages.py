"""Model text is text on every page: a reply holding <script> and an <img onerror> payload is
shown as written and runs nothing; requests without the token are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_strawberry import Problem
from open_strawberry.mock import open_mock_server
from open_strawberry.pipeline import generate
from open_strawberry.ui import open_monitor, open_viewer
from tests.ui.support import PAYLOAD, Tab, read_records, write_problems

pytestmark = pytest.mark.ui
expect = pytest.importorskip("playwright.async_api").expect


async def nothing_ran(tab: Tab) -> None:
    assert await tab.page.evaluate("() => window.pw") is None
    assert tab.dialogs == []
    assert await tab.page.locator("main img, main script").count() == 0
    assert not tab.errors and not tab.csp_violations()


async def test_a_reply_with_html_is_shown_as_text_and_runs_nothing_on_any_page(tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    problems = write_problems(tmp_path / "problems.jsonl", [Problem(id=PAYLOAD, prompt=PAYLOAD, answer=PAYLOAD)])
    out = tmp_path / "traces.jsonl"
    async with open_mock_server() as server:
        model = f"mock:reasoner@{server.url}/v1"
        async with open_monitor(traces=out, tick_s=0.1) as monitor:
            await page.goto(monitor.url)
            await generate(problems=str(problems), model=model, out=str(out), max_turns=2, **monitor.generate_options())
            [record] = read_records(out)
            assert PAYLOAD in record.messages[2].content  # the model's reply holds the payload
            await expect(page.get_by_test_id("run-state")).to_have_text("finished")
            recent = page.locator("[data-testid=recent] tr").first
            await expect(recent).to_contain_text(PAYLOAD)  # the problem id, as text
            await recent.click()
            await expect(page.locator("#watch-turns pre").first).to_contain_text(PAYLOAD)
            await nothing_ran(tab)

        async with open_viewer(out, save_to=tmp_path / "saved.jsonl", default_model=model) as viewer:
            await page.goto(viewer.url)
            await page.locator("[data-testid=results] tr").first.click()
            conversation = page.get_by_test_id("conversation")
            await expect(conversation.locator(".msg.user pre").first).to_have_text(PAYLOAD)
            await expect(conversation.locator(".msg.assistant pre").first).to_contain_text(PAYLOAD)
            await expect(page.get_by_test_id("fact-ground-truth")).to_have_text(PAYLOAD)
            await nothing_ran(tab)

            await page.goto(viewer.page_url("playground"))
            await page.get_by_test_id("problem").select_option("")
            await page.get_by_test_id("prompt").fill(PAYLOAD)
            await page.get_by_test_id("answer").fill("1")
            await page.get_by_test_id("max-turns").fill("1")
            await page.get_by_test_id("start").click()
            await expect(page.get_by_test_id("status")).to_have_text("stopped")
            await expect(page.locator("#conversation .msg.user pre")).to_have_text(PAYLOAD)
            await expect(page.locator("#conversation .msg.assistant pre")).to_contain_text(PAYLOAD)
            await nothing_ran(tab)

            # what the page does with its token, a request without it may not
            refused = await page.request.post(f"{viewer.base_url}/api/playground/sessions",
                                              data={"model": model, "problem_id": "letters-0"})
            assert refused.status == 403
            refused = await page.request.get(f"{viewer.base_url}/api/traces")
            assert refused.status == 403
            assert (await page.request.get(viewer.base_url + "/traces")).status == 403
