"""The official SDKs' batch methods against the mock: proof that it speaks both batch APIs."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.mock.config import BatchBehaviour
from tests.mock.test_sdk_wire import QUESTION, expected_reply


def openai_line(custom_id: str, question: str = QUESTION, seed: int = 1) -> bytes:
    body = {"model": "mock-reasoner", "messages": [{"role": "user", "content": question}], "seed": seed}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": body}).encode()


def anthropic_request(custom_id: str, question: str = QUESTION) -> dict[str, object]:
    return {"custom_id": custom_id, "params": {
        "model": "mock-reasoner", "max_tokens": 256,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": question}]}}


async def openai_batch(client: openai.AsyncOpenAI, lines: list[bytes]) -> str:
    uploaded = await client.files.create(file=("in.jsonl", b"\n".join(lines)), purpose="batch")
    batch = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                        completion_window="24h", metadata={"run": "test"})
    return batch.id


async def test_openai_sdk_runs_a_batch_and_reads_its_output_file() -> None:
    async with open_mock_server() as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        batch_id = await openai_batch(client, [openai_line("a-1", seed=1), openai_line("b-1", seed=2)])
        batch = await client.batches.retrieve(batch_id)
        assert batch.status == "completed"
        assert batch.request_counts is not None and batch.request_counts.completed == 2
        assert batch.output_file_id is not None and batch.error_file_id is None
        content = await client.files.content(batch.output_file_id)
    lines = {line["custom_id"]: line for line in map(json.loads, content.text.splitlines())}
    assert lines["a-1"]["response"]["status_code"] == 200
    assert lines["a-1"]["response"]["body"]["choices"][0]["message"]["content"] == expected_reply(seed=1)
    assert lines["b-1"]["response"]["body"]["choices"][0]["message"]["content"] == expected_reply(seed=2)
    assert server.batches.statistics() == {"total": 2, "distinct": 2, "batches": 1}


async def test_openai_batch_is_in_progress_until_its_delay_and_cancel_ends_it() -> None:
    async with open_mock_server(MockConfig(batch=BatchBehaviour(delay_s=3600))) as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        batch_id = await openai_batch(client, [openai_line("a-1")])
        assert (await client.batches.retrieve(batch_id)).status == "in_progress"
        cancelled = await client.batches.cancel(batch_id)
        assert cancelled.status == "cancelled"
        assert cancelled.output_file_id is None and cancelled.error_file_id is not None
        errors = (await client.files.content(cancelled.error_file_id)).text
    assert json.loads(errors)["error"]["code"] == "batch_cancelled"


async def test_openai_failed_and_expired_requests_go_to_the_error_file() -> None:
    behaviour = BatchBehaviour(errored=0.5, expired=0.5)
    async with open_mock_server(MockConfig(batch=behaviour)) as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        batch = await client.batches.retrieve(await openai_batch(client, [openai_line(f"r-{i}") for i in range(20)]))
        assert batch.output_file_id is None  # every request failed: no output file
        assert batch.error_file_id is not None
        lines = [json.loads(line) for line in (await client.files.content(batch.error_file_id)).text.splitlines()]
    expired = [line for line in lines if line["error"] is not None]
    errored = [line for line in lines if line["response"] is not None]
    assert batch.status == "expired"
    assert {line["error"]["code"] for line in expired} == {"batch_expired"}
    assert {line["response"]["status_code"] for line in errored} == {500}
    assert len(expired) + len(errored) == 20 and expired and errored


@pytest.mark.parametrize(("line", "problem"), [
    (b'{"custom_id": "a b", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", '
     b'"messages": []}}', "custom_id 'a b'"),
    (b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}', "line 2"),
])
async def test_openai_batch_that_fails_validation_names_the_bad_line(line: bytes, problem: str) -> None:
    async with open_mock_server() as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        batch = await client.batches.retrieve(await openai_batch(client, [openai_line("ok"), line]))
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data is not None
    assert problem in (batch.errors.data[0].message or "") and batch.errors.data[0].line == 2
    assert server.batches.statistics()["total"] == 0


async def test_anthropic_sdk_runs_a_batch_and_reads_its_results() -> None:
    async with open_mock_server() as server, anthropic.AsyncAnthropic(
            base_url=server.url, api_key="test", max_retries=0) as client:
        batch = await client.messages.batches.create(
            requests=[anthropic_request("a-1"), anthropic_request("b-1")])  # type: ignore[list-item]
        batch = await client.messages.batches.retrieve(batch.id)
        assert batch.processing_status == "ended" and batch.request_counts.succeeded == 2
        results = {item.custom_id: item.result async for item in await client.messages.batches.results(batch.id)}
    assert set(results) == {"a-1", "b-1"}
    first = results["a-1"]
    assert first.type == "succeeded"
    assert first.message.content[0].text == expected_reply(system="Be brief.")  # type: ignore[union-attr]
    assert first.message.usage.cache_creation_input_tokens  # cache_control kept in batch params
    assert server.batches.statistics()["distinct"] == 2


async def test_anthropic_errored_expired_and_canceled_results() -> None:
    async with open_mock_server(MockConfig(batch=BatchBehaviour(errored=0.5, expired=0.5))) as server, \
            anthropic.AsyncAnthropic(base_url=server.url, api_key="test", max_retries=0) as client:
        batch = await client.messages.batches.create(
            requests=[anthropic_request(f"r-{i}") for i in range(20)])  # type: ignore[misc]
        results = [item.result.type async for item in await client.messages.batches.results(batch.id)]
    assert set(results) == {"errored", "expired"} and len(results) == 20
    async with open_mock_server(MockConfig(batch=BatchBehaviour(delay_s=3600))) as server, \
            anthropic.AsyncAnthropic(base_url=server.url, api_key="test", max_retries=0) as client:
        batch = await client.messages.batches.create(requests=[anthropic_request("a")])  # type: ignore[list-item]
        assert batch.processing_status == "in_progress"
        await client.messages.batches.cancel(batch.id)
        results = [item.result.type async for item in await client.messages.batches.results(batch.id)]
    assert results == ["canceled"]


async def test_anthropic_batch_that_fails_validation_is_a_400_naming_the_request() -> None:
    bad = anthropic_request("dup")
    async with open_mock_server() as server, anthropic.AsyncAnthropic(
            base_url=server.url, api_key="test", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError, match=r"requests\[1\].*more than once"):
            await client.messages.batches.create(requests=[bad, bad])  # type: ignore[list-item]
    assert server.batches.statistics()["total"] == 0


async def test_openai_sdk_lists_batches_newest_first_across_pages() -> None:
    async with open_mock_server() as server, openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        created = [await openai_batch(client, [openai_line(f"r-{n}")]) for n in range(3)]
        listed = [batch.id async for batch in client.batches.list(limit=2)]
    assert listed == created[::-1]
