"""The :class:`ActorSystem`: starts actors, admits traces, supervises, and shuts down.

Life of a system, opened with :func:`open_actor_system`::

    async with open_actor_system(specs, max_traces=256) as system:
        await system.feed(new_traces)       # blocks while max_traces are in flight
    # leaving the block closed the input, let every admitted trace finish and
    # closed every channel in order; nothing accepted was dropped

* **Admission**: :meth:`ActorSystem.submit` admits one trace and blocks while
  ``max_traces`` traces are in flight; a slot frees when the sink has handled the trace's
  record. This bounds memory by ``max_traces``, whatever the size of the input.
* **Shutdown by closing**: once the input is closed and no trace is in flight, no message
  exists anywhere, so the system closes the channels that lie on cycles (they would
  otherwise keep each other open) and the entry channel. Each actor's inbox then ends,
  its workers finish and close their outboxes, and the closing flows down to the sink.
* **Supervision**: an exception in ``handle`` fails that trace alone (a failed
  ``TraceRecord`` goes to the sink). A worker loop that dies is restarted after a backoff;
  when an actor exceeds ``RestartPolicy.max_restarts`` the system stops admitting,
  cancels the other actors, lets the sink write what reached it, and raises
  :class:`~open_strawberry.errors.ActorCrashedError` from the ``async with``.
* **Interrupts**: the first :meth:`ActorSystem.interrupt` (Ctrl-C when ``handle_signals=True``) stops
  admission and lets traces in flight finish (one whose call is withdrawn, ``CallWithdrawnError``, leaves
  unwritten); the second cancels everything and raises :class:`~open_strawberry.errors.InterruptedRunError`.
  The sink writes whole lines only, so the output stays valid either way.
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from open_strawberry.errors import ActorCrashedError, AdmissionClosedError, InterruptedRunError
from open_strawberry.messages import Message, NewTrace, TraceRecord
from open_strawberry.runtime.actor import Mailbox, Wiring
from open_strawberry.runtime.background import open_background_tasks
from open_strawberry.runtime.graph import ActorSpec, Graph, build_graph
from open_strawberry.runtime.restart import RestartPolicy
from open_strawberry.runtime.statistics import ActorCounters, SystemStatistics

__all__ = ["ActorSystem", "RestartPolicy", "open_actor_system"]

_log = structlog.get_logger("open_strawberry.runtime")

TERM_GRACE_S = 30.0  # after SIGTERM, the traces in flight get this long to finish

_Item = tuple[float, Any]  # (time it was enqueued, message): what every channel carries


class _Node:
    """The runtime's side of one actor: its inbox, outboxes, routes and counters."""

    def __init__(self, spec: ActorSpec, buffer: int, is_sink: bool) -> None:
        self.name = spec.name
        self.actor = spec.actor
        self.workers = spec.workers
        self.buffer = buffer
        self.is_sink = is_sink
        self.counters = ActorCounters()
        self.set_up = False
        self.routes: dict[type[Any], _Node] = {}
        self.sends: dict[str, MemoryObjectSendStream[_Item]] = {}  # {target name: our clone}
        self.send_stream: MemoryObjectSendStream[_Item]
        self.receive_stream: MemoryObjectReceiveStream[_Item]

    async def put(self, stream: MemoryObjectSendStream[_Item], message: Message) -> None:
        """Send ``message`` into this node's inbox through ``stream``; blocks while it is full.
        An inbox with room takes it without a yield (a worker yields when it receives); a full
        or closed one goes through anyio's ``send``, whose checkpoint delivers a cancellation."""
        self.counters.enqueued()
        item = (time.perf_counter(), message)
        try:
            try:
                stream.send_nowait(item)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stream.send(item)
        except BaseException:
            self.counters.depth -= 1
            raise


