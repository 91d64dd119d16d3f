"""The Mailbox on its own: built from a Wiring, with no system around it."""

from __future__ import annotations

import ast
import inspect
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
import structlog

from open_strawberry import Actor, Generated, GenerateRequest, Mailbox, Message, TraceRecord
from open_strawberry.runtime import actor as actor_module
from open_strawberry.runtime.actor import Send, Wiring
from open_strawberry.runtime.statistics import ActorCounters
from tests.helpers import Echo, MemorySink, new_traces


def requests(count: int) -> list[GenerateRequest]:
    return [GenerateRequest(state=t.state) for t in new_traces(count)]


class Wired:
    """A mailbox over a closed inbox holding ``messages``; sends are recorded, not delivered."""

    def __init__(self, actor: Actor, messages: list[Any], *, is_sink: bool = False) -> None:
        self.sent: list[tuple[str, Message]] = []  # (receiving actor, message)
        self.finished: list[TraceRecord] = []
        self.counters = ActorCounters()
        send, self.inbox = anyio.create_memory_object_stream[tuple[float, Any]](len(messages))
        with send:
            for message in messages:
                self.counters.enqueued()
                send.send_nowait((time.perf_counter(), message))
        self.mailbox = Mailbox(self.inbox, Wiring(
            name="sink" if is_sink else "generator",
            actor=actor,
            counters=self.counters,
            routes={kind: self._send_to("looper") for kind in actor.outputs},
            to_sink=None if is_sink else self._send_to("sink"),
            trace_finished=self.finished.append,
        ))

    def _send_to(self, name: str) -> Send:
        async def send(message: Message) -> None:
            self.sent.append((name, message))
        return send


@contextmanager
def bound_actor() -> Iterator[None]:
    """Bind ``actor=`` as the runtime does for a worker, and take it away afterwards."""
    tokens = structlog.contextvars.bind_contextvars(actor="generator")
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


async def test_a_mailbox_routes_each_result_by_its_type_and_counts_it() -> None:
    echo = Echo()
    wired = Wired(echo, requests(2))
    with wired.inbox, anyio.fail_after(5):
        await echo.run(wired.mailbox)
    assert [(to, type(m), m.trace_id) for to, m in wired.sent] == [("looper", Generated, "t0"),
                                                                      ("looper", Generated, "t1")]
    assert (wired.counters.handled, wired.counters.failed, wired.counters.in_flight) == (2, 0, 0)
    assert (wired.counters.depth, wired.counters.wait_count) == (0, 2)
    assert wired.mailbox.held == {}


async def test_a_handler_error_sends_a_failed_record_to_the_sink() -> None:
    def explode(_message: GenerateRequest) -> None:
        raise ValueError("bad turn")

    echo = Echo(explode)
    wired = Wired(echo, requests(1))
    with wired.inbox, anyio.fail_after(5):
        await echo.run(wired.mailbox)
    [(to, record)] = wired.sent
    assert to == "sink"
    assert isinstance(record, TraceRecord) and record.error is not None
    assert (record.status, record.error.actor, record.error.message) == ("error", "generator", "bad turn")
    assert (wired.counters.handled, wired.counters.failed, wired.counters.in_flight) == (0, 1, 0)


async def test_returning_none_outside_the_sink_fails_the_trace() -> None:
    class Quitter(Echo):
        async def handle(self, message: GenerateRequest) -> None:  # type: ignore[override]
            return None

    quitter = Quitter()
    wired = Wired(quitter, requests(1))
    with wired.inbox, anyio.fail_after(5):
        await quitter.run(wired.mailbox)
    [(to, record)] = wired.sent
    assert to == "sink"
    assert isinstance(record, TraceRecord) and record.error is not None
    assert record.error.message == "Quitter.handle returned None; only the sink may end a trace"
    assert wired.finished == []


