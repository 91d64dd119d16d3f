"""Latency metrics of a benchmark, defined once (and named as other tools name them).

Per request (or per turn, for the traces workload), all from the moment the request was sent:

* ``ttft`` (time to first token): to the first content delta; for a server that sends a
  reasoning model's thinking, to its first token of either kind, thinking or answer (what the
  server's latency is). vLLM, guidellm and AIPerf call it TTFT too.
* ``ttfa`` (time to first answer token): to the first token of the answer, after any
  thinking: what a user of a reasoning model waits before the reply starts. Only for servers
  that send thinking (:attr:`~open_strawberry.messages.Timings.first_answer_s`): a request
  without thinking has none (``ttfa_s`` left out of its line, ``ttfa_ms`` out of the summary
  when no request had thinking; there it equals ``ttft``); ``None`` for a reply with thinking
  and no answer.
* ``itl`` (inter-chunk latency): each gap between consecutive content chunks, per chunk, not
  per token: vLLM's ITL.
* ``tpot`` (time per output token): ``(e2e - ttft) / (output_tokens - 1)``: vLLM's TPOT,
  which guidellm and AIPerf call ITL (:func:`tpot_s`; none for fewer than two tokens).
* ``e2e`` (end to end): to the last byte: vLLM's E2EL.

Prompt tokens as the server counted them: ``input_tokens_mean`` per successful request, and
``cached_share``, the share of them it read from its prompt cache (0 where it does not say).

Throughputs divide by the measured span (first send to last finish). Goodput counts the
successful requests that meet every SLO given (``ttft``, ``tpot``, ``e2e`` in ms). Latency
statistics cover successful requests; errors are counted apart, by type. A successful reply
with no content (no text, no thinking) stays a success (the server did answer, and its
latency counts) but is counted in ``empty`` too, and ``bench`` warns of it: a server that
answers nothing fast looks fast. Percentiles
interpolate linearly between the closest ranks
(:func:`open_strawberry.runtime.statistics.percentile`, numpy's default).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import msgspec
from msgspec import UNSET, UnsetType

from open_strawberry.runtime.statistics import percentile

__all__ = ["DEFAULT_PERCENTILES", "RequestRecord", "describe", "summarize", "tpot_s"]

DEFAULT_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def tpot_s(ttft_s: float | None, e2e_s: float | None, output_tokens: int) -> float | None:
    """Time per output token after the first: ``(e2e - ttft) / (output_tokens - 1)``; None
    without a first token or with fewer than two tokens."""
    if ttft_s is None or e2e_s is None or output_tokens < 2:
        return None
    return (e2e_s - ttft_s) / (output_tokens - 1)


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One benchmark request (times in seconds from the start of the run)."""

    index: int
    scheduled_s: float
    sent_s: float
    finished_s: float
    ok: bool
    error: str | None = None
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: tuple[float, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # of the input tokens, those the server said it read from its prompt cache
    warmup: bool = False
    ttfa_s: float | UnsetType | None = UNSET  # UNSET (left out): the reply had no thinking; None: no answer
    empty: bool | UnsetType = UNSET  # True for a success with no content (left out of the JSON otherwise)

    @property
    def tpot_s(self) -> float | None:
        return tpot_s(self.ttft_s, self.e2e_s, self.output_tokens)


def describe(values: Iterable[float], percentiles: Sequence[float] = DEFAULT_PERCENTILES,
             scale: float = 1000.0) -> dict[str, float | int | None]:
    """count, mean, median, std, min, max and ``pNN`` of ``values`` (seconds, shown times ``scale``)."""
    ordered = sorted(v * scale for v in values)
    if not ordered:
        return {"count": 0, "mean": None, "median": None, "std": None, "min": None, "max": None,
                **{_name(p): None for p in percentiles}}
    return {"count": len(ordered), "mean": statistics.fmean(ordered), "median": statistics.median(ordered),
            "std": statistics.pstdev(ordered), "min": ordered[0], "max": ordered[-1],
            **{_name(p): percentile(ordered, p) for p in percentiles}}


def _name(pct: float) -> str:
    return f"p{pct:g}".replace(".", "_")  # p50, p99, p99_9


def summarize(records: Sequence[RequestRecord], *, percentiles: Sequence[float] = DEFAULT_PERCENTILES,
              slo_ms: Mapping[str, float] | None = None) -> dict[str, object]:
    """The summary of a run: latency statistics in ms (``ttfa_ms`` only when some request had
    thinking), throughputs, goodput, errors."""
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    span = (max(r.finished_s for r in measured) - min(r.sent_s for r in measured)) if measured else 0.0
    slo = dict(slo_ms or {})
    good = [r for r in ok if _meets(r, slo)]
    per_second = (lambda n: n / span) if span > 0 else (lambda n: 0.0)
    output_tokens = sum(r.output_tokens for r in ok)
    input_tokens = sum(r.input_tokens for r in ok)
    answers = [r.ttfa_s for r in ok if r.ttfa_s is not UNSET]  # only requests that thought
    ttfa = {"ttfa_ms": describe((t for t in answers if t is not None), percentiles)} if answers else {}
    return {
        "requests": len(measured),
        "succeeded": len(ok),
        "failed": len(measured) - len(ok),
        "empty": sum(1 for r in ok if r.empty),
        "errors": dict(Counter(r.error or "unknown" for r in measured if not r.ok)),
        "duration_s": span,
        "request_throughput": per_second(len(ok)),
        "output_token_throughput": per_second(output_tokens),
        "total_token_throughput": per_second(input_tokens + output_tokens),
        "input_tokens_mean": input_tokens / len(ok) if ok else None,
        "cached_share": sum(r.cached_tokens for r in ok) / input_tokens if input_tokens else None,
        "goodput": per_second(len(good)) if slo else None,
        "slo_ms": slo or None,
        "ttft_ms": describe((r.ttft_s for r in ok if r.ttft_s is not None), percentiles),
        **ttfa,
        "tpot_ms": describe((t for r in ok if (t := r.tpot_s) is not None), percentiles),
        "itl_ms": describe((gap for r in ok for gap in r.itl_s), percentiles),
        "e2e_ms": describe((r.e2e_s for r in ok if r.e2e_s is not None), percentiles),
        "e2e_failed_ms": describe((r.finished_s - r.sent_s for r in measured if not r.ok), percentiles),
        "schedule_lag_ms": describe((r.sent_s - r.scheduled_s for r in measured), percentiles),
    }


def _meets(record: RequestRecord, slo_ms: Mapping[str, float]) -> bool:
    values = {"ttft": record.ttft_s, "tpot": record.tpot_s, "e2e": record.e2e_s}
    for metric, limit in slo_ms.items():
        value = values[metric]
        if value is not None and value * 1000 > limit:
            return False
    return True
