"""Messages are frozen, tagged where they travel, and round-trip through JSON."""

from __future__ import annotations

import msgspec
import pytest

from open_strawberry import (
    ChatMessage,
    Completion,
    Generated,
    Message,
    NewTrace,
    Problem,
    TraceRecord,
    TraceState,
    TurnRecord,
    Usage,
)
from open_strawberry.messages import json_encoder, record_decoder


def state() -> TraceState:
    return TraceState(trace_id="t1", problem=Problem(id="p1", prompt="2+2?", answer="4"), model="mock:x")


def test_messages_are_immutable() -> None:
    message = NewTrace(state=state())
    with pytest.raises(AttributeError):
        message.state = state()  # type: ignore[misc]


def test_the_union_decodes_each_message_by_its_tag() -> None:
    s = state().with_message(ChatMessage(role="user", content="2+2?"))
    original = Generated(state=s, completion=Completion(text="4", usage=Usage(input_tokens=3, output_tokens=1)))
    wire = json_encoder.encode(original)
    assert msgspec.json.decode(wire)["type"] == "Generated"
    assert msgspec.json.decode(wire, type=Message) == original


def test_with_turn_appends_the_reply_and_adds_its_usage() -> None:
    s = state()
    turn = TurnRecord(kind="first", usage=Usage(input_tokens=10, output_tokens=5, estimated=True))
    s2 = s.with_turn(ChatMessage(role="assistant", content="hi"), turn).with_turn(
        ChatMessage(role="assistant", content="again"), TurnRecord(kind="nudge", usage=Usage(input_tokens=20)))
    assert [m.content for m in s2.messages] == ["hi", "again"]
    assert s2.usage == Usage(input_tokens=30, output_tokens=5, estimated=True)
    assert s.messages == ()  # the original is untouched


def test_a_failed_record_keeps_the_error_type_and_message() -> None:
    record = TraceRecord.failed(state(), TimeoutError("read timed out"), actor="generator")
    assert record.status == "error"
    assert record.error is not None
    assert (record.error.type, record.error.message, record.error.actor) == ("TimeoutError", "read timed out",
                                                                              "generator")
    assert record.ground_truth == "4"
    assert record_decoder.decode(json_encoder.encode(record)) == record


def test_trace_records_hold_plain_chat_messages() -> None:
    s = state().with_message(ChatMessage(role="user", content="2+2?"))
    record = TraceRecord.from_state(s, status="final", final_answer="4", correct=True)
    line = msgspec.json.decode(json_encoder.encode(record))
    assert line["messages"] == [{"role": "user", "content": "2+2?"}]
    assert line["problem_id"] == "p1"
    assert line["finished_at"] >= line["started_at"]


# a record as the version before thinking was kept wrote it (517f9d1), byte for byte
_BEFORE_THINKING = (
    b'{"type":"TraceRecord","trace_id":"t1","problem_id":"p1","sample":0,"model":"mock:x","strategy":"",'
    b'"system_prompt_variant":null,"status":"final","messages":[{"role":"user","content":"2+2?"},'
    b'{"role":"assistant","content":"<final_answer>4</final_answer>"}],"final_answer":"4","ground_truth":"4",'
    b'"correct":true,"turns":[{"kind":"first","usage":{"input_tokens":5,"output_tokens":3,"cache_read_tokens":0,'
    b'"cache_write_tokens":0,"estimated":false},"timings":{"queued_s":0.0,"limiter_wait_s":0.0,"ttft_s":0.25,'
    b'"chunk_gaps_s":[0.5],"e2e_s":1.0,"attempts":1,"failed_attempts":[]},"finish_reason":null,'
    b'"verifier_score":null}],"usage":{"input_tokens":5,"output_tokens":3,"cache_read_tokens":0,'
    b'"cache_write_tokens":0,"estimated":false},"error":null,"started_at":1.5,"finished_at":2.5,"stop_reason":"",'
    b'"grader":null,"grade_detail":""}'
)


def test_a_record_without_thinking_is_written_byte_for_byte_as_before() -> None:
    from open_strawberry.messages import Timings

    s = state().with_message(ChatMessage(role="user", content="2+2?"))
    s = msgspec.structs.replace(s, started_at=1.5)
    completion = Completion(text="<final_answer>4</final_answer>", usage=Usage(input_tokens=5, output_tokens=3),
                            timings=Timings(ttft_s=0.25, chunk_gaps_s=(0.5,), e2e_s=1.0))
    s = s.with_turn(completion.message(), TurnRecord(kind="first", usage=completion.usage, timings=completion.timings))
    record = msgspec.structs.replace(TraceRecord.from_state(s, status="final", final_answer="4", correct=True),
                                     finished_at=2.5)
    assert json_encoder.encode(record) == _BEFORE_THINKING
    assert json_encoder.encode(record_decoder.decode(_BEFORE_THINKING)) == _BEFORE_THINKING


def test_thinking_tokens_add_up_and_stay_unset_without_thinking() -> None:
    plain = Usage(output_tokens=3)
    assert (plain + plain).reasoning_tokens is msgspec.UNSET
    assert (plain + Usage(output_tokens=5, reasoning_tokens=4)).reasoning_tokens == 4
    assert (Usage(reasoning_tokens=1) + Usage(reasoning_tokens=2)).reasoning_tokens == 3
