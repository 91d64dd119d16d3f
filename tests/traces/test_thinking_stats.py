"""stats and the run's summary show a reasoning model's thinking: how many of the output
tokens were thinking (estimated where our tokenizer counted), and with prices its share of the
cost. Runs without thinking show nothing new."""

from __future__ import annotations

import io
import json
from pathlib import Path

import msgspec
import pytest
from msgspec import UNSET
from rich.console import Console

from open_strawberry import TraceRecord, Usage
from open_strawberry.cli import main
from open_strawberry.cli.progress import print_summary
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import generate
from open_strawberry.traces.files import read_traces
from open_strawberry.traces.stats import trace_stats
from open_strawberry.traces.tally import Tally, ThinkingTotals
from tests.traces.records import record, some_traces, write


def thought(problem: str, sample: int, *, reasoning: int, output: int, estimated: bool = False) -> TraceRecord:
    plain = record(problem, sample, True, ["Step one."])
    usage = Usage(input_tokens=10, output_tokens=output, reasoning_tokens=reasoning, estimated=estimated)
    return msgspec.structs.replace(plain, usage=usage)


def summary_text(records: list[TraceRecord]) -> str:
    tally = Tally()
    for r in records:
        tally(r)
    summary = tally.summary(written=len(records), out="t.jsonl", manifest="m.json", planned=len(records),
                            resumed=0, elapsed_s=1.0, interrupted=False)
    out = io.StringIO()
    print_summary(summary, console=Console(file=out, width=200))
    return out.getvalue()


def test_stats_count_thinking_tokens_and_their_share_of_the_cost(tmp_path: Path) -> None:
    traces = write(tmp_path / "t.jsonl", [thought("a", 0, reasoning=30, output=40),
                                          thought("b", 0, reasoning=10, output=60), record("c", 0, False, ["s"])])
    stats = trace_stats(traces, prices={"mock:m": (1.0, 2.0)})
    assert stats.output_tokens == 105
    assert stats.thinking == ThinkingTotals(tokens=40, output_tokens=105, estimated=False,
                                            cost=pytest.approx(40 * 2.0 / 1e6))
    assert stats.cost == pytest.approx((30 * 1.0 + 105 * 2.0) / 1e6)  # thinking billed as output: unchanged
    assert trace_stats(traces).thinking == ThinkingTotals(tokens=40, output_tokens=105, estimated=False)  # no cost


def test_stats_say_estimated_where_the_counts_were(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traces = write(tmp_path / "t.jsonl", [thought("a", 0, reasoning=30, output=40, estimated=True),
                                          thought("b", 0, reasoning=10, output=60)])
    assert main(["stats", str(traces), "--price", "mock:m=1,2"]) == 0
    text = capsys.readouterr().out
    assert "thinking tokens" in text and "40 of 100 output tokens (40.0%), estimated" in text
    assert "thinking cost" in text and "$0.0001 of $0.0002 (billed as output)" in text
    assert main(["stats", str(traces), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["thinking"] == {"tokens": 40, "output_tokens": 100, "estimated": True}


def test_stats_of_traces_without_thinking_show_nothing_new(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    traces = some_traces(tmp_path / "t.jsonl")
    assert trace_stats(traces).thinking is UNSET
    assert main(["stats", str(traces), "--price", "mock:m=1,2"]) == 0
    assert "thinking" not in capsys.readouterr().out
    assert main(["stats", str(traces), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {
        "traces", "problems", "statuses", "correct", "graded", "pass_at", "mean_turns", "input_tokens",
        "output_tokens", "cost", "models"}  # models: added by stats' own change, not by thinking


def test_the_run_summary_shows_thinking_tokens_only_when_there_were_some() -> None:
    with_thinking = summary_text([thought("a", 0, reasoning=3, output=4, estimated=True)])
    assert "thinking tokens" in with_thinking and "3 of 4 output tokens (75.0%), estimated" in with_thinking
    plain = [record("a", 0, True, ["s"])]
    assert "thinking" not in summary_text(plain)
    tally = Tally()
    tally(plain[0])
    summary = tally.summary(written=1, out="t", manifest="m", planned=1, resumed=0, elapsed_s=1.0,
                            interrupted=False)
    assert "thinking" not in msgspec.json.decode(msgspec.json.encode(summary))  # the manifest's summary as before


async def test_a_run_on_a_reasoning_model_sums_its_thinking_in_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    async with open_mock_server(MockConfig(thinking="reasoning_content")) as server:
        summary = await generate(problems="builtin:arithmetic:3", model=f"mock:reasoner@{server.url}/v1",
                                 out=str(out), max_turns=3)
    records = list(read_traces(out))
    expected = sum(r.usage.reasoning_tokens or 0 for r in records)
    assert expected > 0
    assert summary.thinking == ThinkingTotals(tokens=expected, output_tokens=summary.output_tokens, estimated=False)
    assert trace_stats(out).thinking == summary.thinking
