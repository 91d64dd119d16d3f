"""Editing a pipeline: replace, insert, resize; bad edits are refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_strawberry import ActorSpec, GenerateRequest, TraceMessage, Verdict, generate
from open_strawberry.errors import DeadlockRiskError, GraphError
from open_strawberry.mock import open_mock_server
from open_strawberry.runtime import Actor, Pipeline
from tests.helpers import Echo, MemorySink, ids, loop_specs, new_traces


class Tagger(Actor):
    """Passes requests on, marking the last user message so the test can see it went through."""

    inputs = (GenerateRequest,)
    outputs = (GenerateRequest,)

    def __init__(self) -> None:
        self.seen = 0

    async def handle(self, message: GenerateRequest) -> GenerateRequest:
        self.seen += 1
        return message


async def test_an_actor_inserted_before_another_sees_all_its_traffic() -> None:
    tagger, sink = Tagger(), MemorySink()
    pipeline = Pipeline(loop_specs(turns=3, sink=sink)).insert_before("generator", ActorSpec("tagger", tagger))
    assert pipeline.check(max_traces=8).routes["prompter"] == {GenerateRequest: "tagger"}
    assert pipeline["tagger"].routes == {GenerateRequest: "generator"}
    async with pipeline.open(max_traces=8) as system:
        await system.feed(new_traces(20))
    assert tagger.seen == 60  # every turn of every trace
    assert ids(sink.records) == sorted(f"t{i}" for i in range(20))


async def test_replace_and_configure() -> None:
    calls = []
    pipeline = Pipeline(loop_specs(turns=1)).replace("generator", Echo(calls.append)).configure("generator", workers=5,
                                                                                                buffer=16)
    assert (pipeline["generator"].workers, pipeline["generator"].buffer) == (5, 16)
    async with pipeline.open(max_traces=16) as system:
        await system.feed(new_traces(7))
    assert len(calls) == 7


def test_bad_edits_are_refused_with_names() -> None:
    with pytest.raises(GraphError, match="no actor named 'genrator'; the pipeline has prompter, generator"):
        Pipeline(loop_specs()).replace("genrator", Echo())
    with pytest.raises(GraphError, match="already has an actor named 'sink'"):
        Pipeline(loop_specs()).add(ActorSpec("sink", MemorySink()))


class Graded(TraceMessage, frozen=True, kw_only=True):
    """A user's own message, which nothing in the standard graph accepts."""

    correct: bool | None


class GradesButNeverRecords(Actor):
    """A user's grader that sends Graded, which nothing in the standard graph accepts."""

    inputs = (Verdict,)
    outputs = (Graded,)


async def test_generate_refuses_a_customised_graph_that_does_not_fit_before_any_call(tmp_path: Path) -> None:
    async with open_mock_server() as server:
        common = {"problems": "builtin:letters:2", "model": f"mock:m@{server.url}/v1", "out": str(tmp_path / "t.jsonl")}
        with pytest.raises(GraphError, match="actor 'grader' sends Graded, which no actor accepts"):
            await generate(customize=lambda p: p.replace("grader", GradesButNeverRecords()), **common)
        with pytest.raises(DeadlockRiskError, match="inbox of 'generator'"):
            await generate(customize=lambda p: p.configure("generator", buffer=1), max_traces=8, **common)
        assert server.requests == 0
