"""What the pages read: every JSON body and server-sent event of the UI, as msgspec Structs.

The server encodes these at the edge (its JSON responses, :func:`~open_strawberry.ui.sse.sse_message`);
the pages' JavaScript (``ui/static/*.js``) reads the same keys. Fields a page tests for being
absent are left out when unset (``omit_defaults``); every other field is always written.
A reasoning model's thinking travels apart from the answer: ``reasoning`` (its text, shown
folded under the turn, as text) and ``UsageView.reasoning`` (its tokens, inside ``output``);
streamed, it is the ``thinking`` event (a :class:`Delta`), apart from the answer's ``delta``.

- the monitor: :class:`MonitorState` (``state`` and ``end`` events, ``/api/monitor/state``),
  :class:`TraceView` (``trace``), :class:`TurnView` (``turn_end``), :class:`Finished`
  (``trace_end``, and each of ``recent``), :class:`TurnStart`, :class:`Delta`;
- the trace browser: :class:`TraceItem`, a row of a :class:`~open_strawberry.ui.index.TracePage`;
  :class:`Facets`, :class:`RecordView`;
- the playground: :class:`Catalog`, :class:`Started`, :class:`Saved`; :class:`SessionView`
  (``session``), :class:`Message` (``prompt``, ``turn_end``), :class:`SessionStatus`
  (``status``), :class:`Verdict`, :class:`Score`.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec
from msgspec import UNSET

from open_strawberry.events import TraceFinished
from open_strawberry.messages import Usage

__all__ = [
    "Budget", "Catalog", "Current", "Delta", "Dropped", "Facets", "Finished", "LimiterView", "Message",
    "MonitorState", "Percentiles", "ProblemView", "RecordView", "Saved", "Score", "SessionStatus", "SessionView",
    "Started", "TraceItem", "TraceRow", "TraceView", "TurnStart", "TurnTimings", "TurnUsage", "TurnView",
    "UsageView", "Verdict",
]


class _Data(msgspec.Struct, frozen=True, kw_only=True):
    """A piece of what the pages read (frozen, keyword-only)."""


# ---------------------------------------------------------------------------- the monitor


class UsageView(_Data, frozen=True, kw_only=True, omit_defaults=True):
    input: int
    output: int
    cache_read: int
    cache_write: int
    reasoning: int | None = None  # thinking tokens, inside output (None, left out: no thinking)

    @classmethod
    def of(cls, usage: Usage) -> UsageView:
        return cls(input=usage.input_tokens, output=usage.output_tokens, cache_read=usage.cache_read_tokens,
                   cache_write=usage.cache_write_tokens, reasoning=_reasoning_tokens(usage))


def _reasoning_tokens(usage: Usage) -> int | None:
    return None if usage.reasoning_tokens is UNSET else usage.reasoning_tokens


class TurnStart(_Data, frozen=True, kw_only=True):
    turn: int
    kind: str


class Delta(_Data, frozen=True, kw_only=True):
    """A streamed piece of a turn: of its answer (``delta``) or of its thinking (``thinking``)."""

    turn: int
    text: str


class TurnView(_Data, frozen=True, kw_only=True):
    turn: int
    kind: str
    text: str | None  # None: dropped to keep the trace under the monitor's trace_chars
    done: bool
    attempts: int
    ttft_s: float | None
    e2e_s: float | None
    usage: UsageView | None
    reasoning: str | None = None  # its thinking (None: none, or dropped with the text)


Finished: TypeAlias = TraceFinished  # a finished trace as the run's event tells it (its tag, ``type``, included)


class TraceView(_Data, frozen=True, kw_only=True):
    trace_id: str
    turns: list[TurnView]
    finished: Finished | None


class TraceRow(_Data, frozen=True, kw_only=True):
    trace_id: str
    turn: int
    kind: str
    streaming: bool
    age_s: float
    output_tokens: int


class Budget(_Data, frozen=True, kw_only=True):
    level: float
    capacity: float


class LimiterView(_Data, frozen=True, kw_only=True):
    in_flight: int
    concurrency_limit: int | None
    waiting: int
    rate_limited: int
    retries: int
    cooldown_remaining_s: float
    budgets: dict[str, Budget]
    waiting_for: str | None = None  # a long wait going on now: what for, in words ("the token budget")
    waiting_left_s: float = 0.0  # and how long yet


class Percentiles(_Data, frozen=True, kw_only=True):
    p50: float | None
    p90: float | None
    p99: float | None


class Dropped(_Data, frozen=True, kw_only=True):
    events: int
    pages: int


class MonitorState(_Data, frozen=True, kw_only=True):
    """Everything the monitor page shows."""

    title: str
    finished: bool
    elapsed_s: float
    total: int | None
    resumed: int
    done: int
    eta_s: float | None
    correct: int
    graded: int
    pass_rate: float | None
    statuses: dict[str, int]
    failed: int
    errors: dict[str, int]  # {error type: traces}
    in_flight: int
    calls_in_flight: int
    turns: int
    turns_per_s: float
    turns_per_s_mean: float
    tokens: UsageView
    cost: float | None
    priced: bool
    rate_limited: int | None
    retries: int | None
    limiters: dict[str, LimiterView]
    ttft_s: Percentiles
    turn_s: Percentiles
    series: dict[str, list[float]]  # {field: points}
    traces: list[TraceRow]
    traces_shown_of: int
    recent: list[Finished]
    dropped: Dropped
    pages: int


# ---------------------------------------------------------------------------- the trace browser


class TraceItem(_Data, frozen=True, kw_only=True):
    index: int
    line: int
    trace_id: str
    problem_id: str
    sample: int
    model: str
    strategy: str
    status: str
    correct: bool | None
    final_answer: str | None
    ground_truth: str
    turns: int
    input_tokens: int
    output_tokens: int
    stop_reason: str
    error: str | None
    seconds: float | None


class Facets(_Data, frozen=True, kw_only=True):
    """What the trace browser's filters offer: counts by status and grade, models, problems."""

    path: str
    indexed: int
    caught_up: bool
    statuses: dict[str, int]
    correct: dict[str, int]  # {"true" | "false" | "none": records}
    models: list[str]
    problems: list[str]  # the first of them
    problem_count: int
    unavailable: str | None = None  # what is wrong with the file now (gone, replaced ...); None: nothing


