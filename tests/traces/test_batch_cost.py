"""The cost at batch prices: the tokens of calls that went through a batch API (``generate
--batch``) are marked in the records and priced at the model's batch price, half its price
unless one is given; the other calls of the same records at the synchronous price."""

from __future__ import annotations

import io
import json
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from open_strawberry import ChatMessage, Problem, TraceRecord, TraceState, TurnRecord, Usage
from open_strawberry.cli import main
from open_strawberry.cli.progress import print_summary
from open_strawberry.messages import json_encoder, record_decoder
from open_strawberry.traces.stats import trace_stats
from open_strawberry.traces.tally import CostTotals, RunSummary, Tally
from tests.traces.records import record, write

PRICE = {"mock:m": (2.0, 8.0)}


def calls(*usages: Usage, model: str = "mock:m", problem: str = "p") -> TraceRecord:
    """A trace of one turn a call, each with its ``usage`` (batched or not)."""
    state = TraceState(trace_id=problem, problem=Problem(id=problem, prompt="?", answer="1"), model=model)
    for usage in usages:
        state = state.with_turn(ChatMessage(role="assistant", content="step"), TurnRecord(kind="nudge", usage=usage))
    return TraceRecord.from_state(state, status="final", final_answer="1", correct=True)


def tally_of(*records: TraceRecord) -> Tally:
    tally = Tally()
    for r in records:
        tally(r)
    return tally


def test_a_batched_call_carries_its_tokens_as_batched_and_a_trace_adds_them_up() -> None:
    batched = Usage(input_tokens=100, output_tokens=40).batched()
    assert (batched.batch_input_tokens, batched.batch_output_tokens) == (100, 40)
    total = calls(batched, Usage(input_tokens=10, output_tokens=5), batched).usage
    assert (total.input_tokens, total.batch_input_tokens, total.output_tokens, total.batch_output_tokens) == \
        (210, 200, 85, 80)
    line = json_encoder.encode(calls(batched))
    assert b'"batch_input_tokens":100,"batch_output_tokens":40' in line
    assert record_decoder.decode(line).usage == batched
    plain = json_encoder.encode(calls(Usage(input_tokens=1)))
    assert b"batch" not in plain  # records of runs without --batch are as they always were


def test_batched_tokens_cost_half_the_price_unless_a_batch_price_is_given() -> None:
    synchronous = tally_of(calls(Usage(input_tokens=1000, output_tokens=500)))
    batched = tally_of(calls(Usage(input_tokens=1000, output_tokens=500).batched()))
    assert synchronous.cost(PRICE) == pytest.approx((1000 * 2 + 500 * 8) / 1e6)
    assert batched.cost(PRICE) == pytest.approx((1000 * 2 + 500 * 8) / 2e6)
    assert batched.cost(PRICE, {"mock:m": (0.5, 1.0)}) == pytest.approx((1000 * 0.5 + 500 * 1.0) / 1e6)
    assert batched.cost(None, {"mock:m": (0.5, 1.0)}) == pytest.approx((1000 * 0.5 + 500 * 1.0) / 1e6)
    assert synchronous.cost(None, {"mock:m": (0.5, 1.0)}) is None  # its synchronous tokens have no price
    assert synchronous.unpriced(None, {"mock:m": (0.5, 1.0)}) == ["mock:m"]


def test_mixed_records_are_priced_per_call() -> None:
    # a trace whose first call went in a batch and whose second (a verifier's, say) did not; and a plain one
    mixed = calls(Usage(input_tokens=1000, output_tokens=100).batched(), Usage(input_tokens=200, output_tokens=50))
    plain = calls(Usage(input_tokens=300, output_tokens=30), problem="q")
    tally = tally_of(mixed, plain)
    expected = (1000 * 1 + 100 * 4 + 200 * 2 + 50 * 8 + 300 * 2 + 30 * 8) / 1e6
    assert tally.cost(PRICE) == pytest.approx(expected)
    assert tally.cost_totals(PRICE) == CostTotals(total=pytest.approx(expected), tokens=1680, batch_tokens=1100)


