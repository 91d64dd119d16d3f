"""Behaviour of the actor system: backpressure, shutdown, supervision, admission, cancellation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from open_strawberry import (
    Actor,
    ActorCrashedError,
    ActorSpec,
    AdmissionClosedError,
    Generated,
    GenerateRequest,
    InterruptedRunError,
    JsonlSink,
    Mailbox,
    NewTrace,
    RestartPolicy,
    TraceRecord,
    open_actor_system,
)
from open_strawberry.messages import record_decoder
from tests.helpers import Echo, MemorySink, Prompter, ids, loop_specs, new_traces, wait_until

FAST_RESTARTS = RestartPolicy(max_restarts=3, initial_backoff_s=0.001, max_backoff_s=0.002)


class Gate:
    """A hook for Echo that parks every call until ``open()``; counts parked calls."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.parked = 0

    async def __call__(self, message: GenerateRequest) -> None:
        self.parked += 1
        await self.event.wait()

    def open(self) -> None:
        self.event.set()


class PassThrough(Actor):
    inputs = (NewTrace,)
    outputs = (GenerateRequest,)

    async def handle(self, message: NewTrace) -> GenerateRequest:
        return GenerateRequest(state=message.state)


class Record(Actor):
    inputs = (Generated,)
    outputs = (TraceRecord,)

    async def handle(self, message: Generated) -> TraceRecord:
        return TraceRecord.from_state(message.state, status="final")


def line_specs(generator: Actor, sink: MemorySink, *, generator_buffer: int) -> list[ActorSpec]:
    """An acyclic graph: entry -> generator -> record -> sink."""
    return [
        ActorSpec("entry", PassThrough()),
        ActorSpec("generator", generator, buffer=generator_buffer),
        ActorSpec("record", Record()),
        ActorSpec("sink", sink),
    ]


async def test_full_inbox_blocks_the_sender_until_it_is_drained() -> None:
    gate, sink = Gate(), MemorySink()
    async with open_actor_system(line_specs(Echo(gate), sink, generator_buffer=1), max_traces=10) as system:
        with anyio.fail_after(5):
            await system.feed(new_traces(4))
            # one call parked in the generator, one message in its 1-slot inbox, and the
            # entry worker blocked sending the third: the fourth waits in the entry's inbox
            await wait_until(lambda: gate.parked == 1 and system.statistics().actor("generator").inbox_depth == 2)
            entry = system.statistics().actor("entry")
            assert entry.in_flight == 1  # holding the message it cannot send
            assert entry.handled == 2  # the first went to the parked call, the second into the slot
            assert entry.inbox_depth == 1
            assert sink.records == []
            gate.open()
    stats = system.statistics()
    assert ids(sink.records) == sorted(f"t{i}" for i in range(4))
    assert stats.actor("generator").peak_depth == 2
    assert stats.actor("entry").handled == 4


async def test_shutdown_by_closing_delivers_every_accepted_trace_exactly_once() -> None:
    sink = MemorySink()
    async with open_actor_system(loop_specs(turns=4, sink=sink, workers=3), max_traces=16) as system:
        admitted = await system.feed(new_traces(500))
    assert admitted == 500
    assert Counter(r.trace_id for r in sink.records) == Counter(f"t{i}" for i in range(500))
    assert {len(r.turns) for r in sink.records} == {4}
    stats = system.statistics()
    assert (stats.admitted, stats.finished, stats.in_flight) == (500, 500, 0)
    assert stats.peak_in_flight == 16
    assert stats.actor("generator").handled == 2000
    assert sink.torn_down


async def test_admission_waits_for_a_finished_trace_before_admitting_more() -> None:
    gate, sink = Gate(), MemorySink()
    async with open_actor_system(loop_specs(turns=1, generator=Echo(gate), sink=sink, workers=8),
                                 max_traces=5) as system, anyio.create_task_group() as tg:
        tg.start_soon(system.feed, new_traces(12))
        await wait_until(lambda: gate.parked == 5)
        assert system.statistics().admitted == 5  # the source is blocked on admission
        gate.open()
    assert len(sink.records) == 12
    assert system.statistics().peak_in_flight == 5


