"""What every runner does before its first call and after its last: the manifest it writes, the
pairs it makes, and the extra observers ``generate`` hands each written record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import Problem, TraceRecord, TraceState, record_decoder
from open_strawberry.mock import MockServer, open_mock_server
from open_strawberry.pipeline import GenerateConfig, Progress, generate
from open_strawberry.pipeline.preflight import claim_run
from open_strawberry.traces.lock import locked_traces_file

START_KEYS = {"command", "config", "problems", "resumed_records", "samples", "server_capacity", "started_at",
              "versions"}
VERSIONS = {"python", "open-strawberry", "anyio", "aiohttp", "msgspec", "structlog", "openai", "anthropic"}


def read(path: str) -> list[TraceRecord]:
    return [record_decoder.decode(line) for line in Path(path).read_bytes().splitlines()]


def config(server: MockServer, tmp_path: Path, **options: Any) -> GenerateConfig:
    return GenerateConfig(**{"problems": "builtin:mixed:6", "model": f"mock:reasoner@{server.url}/v1",
                             "out": str(tmp_path / "traces.jsonl"), "samples": 2, "max_traces": 4, **options})


async def test_the_manifest_is_written_at_the_start_and_at_the_finish_with_the_same_keys(
        mock_server: MockServer, tmp_path: Path) -> None:
    manifest = tmp_path / "traces.jsonl.manifest.json"
    at_start: list[dict[str, Any]] = []

    def progress(_: Progress) -> None:
        if not at_start:
            at_start.append(json.loads(manifest.read_text()))

    summary = await generate(config(mock_server, tmp_path), on_progress=progress, progress_every_s=0.01,
                             command=["generate", "--api-key", "sk-secret-0123456789abcdef"])
    assert set(at_start[0]) == START_KEYS
    assert set(at_start[0]["versions"]) == VERSIONS
    assert (at_start[0]["problems"], at_start[0]["samples"], at_start[0]["resumed_records"]) == (6, 2, 0)
    finished = json.loads(manifest.read_text())
    assert set(finished) == START_KEYS | {"finished_at", "summary"}
    assert finished["summary"]["written"] == summary.written == 12
    assert "sk-secret-0123456789abcdef" not in manifest.read_text()  # redacted, at the start and the finish
    assert "sk-secret-0123456789abcdef" not in json.dumps(at_start[0])
    again = await generate(config(mock_server, tmp_path))
    assert json.loads(manifest.read_text())["resumed_records"] == again.resumed == 12


async def test_an_observer_given_to_generate_sees_every_written_record(mock_server: MockServer,
                                                                        tmp_path: Path) -> None:
    seen: list[TraceRecord] = []
    summary = await generate(config(mock_server, tmp_path), observers=[seen.append])
    written = read(summary.out)
    assert len(seen) == summary.written == 12
    assert sorted(r.trace_id for r in seen) == sorted(r.trace_id for r in written)


def record_line(problem_id: str, sample: int, status: str = "final") -> bytes:
    state = TraceState(trace_id=f"{problem_id}-{sample}", problem=Problem(id=problem_id, prompt="q", answer="1"),
                       sample=sample)
    return msgspec.json.encode(TraceRecord.from_state(state, status=status)) + b"\n"


def claimed(out: Path, **options: Any) -> GenerateConfig:
    return GenerateConfig(problems="builtin:mixed:2", out=str(out), samples=2, **options)


async def test_a_claimed_file_is_refused_to_a_second_run_until_the_first_lets_go(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    async with claim_run(claimed(out), problems=2, command=["first", "run"]):
        with pytest.raises(ConfigurationError, match=r"being written by another run \(pid \d+: first run\)"):
            async with claim_run(claimed(out), problems=2, command=["second"]):
                pass
    async with claim_run(claimed(out), problems=2, command=["third"]) as claim:
        assert claim.done == set() and claim.resumed == 0


async def test_the_claim_cuts_a_torn_last_line_and_names_what_is_done(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    whole = record_line("a", 0) + record_line("a", 1)
    out.write_bytes(whole + record_line("b", 0)[:20])
    async with claim_run(claimed(out), problems=2) as claim:
        assert claim.done == {("a", 0), ("a", 1)} and claim.resumed == 2
        problems = [Problem(id=name, prompt="q", answer="1") for name in ("a", "b")]
        assert [(p.id, s) for p, s in claim.pairs(lambda: iter(problems))] == [("b", 0), ("b", 1)]
        assert [(p.id, s) for p, s in claim.pairs(lambda: iter(problems), keep=lambda _, s: s == 1)] == [("b", 1)]
    assert out.read_bytes() == whole


async def test_leftovers_merged_while_claiming_are_counted_and_failed_ones_retried(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    out.write_bytes(record_line("a", 0) + record_line("a", 1, status="error"))
    leftovers = [record_line("b", 0), record_line("b", 1, status="error")]

    def merge(done: set[tuple[str, int]], observe: Callable[[TraceRecord], None]) -> None:
        with out.open("ab") as file:
            for line in leftovers:
                record = record_decoder.decode(line)
                file.write(line)
                done.add((record.problem_id, record.sample))
                observe(record)

    seen: list[TraceRecord] = []
    async with claim_run(claimed(out, retry_failed=True), problems=2, merge_leftovers=merge,
                         observe_merged=seen.append) as claim:
        assert claim.done == {("a", 0), ("b", 0)}  # the failed pairs, both, are made again
        assert (claim.resumed, claim.merged) == (1, 1)
        assert [(r.problem_id, r.sample) for r in seen] == [("b", 0)]
    assert [(r.problem_id, r.sample) for r in read(str(tmp_path / "traces.jsonl.failed.jsonl"))] == [("a", 1),
                                                                                                        ("b", 1)]


async def test_a_directory_as_the_traces_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"is a directory: name a traces file"):
        async with claim_run(claimed(tmp_path), problems=2):
            pass


async def test_the_lock_and_its_refusal_never_show_a_url_password(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    command = ["generate", "--model", "vllm:q@http://me:hunter2-secret@127.0.0.1:9/v1"]
    async with claim_run(claimed(out), problems=2, command=command):
        assert "hunter2-secret" not in (tmp_path / "traces.jsonl.lock").read_text()
        with pytest.raises(ConfigurationError, match=r"being written by another run") as refused:
            async with claim_run(claimed(out), problems=2, command=["second"]):
                pass
        assert "hunter2-secret" not in str(refused.value) and "http://***@127.0.0.1:9/v1" in str(refused.value)


def test_a_lock_file_written_unmasked_by_an_older_version_is_masked_in_the_refusal(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    with locked_traces_file(out, holder="x") as lock:
        lock.write_text("pid 1: generate --model vllm:q@http://me:hunter2-secret@h:9/v1")
        with pytest.raises(ConfigurationError, match="another run") as refused, locked_traces_file(out):
            pass
    assert "hunter2-secret" not in str(refused.value)


async def test_a_resume_with_settings_that_change_the_records_is_refused_before_any_call(
        mock_server: MockServer, tmp_path: Path) -> None:
    first = await generate(config(mock_server, tmp_path, samples=1))
    traces, manifest = await anyio.Path(first.out).read_bytes(), await anyio.Path(first.manifest).read_bytes()
    served = mock_server.requests
    with pytest.raises(ConfigurationError) as refused:
        await generate(config(mock_server, tmp_path, samples=2, strategy="verify", max_turns=6))
    message = str(refused.value)
    assert "strategy 'nudge' there, 'verify' now" in message and "max_turns 12 there, 6 now" in message
    assert "another --out" in message and "\n" not in message
    assert mock_server.requests == served
    assert await anyio.Path(first.out).read_bytes() == traces
    assert await anyio.Path(first.manifest).read_bytes() == manifest
    with pytest.raises(ConfigurationError, match=r"model 'mock:reasoner@.*' there, 'mock:other@.*' now"):
        await generate(config(mock_server, tmp_path, model=f"mock:other@{mock_server.url}/v1"))


async def test_a_resume_that_changes_only_speed_the_server_or_the_pairs_goes_on(mock_server: MockServer,
                                                                                tmp_path: Path) -> None:
    await generate(config(mock_server, tmp_path, samples=1))
    async with open_mock_server() as elsewhere:  # the same model, served at another address
        summary = await generate(config(elsewhere, tmp_path, samples=2, max_traces=1, max_concurrency=1, rpm=6000,
                                        timeout_s=30, call_timeout_s=30, retry_failed=True, max_failed_share=0.5))
    assert (summary.resumed, summary.written) == (6, 6)


async def test_a_file_without_a_manifest_or_with_an_older_one_resumes(mock_server: MockServer,
                                                                      tmp_path: Path) -> None:
    first = await generate(config(mock_server, tmp_path, samples=1))
    manifest = anyio.Path(first.manifest)
    older = json.loads(await manifest.read_text())
    del older["config"]["seed"]  # an older manifest that did not name this setting
    await manifest.write_text(json.dumps(older))
    summary = await generate(config(mock_server, tmp_path, samples=2, seed=7))
    assert (summary.resumed, summary.written) == (6, 6)
    await manifest.unlink()
    summary = await generate(config(mock_server, tmp_path, samples=3, strategy="verify"))
    assert (summary.resumed, summary.written) == (12, 6)
