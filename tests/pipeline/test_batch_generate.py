"""generate with batch=True against the mock's batch APIs: the same traces as a synchronous run."""

from __future__ import annotations

from pathlib import Path

from open_strawberry.cli.status import run_status
from open_strawberry.messages import TraceRecord
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.mock.config import BatchBehaviour
from open_strawberry.pipeline import GenerateConfig, Progress, generate
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