async def test_handler_exception_fails_that_trace_and_the_run_goes_on() -> None:
    def explode(message: GenerateRequest) -> None:
        if message.state.trace_id in {"t3", "t7"} and len(message.state.turns) == 1:
            raise ValueError(f"boom on {message.state.trace_id}")

    sink = MemorySink()
    async with open_actor_system(loop_specs(turns=3, generator=Echo(explode), sink=sink), max_traces=4) as system:
        await system.feed(new_traces(10))
    by_id = {r.trace_id: r for r in sink.records}
    assert len(by_id) == 10
    failed = {tid for tid, r in by_id.items() if r.status == "error"}
    assert failed == {"t3", "t7"}
    error = by_id["t3"].error
    assert error is not None
    assert (error.type, error.message, error.actor) == ("ValueError", "boom on t3", "generator")
    assert len(by_id["t3"].turns) == 1  # the state as it was when the handler failed
    assert all(len(r.turns) == 3 for tid, r in by_id.items() if tid not in failed)
    assert system.statistics().actor("generator").failed == 2
    assert system.statistics().failed == 2


class CrashingLoop(Echo):
    """A generator whose own loop dies after receiving a message, the first ``crashes`` times."""

    def __init__(self, crashes: int) -> None:
        super().__init__()
        self.crashes = crashes
        self.starts = 0

    async def run(self, mailbox: Mailbox) -> None:
        self.starts += 1
        if self.starts <= self.crashes:
            async for _message in mailbox:
                raise RuntimeError(f"loop broke (start {self.starts})")
        await super().run(mailbox)


async def test_a_crashed_actor_loop_is_restarted_and_its_held_message_is_not_lost() -> None:
    generator, sink = CrashingLoop(crashes=2), MemorySink()
    async with open_actor_system(loop_specs(turns=2, generator=generator, sink=sink), max_traces=8,
                                 restart=FAST_RESTARTS) as system:
        await system.feed(new_traces(20))
    assert ids(sink.records) == sorted(f"t{i}" for i in range(20))
    failed = [r for r in sink.records if r.status == "error"]
    assert len(failed) == 2  # the message each crashed loop held
    assert {r.error.message for r in failed if r.error} == {"loop broke (start 1)", "loop broke (start 2)"}
    assert system.statistics().actor("generator").restarts == 2
    assert generator.starts == 3


async def test_the_restart_limit_stops_the_system_with_a_clear_error_and_keeps_written_records(tmp_path: Any) -> None:
    out = tmp_path / "traces.jsonl"
    specs = loop_specs(turns=2, generator=CrashingLoop(crashes=1_000))
    specs[-1] = ActorSpec("sink", JsonlSink(out))
    with anyio.fail_after(10), pytest.raises(ActorCrashedError, match=r"'generator' crashed 4 times") as info:
        async with open_actor_system(specs, max_traces=4, restart=FAST_RESTARTS) as system:
            await system.feed(new_traces(50))
    assert info.value.actor == "generator"
    assert isinstance(info.value.__cause__, RuntimeError)
    records = [record_decoder.decode(line) for line in out.read_bytes().splitlines()]
    assert len(records) == 4  # one failed record per crash: nothing it held was lost
    assert all(r.status == "error" for r in records)
    assert system.input_closed
    assert system.statistics().admitted < 50


