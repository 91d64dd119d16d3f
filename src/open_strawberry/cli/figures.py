"""How the command line writes figures: whole numbers and amounts with thousands separators
(``35,295``, ``2,142.41``), money in dollars to four decimals (``$5.3213``, as the web UI
writes it), the pass rate one way everywhere (:data:`PASS_RATE`, :func:`pass_rate`; see
docs/vocabulary.md). Cheap to import (no imports at all)."""

from __future__ import annotations

__all__ = ["PASS_RATE", "PASS_AT_K", "batch_share", "money", "no_price", "pass_rate"]


def money(dollars: float) -> str:
    """``dollars`` as ``$1,234.5678``; a negative amount as ``-$0.5000``."""
    return f"{'-' if dollars < 0 else ''}${abs(dollars):,.4f}"


def batch_share(batch_tokens: int, tokens: int) -> str:
    """What follows a cost when some tokens went through a batch API (priced at batch prices):
    `` (12,000 of 12,500 tokens at batch prices)``; nothing when none did."""
    return f" ({batch_tokens:,} of {tokens:,} tokens at batch prices)" if batch_tokens else ""


def no_price(models: list[str] | tuple[str, ...]) -> str:
    """The cost row when ``models`` have no price: which, and how to give one."""
    return f"— (no --price for {', '.join(models)}; give --price MODEL=IN,OUT per million tokens)"


PASS_RATE = "pass rate (of graded)"
"""The label of :func:`pass_rate`, in the run summary and in ``stats`` alike."""

PASS_AT_K = "pass@{k} (all samples)"
"""The label of ``stats``' pass@k: over every sample drawn, an ungraded one counting as wrong."""


def pass_rate(correct: int, graded: int) -> str:
    """Correct of graded traces (those with no grade, no final answer or an error, left out),
    as ``77.9% (1,234 of 1,584 graded)``; ``—`` when none was graded."""
    return "—" if not graded else f"{correct / graded:.1%} ({correct:,} of {graded:,} graded)"
