"""Services beside a block: cancelled when it ends, its error raised as it is."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from open_strawberry.runtime.background import open_background_tasks


async def test_the_blocks_error_comes_out_unwrapped_and_the_services_are_cancelled() -> None:
    cancelled = anyio.Event()

    async def service(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            task_status.started()
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(5), pytest.raises(KeyError, match="the body's"):
        async with open_background_tasks() as tg:
            await tg.start(service)
            raise KeyError("the body's")
    assert cancelled.is_set()


async def test_leaving_the_block_cancels_the_services() -> None:
    with anyio.fail_after(5):
        async with open_background_tasks() as tg:
            tg.start_soon(anyio.sleep_forever)
