from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from tests.ui.support import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, WAIT_MS, Tab


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's package), driven by Playwright; skipped when either is missing."""
    api = pytest.importorskip("playwright.async_api", reason="pip install -e '.[ui]' (make test-ui)")
    if not await anyio.Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium (make test-ui)")
    async with api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def tab(browser: Any) -> AsyncIterator[Tab]:
    """A 1200x800 page that records dialogs (and dismisses them), uncaught errors and console errors."""
    api = pytest.importorskip("playwright.async_api")
    api.expect.set_options(timeout=WAIT_MS)
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    found = Tab(page)

    async def on_dialog(dialog: Any) -> None:
        found.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: found.errors.append(str(error)))
    page.on("console", lambda message: found.console.append(message.text) if message.type == "error" else None)
    try:
        yield found
    finally:
        await context.close()
