"""The run monitor: what the page shows about a ``generate`` run, kept up to date as it goes.

A :class:`Monitor` is fed three ways, each optional, all through hooks ``generate`` already has
(:meth:`Monitor.generate_options` gives them as keywords)::

    async with open_monitor() as monitor:                    # serves the page; see open_monitor
        summary = await generate(config, **monitor.generate_options())

* ``events``: the monitor listens to the run's :class:`~open_strawberry.events.EventStream`
  (turns starting and ending, text deltas, traces finishing): counts, rates, token totals,
  TTFT and turn-latency percentiles, the traces in flight and their text, token by token (a
  reasoning model's thinking apart, from its ``ReasoningDelta`` events);
* ``on_progress``: the run's :class:`~open_strawberry.pipeline.Progress` (the total and the
  ETA, calls in flight, 429s, retries);
* ``observers``: the monitor's :class:`~open_strawberry.traces.tally.Tally` counts the records
  the run writes (failures by error type, cost when prices are known); ``customize`` finds the
  backends' limiters (budgets, concurrency) and changes nothing.

Nothing here slows the run: each event is taken in as it is published (a few dictionary
operations, no queue between), and pages get a full snapshot every ``tick_s`` and the deltas
of the one trace they watch through bounded queues that drop rather than wait
(:mod:`~open_strawberry.ui.sse`). Memory is bounded: ``series_points`` points of history
(older ones are merged pairwise), the last 10,000 latencies, at most ``trace_chars``
characters of text per trace in flight, and the ``recent`` traces that finished last.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import structlog

from open_strawberry.actors import Generator, Verifier
from open_strawberry.events import (
    WITHDRAWN,
    Event,
    EventStream,
    ReasoningDelta,
    TextDelta,
    TraceFinished,
    TurnFinished,
    TurnStarted,
)
from open_strawberry.limiter import LimitedBackend, Limiter
from open_strawberry.limiter.statistics import wait_reason
from open_strawberry.messages import TraceRecord, Usage
from open_strawberry.pipeline import Progress
from open_strawberry.runtime import Pipeline
from open_strawberry.runtime.statistics import percentile
from open_strawberry.traces.tally import Tally
from open_strawberry.ui.contract import (
    Budget,
    Delta,
    Dropped,
    LimiterView,
    MonitorState,
    Percentiles,
    TurnStart,
    UsageView,
)
from open_strawberry.ui.live import LiveTrace, Series
from open_strawberry.ui.sse import Broadcaster, Channel, sse_message

if TYPE_CHECKING:
    from open_strawberry.ui.server import UIServer

__all__ = ["Monitor"]

_log = structlog.get_logger("open_strawberry.ui")
_LATENCIES = 10_000  # the newest TTFT and turn times kept for the percentiles


def _percentiles(values: deque[float]) -> Percentiles:
    """p50, p90 and p99 of ``values`` (sorted once here: sorting them again is linear)."""
    ordered = sorted(values)
    return Percentiles(p50=percentile(ordered, 50), p90=percentile(ordered, 90), p99=percentile(ordered, 99))


class Monitor:
    """The live state of one run, and the pages' feeds; see the module docstring.

    ``events`` is the run's event stream (default: the monitor makes one, and closes it in
    :meth:`close`); the monitor listens to it until :meth:`close`. ``prices`` maps a model
    (``provider:model``) to its (input, output) price per million tokens; the cost is shown
    when every model seen has one (batched calls' tokens at ``batch_prices``, half the price
    where it names none: :meth:`~open_strawberry.traces.tally.Tally.cost`). ``server`` is the
    UI server that shows the monitor's page (``url`` is its address);
    :func:`~open_strawberry.ui.open_monitor` makes both.
    """

    def __init__(self, events: EventStream | None = None, *, title: str = "run",
                 prices: Mapping[str, tuple[float, float]] | None = None,
                 batch_prices: Mapping[str, tuple[float, float]] | None = None, tick_s: float = 0.5,
                 series_points: int = 600, trace_chars: int = 20_000, recent: int = 50,
                 clock: Callable[[], float] = time.monotonic, server: UIServer | None = None) -> None:
        self._own_events = events is None
        self.events: EventStream = EventStream() if events is None else events
        self._unlisten = self.events.listen(self.take, self._run_over)
        self._over: anyio.Event | None = None  # set when the run closes the event stream
        self.event_errors = 0  # events the monitor failed to take in (a bug; the run goes on)
        self.title = title
        self.prices = dict(prices or {})
        self.batch_prices = dict(batch_prices or {})
        self.tick_s = tick_s
        self.trace_chars = trace_chars
        self.server = server
        self.finished = False
        self._clock = clock
        self._started = clock()
        self._traces: dict[str, LiveTrace] = {}  # {trace_id: trace in flight}
        self._recent: deque[LiveTrace] = deque(maxlen=recent)
        self._watchers: dict[str, Broadcaster] = {}  # {trace_id: pages watching it}
        self.pages = Broadcaster(buffer=16)  # the state, every tick
        self._series = Series(series_points)
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
        self.tally = Tally(latencies=0)
        self._last = (self._started, 0, 0, 0)  # (time, turns, input tokens, output tokens) at the last tick

    @property
    def url(self) -> str:
        """The page's address (empty when no server shows it)."""
        return self.server.url if self.server is not None else ""

    # ------------------------------------------------------------------ hooks for generate

    def progress(self, progress: Progress) -> None:
        """``generate(on_progress=...)``: keep the newest snapshot (cheap; called every progress_every_s)."""
        self._progress = progress

    def record(self, record: TraceRecord) -> None:
        """``generate(observers=[...])``: count each written record (error types, cost)."""
        self.tally(record)

    def customize(self, pipeline: Pipeline) -> Pipeline:
        """``generate(customize=...)``: find the backends' limiters. Changes nothing; compose
        it with your own (``lambda p: mine(monitor.customize(p))``)."""
        for spec in pipeline.specs:
            actor = spec.actor
            if (isinstance(actor, Generator | Verifier) and isinstance(actor.backend, LimitedBackend)
                    and all(actor.backend.limiter is not seen for seen in self._limiters.values())):
                self._limiters[spec.name] = actor.backend.limiter
        return pipeline

    def generate_options(self) -> dict[str, Any]:
        """The keywords that connect a ``generate`` call to this monitor."""
        return {"events": self.events, "on_progress": self.progress, "observers": [self.record],
                "customize": self.customize}

    # ------------------------------------------------------------------ the events

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Publish the state every ``tick_s`` until the run closes the event stream, then
        once more. Ready (``task_status``) at once."""
        self._over = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._tick_loop)
            task_status.started()
            if not self.finished:
                await self._over.wait()
            tg.cancel_scope.cancel()
        self.tick()

    def _run_over(self) -> None:
        """The run closed the event stream."""
        self.finished = True
        if self._over is not None:
            self._over.set()

    def drain(self) -> None:
        """Publish the state now (every event is taken in as it is published)."""
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
        pages = self._watchers.get(event.trace_id)
        if isinstance(event, (TextDelta, ReasoningDelta)):
            thinking = isinstance(event, ReasoningDelta)
            trace = self._traces.get(event.trace_id)
            shown = trace.add_text(event.text, thinking=thinking) if trace is not None else ""  # no key, nor its start
            if pages is not None and shown:
                pages.publish(sse_message("thinking" if thinking else "delta", Delta(turn=event.turn, text=shown)))
        elif isinstance(event, TurnStarted):
            trace = self._traces.get(event.trace_id)
            if trace is None:
                trace = self._traces[event.trace_id] = LiveTrace(event.trace_id, self._clock(), self.trace_chars)
            trace.start(event.turn, event.kind)
            if pages is not None:
                pages.publish(sse_message("turn_start", TurnStart(turn=event.turn, kind=event.kind)))
        elif isinstance(event, TurnFinished):
            self._turn_finished(event, pages)
        elif isinstance(event, TraceFinished):
            trace = self._traces.pop(event.trace_id, None) or LiveTrace(event.trace_id, self._clock(), 0)
            trace.finished = event
            if event.status != WITHDRAWN:  # a withdrawn trace is no longer in flight, nor finished
                self.done += 1
                self.statuses[event.status] += 1
                if event.correct is not None:
                    self.graded += 1
                    self.correct += event.correct
                self._recent.append(trace)
            if (pages := self._watchers.pop(event.trace_id, None)) is not None:
                pages.close(sse_message("trace_end", event))

    def _turn_finished(self, event: TurnFinished, pages: Broadcaster | None) -> None:
        self.turns += 1
        self.tokens = self.tokens + event.usage
        timings = event.timings
        if timings.ttft_s is not None:
            self._ttfts.append(timings.ttft_s)
        self._turn_times.append(timings.e2e_s)
        trace = self._traces.get(event.trace_id)
        if trace is not None:
            turn = trace.end_turn(event.usage, timings.ttft_s, timings.e2e_s, timings.attempts, event.text,
                                  event.reasoning)
            if turn is not None and pages is not None:
                pages.publish(sse_message("turn_end", turn.describe()))

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
        for trace_id in [t for t, pages in self._watchers.items() if not pages.queues]:
            del self._watchers[trace_id]
        if self.pages.queues:
            self.pages.publish(sse_message("state", self.snapshot()))

    # ------------------------------------------------------------------ what pages read

    def cost(self) -> float | None:
        """The cost of the written records, when every model in them has a price."""
        return self.tally.cost(self.prices, self.batch_prices)

    def _limiter_views(self) -> dict[str, LimiterView]:
        views = {}
        for name, limiter in self._limiters.items():
            stats = limiter.statistics()
            views[name] = LimiterView(
                in_flight=stats.in_flight, concurrency_limit=stats.concurrency_limit, waiting=stats.waiting,
                rate_limited=stats.rate_limited, retries=stats.retries,
                cooldown_remaining_s=stats.cooldown_remaining_s,
                budgets={budget: Budget(level=b.level, capacity=b.capacity) for budget, b in stats.budgets.items()},
                waiting_for=wait_reason(stats.long_wait_for) if stats.long_wait_for else None,
                waiting_left_s=stats.long_wait_left_s)
        return views

    def snapshot(self) -> MonitorState:
        """Everything the monitor page shows."""
        now = self._clock()
        progress = self._progress
        running = progress is not None and not self.finished
        elapsed = progress.elapsed_s if progress is not None else now - self._started
        total = progress.total if progress is not None else None
        eta = None
        if total is not None and self.done and not self.finished:
            eta = (total - self.done) * elapsed / self.done
        series = self._series.columns
        rows = sorted(self._traces.values(), key=lambda trace: trace.started)
        return MonitorState(
            title=self.title, finished=self.finished, elapsed_s=elapsed, total=total,
            resumed=progress.resumed if progress is not None else 0, done=self.done, eta_s=eta,
            correct=self.correct, graded=self.graded, pass_rate=self.correct / self.graded if self.graded else None,
            statuses=dict(self.statuses), failed=self.statuses.get("error", 0), errors=dict(self.tally.errors),
            in_flight=progress.in_flight if running and progress is not None else len(self._traces),
            calls_in_flight=progress.calls_in_flight if running and progress is not None else 0,
            turns=self.turns, turns_per_s=series["turns_per_s"][-1] if series["turns_per_s"] else 0.0,
            turns_per_s_mean=self.turns / elapsed if elapsed else 0.0,
            tokens=UsageView.of(self.tokens), cost=self.cost(), priced=bool(self.prices),
            rate_limited=progress.rate_limited if progress is not None else None,
            retries=progress.retries if progress is not None else None, limiters=self._limiter_views(),
            ttft_s=_percentiles(self._ttfts), turn_s=_percentiles(self._turn_times), series=series,
            traces=[trace.row(now) for trace in rows[:200]], traces_shown_of=len(rows),
            recent=[t.finished for t in reversed(self._recent) if t.finished is not None],
            dropped=Dropped(events=self.events.dropped, pages=self.pages.dropped), pages=self.pages.queues)

    def watch(self, trace_id: str) -> tuple[Broadcaster, Channel] | None:
        """A channel of one trace's events for a page: first its text so far (``trace``), then
        each ``turn_start``, ``delta`` (its answer), ``thinking`` (its thinking) and ``turn_end``,
        and ``trace_end`` when it finishes.
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
            self.events.close()  # which tells the monitor the run is over
        self._unlisten()
        self.close_pages()

    def close_pages(self) -> None:
        """Send the final state and end every page's streams."""
        self.pages.close(sse_message("end", self.snapshot()))
        for pages in self._watchers.values():
            pages.close()
        self._watchers.clear()
