"""What every runner does before its first call and after its last: the manifest it writes, the
pairs it makes, and the extra observers ``generate`` hands each written record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from open_strawberry.messages import TraceRecord, record_decoder
from open_strawberry.mock import MockServer
from open_strawberry.pipeline import GenerateConfig, Progress, generate

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
