"""``open-strawberry stats``: what a traces file holds, per problem and overall.

pass@k uses the unbiased estimator of Chen et al. (2021): for a problem with ``n`` samples of
which ``c`` are correct, ``pass@k = 1 - C(n - c, k) / C(n, k)``, averaged over the problems
with at least ``k`` samples. The records are folded through the one tally of the package
(:class:`~open_strawberry.traces.tally.Tally`); memory grows with the number of problems, not
of traces.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from math import comb

import msgspec
from msgspec import UNSET, UnsetType

from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import TraceRecord
from open_strawberry.traces.files import read_traces
from open_strawberry.traces.tally import Prices, ProblemStats, Tally, ThinkingTotals, priced_name

__all__ = ["ProblemStats", "ThinkingTotals", "TraceStats", "pass_at_k", "priced_name", "trace_stats"]


def pass_at_k(samples: int, correct: int, k: int) -> float:
    """The chance that at least one of ``k`` samples drawn from ``samples`` is correct."""
    if k > samples:
        raise ValueError(f"k={k} is more than the {samples} samples")
    if samples - correct < k:
        return 1.0
    return 1.0 - comb(samples - correct, k) / comb(samples, k)


class TraceStats(msgspec.Struct, frozen=True, kw_only=True):
    traces: int
    problems: int
    statuses: dict[str, int]
    correct: int
    graded: int
    pass_at: dict[int, float]  # {k: pass@k over the problems with at least k samples}
    mean_turns: float
    input_tokens: int
    output_tokens: int
    cost: float | None  # in the prices' currency, when every model seen has a price
    per_problem: list[ProblemStats]
    models: list[str] = msgspec.field(default_factory=list)  # the priced names of the models seen
    thinking: ThinkingTotals | UnsetType = UNSET  # UNSET (left out): no record had thinking
    # input and output tokens that went through a batch API (generate --batch), priced at batch
    # prices; UNSET (left out): no record had any
    batch_tokens: int | UnsetType = UNSET
    # the models that prices were asked for and none was given (left out: none such, or no prices asked)
    unpriced: list[str] | UnsetType = UNSET


def trace_stats(records: Iterable[TraceRecord] | str | os.PathLike[str], *, ks: Iterable[int] = (1, 5, 10),
                prices: Prices | None = None, batch_prices: Prices | None = None) -> TraceStats:
    """Aggregate ``records`` (or a traces file). ``prices`` maps a model (``provider:model``,
    without any ``@base_url``) to (input, output) prices per million tokens; cost is None
    unless every model has one. The tokens of calls that went through a batch API
    (``batch_tokens``) are priced at the model's ``batch_prices``, half its price where that
    names none (:meth:`~open_strawberry.traces.tally.Tally.cost`). ``thinking`` says how many
    output tokens were thinking, and their share of the cost; it is left out when no record
    had thinking.

    A trace without a grade (no final answer, or an error) counts as a sample that is not
    correct: pass rates are over every sample drawn. A ``k`` below 1 is a ConfigurationError.
    """
    ks = sorted(set(ks))
    if bad := [k for k in ks if k < 1]:
        raise ConfigurationError(f"pass@k needs k of at least 1, got {bad[0]}")
    if isinstance(records, (str, os.PathLike)):
        records = read_traces(records)
    tally = Tally(per_problem=True, latencies=0)
    for record in records:
        tally(record)
    problems = tally.problems or {}
    pass_at = {}
    for k in ks:
        eligible = [p for p in problems.values() if p.samples >= k]
        if eligible:
            pass_at[k] = sum(pass_at_k(p.samples, p.correct, k) for p in eligible) / len(eligible)
    return TraceStats(
        traces=tally.records, problems=len(problems), statuses=dict(tally.statuses), correct=tally.correct,
        graded=tally.graded, pass_at=pass_at, mean_turns=tally.turns / tally.records if tally.records else 0.0,
        input_tokens=tally.input_tokens, output_tokens=tally.output_tokens,
        cost=tally.cost(prices, batch_prices), per_problem=sorted(problems.values(), key=lambda p: p.problem_id),
        models=sorted(tally.tokens_by_model),
        thinking=tally.thinking(prices, batch_prices),
        batch_tokens=tally.batch_tokens or UNSET,
        unpriced=(tally.unpriced(prices, batch_prices) or UNSET) if prices is not None or batch_prices is not None
        else UNSET,
    )
