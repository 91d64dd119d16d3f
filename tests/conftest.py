from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from open_strawberry.mock import MockServer, open_mock_server


@pytest.fixture
async def mock_server() -> AsyncIterator[MockServer]:
    """A default mock server on a free loopback port."""
    async with open_mock_server() as server:
        yield server
