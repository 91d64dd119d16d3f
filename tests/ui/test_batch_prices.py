"""The monitor's cost prices the tokens of batched calls as the summary and ``stats`` do."""

from __future__ import annotations

import pytest

from open_strawberry.messages import Usage
from open_strawberry.ui import Monitor
from tests.traces.test_batch_cost import calls


def test_the_monitor_prices_batched_calls_at_the_batch_price() -> None:
    record = calls(Usage(input_tokens=1000, output_tokens=100).batched(), Usage(input_tokens=200, output_tokens=50))
    halved = Monitor(prices={"mock:m": (2.0, 8.0)})
    given = Monitor(prices={"mock:m": (2.0, 8.0)}, batch_prices={"mock:m": (0.0, 0.0)})
    for monitor in (halved, given):
        monitor.record(record)
        monitor.close()
    assert halved.cost() == pytest.approx((1000 * 1.0 + 100 * 4.0 + 200 * 2.0 + 50 * 8.0) / 1e6)
    assert given.cost() == pytest.approx((200 * 2.0 + 50 * 8.0) / 1e6)
