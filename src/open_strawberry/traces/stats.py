"""``open-strawberry stats``: what a traces file holds, per problem and overall.

pass@k uses the unbiased estimator of Chen et al. (2021): for a problem with ``n`` samples of
which ``c`` are correct, ``pass@k = 1 - C(n - c, k) / C(n, k)``, averaged over the problems
with at least ``k`` samples. Memory grows with the number of problems, not of traces.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from math import comb

import msgspec

from open_strawberry.backends.models import parse_model
from open_strawberry.errors import ConfigurationError, ModelSpecError
from open_strawberry.messages import TraceRecord
from open_strawberry.traces.files import read_traces

__all__ = ["ProblemStats", "TraceStats", "pass_at_k", "trace_stats"]


def priced_name(model: str) -> str:
    """The name prices go by: ``provider:model``, without any ``@base_url``."""
    try:
        return str(parse_model(model))
    except ModelSpecError:
        return model  # not a model string of ours (a record from another tool): as it is


def pass_at_k(samples: int, correct: int, k: int) -> float:
    """The chance that at least one of ``k`` samples drawn from ``samples`` is correct."""
    if k > samples:
        raise ValueError(f"k={k} is more than the {samples} samples")
    if samples - correct < k:
        return 1.0
    return 1.0 - comb(samples - correct, k) / comb(samples, k)


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


def trace_stats(records: Iterable[TraceRecord] | str | os.PathLike[str], *, ks: Iterable[int] = (1, 5, 10),
                prices: Mapping[str, tuple[float, float]] | None = None) -> TraceStats:
    """Aggregate ``records`` (or a traces file). ``prices`` maps a model (``provider:model``,
    without any ``@base_url``) to (input, output) prices per million tokens; cost is None
    unless every model has one.

    A trace without a grade (no final answer, or an error) counts as a sample that is not
    correct: pass rates are over every sample drawn. A ``k`` below 1 is a ConfigurationError.
    """
    ks = sorted(set(ks))
    if bad := [k for k in ks if k < 1]:
        raise ConfigurationError(f"pass@k needs k of at least 1, got {bad[0]}")
    if isinstance(records, (str, os.PathLike)):
        records = read_traces(records)
    problems: dict[str, ProblemStats] = {}
    statuses: Counter[str] = Counter()
    tokens_by_model: dict[str, list[int]] = {}  # {model: [input, output]}
    traces = turns = 0
    for record in records:
        traces += 1
        turns += len(record.turns)
        statuses[record.status] += 1
        stats = problems.get(record.problem_id)
        if stats is None:
            stats = problems[record.problem_id] = ProblemStats(problem_id=record.problem_id)
        stats.samples += 1
        stats.correct += record.correct is True
        stats.graded += record.correct is not None
        stats.turns += len(record.turns)
        stats.tokens += record.usage.total_tokens
        counts = tokens_by_model.setdefault(priced_name(record.model), [0, 0])
        counts[0] += record.usage.input_tokens
        counts[1] += record.usage.output_tokens
    pass_at = {}
    for k in ks:
        eligible = [p for p in problems.values() if p.samples >= k]
        if eligible:
            pass_at[k] = sum(pass_at_k(p.samples, p.correct, k) for p in eligible) / len(eligible)
    cost = None
    if prices is not None and tokens_by_model and all(model in prices for model in tokens_by_model):
        cost = sum((i * prices[m][0] + o * prices[m][1]) / 1e6 for m, (i, o) in tokens_by_model.items())
    return TraceStats(
        traces=traces, problems=len(problems), statuses=dict(statuses),
        correct=sum(p.correct for p in problems.values()), graded=sum(p.graded for p in problems.values()),
        pass_at=pass_at, mean_turns=turns / traces if traces else 0.0,
        input_tokens=sum(c[0] for c in tokens_by_model.values()),
        output_tokens=sum(c[1] for c in tokens_by_model.values()),
        cost=cost, per_problem=sorted(problems.values(), key=lambda p: p.problem_id),
    )
