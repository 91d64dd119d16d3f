"""generate with batch=True against the mock's batch APIs: the same traces as a synchronous run."""

from __future__ import annotations

from pathlib import Path

import pytest
from msgspec import UnsetType
from structlog.testing import capture_logs

from open_strawberry.cli.status import run_status
from open_strawberry.messages import TraceRecord
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.mock.config import BatchBehaviour
from open_strawberry.pipeline import GenerateConfig, Progress, generate
from open_strawberry.traces.stats import trace_stats
from tests.pipeline.test_generate import read


def config(server_url: str, out: Path, **options: object) -> GenerateConfig:
    return GenerateConfig(**{"problems": "builtin:mixed:100", "samples": 2, "model": f"mock:reasoner@{server_url}/v1",
                             "out": str(out), "max_traces": 256, "max_turns": 4, "final_every": 2,
                             "batch_poll_s": 0.01, **options})


def outcomes(records: list[TraceRecord]) -> dict[tuple[str, int], tuple[str, str | None, list[str]]]:
    return {(r.problem_id, r.sample): (r.status, r.final_answer, [m.content for m in r.messages]) for r in records}


async def test_a_batch_run_of_200_traces_ends_with_the_statuses_and_answers_of_the_synchronous_run(
        tmp_path: Path) -> None:
    progress: list[Progress] = []
    async with open_mock_server() as server:
        await generate(config(server.url, tmp_path / "sync.jsonl"))
        summary = await generate(config(server.url, tmp_path / "batch.jsonl", batch=True),
                                 on_progress=progress.append, progress_every_s=0.05)
    synchronous, batched = read(str(tmp_path / "sync.jsonl")), read(summary.out)
    assert len(batched) == 200
    assert outcomes(batched) == outcomes(synchronous)
    turns = sum(len(r.turns) for r in batched)
    assert all(t.timings.ttft_s is not None for r in batched for t in r.turns)  # the time each batch took
    assert server.batches.statistics()["total"] == server.batches.statistics()["distinct"] == turns
    last = progress[-1]
    assert last.batch_round >= 4 and last.batch_requests["succeeded"] == turns
    assert last.batches == {"ended": server.batches.statistics()["batches"]}
    assert (tmp_path / "batch.jsonl.batches.jsonl").exists()


async def test_errored_and_expired_requests_are_sent_again_in_a_later_round_and_counted(tmp_path: Path) -> None:
    progress: list[Progress] = []
    behaviour = BatchBehaviour(errored=0.15, expired=0.1)
    async with open_mock_server(MockConfig(batch=behaviour)) as server:
        await generate(config(server.url, tmp_path / "sync.jsonl", problems="builtin:mixed:20"))
        summary = await generate(config(server.url, tmp_path / "batch.jsonl", problems="builtin:mixed:20", batch=True),
                                 on_progress=progress.append, progress_every_s=0.05)
    batched = read(summary.out)
    assert outcomes(batched) == outcomes(read(str(tmp_path / "sync.jsonl")))
    counts = progress[-1].batch_requests
    assert counts["errored"] > 0 and counts["expired"] > 0
    sent = server.batches.statistics()
    assert sent["total"] == sent["distinct"] == counts["succeeded"] + counts["errored"] + counts["expired"]
    assert counts["succeeded"] == sum(len(r.turns) for r in batched)
    retried = sum(len(t.timings.failed_attempts) for r in batched for t in r.turns)
    assert retried == counts["errored"] + counts["expired"]  # each failed line was one retried attempt


async def test_a_run_whose_every_request_fails_stops_with_exit_code_3(tmp_path: Path) -> None:
    async with open_mock_server(MockConfig(batch=BatchBehaviour(errored=1.0))) as server:
        summary = await generate(config(server.url, tmp_path / "batch.jsonl", problems="builtin:mixed:5", batch=True))
    records = read(summary.out)
    assert {r.status for r in records} == {"error"}
    assert run_status(summary, max_failed_share=0.1) == 3


