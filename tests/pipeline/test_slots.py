"""A server that states its slots gets one trace in flight per slot (each turn comes back to
the slot that holds its conversation); a budget given by hand, or a server that states none,
leaves ``max_traces`` as it is."""

from __future__ import annotations

import pytest

from open_strawberry.backends.capacity import ServerCapacity
from open_strawberry.pipeline import GenerateConfig
from open_strawberry.pipeline.run import _traces_for_slots

STATED = ServerCapacity(4, "llama.cpp", "/props total_slots")


@pytest.mark.parametrize(
    ("capacity", "max_traces", "expected"),
    [
        (STATED, 256, 4),  # the default: one trace a slot
        (STATED, 2, 2),  # fewer traces asked for than slots: as asked
        (ServerCapacity(1, "llama-cpp-python", "serves one request at a time"), 256, 1),
        (ServerCapacity(None, "vLLM", "no slot count; adaptive concurrency"), 256, 256),  # nothing stated
        (None, 256, 256),  # a budget given by hand skips the probe: as before
    ],
)
def test_traces_in_flight_follow_the_slots_the_server_states(capacity: ServerCapacity | None, max_traces: int,
                                                             expected: int) -> None:
    config = GenerateConfig(problems="builtin:arithmetic:8", max_traces=max_traces)
    assert _traces_for_slots(config, capacity).max_traces == expected
