"""The one tally of trace records: what a run's summary, ``open-strawberry stats`` and the
live monitor count, each by feeding records to a :class:`Tally`.

A run feeds it the records its sink writes (an observer of the sink) and reads the summary at
the end; ``stats`` folds a traces file through one (``per_problem=True``, for pass@k); the UI's
monitor holds one as an observer of the run's records (failures by error type, cost). The
one naming rule for prices is :func:`priced_name`, the one cost formula :meth:`Tally.cost`:
the tokens of calls that went through a batch API (``generate --batch``:
:attr:`~open_strawberry.messages.Usage.batch_input_tokens` and ``batch_output_tokens``) at the
model's batch price, half its price unless one is given, the others at its price.
Thinking (:attr:`~open_strawberry.messages.Usage.reasoning_tokens`) is counted apart, as a share
of the output tokens it is part of (:class:`ThinkingTotals`), only when some record has it.
Memory is flat in the number of records: totals, at most ``latencies`` latencies, and (only
with ``per_problem``) one small entry per problem.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from open_strawberry.backends.models import parse_model
from open_strawberry.errors import ModelSpecError
from open_strawberry.messages import TraceRecord
from open_strawberry.runtime.statistics import percentile

__all__ = ["RUN_FATAL_ERRORS", "CostTotals", "ModelTokens", "Prices", "ProblemStats", "RunSummary", "Tally",
           "ThinkingTotals", "priced_name"]

Prices = Mapping[str, tuple[float, float]]  # {priced name: (input, output) per million tokens}

# errors that every other trace would meet too: the run stops admitting when one is recorded
RUN_FATAL_ERRORS = frozenset({"AuthenticationError", "ModelNotFoundError", "BackendClosedError"})
# an error that may be one trace's fault, unless it is all the run has produced so far
SYSTEMATIC_AFTER = 8  # records, all failed with the same BadRequestError


def priced_name(model: str) -> str:
    """The name prices go by: ``provider:model``, without any ``@base_url``."""
    try:
        return str(parse_model(model))
    except ModelSpecError:
        return model  # not a model string of ours (a record from another tool): as it is


class ProblemStats(msgspec.Struct, kw_only=True):
    problem_id: str
    samples: int = 0
    correct: int = 0
    graded: int = 0
    turns: int = 0
    tokens: int = 0

    @property
    def pass_rate(self) -> float:
        return self.correct / self.samples if self.samples else 0.0


@dataclass
class ModelTokens:
    """The tokens of one model's records: input, output, thinking (part of the output), and how
    many of the input and output tokens went through a batch API (billed at its batch price)."""

    input: int = 0
    output: int = 0
    thinking: int = 0
    batch_input: int = 0
    batch_output: int = 0


class CostTotals(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the records cost at the prices given: ``total`` in the prices' currency (None:
    ``unpriced`` names the models that have no price), and ``batch_tokens``, how many of the
    ``tokens`` (input and output) went through a batch API, priced at its batch price (0, left
    out: none did)."""

    total: float | None
    tokens: int
    batch_tokens: int = 0
    unpriced: tuple[str, ...] = ()