class FlakySinkWrite(MemorySink):
    """A sink whose loop dies on the first record; the record must be written after the restart."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = True

    async def run(self, mailbox: Mailbox) -> None:
        async for message in mailbox:
            if self.fail_next:
                self.fail_next = False
                raise OSError("disk hiccup")
            await mailbox.forward(message, await self.handle(message))


async def test_a_sink_crash_redelivers_the_record_it_held() -> None:
    sink = FlakySinkWrite()
    async with open_actor_system(loop_specs(turns=1, sink=sink), max_traces=4, restart=FAST_RESTARTS) as system:
        await system.feed(new_traces(6))
    assert ids(sink.records) == sorted(f"t{i}" for i in range(6))
    assert all(r.status == "final" for r in sink.records)
    assert system.statistics().actor("sink").restarts == 1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    max_traces=st.integers(min_value=1, max_value=48),
    workers=st.integers(min_value=1, max_value=4),
    turns=st.integers(min_value=1, max_value=4),
    traces=st.integers(min_value=1000, max_value=3000),
)
def test_a_cyclic_graph_with_buffers_equal_to_max_traces_always_finishes(
    max_traces: int, workers: int, turns: int, traces: int
) -> None:
    async def main() -> None:
        sink = MemorySink()
        specs = loop_specs(turns=turns, sink=sink, workers=workers, buffer=max_traces)
        with anyio.fail_after(60):
            async with open_actor_system(specs, max_traces=max_traces) as system:
                await system.feed(new_traces(traces))
        assert len(sink.records) == traces
        assert len({r.trace_id for r in sink.records}) == traces
        assert system.statistics().peak_in_flight <= max_traces

    anyio.run(main)


async def test_cancellation_is_not_swallowed() -> None:
    gate, sink = Gate(), MemorySink()
    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async with open_actor_system(loop_specs(turns=1, generator=Echo(gate), sink=sink, workers=4),
                                         max_traces=4) as system:
                await system.feed(new_traces(3))
                await wait_until(lambda: gate.parked == 3)
                scope.cancel()
                await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert sink.records == []  # cancellation is not a failure to record
    assert sink.torn_down
    assert system.statistics().failed == 0


async def test_submit_after_close_is_refused() -> None:
    async with open_actor_system(loop_specs(), max_traces=2) as system:
        system.close_input()
        with pytest.raises(AdmissionClosedError):
            await system.submit(new_traces(1)[0])


async def test_first_interrupt_drains_in_flight_traces_and_stops_admission() -> None:
    gate, sink = Gate(), MemorySink()
    async with open_actor_system(loop_specs(turns=2, generator=Echo(gate), sink=sink, workers=4),
                                 max_traces=4) as system, anyio.create_task_group() as tg:
        tg.start_soon(system.feed, new_traces(100))
        await wait_until(lambda: gate.parked == 4)
        system.interrupt()
        gate.open()
    assert len(sink.records) == 4
    assert all(r.status == "final" and len(r.turns) == 2 for r in sink.records)
    assert system.statistics().interrupts == 1


async def test_a_trace_whose_call_was_withdrawn_leaves_unwritten_and_frees_its_slot() -> None:
    from open_strawberry.errors import CallWithdrawnError

    def withdraw_odd_traces(message: GenerateRequest) -> None:
        if int(message.state.problem.id.removeprefix("p")) % 2:
            raise CallWithdrawnError("never sent")

    sink = MemorySink()
    with anyio.fail_after(5):
        async with open_actor_system(loop_specs(turns=1, generator=Echo(withdraw_odd_traces), sink=sink),
                                     max_traces=2) as system:
            await system.feed(new_traces(6))  # more than max_traces: a withdrawn trace must free its slot
    assert sorted(r.problem_id for r in sink.records) == ["p0", "p2", "p4"]
    assert all(r.status == "final" for r in sink.records)  # no failed record for a call never sent
    stats = system.statistics()
    assert (stats.finished, stats.withdrawn, stats.in_flight, stats.failed) == (3, 3, 0, 0)


async def test_wait_interrupted_returns_at_the_first_interrupt() -> None:
    async with open_actor_system(loop_specs(), max_traces=2) as system, anyio.create_task_group() as tg:
        told = anyio.Event()

        async def watch() -> None:
            await system.wait_interrupted()
            told.set()

        tg.start_soon(watch)
        await anyio.wait_all_tasks_blocked()
        assert not told.is_set()
        system.interrupt()
        with anyio.fail_after(5):
            await told.wait()


async def test_second_interrupt_cancels_and_says_so() -> None:
    gate, sink = Gate(), MemorySink()
    with anyio.fail_after(5), pytest.raises(InterruptedRunError, match="2 trace"):
        async with open_actor_system(loop_specs(turns=1, generator=Echo(gate), sink=sink, workers=2),
                                     max_traces=2) as system:
            await system.feed(new_traces(2))
            await wait_until(lambda: gate.parked == 2)
            system.interrupt()
            system.interrupt()
            await anyio.sleep_forever()
    assert sink.records == []


async def test_queue_waits_are_recorded_per_actor() -> None:
    gate, sink = Gate(), MemorySink()
    async with open_actor_system(loop_specs(turns=1, generator=Echo(gate), sink=sink), max_traces=8) as system:
        await system.feed(new_traces(8))
        await wait_until(lambda: gate.parked == 1)
        gate.open()
    waits = system.statistics().actor("generator").queue_wait
    assert waits.count == 8
    assert 0 < waits.mean_s <= waits.max_s
    assert waits.p50_s <= waits.p99_s <= waits.max_s


class Ticker:
    """A task that counts its turns on the event loop, to see who lets it run."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            self.ticks += 1
            await anyio.lowlevel.checkpoint()


