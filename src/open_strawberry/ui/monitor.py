"""The run monitor: what the page shows about a ``generate`` run, kept up to date as it goes.

A :class:`Monitor` is fed three ways, each optional, all through hooks ``generate`` already has
(:meth:`Monitor.generate_options` gives them as keywords)::

    async with open_monitor() as monitor:                    # serves the page; see open_monitor
        summary = await generate(config, **monitor.generate_options())

* ``events``: its :class:`~open_strawberry.events.EventStream` (turns starting and ending,
  text deltas, traces finishing): counts, rates, token totals, TTFT and turn-latency
  percentiles, the traces in flight and their text, token by token;
* ``on_progress``: the run's :class:`~open_strawberry.pipeline.Progress` (the total and the
  ETA, calls in flight, 429s, retries);
* ``customize``: adds the monitor as an observer of the sink's records (failures by error
  type, cost when prices are known) and finds the backends' limiters (budgets, concurrency).

Nothing here slows the run: the event subscription is bounded (the stream drops what the
monitor cannot take, counted in ``events.dropped``), handling an event is a few dictionary
operations, and pages get a full snapshot every ``tick_s`` and the deltas of the one trace
they watch through bounded queues that drop rather than wait (:mod:`~open_strawberry.ui.sse`).
Memory is bounded: ``series_points`` points of history (older ones are merged pairwise),
the last 10,000 latencies, at most ``trace_chars`` characters of text per trace in flight, and
the ``recent`` traces that finished last.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream

from open_strawberry.actors import Generator, JsonlSink, Verifier
from open_strawberry.events import Event, EventStream, TextDelta, TraceFinished, TurnFinished, TurnStarted
from open_strawberry.limiter import LimitedBackend, Limiter
from open_strawberry.messages import TraceRecord, Usage
from open_strawberry.pipeline import Progress
from open_strawberry.runtime import Pipeline
from open_strawberry.runtime.statistics import percentile
from open_strawberry.traces.stats import priced_name
from open_strawberry.ui.sse import Broadcaster, Channel, sse_message

if TYPE_CHECKING:
    from open_strawberry.ui.server import UIServer

__all__ = ["Monitor", "priced_name"]

_log = structlog.get_logger("open_strawberry.ui")
_LATENCIES = 10_000  # the newest TTFT and turn times kept for the percentiles
_YIELD_EVERY = 1_000  # events handled in a row before the loop lets other tasks run


class _Turn:
    __slots__ = ("attempts", "e2e_s", "kind", "parts", "ttft_s", "turn", "usage")

    def __init__(self, turn: int, kind: str) -> None:
        self.turn = turn
        self.kind = kind
        self.parts: list[str] | None = []  # None: dropped to keep the trace under trace_chars
        self.usage: Usage | None = None
        self.ttft_s: float | None = None
        self.e2e_s: float | None = None
        self.attempts = 1

    def describe(self) -> dict[str, Any]:
        usage = self.usage
        return {"turn": self.turn, "kind": self.kind, "text": "".join(self.parts) if self.parts is not None else None,
                "done": usage is not None, "attempts": self.attempts, "ttft_s": self.ttft_s, "e2e_s": self.e2e_s,
                "usage": None if usage is None else _usage(usage)}


class _Trace:
    __slots__ = ("chars", "finished", "started", "trace_id", "turns")

    def __init__(self, trace_id: str, now: float) -> None:
        self.trace_id = trace_id
        self.started = now
        self.turns: list[_Turn] = []
        self.chars = 0
        self.finished: TraceFinished | None = None

    def row(self, now: float) -> dict[str, Any]:
        current = self.turns[-1] if self.turns else None
        return {"trace_id": self.trace_id, "turn": current.turn if current else 0,
                "kind": current.kind if current else "", "streaming": bool(current and current.usage is None),
                "age_s": round(now - self.started, 1),
                "output_tokens": sum(t.usage.output_tokens for t in self.turns if t.usage is not None)}

    def describe(self) -> dict[str, Any]:
        done = self.finished
        return {"trace_id": self.trace_id, "turns": [turn.describe() for turn in self.turns],
                "finished": None if done is None else _finished(done)}


def _usage(usage: Usage) -> dict[str, int]:
    return {"input": usage.input_tokens, "output": usage.output_tokens, "cache_read": usage.cache_read_tokens,
            "cache_write": usage.cache_write_tokens}


def _finished(event: TraceFinished) -> dict[str, Any]:
    return {"trace_id": event.trace_id, "problem_id": event.problem_id, "sample": event.sample,
            "status": event.status, "correct": event.correct, "turns": event.turns}


def _percentiles(values: deque[float]) -> dict[str, float | None]:
    """p50, p90 and p99 of ``values`` (sorted once here: sorting them again is linear)."""
    ordered = sorted(values)
    return {f"p{pct}": percentile(ordered, pct) for pct in (50, 90, 99)}


class _Series:
    """Points over time, at most ``limit`` of them, each of the same width: when the series is
    full, neighbours are merged pairwise (rates averaged) and each new point takes in twice as
    many ticks as before, so a long run keeps its whole history at a coarser grain."""

    FIELDS = ("t", "turns_per_s", "output_tokens_per_s", "input_tokens_per_s", "done")
    _LAST = ("t", "done")  # a merged point keeps the later of these, and the mean of the rest

    def __init__(self, limit: int) -> None:
        self.limit = max(4, limit - limit % 2)
        self.columns: dict[str, list[float]] = {name: [] for name in self.FIELDS}
        self.stride = 1  # ticks per point
        self._pending: list[dict[str, float]] = []

    def add(self, **point: float) -> None:
        self._pending.append(point)
        if len(self._pending) < self.stride:
            return
        for name in self.FIELDS:
            values = [p[name] for p in self._pending]
            self.columns[name].append(values[-1] if name in self._LAST else sum(values) / len(values))
        self._pending.clear()
        if len(self.columns["t"]) >= self.limit:
            for name, values in self.columns.items():
                self.columns[name] = [values[i + 1] if name in self._LAST else (values[i] + values[i + 1]) / 2
                                      for i in range(0, len(values) - 1, 2)]
            self.stride *= 2


class _MonitorEvents(EventStream):
    """The monitor's own event stream: each event is taken in as it is published, with no
    queue between (the cheapest path for the run); other subscribers get it as usual."""

    def __init__(self, monitor: Monitor) -> None:
        super().__init__()
        self._monitor = monitor

    @property
    def has_subscribers(self) -> bool:
        return True

    def publish(self, event: Event) -> None:
        self._monitor.take(event)
        if self._subscribers:
            super().publish(event)

    def close(self) -> None:
        super().close()
        self._monitor._run_over()


class Monitor:
    """The live state of one run, and the pages' feeds; see the module docstring.

    ``prices`` maps a model (``provider:model``) to its (input, output) price per million
    tokens; the cost is shown when every model seen has one. Open it with
    :func:`~open_strawberry.ui.open_monitor`, which runs it and serves its page.
    """

    def __init__(self, events: EventStream | None = None, *, title: str = "run",
                 prices: Mapping[str, tuple[float, float]] | None = None, tick_s: float = 0.5,
                 series_points: int = 600, trace_chars: int = 20_000, recent: int = 50, event_buffer: int = 65_536,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # An event stream of its own is read as events are published (no queue between); one
        # given is read through a bounded subscription, like any other reader of it.
        self._own_events = events is None
        self.events: EventStream = _MonitorEvents(self) if events is None else events
        self._subscription: MemoryObjectReceiveStream[Event] | None = (
            None if events is None else events.subscribe(buffer=event_buffer))
        self._over: anyio.Event | None = None  # set when the run closes the event stream
        self.event_errors = 0  # events the monitor failed to take in (a bug; the run goes on)
        self.title = title
        self.prices = dict(prices or {})
        self.tick_s = tick_s
        self.trace_chars = trace_chars
        self.url = ""  # the page's address, once served
        self.server: UIServer | None = None  # the server of the page, once served
        self.finished = False
        self._clock = clock
        self._started = clock()
        self._traces: dict[str, _Trace] = {}  # {trace_id: trace in flight}
        self._recent: deque[_Trace] = deque(maxlen=recent)
        self._watchers: dict[str, Broadcaster] = {}  # {trace_id: pages watching it}
        self.pages = Broadcaster(buffer=16)  # the state, every tick
        self._series = _Series(series_points)
        self._progress: Progress | None = None
        self._limiters: dict[str, Limiter] = {}  # {actor name: its backend's limiter}
        # from the events
        self.events_seen = 0
        self.turns = 0
        self.tokens = Usage()
        self.done = self.correct = self.graded = 0
        self.statuses: Counter[str] = Counter()
        self._ttfts: deque[float] = deque(maxlen=_LATENCIES)
        self._turn_times: deque[float] = deque(maxlen=_LATENCIES)
        # from the records
        self.records = 0
        self.errors: Counter[str] = Counter()  # {error type: traces}
        self._tokens_by_model: dict[str, list[int]] = {}  # {priced name: [input, output]}
        self._last = (self._started, 0, 0, 0)  # (time, turns, input tokens, output tokens) at the last tick

    # ------------------------------------------------------------------ hooks for generate

    def progress(self, progress: Progress) -> None:
        """``generate(on_progress=...)``: keep the newest snapshot (cheap; called every progress_every_s)."""
        self._progress = progress

    def record(self, record: TraceRecord) -> None:
        """An observer of the sink: error types and cost from each written record."""
        self.records += 1
        if record.error is not None:
            self.errors[record.error.type] += 1
        counts = self._tokens_by_model.setdefault(priced_name(record.model), [0, 0])
        counts[0] += record.usage.input_tokens
        counts[1] += record.usage.output_tokens

    def customize(self, pipeline: Pipeline) -> Pipeline:
        """``generate(customize=...)``: observe the sink's records, find the limiters. Changes
        nothing else; compose it with your own (``lambda p: mine(monitor.customize(p))``)."""
        for spec in pipeline.specs:
            actor = spec.actor
            if isinstance(actor, JsonlSink):
                pipeline.replace(spec.name, JsonlSink(actor.path, observers=[*actor.observers, self.record]))
            elif (isinstance(actor, Generator | Verifier) and isinstance(actor.backend, LimitedBackend)
                  and all(actor.backend.limiter is not seen for seen in self._limiters.values())):
                self._limiters[spec.name] = actor.backend.limiter
        return pipeline

    def generate_options(self) -> dict[str, Any]:
        """The keywords that connect a ``generate`` call to this monitor."""
        return {"events": self.events, "on_progress": self.progress, "customize": self.customize}

    # ------------------------------------------------------------------ the event loop

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Take in the events until the run closes the stream, publishing the state every
        ``tick_s``; then publish the final state once. Ready (``task_status``) at once."""
        self._over = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._tick_loop)
            task_status.started()
            if self._subscription is None:
                if not self.finished:
                    await self._over.wait()
            else:
                await self._read(self._subscription)
            self.finished = True
            tg.cancel_scope.cancel()
        self.tick()

    async def _read(self, receive: MemoryObjectReceiveStream[Event]) -> None:
        with receive:
            handled = 0
            while True:
                try:
                    event = receive.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        event = await receive.receive()
                    except anyio.EndOfStream:
                        return
                    handled = 0
                except anyio.EndOfStream:
                    return
                self.take(event)
                handled += 1
                if handled >= _YIELD_EVERY:
                    handled = 0
                    await anyio.lowlevel.checkpoint()

    def _run_over(self) -> None:
        """The run closed the event stream."""
        self.finished = True
        if self._over is not None:
            self._over.set()

    def drain(self) -> None:
        """Take in every event queued now, without waiting (the run is over, or the monitor
        is closing), and publish the state."""
        receive = self._subscription
        while receive is not None:
            try:
                self.take(receive.receive_nowait())
            except anyio.WouldBlock:
                break
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self.finished = True
                break
        self.tick()

    def take(self, event: Event) -> None:
        """Take in one event: a few dictionary operations, and offers to the pages that watch
        its trace; never waits, never raises (a failure is counted in ``event_errors``)."""
        try:
            self._on_event(event)
        except Exception:  # a bug here must not fail the trace whose event it was
            self.event_errors += 1
            if self.event_errors == 1:
                _log.exception("monitor_event_failed", event=type(event).__name__)

    def _on_event(self, event: Event) -> None:
        self.events_seen += 1
        if isinstance(event, TextDelta):
            trace = self._traces.get(event.trace_id)
            if trace is not None and trace.turns:
                turn = trace.turns[-1]
                if turn.parts is not None:
                    turn.parts.append(event.text)
                    trace.chars += len(event.text)
                    if trace.chars > self.trace_chars:
                        self._trim(trace)
            if (pages := self._watchers.get(event.trace_id)) is not None:
                pages.publish(sse_message("delta", {"turn": event.turn, "text": event.text}))
        elif isinstance(event, TurnStarted):
            trace = self._traces.get(event.trace_id)
            if trace is None:
                trace = self._traces[event.trace_id] = _Trace(event.trace_id, self._clock())
            if trace.turns and trace.turns[-1].turn == event.turn:  # a retried turn starts again
                trace.turns[-1].attempts += 1
            else:
                trace.turns.append(_Turn(event.turn, event.kind))
            if (pages := self._watchers.get(event.trace_id)) is not None:
                pages.publish(sse_message("turn_start", {"turn": event.turn, "kind": event.kind}))
        elif isinstance(event, TurnFinished):
            self.turns += 1
            self.tokens = self.tokens + event.usage
            if event.timings.ttft_s is not None:
                self._ttfts.append(event.timings.ttft_s)
            self._turn_times.append(event.timings.e2e_s)
            trace = self._traces.get(event.trace_id)
            if trace is not None and trace.turns:
                turn = trace.turns[-1]
                turn.usage, turn.ttft_s, turn.e2e_s = event.usage, event.timings.ttft_s, event.timings.e2e_s
                turn.attempts = event.timings.attempts
                if turn.parts is not None and event.text is not None:  # not what a failed attempt streamed first
                    trace.chars += len(event.text) - sum(map(len, turn.parts))
                    turn.parts = [event.text]
                    if trace.chars > self.trace_chars:
                        self._trim(trace)
                if (pages := self._watchers.get(event.trace_id)) is not None:
                    pages.publish(sse_message("turn_end", turn.describe()))
        elif isinstance(event, TraceFinished):
            self.done += 1
            self.statuses[event.status] += 1
            if event.correct is not None:
                self.graded += 1
                self.correct += event.correct
            trace = self._traces.pop(event.trace_id, None) or _Trace(event.trace_id, self._clock())
            trace.finished = event
            self._recent.append(trace)
            if (pages := self._watchers.pop(event.trace_id, None)) is not None:
                pages.close(sse_message("trace_end", _finished(event)))

    def _trim(self, trace: _Trace) -> None:
        """Drop the text of the oldest turns until the trace is under ``trace_chars`` (the
        turn streaming now is kept whole)."""
        for turn in trace.turns[:-1]:
            if trace.chars <= self.trace_chars:
                return
            if turn.parts is not None:
                trace.chars -= sum(len(part) for part in turn.parts)
                turn.parts = None

    async def _tick_loop(self) -> None:
        while True:
            await anyio.sleep(self.tick_s)
            self.tick()

    def tick(self) -> None:
        """Add a point to the series and send the state to every page."""
        now = self._clock()
        then, turns, input_tokens, output_tokens = self._last
        span = now - then
        if span > 0:
            self._series.add(t=round(now - self._started, 3), turns_per_s=(self.turns - turns) / span,
                             input_tokens_per_s=(self.tokens.input_tokens - input_tokens) / span,
                             output_tokens_per_s=(self.tokens.output_tokens - output_tokens) / span, done=self.done)
            self._last = (now, self.turns, self.tokens.input_tokens, self.tokens.output_tokens)
        for trace_id in [t for t, pages in self._watchers.items() if not pages.clients]:
            del self._watchers[trace_id]
        if self.pages.clients:
            self.pages.publish(sse_message("state", self.snapshot()))

    # ------------------------------------------------------------------ what pages read

    def cost(self) -> float | None:
        """The cost of the written records, when every model in them has a price."""
        if not self._tokens_by_model or not all(model in self.prices for model in self._tokens_by_model):
            return None
        return sum((i * self.prices[m][0] + o * self.prices[m][1]) / 1e6 for m, (i, o) in self._tokens_by_model.items())

    def snapshot(self) -> dict[str, Any]:
        """Everything the monitor page shows, as JSON-ready data."""
        now = self._clock()
        progress = self._progress
        elapsed = progress.elapsed_s if progress is not None else now - self._started
        total = progress.total if progress is not None else None
        eta = None
        if total is not None and self.done and not self.finished:
            eta = (total - self.done) * elapsed / self.done
        series = self._series.columns
        recent_rate = series["turns_per_s"][-1] if series["turns_per_s"] else 0.0
        limiters = {}
        for name, limiter in self._limiters.items():
            stats = limiter.statistics()
            limiters[name] = {"in_flight": stats.in_flight, "concurrency_limit": stats.concurrency_limit,
                              "waiting": stats.waiting, "rate_limited": stats.rate_limited,
                              "retries": stats.retries, "cooldown_remaining_s": stats.cooldown_remaining_s,
                              "budgets": {budget: {"level": b.level, "capacity": b.capacity}
                                          for budget, b in stats.budgets.items()}}
        rows = sorted(self._traces.values(), key=lambda trace: trace.started)
        return {
            "title": self.title, "finished": self.finished, "elapsed_s": elapsed,
            "total": total, "resumed": progress.resumed if progress is not None else 0, "done": self.done,
            "eta_s": eta, "correct": self.correct, "graded": self.graded,
            "pass_rate": self.correct / self.graded if self.graded else None,
            "statuses": dict(self.statuses), "failed": self.statuses.get("error", 0), "errors": dict(self.errors),
            "in_flight": progress.in_flight if progress is not None and not self.finished else len(self._traces),
            "calls_in_flight": progress.calls_in_flight if progress is not None and not self.finished else 0,
            "turns": self.turns, "turns_per_s": recent_rate,
            "turns_per_s_mean": self.turns / elapsed if elapsed else 0.0,
            "tokens": _usage(self.tokens), "cost": self.cost(), "priced": bool(self.prices),
            "rate_limited": progress.rate_limited if progress is not None else None,
            "retries": progress.retries if progress is not None else None,
            "limiters": limiters,
            "ttft_s": _percentiles(self._ttfts), "turn_s": _percentiles(self._turn_times),
            "series": series,
            "traces": [trace.row(now) for trace in rows[:200]], "traces_shown_of": len(rows),
            "recent": [_finished(trace.finished) for trace in reversed(self._recent) if trace.finished is not None],
            "dropped": {"events": self.events.dropped, "pages": self.pages.dropped},
            "pages": self.pages.clients,
        }

    def watch(self, trace_id: str) -> tuple[Broadcaster, Channel] | None:
        """A channel of one trace's events for a page: first its text so far (``trace``), then
        each ``turn_start``, ``delta`` and ``turn_end``, and ``trace_end`` when it finishes.
        None for a trace the monitor does not know (finished long ago, or never seen)."""
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = next((t for t in self._recent if t.trace_id == trace_id), None)
            if trace is None:
                return None
            done = Broadcaster()
            done.close()
            return done, done.open([sse_message("trace", trace.describe())])
        pages = self._watchers.get(trace_id)
        if pages is None:
            pages = self._watchers[trace_id] = Broadcaster(buffer=4096)
        return pages, pages.open([sse_message("trace", trace.describe())])

    def close(self) -> None:
        """Stop listening to the events (closing the event stream if the monitor made it) and
        end the pages' streams, the monitor's with its final state."""
        if self._own_events:
            self.events.close()
        if self._subscription is not None:
            self._subscription.close()
        self.close_pages()

    def close_pages(self) -> None:
        """Send the final state and end every page's streams (the server is about to stop)."""
        self.pages.close(sse_message("end", self.snapshot()))
        for pages in self._watchers.values():
            pages.close()
        self._watchers.clear()