async def test_the_sink_reports_each_finished_trace_and_sends_nothing() -> None:
    records = [TraceRecord.from_state(t.state, status="final") for t in new_traces(3)]
    sink = MemorySink()
    wired = Wired(sink, records, is_sink=True)
    with wired.inbox, anyio.fail_after(5):
        await sink.run(wired.mailbox)
    assert wired.finished == records == sink.records
    assert wired.sent == []
    assert (wired.counters.handled, wired.counters.in_flight) == (3, 0)


async def test_a_sink_error_is_raised_and_recovery_keeps_the_record_for_redelivery() -> None:
    record = TraceRecord.from_state(new_traces(1)[0].state, status="final")
    wired = Wired(MemorySink(), [record], is_sink=True)
    with wired.inbox, anyio.fail_after(5):
        message = await wired.mailbox.__anext__()
        with pytest.raises(OSError, match="disk"):
            await wired.mailbox.fail(message, OSError("disk hiccup"))
        await wired.mailbox.recover(OSError("disk hiccup"))
        assert wired.mailbox.held == {}
        assert [m async for m in wired.mailbox] == [record]  # handed out again, then the inbox ends
    assert wired.sent == []


class ContextProbe(Echo):
    """Records the structlog context while each message is held and after it was passed on."""

    def __init__(self) -> None:
        super().__init__(self._fail_odd)
        self.holding: list[dict[str, Any]] = []
        self.between: list[dict[str, Any]] = []

    @staticmethod
    def _fail_odd(message: GenerateRequest) -> None:
        if int(message.state.trace_id[1:]) % 2:
            raise ValueError("odd")

    async def run(self, mailbox: Mailbox) -> None:
        async for message in mailbox:
            self.holding.append(structlog.contextvars.get_contextvars())
            try:
                result = await self.handle(message)
            except Exception as exc:
                await mailbox.fail(message, exc)
            else:
                await mailbox.forward(message, result)
            self.between.append(structlog.contextvars.get_contextvars())


async def test_the_trace_id_is_bound_while_a_message_is_held_and_reset_once_it_is_passed_on() -> None:
    probe = ContextProbe()
    wired = Wired(probe, requests(4))
    with bound_actor(), wired.inbox, anyio.fail_after(5):
        await probe.run(wired.mailbox)
        assert structlog.contextvars.get_contextvars() == {"actor": "generator"}
    assert probe.holding == [{"actor": "generator", "trace_id": f"t{i}"} for i in range(4)]
    assert probe.between == [{"actor": "generator"}] * 4  # forwarded (even) and failed (odd) alike
    assert [to for to, _ in wired.sent] == ["looper", "sink", "looper", "sink"]


async def test_the_trace_id_is_reset_once_a_batch_is_passed_on() -> None:
    wired = Wired(Echo(), requests(3))
    mailbox = wired.mailbox
    with bound_actor(), wired.inbox, anyio.fail_after(5):
        batch = [await mailbox.__anext__() for _ in range(3)]
        for message in batch:
            assert structlog.contextvars.get_contextvars()["trace_id"] == "t2"  # the latest received
            await mailbox.forward(message, await Echo().handle(message))
        assert structlog.contextvars.get_contextvars() == {"actor": "generator"}


async def test_the_trace_id_is_reset_when_recovery_fails_what_a_crashed_loop_held() -> None:
    wired = Wired(Echo(), requests(2))
    mailbox = wired.mailbox
    with bound_actor(), wired.inbox, anyio.fail_after(5):
        await mailbox.__anext__()
        await mailbox.__anext__()
        await mailbox.recover(RuntimeError("loop broke"))
        assert structlog.contextvars.get_contextvars() == {"actor": "generator"}
    assert [(to, m.trace_id) for to, m in wired.sent] == [("sink", "t0"), ("sink", "t1")]
    assert wired.counters.failed == 2


def test_the_actor_module_does_not_depend_on_the_system() -> None:
    tree = ast.parse(inspect.getsource(actor_module))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "open_strawberry.runtime.system" not in imported
