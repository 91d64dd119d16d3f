"""The batch transport: calls gathered into batches, resolved from result lines, resumed from the journal."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import structlog

from open_strawberry.backends.base import ChatRequest
from open_strawberry.backends.batch import BatchBackend, create_batch_backend, request_key, split_batches
from open_strawberry.backends.batch_apis import ROUND_KEY
from open_strawberry.backends.batch_journal import BatchJournal, JournalRequest, Sent
from open_strawberry.errors import ConfigurationError, FatalBackendError, RetryableBackendError
from open_strawberry.messages import ChatMessage
from open_strawberry.mock import MockConfig, MockServer, open_mock_server
from open_strawberry.mock.config import BatchBehaviour
from tests.mock.test_sdk_wire import expected_reply


def ask(question: str, seed: int = 1) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage(role="user", content=question),), seed=seed, max_tokens=256)


def backend_for(server: MockServer, api: str, journal: BatchJournal | None = None) -> BatchBackend:
    model = f"mock:mock-reasoner@{server.openai_base_url}" if api == "openai" else \
        f"mock-anthropic:mock-reasoner@{server.url}"
    return create_batch_backend(model, journal=journal, poll_s=0.01, gather_s=0.05)


async def ask_all(backend: BatchBackend, questions: list[str]) -> dict[str, str]:
    answers: dict[str, str] = {}

    async def one(index: int, question: str) -> None:
        structlog.contextvars.bind_contextvars(trace_id=f"t{index}", actor="generator")
        answers[question] = (await backend.complete(ask(question))).text

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for index, question in enumerate(questions):
                tg.start_soon(one, index, question)
    return answers


def test_split_batches_keeps_each_within_both_limits() -> None:
    lines = [b"x" * 9] * 7  # ten bytes a line, newline included
    assert list(split_batches(lines, max_requests=3, max_bytes=1000)) == [range(0, 3), range(3, 6), range(6, 7)]
    assert list(split_batches(lines, max_requests=100, max_bytes=25)) == [range(i, i + 2) for i in (0, 2, 4)] + [
        range(6, 7)]


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_calls_of_one_moment_go_in_one_batch_and_get_the_synchronous_answers(api: str) -> None:
    questions = [f"What is {n} + {n}?" for n in range(5)]
    async with open_mock_server() as server:
        backend = backend_for(server, api)
        try:
            answers = await ask_all(backend, questions)
        finally:
            await backend.aclose()
    seed = 1 if api == "openai" else None  # Anthropic's API takes no seed
    assert answers == {q: expected_reply(q, seed=seed) for q in questions}
    assert server.batches.statistics() == {"total": 5, "distinct": 5, "batches": 1}
    stats = backend.statistics()
    assert stats.round == 1 and stats.batches == {"ended": 1} and stats.requests["succeeded"] == 5


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_errored_and_expired_lines_raise_retryable_errors_and_the_retry_is_a_new_request(api: str) -> None:
    async with open_mock_server(MockConfig(batch=BatchBehaviour(errored=0.5, expired=0.5))) as server:
        backend = backend_for(server, api)
        try:
            structlog.contextvars.bind_contextvars(trace_id="t1", actor="generator")
            with pytest.raises(RetryableBackendError):
                await backend.complete(ask("What is 2 + 2?"))
            with pytest.raises(RetryableBackendError):  # the retry: sent again under the next attempt's id
                await backend.complete(ask("What is 2 + 2?"))
        finally:
            await backend.aclose()
    assert server.batches.statistics()["distinct"] == 2
    assert sorted(server.batches.submitted) == sorted(c for c in server.batches.submitted if c.startswith("t1-g1-"))


async def test_a_batch_that_fails_validation_is_one_error_naming_the_first_bad_line() -> None:
    async with open_mock_server(MockConfig(batch=BatchBehaviour(invalid=True))) as server:
        for api, where in (("openai", "line 1"), ("anthropic", r"requests\[0\]")):
            backend = backend_for(server, api)
            try:
                with pytest.raises(FatalBackendError, match=f"failed validation: .*{where}"):
                    await backend.complete(ask("What is 2 + 2?"))
            finally:
                await backend.aclose()


async def test_a_rerun_reads_the_journaled_batch_instead_of_sending_again(tmp_path: Path) -> None:
    questions = [f"What is {n} + 1?" for n in range(4)]
    async with open_mock_server() as server:
        journal = BatchJournal(tmp_path / "t.jsonl.batches.jsonl")
        first = backend_for(server, "openai", journal)
        try:
            answers = await ask_all(first, questions)
        finally:
            await first.aclose()
            journal.close()
        journal = BatchJournal(tmp_path / "t.jsonl.batches.jsonl")
        again = backend_for(server, "openai", journal)
        try:
            assert await ask_all(again, [*questions, "What is 9 + 1?"]) == {
                **answers, "What is 9 + 1?": expected_reply("What is 9 + 1?", seed=1)}
        finally:
            await again.aclose()
            journal.close()
    assert server.batches.statistics() == {"total": 5, "distinct": 5, "batches": 2}


async def test_closing_with_calls_waiting_cancels_their_open_batch() -> None:
    async with open_mock_server(MockConfig(batch=BatchBehaviour(delay_s=3600))) as server:
        backend = backend_for(server, "anthropic")
        submitted = anyio.Event()
        submit = backend.api.submit

        async def submit_and_tell(lines: list[bytes], metadata: dict[str, str]) -> str:
            batch_id = await submit(lines, metadata)
            submitted.set()
            return batch_id

        backend.api.submit = submit_and_tell  # type: ignore[method-assign]
        async with anyio.create_task_group() as tg:
            tg.start_soon(backend.complete, ask("What is 2 + 2?"))
            with anyio.fail_after(10):
                await submitted.wait()
            tg.cancel_scope.cancel()
        await backend.aclose()
    (batch,) = server.batches.batches.values()
    assert batch.cancelled


async def test_anthropic_batch_requests_keep_their_cache_breakpoints() -> None:
    async with open_mock_server() as server:
        backend = backend_for(server, "anthropic")
        try:
            request = ChatRequest(system="Be brief.", messages=ask("What is 2 + 2?").messages, max_tokens=256)
            completion = await backend.complete(request)
        finally:
            await backend.aclose()
    assert completion.usage.cache_write_tokens > 0  # the mock cached the prompt up to the breakpoints


def test_providers_without_a_batch_api_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigurationError, match="--batch needs a provider with a batch API.*ollama"):
        create_batch_backend("ollama:llama3.1:8b")


def test_the_journal_ignores_a_torn_last_line_and_knows_what_was_never_confirmed_sent(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.batches.jsonl"
    journal = BatchJournal(path)
    sent = JournalRequest(custom_id="t1-g1-aa-1", key="t1-g1-aa", trace_id="t1", turn=1, kind="g", attempt=1)
    unsent = JournalRequest(custom_id="t2-g1-bb-1", key="t2-g1-bb", trace_id="t2", turn=1, kind="g", attempt=1)
    journal.intend("r1", [sent])
    journal.submitted("r1", "batch_1")
    journal.intend("r2", [unsent])
    journal.close()
    with path.open("ab") as file:
        file.write(b'{"type":"submitted","round":"r2","bat')  # killed mid-write
    again = BatchJournal(path)
    assert again.latest("t1-g1-aa") == Sent(sent, "batch_1")
    assert again.latest("t2-g1-bb") == Sent(unsent, None)
    assert again.latest("t3-g1-cc") is None
    assert again.members("batch_1") == ["t1-g1-aa-1"] and again.batches == ["batch_1"]
    again.close()


def journal_unsent(backend: BatchBackend, journal: BatchJournal, request: ChatRequest) -> str:
    """Write ``request`` down as round r0 of trace t1, as a run killed before it was sent (or
    before the journal heard back) leaves it; its custom id."""
    structlog.contextvars.bind_contextvars(trace_id="t1", actor="generator")
    key = request_key(backend.api.encode(request), request)[0]
    journal.intend("r0", [JournalRequest(custom_id=f"{key}-1", key=key, trace_id="t1", turn=1, kind="g", attempt=1)])
    return f"{key}-1"


@pytest.mark.parametrize("taken", [False, True])
async def test_a_request_journaled_before_a_kill_is_sent_once_under_its_journaled_id(tmp_path: Path,
                                                                                     taken: bool) -> None:
    """Killed before the send (``taken`` false), or after the provider took the batch but before
    the journal heard back (found again by the round in its metadata)."""
    async with open_mock_server() as server:
        journal = BatchJournal(tmp_path / "j.jsonl")
        backend = backend_for(server, "openai", journal)
        request = ask("What is 2 + 2?")
        custom_id = journal_unsent(backend, journal, request)
        if taken:
            await backend.api.submit([backend.api.line(custom_id, backend.api.encode(request))], {ROUND_KEY: "r0"})
        try:
            assert (await backend.complete(request)).text == expected_reply("What is 2 + 2?", seed=1)
        finally:
            await backend.aclose()
            journal.close()
    assert dict(server.batches.submitted) == {custom_id: 1}
    assert BatchJournal(tmp_path / "j.jsonl").unconfirmed() == ([] if taken else ["r0"])
