"""What a run does with the options that decide how it ends: each test fails if the option is
not passed on to where it acts (found by a mutation audit: these survived the whole suite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

from open_strawberry.backends.base import ChatRequest, DeltaCallback
from open_strawberry.cli import main
from open_strawberry.errors import BadRequestError
from open_strawberry.messages import Completion
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.mock.faults import FaultRates
from open_strawberry.pipeline import generate


@contextmanager
def mock_url(config: MockConfig) -> Iterator[str]:
    """The mock, served from a thread of its own, for commands run here (they start their own loop)."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(open_mock_server(config)) as server:
        yield server.openai_base_url


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("share", "status"), [(None, 3), ("1.0", 0)])
def test_a_run_whose_traces_fail_exits_3_unless_max_failed_share_allows_it(tmp_path: Path, share: str | None,
                                                                         status: int) -> None:
    failing = MockConfig(ttft_s=0.0, tokens_per_s=0.0, faults=FaultRates(http_500=1.0))  # every attempt: a 500
    with mock_url(failing) as url:
        command = ["generate", "builtin:letters:3", "--model", f"mock:r@{url}", "--out", str(tmp_path / "t.jsonl"),
                   "--no-progress", *(["--max-failed-share", share] if share else [])]
        assert main(command) == status
    assert [r["status"] for r in records(tmp_path / "t.jsonl")] == ["error"] * 3


def test_last_call_and_answer_fallback_reach_the_traces(tmp_path: Path) -> None:
    never_sure = MockConfig(ttft_s=0.0, tokens_per_s=0.0, confident_after=1000)  # never gives a final answer
    out = tmp_path / "t.jsonl"
    with mock_url(never_sure) as url:
        assert main(["generate", "builtin:arithmetic:4", "--model", f"mock:r@{url}", "--out", str(out),
                     "--max-turns", "2", "--final-every", "0", "--last-call", "--answer-fallback", "last_number",
                     "--no-progress", "--max-failed-share", "1"]) == 0
    written = records(out)
    assert all(r["turns"][-1]["kind"] == "last_call" for r in written)  # type: ignore[index]
    assert all(str(r["grade_detail"]).startswith("fallback") for r in written if r["final_answer"] is not None)
    assert any(r["correct"] is not None for r in written)  # graded by the last number, not left ungraded

    with mock_url(never_sure) as url:
        assert main(["generate", "builtin:arithmetic:4", "--model", f"mock:r@{url}", "--out", str(tmp_path / "u.jsonl"),
                     "--max-turns", "2", "--final-every", "0", "--no-progress"]) == 0
    assert all(r["turns"][-1]["kind"] != "last_call" and r["correct"] is None for r in records(tmp_path / "u.jsonl"))


class RefusesEverything:
    """A backend whose every call is refused as a bad request, as a server that rejects a setting would."""

    provider = "test"
    model = "refused"
    calls = 0

    async def complete(self, request: ChatRequest, *, on_delta: DeltaCallback | None = None,
                       stream: bool = True) -> Completion:
        self.calls += 1
        raise BadRequestError("unsupported parameter: temperature", status=400)

    async def aclose(self) -> None:
        pass


async def test_every_trace_refused_as_a_bad_request_stops_admission(tmp_path: Path) -> None:
    backend = RefusesEverything()
    summary = await generate(problems="builtin:letters:40", backend=backend, out=str(tmp_path / "t.jsonl"),
                             max_traces=2)
    assert summary.stopped is not None and "every trace so far was refused" in summary.stopped
    assert 8 <= summary.written < 40 and backend.calls == summary.written
