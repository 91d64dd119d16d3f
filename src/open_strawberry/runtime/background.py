"""Tasks that serve a block of code: started beside it, cancelled when it ends.

:func:`open_background_tasks` is the one place where "run the body, cancel the task group,
re-raise the body's error unwrapped" is written; the actor system, the UI server and the
playground each run their services with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc

__all__ = ["open_background_tasks"]


@asynccontextmanager
async def open_background_tasks() -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group whose tasks live as long as the block: when the block ends, however it
    ends, they are cancelled. An exception raised in the block comes out as it is, not
    wrapped in an exception group: it is re-raised once the group has closed. Cancellation
    is not caught; an error of a background task comes out as the task group raises it."""
    body_error: Exception | None = None
    async with anyio.create_task_group() as tg:
        try:
            yield tg
        except Exception as exc:
            body_error = exc
        finally:
            tg.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
