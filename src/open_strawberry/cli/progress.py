"""The terminal side of a run: a live progress display and the end-of-run summary (rich)."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from msgspec import UnsetType
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from open_strawberry.cli.figures import PASS_RATE, batch_share, money, no_price, pass_rate

if TYPE_CHECKING:
    from open_strawberry.pipeline import Progress as RunProgress
    from open_strawberry.pipeline import RunSummary
    from open_strawberry.traces.tally import CostTotals, ThinkingTotals

__all__ = ["ProgressDisplay", "print_summary", "thinking_rows"]


class ProgressDisplay:
    """Traces done of total with an ETA, and a line of live figures: correct so far, turns
    per second, tokens in and out, 429s and retries, calls in flight. Writes to ``file``
    (stderr by default) and only when it is a terminal, unless ``force``."""

    def __init__(self, title: str, *, file: IO[str] | None = None, force: bool = False) -> None:
        self.console = Console(file=file, stderr=file is None)
        self.enabled = force or self.console.is_terminal
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("traces"), TimeRemainingColumn(), console=self.console)
        self._task: TaskID = self._bar.add_task(escape(title), total=None)  # a title is never markup
        self._line = Text("starting...")
        self._live = Live(Group(self._bar, self._line), console=self.console, refresh_per_second=4,
                          transient=False)

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            self._live.__exit__(None, None, None)

    def update(self, progress: RunProgress) -> None:
        if not self.enabled:
            return
        self._bar.update(self._task, total=progress.total, completed=progress.done)
        correct = f"{progress.correct}/{progress.graded} correct" if progress.graded else "no grades yet"
        self._line.plain = (
            f"{correct} · {progress.failed} failed · {progress.in_flight} in flight · "
            f"{progress.turns_per_s:.1f} turns/s · tokens {progress.input_tokens:,} in / "
            f"{progress.output_tokens:,} out · calls in flight {progress.calls_in_flight} · "
            f"429s {progress.rate_limited} · retries {progress.retries}"
            + (f" · resumed {progress.resumed}" if progress.resumed else "")
            + (f" · EMPTY replies {progress.empty_turns}" if progress.empty_turns else "")
            + (f" · STOPPED: {progress.stopped}" if progress.stopped else "")
            + (f"\nWAITING {progress.waiting}" if progress.waiting else "")
            + (_batch_line(progress) if progress.batch_round else "")
        )


def _batch_line(progress: RunProgress) -> str:
    """A --batch run's round, its batches and requests by state, and the time spent waiting."""
    batches = ", ".join(f"{count} {state}" for state, count in sorted(progress.batches.items()))
    requests = ", ".join(f"{count} {state}" for state, count in progress.batch_requests.items() if count)
    return (f"\nbatch round {progress.batch_round} · batches: {batches or 'none'} · requests: {requests or 'none'}"
            f" · waiting {progress.batch_waiting_s:,.0f} s")


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.0f} ms"


def thinking_rows(thinking: ThinkingTotals | UnsetType, cost: float | None = None) -> list[tuple[str, str]]:
    """The rows a summary adds for a reasoning model's thinking: how many of the output tokens
    were thinking (``estimated`` where our tokenizer counted them) and, given the ``cost`` of
    all tokens, the thinking's share of it; none at all when no record had thinking."""
    if isinstance(thinking, UnsetType):
        return []
    share = f" ({thinking.tokens / thinking.output_tokens:.1%})" if thinking.output_tokens else ""
    rows = [("thinking tokens", f"{thinking.tokens:,} of {thinking.output_tokens:,} output tokens{share}"
             + (", estimated" if thinking.estimated else ""))]
    if thinking.cost is not None:
        of = f" of {money(cost)}" if cost is not None else ""
        rows.append(("thinking cost", f"{money(thinking.cost)}{of} (billed as output)"))
    return rows


def _cost_rows(cost: CostTotals | UnsetType) -> list[tuple[str, str]]:
    """The summary's cost row, when the run was given prices: the cost (and how many tokens were
    priced at batch prices), or which models have no price."""
    if isinstance(cost, UnsetType):
        return []
    if cost.total is None:
        return [("cost", no_price(cost.unpriced))]
    return [("cost", money(cost.total) + batch_share(cost.batch_tokens, cost.tokens))]


def print_summary(summary: RunSummary, *, title: str = "run", console: Console | None = None) -> None:
    """A table of what the run did and where its files are."""
    console = console or Console()
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    statuses = ", ".join(f"{name} {count}" for name, count in sorted(summary.statuses.items())) or "—"
    rows = [
        ("traces written", f"{summary.written:,} (planned {summary.planned:,}, resumed {summary.resumed:,})"),
        ("status", statuses),
        (PASS_RATE, pass_rate(summary.correct, summary.graded)),
        ("mean turns", "—" if summary.mean_turns is None else f"{summary.mean_turns:.2f}"),
        ("empty replies", f"{summary.empty_turns:,}" + (
            " (the server finished turns with no text: check the model and its chat template)"
            if summary.empty_turns else "")),
        ("concurrency", f"up to {summary.peak_calls_in_flight} calls at once"
         + (f"; server: {summary.server_capacity}" if summary.server_capacity else "")),
        ("tokens", f"{summary.input_tokens:,} in / {summary.output_tokens:,} out"),
        *_cost_rows(summary.cost),
        *thinking_rows(summary.thinking, None if isinstance(summary.cost, UnsetType) else summary.cost.total),
        ("time to first token", f"p50 {_ms(summary.ttft_p50_s)} · p90 {_ms(summary.ttft_p90_s)} · "
                                f"p99 {_ms(summary.ttft_p99_s)}"),
        ("turn latency", f"p50 {_ms(summary.turn_p50_s)} · p99 {_ms(summary.turn_p99_s)}"),
        ("elapsed", f"{summary.elapsed_s:.1f} s" + (" (interrupted)" if summary.interrupted else "")),
        *([("stopped early", summary.stopped)] if summary.stopped else []),
        ("traces file", summary.out),
        ("manifest", summary.manifest),
    ]
    for name, value in rows:
        table.add_row(name, escape(value))  # paths and reasons as they are, never markup
    console.print(table)