def test_a_thinking_share_of_batched_output_is_priced_with_it() -> None:
    usage = Usage(input_tokens=0, output_tokens=100, reasoning_tokens=40).batched()
    thinking = tally_of(calls(usage)).thinking(PRICE)
    assert not isinstance(thinking, msgspec.UnsetType)
    assert thinking.cost == pytest.approx(40 * 4.0 / 1e6)


def test_the_synchronous_cost_is_what_it_always_was_to_the_last_digit() -> None:
    records = [record("a", 0, True, ["s"] * 7), record("b", 0, False, ["s"] * 3)]
    prices = {"mock:m": (0.15, 0.6)}
    tally = tally_of(*records)
    assert tally.cost(prices) == (100 * 0.15 + 50 * 0.6) / 1e6


def test_stats_show_the_cost_at_batch_prices_and_how_many_tokens_had_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traces = write(tmp_path / "t.jsonl", [calls(Usage(input_tokens=1000, output_tokens=500).batched(),
                                                Usage(input_tokens=100, output_tokens=50))])
    stats = trace_stats(traces, prices=PRICE)
    assert stats.batch_tokens == 1500
    assert stats.cost == pytest.approx((1000 * 1 + 500 * 4 + 100 * 2 + 50 * 8) / 1e6)
    assert main(["stats", str(traces), "--price", "mock:m=2,8"]) == 0
    assert "$0.0036 (1,500 of 1,650 tokens at batch prices)" in capsys.readouterr().out
    assert main(["stats", str(traces), "--price", "mock:m=2,8", "--batch-price", "mock:m=0,0", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["cost"] == pytest.approx((100 * 2 + 50 * 8) / 1e6) and payload["batch_tokens"] == 1500
    assert main(["stats", str(traces), "--batch-price", "mock:m=1"]) == 1
    assert "--batch-price 'mock:m=1': write MODEL=INPUT,OUTPUT" in capsys.readouterr().err


def test_stats_name_only_the_models_left_without_a_price(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # all of a's tokens went through a batch API and it has a batch price; b has none at all
    traces = write(tmp_path / "t.jsonl", [calls(Usage(input_tokens=100, output_tokens=10).batched(), model="openai:a",
                                                problem="p1"),
                                          calls(Usage(input_tokens=100, output_tokens=10), model="openai:b",
                                                problem="p2")])
    assert trace_stats(traces, batch_prices={"openai:a": (1.0, 2.0)}).unpriced == ["openai:b"]
    assert main(["stats", str(traces), "--batch-price", "openai:a=1,2"]) == 0
    out = capsys.readouterr().out
    assert "no --price for openai:b;" in out and "openai:a, openai:b" not in out
    assert main(["stats", str(traces), "--json"]) == 0
    assert "unpriced" not in json.loads(capsys.readouterr().out)  # no price asked: nothing is missing


def test_the_run_summary_shows_the_cost_only_when_given_prices() -> None:
    tally = tally_of(calls(Usage(input_tokens=1000, output_tokens=500).batched()))

    def summary(prices: dict[str, tuple[float, float]] | None = None) -> RunSummary:
        return tally.summary(written=1, prices=prices, out="t.jsonl", manifest="m.json", planned=1, resumed=0,
                             elapsed_s=1.0, interrupted=False)

    def shown(prices: dict[str, tuple[float, float]] | None = None) -> str:
        out = io.StringIO()
        print_summary(summary(prices), console=Console(file=out, width=200))
        return out.getvalue()

    assert "cost" not in shown()
    assert "cost" not in msgspec.json.decode(msgspec.json.encode(summary()))  # the manifest's summary as before
    assert "$0.0030 (1,500 of 1,500 tokens at batch prices)" in shown(PRICE)
    assert "no --price for mock:m" in shown({"other:x": (1.0, 1.0)})
