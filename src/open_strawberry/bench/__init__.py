"""``open-strawberry bench``: latency benchmarking of LLM servers (see :mod:`.metrics` for definitions)."""

from open_strawberry.bench.metrics import RequestRecord, describe, summarize
from open_strawberry.bench.runner import BenchPlan, ClientHealth, run_bench

__all__ = ["BenchPlan", "ClientHealth", "RequestRecord", "describe", "run_bench", "summarize"]