async def test_a_batch_run_costs_half_the_synchronous_run_for_the_same_usage(tmp_path: Path) -> None:
    prices = {"mock:reasoner": (3.0, 15.0)}
    async with open_mock_server() as server:
        synchronous = await generate(config(server.url, tmp_path / "sync.jsonl", problems="builtin:mixed:10"),
                                     prices=prices)
        batched = await generate(config(server.url, tmp_path / "batch.jsonl", problems="builtin:mixed:10", batch=True),
                                 prices=prices)
    assert (batched.input_tokens, batched.output_tokens) == (synchronous.input_tokens, synchronous.output_tokens)
    assert not isinstance(synchronous.cost, UnsetType) and not isinstance(batched.cost, UnsetType)
    assert synchronous.cost.total is not None and synchronous.cost.batch_tokens == 0
    assert batched.cost.total == pytest.approx(synchronous.cost.total / 2)
    assert batched.cost.batch_tokens == batched.cost.tokens == batched.input_tokens + batched.output_tokens
    assert trace_stats(batched.out, prices=prices).cost == pytest.approx(synchronous.cost.total / 2)
    assert trace_stats(synchronous.out, prices=prices).cost == pytest.approx(synchronous.cost.total)
    explicit = trace_stats(batched.out, prices=prices, batch_prices={"mock:reasoner": (1.0, 1.0)})
    assert explicit.cost == pytest.approx((batched.input_tokens + batched.output_tokens) / 1e6)


async def test_a_verifier_model_with_a_batch_api_goes_in_batches_too(tmp_path: Path) -> None:
    progress: list[Progress] = []
    async with open_mock_server() as solver, open_mock_server() as critic:
        summary = await generate(config(solver.url, tmp_path / "batch.jsonl", problems="builtin:mixed:10",
                                        strategy="verify", batch=True, verifier_model=f"mock:critic@{critic.url}/v1"),
                                 on_progress=progress.append, progress_every_s=0.05)
    records = read(summary.out)
    turns = sum(len(r.turns) for r in records)
    critiques = critic.batches.statistics()["total"]
    assert solver.batches.statistics()["total"] == turns and critiques > 0
    assert (solver.requests, critic.requests) == (turns, critiques)  # each call went in a batch, none alone
    assert all(r.usage.batch_input_tokens == r.usage.input_tokens for r in records)  # the critiques' tokens too
    assert progress[-1].batch_requests["succeeded"] == turns + critiques
    assert progress[-1].batches == {"ended": solver.batches.statistics()["batches"] + critic.batches.statistics()[
        "batches"]}


async def test_a_verifier_model_without_a_batch_api_is_called_one_by_one_at_the_synchronous_price(
        tmp_path: Path) -> None:
    async with open_mock_server() as solver, open_mock_server() as critic:
        with capture_logs() as logs:
            summary = await generate(config(solver.url, tmp_path / "batch.jsonl", problems="builtin:mixed:10",
                                            strategy="verify", batch=True,
                                            verifier_model=f"vllm:critic@{critic.url}/v1"),
                                     prices={"mock:reasoner": (2.0, 8.0)})
        assert critic.requests > 0 and critic.batches.statistics()["total"] == 0
    assert any(entry["event"] == "verifier_not_batched" for entry in logs)
    records = read(summary.out)
    turns = [t.usage for r in records for t in r.turns]
    assert all(u.batch_input_tokens == u.input_tokens for u in turns)
    batched_in = sum(u.input_tokens for u in turns)
    batched_out = sum(u.output_tokens for u in turns)
    critique_in, critique_out = summary.input_tokens - batched_in, summary.output_tokens - batched_out
    assert critique_in > 0
    assert not isinstance(summary.cost, UnsetType)
    # the generator's calls at half price, the critiques (in the trace's total) at the full one
    expected = (batched_in * 1.0 + batched_out * 4.0 + critique_in * 2.0 + critique_out * 8.0) / 1e6
    assert summary.cost.total == pytest.approx(expected)
    assert summary.cost.batch_tokens == batched_in + batched_out


async def test_a_rerun_answers_a_batched_verifiers_calls_from_the_journal_without_sending_them_again(
        tmp_path: Path) -> None:
    out = tmp_path / "batch.jsonl"
    async with open_mock_server() as solver, open_mock_server() as critic:
        run = config(solver.url, out, problems="builtin:mixed:6", strategy="verify", batch=True,
                     verifier_model=f"mock:critic@{critic.url}/v1")
        first = read(str((await generate(run)).out))
        sent = (solver.batches.statistics()["total"], critic.batches.statistics()["total"])
        for path in (out, tmp_path / "batch.jsonl.manifest.json"):
            path.unlink()  # the traces are lost; the journal beside them is kept
        again = read(str((await generate(run)).out))
        assert (solver.batches.statistics()["total"], critic.batches.statistics()["total"]) == sent
    assert outcomes(again) == outcomes(first)