class ThinkingTotals(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How many of the output tokens were a reasoning model's thinking (``estimated``: some
    record's counts came from our tokenizer, the server gave none), and with prices what
    they cost: thinking is billed as output, so ``cost`` is the thinking's share of the
    output's cost (None, left out: not every model has a price)."""

    tokens: int
    output_tokens: int  # all output tokens, thinking included
    estimated: bool
    cost: float | None = None


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What a run did, at its end (printed, and kept in its manifest): what it wrote and
    planned, grades, tokens (``thinking``: a reasoning model's share of the output, left out
    when no record thought), latencies, and why it stopped early, if it did."""

    out: str
    manifest: str
    planned: int
    resumed: int
    written: int
    statuses: dict[str, int]
    correct: int
    graded: int
    pass_rate: float | None
    mean_turns: float | None
    input_tokens: int
    output_tokens: int
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    turn_p50_s: float | None
    turn_p99_s: float | None
    elapsed_s: float
    interrupted: bool
    empty_turns: int = 0
    failed: int = 0
    stopped: str | None = None  # why the run stopped admitting traces early, if it did
    server_capacity: str | None = None  # what the model server said it can take (local servers)
    peak_calls_in_flight: int = 0
    actor_queue_ms: dict[str, dict[str, float]] = {}  # {actor: wait in its inbox: mean, p50, p99 (ms), handled}
    thinking: ThinkingTotals | UnsetType = UNSET  # UNSET (left out): no record had thinking
    cost: CostTotals | UnsetType = UNSET  # UNSET (left out): the run was given no prices


class Tally:
    """Running totals of the records fed to it (``tally(record)``), and the watch for errors
    no trace can get past: ``on_fatal`` is called once, with the reason, when one shows (and
    ``stopped`` keeps it). ``per_problem`` keeps :class:`ProblemStats` by problem id."""

    def __init__(self, on_fatal: Callable[[str], None] | None = None, *, per_problem: bool = False,
                 latencies: int = 100_000) -> None:
        self.records = 0
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # {error type: records}
        self.correct = self.graded = self.turns = self.input_tokens = self.output_tokens = 0
        self.empty_turns = 0
        self.reasoning_tokens = 0
        self.reasoning_seen = self.reasoning_estimated = False  # a record had thinking; its count was estimated
        self.tokens_by_model: dict[str, ModelTokens] = {}  # {priced name: its tokens}
        self.problems: dict[str, ProblemStats] | None = {} if per_problem else None
        self.ttfts: list[float] = []
        self.turn_times: list[float] = []
        self.latencies = latencies
        self.stopped: str | None = None
        self.on_fatal = on_fatal
        self._bad_requests = 0
        self._names: dict[str, str] = {}  # {model string: priced name}

    def _watch(self, record: TraceRecord) -> None:
        error = record.error
        if record.status != "error" or error is None:
            self._bad_requests = -1  # something succeeded: bad requests are the traces' own
            return
        reason = None
        if error.type in RUN_FATAL_ERRORS:
            reason = f"{error.type}: {error.message}"
        elif error.type == "BadRequestError" and self._bad_requests >= 0:
            self._bad_requests += 1
            if self._bad_requests >= SYSTEMATIC_AFTER:
                reason = f"every trace so far was refused ({error.type}: {error.message})"
        if reason is not None and self.stopped is None:
            self.stopped = reason
            if self.on_fatal is not None:
                self.on_fatal(reason)

    def __call__(self, record: TraceRecord) -> None:
        self._watch(record)
        self.records += 1
        self.statuses[record.status] += 1
        if record.error is not None:
            self.errors[record.error.type] += 1
        self.empty_turns += sum(1 for m in record.messages if m.role == "assistant" and not m.content.strip())
        if record.correct is not None:
            self.graded += 1
            self.correct += record.correct
        self.turns += len(record.turns)
        usage = record.usage
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        name = self._names.get(record.model)
        if name is None:
            name = self._names[record.model] = priced_name(record.model)
        counts = self.tokens_by_model.get(name)
        if counts is None:
            counts = self.tokens_by_model[name] = ModelTokens()
        counts.input += usage.input_tokens
        counts.output += usage.output_tokens
        counts.batch_input += usage.batch_input_tokens or 0
        counts.batch_output += usage.batch_output_tokens or 0
        if usage.reasoning_tokens is not UNSET:
            self.reasoning_seen = True
            self.reasoning_estimated |= usage.estimated
            self.reasoning_tokens += usage.reasoning_tokens
            counts.thinking += usage.reasoning_tokens
        if self.problems is not None:
            self._count_problem(record)
        if len(self.ttfts) < self.latencies:  # enough for percentiles; memory stays flat
            for turn in record.turns:
                if turn.timings.ttft_s is not None:
                    self.ttfts.append(turn.timings.ttft_s)
                self.turn_times.append(turn.timings.e2e_s)

    def _count_problem(self, record: TraceRecord) -> None:
        assert self.problems is not None
        stats = self.problems.get(record.problem_id)
        if stats is None:
            stats = self.problems[record.problem_id] = ProblemStats(problem_id=record.problem_id)
        stats.samples += 1
        stats.correct += record.correct is True
        stats.graded += record.correct is not None
        stats.turns += len(record.turns)
        stats.tokens += record.usage.total_tokens

    @property
    def batch_tokens(self) -> int:
        """The input and output tokens that went through a batch API."""
        return sum(t.batch_input + t.batch_output for t in self.tokens_by_model.values())

    def unpriced(self, prices: Prices | None, batch_prices: Prices | None = None) -> list[str]:
        """The models seen that :meth:`cost` has no price for: a model needs a price in
        ``prices``, or, when all its tokens went through a batch API, one in ``batch_prices``."""
        return [m for m, t in self.tokens_by_model.items() if _model_cost(m, t, prices, batch_prices) is None]

    def cost(self, prices: Prices | None, batch_prices: Prices | None = None) -> float | None:
        """The cost of the records, from ``prices`` ({priced name: (input, output) per million
        tokens}): the tokens that went through a batch API at the model's ``batch_prices``
        (where it has none there, half its price), the others at its price. None unless every
        model seen has a price (:meth:`unpriced`; or no record was seen)."""
        costs = self._costs(prices, batch_prices)
        return None if costs is None else sum(c.total for c in costs)

    def thinking(self, prices: Prices | None = None, batch_prices: Prices | None = None) -> ThinkingTotals | UnsetType:
        """The thinking in the records' output tokens, with its cost when :meth:`cost` has
        one (billed as output: each model's thinking is its share of that model's output
        cost); UNSET when no record had thinking."""
        if not self.reasoning_seen:
            return UNSET
        costs = self._costs(prices, batch_prices)
        return ThinkingTotals(tokens=self.reasoning_tokens, output_tokens=self.output_tokens,
                              estimated=self.reasoning_estimated,
                              cost=None if costs is None else sum(c.thinking for c in costs))

    def _costs(self, prices: Prices | None, batch_prices: Prices | None) -> list[_Cost] | None:
        """Each model's cost; None when a model has no price, or no record was seen."""
        costs = []
        for model, tokens in self.tokens_by_model.items():
            cost = _model_cost(model, tokens, prices, batch_prices)
            if cost is None:
                return None
            costs.append(cost)
        return costs or None

    def cost_totals(self, prices: Prices | None, batch_prices: Prices | None = None) -> CostTotals:
        """:meth:`cost` with what it is over: the tokens, those at batch prices, the models with no price."""
        return CostTotals(total=self.cost(prices, batch_prices), tokens=self.input_tokens + self.output_tokens,
                          batch_tokens=self.batch_tokens, unpriced=tuple(self.unpriced(prices, batch_prices)))

    def summary(self, *, written: int, prices: Prices | None = None, batch_prices: Prices | None = None,
                **rest: Any) -> RunSummary:
        """The run's summary: the figures of this tally over ``written`` records, and ``rest``
        (where the run wrote, what it planned, how long it took: what only the run knows).
        With ``prices`` (or ``batch_prices``), its cost (:meth:`cost_totals`), and the thinking's."""
        priced = prices is not None or batch_prices is not None
        return RunSummary(
            written=written, statuses=dict(self.statuses), correct=self.correct, graded=self.graded,
            pass_rate=self.correct / self.graded if self.graded else None,
            mean_turns=self.turns / written if written else None,
            input_tokens=self.input_tokens, output_tokens=self.output_tokens,
            ttft_p50_s=percentile(self.ttfts, 50), ttft_p90_s=percentile(self.ttfts, 90),
            ttft_p99_s=percentile(self.ttfts, 99), turn_p50_s=percentile(self.turn_times, 50),
            turn_p99_s=percentile(self.turn_times, 99), empty_turns=self.empty_turns,
            failed=self.statuses["error"], thinking=self.thinking(prices, batch_prices),
            cost=self.cost_totals(prices, batch_prices) if priced else UNSET, **rest)


@dataclass(frozen=True)
class _Cost:
    total: float
    thinking: float  # the thinking's share of the output's cost


def _model_cost(model: str, tokens: ModelTokens, prices: Prices | None, batch_prices: Prices | None) -> _Cost | None:
    """What ``tokens`` of ``model`` cost: those that went through a batch API at its batch price
    (given, else half its price), the others at its price; None when a price it needs is missing
    (a model with no batched tokens needs its price, as it always did)."""
    price = prices.get(model) if prices is not None else None
    batch = batch_prices.get(model) if batch_prices is not None else None
    if batch is None and price is not None:
        batch = (price[0] / 2, price[1] / 2)
    batched = tokens.batch_input > 0 or tokens.batch_output > 0
    synchronous = not batched or tokens.input > tokens.batch_input or tokens.output > tokens.batch_output
    if (synchronous and price is None) or (batched and batch is None):
        return None
    if not batched:  # the synchronous formula as it always was, to the last digit
        assert price is not None
        return _Cost((tokens.input * price[0] + tokens.output * price[1]) / 1e6, tokens.thinking * price[1] / 1e6)
    price, batch = price or (0.0, 0.0), batch or (0.0, 0.0)
    output = (tokens.output - tokens.batch_output) * price[1] + tokens.batch_output * batch[1]
    total = ((tokens.input - tokens.batch_input) * price[0] + tokens.batch_input * batch[0] + output) / 1e6
    return _Cost(total, output / 1e6 * tokens.thinking / tokens.output if tokens.output else 0.0)