class RecordView(_Data, frozen=True, kw_only=True, omit_defaults=True):
    """One whole record of the file (``record``), or why its line is unreadable and the line."""

    index: int
    line: int
    record: dict[str, Any] | None = None
    unreadable: str | None = None
    raw: str | None = None


# ---------------------------------------------------------------------------- the playground


class ProblemView(_Data, frozen=True, kw_only=True):
    id: str
    prompt: str
    answer: str


class Catalog(_Data, frozen=True, kw_only=True):
    """What the playground page offers."""

    problems: list[ProblemView]
    strategies: list[str]
    graders: list[str]
    default_model: str
    save_to: str
    defaults: Any  # PlaygroundSettings with the default model


class Started(_Data, frozen=True, kw_only=True):
    id: str
    trace_id: str


class Saved(_Data, frozen=True, kw_only=True):
    path: str
    trace_id: str


class TurnUsage(UsageView, frozen=True, kw_only=True):
    estimated: bool

    @classmethod
    def of(cls, usage: Usage) -> TurnUsage:
        return cls(**msgspec.structs.asdict(UsageView.of(usage)), estimated=usage.estimated)


class TurnTimings(_Data, frozen=True, kw_only=True):
    ttft_s: float | None
    e2e_s: float
    attempts: int


class Message(_Data, frozen=True, kw_only=True, omit_defaults=True):
    """One message of a playground trace; a reply also has its turn's figures."""

    index: int
    role: str
    content: str
    kind: str | None = None  # the prompt's kind (user messages, replies)
    turn: int | None = None
    finish_reason: str | None = None
    score: float | None = None
    usage: TurnUsage | None = None
    timings: TurnTimings | None = None
    reasoning: str | None = None  # a reply's thinking, apart from its content


class Verdict(_Data, frozen=True, kw_only=True):
    status: str
    final_answer: str | None
    correct: bool | None
    stop_reason: str
    grade_detail: str


class Current(_Data, frozen=True, kw_only=True):
    turn: int
    kind: str
    text: str
    reasoning: str = ""  # its thinking so far


class SessionStatus(_Data, frozen=True, kw_only=True):
    status: str
    verdict: Verdict | None
    error: str | None
    saved: str | None
    current: Current | None = None


class SessionView(_Data, frozen=True, kw_only=True):
    id: str
    trace_id: str
    settings: Any  # the PlaygroundSettings it was started with
    problem: ProblemView
    messages: list[Message]
    status: str
    verdict: Verdict | None
    error: str | None
    saved: str | None
    current: Current | None


class Score(_Data, frozen=True, kw_only=True):
    turn: int
    score: float | None
