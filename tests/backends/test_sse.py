"""The SSE decoder gives the same events however the bytes are split."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from open_strawberry.backends.sse import SSEDecoder

STREAM = (b": keep-alive\n\nevent: message_start\ndata: {\"a\": 1}\n\ndata: line one\r\ndata: line two\r\n\r\n"
          b"id: 7\nretry: 10\ndata:no-space\n\ndata: [DONE]\n\n")
EVENTS = [("message_start", b'{"a": 1}'), ("", b"line one\nline two"), ("", b"no-space"), ("", b"[DONE]")]


def test_events_comments_multiline_data_and_crlf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(STREAM) == EVENTS
    assert not decoder.pending


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_of_the_bytes_gives_the_same_events(cuts: list[int]) -> None:
    decoder = SSEDecoder()
    points = [0, *sorted(cuts), len(STREAM)]
    events = []
    for start, end in itertools.pairwise(points):
        events += decoder.feed(STREAM[start:end])
    assert events == EVENTS


def test_a_partial_event_is_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {\"half\": ") == []
    assert decoder.pending
    decoder = SSEDecoder()
    decoder.feed(b"data: whole\n")
    assert decoder.pending  # data without the blank line that ends the event


def test_events_split_at_their_own_boundaries_keep_names_and_lines() -> None:
    """Chunks that are each a whole line or a whole event (how servers stream token by token)."""
    cut = STREAM.index(b"data: {")  # "event: message_start\n" in a chunk of its own, its data in the next
    chunks = [STREAM[:cut], *[part + b"\n\n" for part in STREAM[cut:].split(b"\n\n") if part]]
    decoder = SSEDecoder()
    assert [event for chunk in chunks for event in decoder.feed(chunk)] == EVENTS
    assert not decoder.pending


def test_a_whole_event_chunk_ending_in_mixed_line_ends_loses_its_carriage_return() -> None:
    assert SSEDecoder().feed(b"data: x\r\n\n") == [("", b"x")]
    assert SSEDecoder().feed(b"data: x\n\n") == [("", b"x")]