async def test_a_busy_actor_yields_to_the_event_loop_for_every_message() -> None:
    """Handlers that never await still let other tasks run between any two messages."""
    ticker = Ticker()
    seen: list[int] = []  # the ticker's count at each generator call
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker.run)
        async with open_actor_system(loop_specs(turns=40, generator=Echo(lambda _: seen.append(ticker.ticks))),
                                     max_traces=16) as system:
            await system.feed(new_traces(16))
        tg.cancel_scope.cancel()
    assert len(seen) == 16 * 40
    # one yield per message: the ticker runs at least once between every other call
    assert max(Counter(seen).values()) <= 2


async def test_admission_yields_to_the_event_loop_for_every_trace() -> None:
    ticker = Ticker()
    seen: list[int] = []  # the ticker's count as each trace is pulled from the source

    def source() -> Iterator[NewTrace]:
        for trace in new_traces(200):
            seen.append(ticker.ticks)
            yield trace

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker.run)
        async with open_actor_system(loop_specs(turns=1), max_traces=200) as system:
            assert await system.feed(source()) == 200  # a slot free for every trace
        tg.cancel_scope.cancel()
    assert max(Counter(seen).values()) <= 2


async def test_a_failing_setup_is_raised_before_any_work() -> None:
    class BrokenSetup(Prompter):
        async def setup(self) -> None:
            raise OSError("cannot open the model session")

    specs = loop_specs()
    specs[0] = ActorSpec("prompter", BrokenSetup())
    with pytest.raises(OSError, match="cannot open") as info:
        async with open_actor_system(specs, max_traces=2):
            pytest.fail("the body must not run")
    assert info.value is not None


async def test_sigterm_drains_then_cancels_after_its_grace_period(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    from open_strawberry.runtime import system as system_module

    monkeypatch.setattr(system_module, "TERM_GRACE_S", 0.2)
    gate, sink = Gate(), MemorySink()  # the gate never opens: the traces in flight never finish
    with anyio.fail_after(10), pytest.raises(InterruptedRunError):
        async with open_actor_system(loop_specs(turns=1, generator=Echo(gate), sink=sink, workers=2),
                                     max_traces=2, handle_signals=True) as system:
            await system.feed(new_traces(2))
            await wait_until(lambda: gate.parked == 2)
            os.kill(os.getpid(), signal.SIGTERM)
            await anyio.sleep_forever()
    assert system.statistics().interrupts == 2  # the grace period's end counted as the second
