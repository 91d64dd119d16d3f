"""The JSONL sink writes whole lines, appends, and survives a cancellation between records."""

from __future__ import annotations

from pathlib import Path

import anyio

from open_strawberry import ActorSpec, JsonlSink, open_actor_system
from open_strawberry.messages import record_decoder
from tests.helpers import Echo, loop_specs, new_traces


def read(path: Path) -> list[str]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "the file must end with a complete line"
    return [record_decoder.decode(line).trace_id for line in data.splitlines()]


async def test_the_sink_writes_one_line_per_trace_and_appends(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "traces.jsonl"
    for prefix in ("a", "b"):
        specs = loop_specs(turns=2)
        specs[-1] = ActorSpec("sink", JsonlSink(out))
        async with open_actor_system(specs, max_traces=8) as system:
            await system.feed(new_traces(30, prefix=prefix))
    assert sorted(read(out)) == sorted([f"a{i}" for i in range(30)] + [f"b{i}" for i in range(30)])


async def test_cancelling_mid_run_leaves_only_complete_lines(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    scope = anyio.CancelScope()

    def cancel_after_a_while(_message: object) -> None:
        if system.statistics().finished >= 100:
            scope.cancel()

    specs = loop_specs(turns=3, generator=Echo(cancel_after_a_while), workers=2)
    specs[-1] = ActorSpec("sink", JsonlSink(out))
    with scope:
        async with open_actor_system(specs, max_traces=16) as system:
            await system.feed(new_traces(2000))
    assert scope.cancelled_caught
    written = read(out)
    assert 100 <= len(written) < 2000
    assert len(set(written)) == len(written)