class ActorSystem:
    """A running graph of actors. Create it with :func:`open_actor_system`."""

    def __init__(self, graph: Graph, *, max_traces: int, restart: RestartPolicy) -> None:
        self._graph = graph
        self._max_traces = max_traces
        self._restart = restart
        self._nodes = {
            name: _Node(spec, graph.buffers[name], is_sink=name == graph.sink)
            for name, spec in graph.specs.items()
        }
        for name, node in self._nodes.items():
            node.routes = {t: self._nodes[target] for t, target in graph.routes[name].items()}
        self._sink = self._nodes[graph.sink]
        self._entry = self._nodes[graph.entry]
        self._entry_send: MemoryObjectSendStream[_Item] | None = None
        self._admitted = 0
        self._finished = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        self._input_closed = False
        self._interrupts = 0
        self._interrupted = anyio.Event()
        self._hard_cancelled = False
        self._error: BaseException | None = None
        self._admission_waiters: set[anyio.CancelScope] = set()
        self._slots: anyio.Semaphore
        self._drained: anyio.Event
        self._actors_done: anyio.Event
        self._root_scope: anyio.CancelScope
        self._pipeline_scope: anyio.CancelScope | None = None

    # ----------------------------------------------------------------- admission

    @property
    def input_closed(self) -> bool:
        """True once no new trace will be admitted (input closed, interrupt or crash)."""
        return self._input_closed

    async def submit(self, message: NewTrace) -> None:
        """Admit one trace; block while ``max_traces`` traces are in flight.

        Raises :class:`AdmissionClosedError` if the input is closed, or closes while this
        call waits for a slot (the trace is then not admitted). Once this returns the trace
        is accepted: it will reach the sink as a record, whatever happens to it.
        """
        await anyio.lowlevel.checkpoint()  # one yield per trace admitted, whether or not a slot is free
        if self._input_closed:
            raise AdmissionClosedError("the system no longer admits traces")
        try:
            self._slots.acquire_nowait()  # a free slot: no cancel scope to set up and tear down
            acquired = True
        except anyio.WouldBlock:
            acquired = await self._wait_for_slot()
        if self._input_closed:
            if acquired:
                self._slots.release()
            raise AdmissionClosedError("the system stopped admitting traces while this one waited")
        assert self._entry_send is not None
        self._admitted += 1
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            await self._entry.put(self._entry_send, message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The entry actor is gone: the system is stopping after a crash.
            raise AdmissionClosedError("the system stopped while this trace was being admitted") from None

    async def _wait_for_slot(self) -> bool:
        """Wait for a free slot; False when admission closed first (nothing was acquired)."""
        acquired = False
        with anyio.CancelScope() as scope:
            self._admission_waiters.add(scope)
            try:
                await self._slots.acquire()
                acquired = True
            finally:
                self._admission_waiters.discard(scope)
        return acquired

    async def feed(self, messages: AsyncIterable[NewTrace] | Iterable[NewTrace]) -> int:
        """Submit every message of ``messages`` until it ends or admission closes.

        Pulls one message at a time, so a lazy source is never read ahead of admission.
        Returns how many traces were admitted.
        """
        admitted = 0
        async for message in _aiter(messages):
            try:
                await self.submit(message)
            except AdmissionClosedError:
                break
            admitted += 1
        return admitted

    def close_input(self) -> None:
        """Admit nothing more; traces in flight go on to the sink. Idempotent."""
        self._input_closed = True
        for scope in self._admission_waiters:
            scope.cancel()
        if self._in_flight == 0:
            self._drained.set()

    def interrupt(self) -> None:
        """First call: stop admission and let traces in flight finish. Second: cancel."""
        self._interrupts += 1
        if self._interrupts == 1:
            self._interrupted.set()
            _log.warning("interrupted", in_flight=self._in_flight,
                         hint="finishing traces in flight; interrupt again to cancel")
            self.close_input()
        else:
            _log.warning("cancelled", in_flight=self._in_flight, hint="unfinished traces were not written")
            self._hard_cancelled = True
            self._root_scope.cancel()

    async def wait_interrupted(self) -> None:
        """Block until the first interrupt (when to withdraw the calls that wait in a limiter)."""
        await self._interrupted.wait()

    async def aclose(self) -> None:
        """Close the input, wait for every trace in flight to finish, and stop the actors."""
        self.close_input()
        await self._drained.wait()
        if self._error is None:
            # No message exists now; channels on cycles would keep each other open forever.
            self._close_entry()
            for sender, receiver in self._graph.cycle_edges:
                self._nodes[sender].sends[receiver].close()
        await self._actors_done.wait()

    # --------------------------------------------------------------- statistics

    def statistics(self) -> SystemStatistics:
        """A snapshot of admission and of every actor's counters."""
        actors = tuple(
            node.counters.snapshot(node.name, node.workers, node.buffer) for node in self._nodes.values()
        )
        return SystemStatistics(
            max_traces=self._max_traces,
            admitted=self._admitted,
            finished=self._finished,
            in_flight=self._in_flight,
            peak_in_flight=self._peak_in_flight,
            failed=sum(a.failed for a in actors),
            interrupts=self._interrupts,
            withdrawn=self._admitted - self._finished - self._in_flight,
            actors=actors,
        )

    # ------------------------------------------------------------------ internals

    def _wiring(self, node: _Node) -> Wiring:
        """What ``node``'s mailboxes need: sends through its channel clones, its counters,
        and :meth:`_trace_finished`. Valid once :meth:`_run_actors` has made the channels."""
        return Wiring(
            name=node.name,
            actor=node.actor,
            counters=node.counters,
            routes={kind: functools.partial(target.put, node.sends[target.name])
                    for kind, target in node.routes.items()},
            to_sink=None if node.is_sink else functools.partial(self._sink.put, node.sends[self._sink.name]),
            trace_finished=self._trace_finished,
        )

    def _trace_finished(self, record: TraceRecord | None) -> None:  # None: it left unwritten (withdrawn)
        self._finished += record is not None
        self._in_flight -= 1
        self._slots.release()
        if self._input_closed and self._in_flight == 0:
            self._drained.set()

    def _close_entry(self) -> None:
        if self._entry_send is not None:
            self._entry_send.close()

    def _crashed(self, node: _Node, restarts: int, exc: Exception) -> None:
        if self._error is None:
            error = ActorCrashedError(node.name, restarts + 1, self._in_flight, exc)
            error.__cause__ = exc
            self._error = error
            _log.error("actor_gave_up", actor=node.name, error=str(error))
        self.close_input()
        self._drained.set()
        if node.is_sink or self._pipeline_scope is None:
            self._root_scope.cancel()
        else:
            # The sink keeps running: its inbox ends once the other actors are gone, and it
            # writes every record that reached it.
            self._pipeline_scope.cancel()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
        if self._hard_cancelled:
            raise InterruptedRunError(
                f"cancelled by a second interrupt; {self._in_flight} trace(s) in flight were not written"
            )

    async def _start(self, task_group: anyio.abc.TaskGroup, *, handle_signals: bool) -> None:
        self._slots = anyio.Semaphore(self._max_traces)
        self._drained = anyio.Event()
        self._actors_done = anyio.Event()
        self._root_scope = task_group.cancel_scope
        if handle_signals:
            await task_group.start(self._watch_signals)
        await task_group.start(self._run_actors)

    async def _watch_signals(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """SIGINT and SIGTERM: the first stops admission and lets traces in flight finish, the
        second cancels. A SIGTERM (a service manager, a scheduler) also cancels by itself after
        ``TERM_GRACE_S``: the process was asked to go, and must, even if nobody signals again."""
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async with anyio.create_task_group() as tg:
                async for received in signals:
                    self.interrupt()
                    if received == signal.SIGTERM and self._interrupts == 1:
                        tg.start_soon(self._cancel_after, TERM_GRACE_S)

    async def _cancel_after(self, grace_s: float) -> None:
        await anyio.sleep(grace_s)  # a deadline, not a wait for another task
        if self._interrupts == 1:
            _log.warning("grace_period_over", grace_s=grace_s)
            self.interrupt()

    async def _run_actors(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        nodes = self._nodes.values()
        for node in nodes:
            node.send_stream, node.receive_stream = anyio.create_memory_object_stream[_Item](node.buffer)
        for node in nodes:
            targets = {t.name for t in node.routes.values()}
            if not node.is_sink:
                targets.add(self._sink.name)
            node.sends = {name: self._nodes[name].send_stream.clone() for name in sorted(targets)}
        self._entry_send = self._entry.send_stream.clone()
        for node in nodes:
            node.send_stream.close()  # only the clones keep an inbox open now
        pipeline = [node for node in nodes if not node.is_sink]
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self._run_group, [self._sink], False)
                await tg.start(self._run_group, pipeline, True)
                task_status.started()
        finally:
            self._close_entry()
            self._actors_done.set()

    async def _run_group(
        self, nodes: Sequence[_Node], is_pipeline: bool, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        async with anyio.create_task_group() as tg:
            if is_pipeline:
                self._pipeline_scope = tg.cancel_scope
            for node in nodes:
                await tg.start(self._run_node, node)
            task_status.started()

    async def _setup_actors(self) -> None:
        """Run every actor's setup in order; on a failure tear down those already set up."""
        for node in self._nodes.values():
            try:
                await node.actor.setup()
            except BaseException:
                await self._teardown_actors()
                raise
            node.set_up = True

    async def _teardown_actors(self) -> None:
        with anyio.CancelScope(shield=True):
            for node in self._nodes.values():
                if node.set_up:
                    node.set_up = False
                    await node.actor.teardown()

    async def _run_node(self, node: _Node, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(node.workers):
                    await tg.start(self._run_worker, node, node.receive_stream.clone())
                node.receive_stream.close()
                task_status.started()
        finally:
            node.receive_stream.close()
            for stream in node.sends.values():
                stream.close()

    async def _run_worker(
        self, node: _Node, inbox: MemoryObjectReceiveStream[_Item], *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        structlog.contextvars.bind_contextvars(actor=node.name)
        mailbox = Mailbox(inbox, self._wiring(node))
        with inbox:
            task_status.started()
            while True:
                try:
                    await node.actor.run(mailbox)
                    if mailbox.held:
                        raise RuntimeError(f"run() returned while holding {len(mailbox.held)} message(s)")
                    return
                except Exception as exc:
                    _log.error("actor_crashed", error=f"{type(exc).__name__}: {exc}",
                               restarts=node.counters.restarts, held=len(mailbox.held))
                    await mailbox.recover(exc)
                    if node.counters.restarts >= self._restart.max_restarts:
                        self._crashed(node, node.counters.restarts, exc)
                        return
                    node.counters.restarts += 1
                    await anyio.sleep(self._restart.backoff(node.counters.restarts))


async def _aiter(messages: AsyncIterable[NewTrace] | Iterable[NewTrace]) -> AsyncIterator[NewTrace]:
    if isinstance(messages, AsyncIterable):
        async for message in messages:
            yield message
    else:
        for message in messages:
            yield message


@asynccontextmanager
async def open_actor_system(
    actors: Sequence[ActorSpec],
    *,
    max_traces: int,
    restart: RestartPolicy | None = None,
    handle_signals: bool = False,
) -> AsyncIterator[ActorSystem]:
    """Check the graph, start every actor, and yield the system once all are ready.

    Raises :class:`~open_strawberry.errors.GraphError` (or its subclass
    ``DeadlockRiskError``) before starting anything if the actors cannot work together,
    and the first error of an actor's ``setup`` as it is. Teardowns run when the block is
    left, whatever the way out.
    Leaving the block normally waits until every admitted trace reached the sink; leaving
    it with an exception cancels the actors. With ``handle_signals`` SIGINT and SIGTERM
    call :meth:`ActorSystem.interrupt`.
    """
    graph = build_graph(actors, max_traces=max_traces)
    system = ActorSystem(graph, max_traces=max_traces, restart=restart or RestartPolicy())
    await system._setup_actors()  # outside the task group, so a setup error comes out unwrapped
    try:
        async with open_background_tasks() as tg:  # the block's error comes out unwrapped
            await system._start(tg, handle_signals=handle_signals)
            yield system
            await system.aclose()
    finally:
        await system._teardown_actors()
    system._raise_if_failed()
