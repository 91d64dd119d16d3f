"""The pipeline against llama.cpp's own ``llama-server`` serving SmolLM2-135M-Instruct."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import anyio
import msgspec
import pytest

from open_strawberry.backends import ChatRequest, create_backend
from open_strawberry.backends.capacity import probe_capacity
from open_strawberry.backends.models import parse_model
from open_strawberry.messages import ChatMessage, TraceRecord
from open_strawberry.pipeline import generate
from open_strawberry.traces import export_dpo, export_sft, read_traces
from tests.real.servers import RealServer

# a busy 2-core machine runs a small model slowly: room enough, still bounded
pytestmark = pytest.mark.timeout(900)

SMALL = {"max_tokens": 48, "max_turns": 3, "final_every": 2, "temperature": 0.7}


def check_records(records: list[TraceRecord], *, real_usage: bool = True) -> None:
    """What every trace from a real server must show (``real_usage``: the server reports usage
    in streams, so nothing is estimated; otherwise every count is flagged as estimated)."""
    assert records
    assert [r.error for r in records if r.status == "error"] == []
    for record in records:
        assert record.messages[0].role == "system"  # llama.cpp's template for SmolLM2 has a system role
        for turn, reply in zip(record.turns, [m for m in record.messages if m.role == "assistant"], strict=True):
            assert turn.finish_reason in {"stop", "length"}
            # an empty reply is only one the model really sent: it said it stopped, at zero tokens
            assert reply.content.strip() or (turn.finish_reason == "stop" and turn.usage.output_tokens <= 1)
            assert turn.usage.estimated is not real_usage and turn.usage.input_tokens > 0
            assert turn.timings.ttft_s is not None and turn.timings.ttft_s > 0
            if turn.usage.output_tokens > 2:
                assert turn.timings.chunk_gaps_s  # streamed token by token


async def test_the_server_states_its_slots_and_the_run_uses_them(llamacpp: RealServer) -> None:
    capacity = await probe_capacity(parse_model(llamacpp.model()))
    assert capacity is not None and (capacity.slots, capacity.server, capacity.system_role) == (4, "llama.cpp", True)


@pytest.mark.parametrize("strategy", ["nudge", "verify"])
async def test_generate_with_defaults_writes_real_text(llamacpp: RealServer, tmp_path: Path, strategy: str) -> None:
    with anyio.fail_after(600):
        summary = await generate(problems="builtin:arithmetic:6", model=llamacpp.model(), strategy=strategy,
                                 out=str(tmp_path / "t.jsonl"), verify_every=2 if strategy == "nudge" else 0,
                                 **SMALL)
    records = list(read_traces(summary.out))
    assert len(records) == 6 and summary.written == 6
    check_records(records)
    replies = [m.content for r in records for m in r.messages if m.role == "assistant"]
    assert sum(bool(text.strip()) for text in replies) >= len(replies) * 0.9
    manifest = json.loads(await anyio.Path(summary.manifest).read_text())
    assert manifest["server_capacity"] == summary.server_capacity == "llama.cpp: 4 slots (/props total_slots)"
    assert 1 < summary.peak_calls_in_flight <= 4  # the slots were used, and never more calls than slots
    assert summary.empty_turns <= len(replies) * 0.1
    if strategy == "verify":
        assert any(t.kind == "critique" for r in records for t in r.turns)


async def test_a_turn_streams_with_usage_ttft_and_gaps(llamacpp: RealServer) -> None:
    async with create_backend(llamacpp.model()) as backend:  # type: ignore[attr-defined]
        completion = await backend.complete(ChatRequest(
            system="Answer briefly.", messages=(ChatMessage(role="user", content="Count from 1 to 10."),),
            max_tokens=40, temperature=0.0))
    assert completion.text.strip() and completion.finish_reason in {"stop", "length"}
    assert not completion.usage.estimated and completion.usage.output_tokens > 0
    assert completion.timings.ttft_s and completion.timings.chunk_gaps_s


def test_a_killed_run_resumes_with_every_pair_exactly_once(llamacpp: RealServer, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    command = [sys.executable, "-m", "open_strawberry.cli", "generate", "builtin:letters:8", "--samples", "2",
               "--model", llamacpp.model(), "--out", str(out), "--max-tokens", "32", "--max-turns", "2",
               "--no-progress"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # kill it once two records are written (bounded; the wait on the process wakes early if it ends)
        for _ in range(1500):
            if first.poll() is not None or (out.exists() and out.read_bytes().count(b"\n") >= 2):
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                first.wait(timeout=0.2)
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait()
    written_before = out.read_bytes().count(b"\n")
    second = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stderr[-2000:]
    records = list(read_traces(out))
    pairs = [(r.problem_id, r.sample) for r in records]
    assert len(pairs) == len(set(pairs)) == 16
    assert written_before < 16 or first.returncode == 0
    check_records(records)


def test_bench_closed_loop_and_traces_workload(llamacpp: RealServer, tmp_path: Path) -> None:
    from open_strawberry.cli import main

    assert main(["bench", "--model", llamacpp.model(), "--concurrency", "4", "--requests", "8",
                 "--input-tokens", "64", "--output-tokens", "24", "--out", str(tmp_path / "single")]) == 0
    single = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert single["succeeded"] == 8 and single["failed"] == 0 and single["ttft_ms"]["mean"] > 0
    assert main(["bench", "--model", llamacpp.model(), "--workload", "traces", "--concurrency", "4",
                 "--traces", "4", "--max-turns", "2", "--out", str(tmp_path / "traces")]) == 0
    lines = (tmp_path / "traces" / "requests.jsonl").read_text().splitlines()
    assert len(lines) >= 4
    traces = json.loads((tmp_path / "traces" / "summary.json").read_text())  # the server's own account
    assert traces["server_slots"] >= 1 and 0 < traces["server_busy_share"] <= 1


async def test_exports_of_real_traces_load_in_datasets(llamacpp: RealServer, tmp_path: Path) -> None:
    summary = await generate(problems="builtin:arithmetic:6", model=llamacpp.model(), samples=3,
                             out=str(tmp_path / "t.jsonl"), answer_fallback="last_number", **SMALL)
    records = list(read_traces(summary.out))
    check_records(records)
    assert all(r.correct is not None for r in records if r.final_answer is not None)
    sft = export_sft(summary.out, tmp_path / "sft.jsonl")
    dpo = export_dpo(summary.out, tmp_path / "dpo.jsonl")
    datasets = pytest.importorskip("datasets")
    if sft.written:
        rows = datasets.load_dataset("json", data_files=str(tmp_path / "sft.jsonl"), split="train")
        assert len(rows) == sft.written and rows[0]["messages"][0]["role"] == "system"
    if dpo.written:
        pairs = datasets.load_dataset("json", data_files=str(tmp_path / "dpo.jsonl"), split="train")
        assert set(pairs.column_names) >= {"prompt", "chosen", "rejected"}


def test_the_server_metrics_show_the_slots_were_used(llamacpp: RealServer) -> None:
    with urllib.request.urlopen(llamacpp.url.removesuffix("/v1") + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert "llamacpp:prompt_tokens_total" in metrics
    totals = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
              if line and not line.startswith("#")}
    assert totals["llamacpp:tokens_predicted_total"] > 0
    msgspec.json.encode(totals)  # plain numbers only
