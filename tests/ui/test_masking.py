"""Keys a server echoed into a reply reach no page: what the UI sends is masked at its two edges
(JSON answers and server-sent events), as the records are, and a reply that streams is shown
without any part of a key, even one streamed a character at a time."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import msgspec

from open_strawberry.events import EventStream, ReasoningDelta, TextDelta, TurnStarted
from open_strawberry.messages import Problem
from open_strawberry.prompting import create_strategy
from open_strawberry.redact import register_secret
from open_strawberry.ui import Monitor
from open_strawberry.ui.server import _json
from open_strawberry.ui.session import PlaygroundSettings, Session
from open_strawberry.ui.sse import sse_message

KEY = "sk-ui-echo-0123456789abcdefXYZ"


def test_an_echoed_key_is_masked_in_events_and_json_answers() -> None:
    register_secret(KEY)
    event = sse_message("turn_end", {"text": f"your key is {KEY}", "reasoning": KEY})
    answer = _json({"messages": [{"role": "assistant", "content": f"echo: {KEY}"}]})
    assert KEY.encode() not in event and b"your key is" in event
    assert answer.body is not None and KEY.encode() not in answer.body and b"echo: " in answer.body


def _read_all(channel: Any) -> bytes:
    """Everything queued on a page's channel now."""
    sent = b""
    while True:
        try:
            sent += channel.receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            return sent


def _stream_the_key(events: EventStream, trace_id: str) -> None:
    events.publish(TurnStarted(trace_id=trace_id, turn=1, kind="first"))
    for char in KEY:
        events.publish(ReasoningDelta(trace_id=trace_id, turn=1, text=char))
    for char in f"the key: {KEY} (echoed)":
        events.publish(TextDelta(trace_id=trace_id, turn=1, text=char))


def _shows_no_part_of_the_key(sent: bytes) -> None:
    lines = sent.splitlines()
    deltas = [msgspec.json.decode(data[6:])["text"] for event, data in itertools.pairwise(lines)
              if event in (b"event: delta", b"event: thinking")]
    so_far = "".join(deltas)
    assert not any(KEY[:n] in so_far for n in range(4, len(KEY) + 1)), so_far  # "sk-u" and longer: none
    assert KEY[:4].encode() not in sent


def test_a_key_streamed_one_character_per_delta_is_masked_live_in_the_monitor() -> None:
    register_secret(KEY)
    monitor = Monitor()
    monitor.events.publish(TurnStarted(trace_id="t", turn=1, kind="first"))
    found = monitor.watch("t")
    assert found is not None
    _, channel = found
    _stream_the_key(monitor.events, "t")
    sent = _read_all(channel) + sse_message("trace", monitor._traces["t"].describe())  # the text so far, too
    _shows_no_part_of_the_key(sent)
    assert b"the key: *** (echoed)" in sent
    channel.close_reader()
    monitor.close()


def test_a_key_streamed_one_character_per_delta_is_masked_live_in_the_playground() -> None:
    register_secret(KEY)
    session = Session(PlaygroundSettings(model="mock:reasoner", prompt="q", answer="1"),
                      Problem(id="p", prompt="q", answer="1"), create_strategy("nudge"))
    channel = session.watch()
    _stream_the_key(session.events, session.state.trace_id)
    sent = _read_all(channel) + sse_message("session", session.describe())  # what a page opened now gets
    _shows_no_part_of_the_key(sent)
    assert b"the key: *** (echoed)" in sent
    channel.close_reader()
    session.pages.close()
    session.events.close()


def test_a_retried_turn_does_not_start_with_what_the_failed_attempt_held_back() -> None:
    from open_strawberry.ui.live import LiveTrace

    register_secret(KEY)
    trace = LiveTrace("t", now=0.0, limit=10_000)
    trace.start(1, "first")
    assert trace.add_text("cut off at " + KEY[:6]) == "cut off at "  # could be the key: held back
    trace.start(1, "first")  # the attempt failed; the retry streams anew
    assert trace.add_text("a fresh reply") == "a fresh reply"
