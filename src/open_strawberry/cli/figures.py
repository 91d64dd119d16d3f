"""How the command line writes figures: whole numbers and amounts with thousands separators
(``35,295``, ``2,142.41``), money in dollars to four decimals (``$5.3213``, as the web UI
writes it). Cheap to import (no imports at all)."""

from __future__ import annotations

__all__ = ["money"]


def money(dollars: float) -> str:
    """``dollars`` as ``$1,234.5678``; a negative amount as ``-$0.5000``."""
    return f"{'-' if dollars < 0 else ''}${abs(dollars):,.4f}"
