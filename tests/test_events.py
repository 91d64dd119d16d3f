"""The event stream reports each turn as it streams, and never slows the run down."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import anyio

from open_strawberry.events import Event, EventStream, TextDelta, TraceFinished, TurnFinished, TurnStarted
from open_strawberry.messages import record_decoder
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import GenerateConfig, generate


def config(url: str, out: Path) -> GenerateConfig:
    return GenerateConfig(problems="builtin:mixed:6", model=f"mock:reasoner@{url}/v1", out=str(out), samples=2,
                          max_traces=8)


async def test_a_subscriber_sees_every_turn_stream_and_every_trace_finish(tmp_path: Path) -> None:
    events = EventStream()
    seen: list[Event] = []
    out = tmp_path / "traces.jsonl"
    async with open_mock_server(MockConfig(tokens_per_chunk=3, confident_after=2)) as server:
        stream = events.subscribe(buffer=100_000)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: generate(config(server.url, out), events=events))
            async with stream:
                async for event in stream:  # ends when the run closes the event stream
                    seen.append(event)
    records = {r.trace_id: r for r in (record_decoder.decode(line) for line in out.read_bytes().splitlines())}
    finished = [e for e in seen if isinstance(e, TraceFinished)]
    assert sorted(e.trace_id for e in finished) == sorted(records)
    deltas: dict[tuple[str, int], str] = defaultdict(str)
    for event in seen:
        if isinstance(event, TextDelta):
            deltas[(event.trace_id, event.turn)] += event.text
    for trace_id, record in records.items():
        replies = [m.content for m in record.messages if m.role == "assistant"]
        assert [deltas[(trace_id, turn)] for turn in range(1, len(replies) + 1)] == replies
        started = [e for e in seen if isinstance(e, TurnStarted) and e.trace_id == trace_id]
        ended = [e for e in seen if isinstance(e, TurnFinished) and e.trace_id == trace_id]
        assert [e.kind for e in started] == [t.kind for t in record.turns]
        assert [e.usage for e in ended] == [t.usage for t in record.turns]
    assert events.dropped == 0


async def test_a_subscriber_that_never_reads_does_not_block_the_run(tmp_path: Path) -> None:
    events = EventStream()
    stuck = events.subscribe(buffer=1)
    async with open_mock_server() as server:
        with anyio.fail_after(30):
            summary = await generate(config(server.url, tmp_path / "t.jsonl"), events=events)
    stuck.close()
    assert summary.written == 12
    assert events.dropped > 0


def test_a_listener_is_called_as_each_event_is_published_until_it_stops() -> None:
    events = EventStream()
    assert not events.has_subscribers  # the Generator streams deltas only when someone listens
    seen: list[Event] = []
    closed: list[bool] = []
    unlisten = events.listen(seen.append, lambda: closed.append(True))
    assert events.has_subscribers
    first = TurnStarted(trace_id="t", turn=1, kind="first")
    events.publish(first)
    assert seen == [first]  # at once, in the publisher's call
    unlisten()
    events.publish(TextDelta(trace_id="t", turn=1, text="x"))
    assert seen == [first] and not events.has_subscribers
    again: list[Event] = []
    events.listen(again.append, lambda: closed.append(True))
    events.close()
    assert closed == [True] and not events.has_subscribers  # only the listener still listening is told


async def test_a_listener_and_a_subscriber_see_the_same_events_in_order() -> None:
    events = EventStream()
    heard: list[Event] = []
    events.listen(heard.append)
    stream = events.subscribe(buffer=8)
    sent = [TurnStarted(trace_id="t", turn=1, kind="first"), TextDelta(trace_id="t", turn=1, text="a")]
    for event in sent:
        events.publish(event)
    events.close()
    with anyio.fail_after(5):
        async with stream:
            received = [event async for event in stream]
    assert heard == received == sent
    late = events.subscribe()  # the run is over: a late subscription ends at once
    with anyio.fail_after(5), late:
        assert [event async for event in late] == []
