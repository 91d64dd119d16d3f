"""generate() end to end against the mock server, in-process."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec

from open_strawberry import Problem
from open_strawberry.messages import TraceRecord, record_decoder
from open_strawberry.mock import MockConfig, open_mock_server
from open_strawberry.pipeline import GenerateConfig, Progress, generate
from open_strawberry.prompting.prompts import FINAL_ANSWER_REQUEST
from open_strawberry.traces.stats import trace_stats


def read(path: str) -> list[TraceRecord]:
    return [record_decoder.decode(line) for line in Path(path).read_bytes().splitlines()]


def config(server_url: str, tmp_path: Path, **options: object) -> GenerateConfig:
    return GenerateConfig(**{"problems": "builtin:mixed:12", "model": f"mock:reasoner@{server_url}/v1",
                             "out": str(tmp_path / "traces.jsonl"), "samples": 2, "max_traces": 16, **options})


async def test_nudge_traces_answer_when_asked_and_are_graded(tmp_path: Path) -> None:
    progress: list[Progress] = []
    async with open_mock_server(MockConfig(accuracy=0.7, confident_after=3)) as server:
        summary = await generate(config(server.url, tmp_path, final_every=2), on_progress=progress.append,
                                 progress_every_s=0.01)
    records = read(summary.out)
    assert len(records) == summary.written == 24
    assert {r.status for r in records} == {"final"}
    for record in records:
        kinds = [turn.kind for turn in record.turns]
        assert kinds[0] == "first" and kinds[-1] == "final_request"  # the answer came when asked for
        assert record.messages[0].role == "system" and record.system_prompt_variant
        assert record.messages[-2].content == FINAL_ANSWER_REQUEST
        assert record.correct is not None and record.grader in ("numeric", "exact")
        assert record.usage.input_tokens > 0 and not record.usage.estimated
        assert all(turn.timings.ttft_s is not None for turn in record.turns)
    assert summary.correct == sum(1 for r in records if r.correct)
    assert 0 < summary.correct < 24
    assert progress[-1].done == 24 and progress[-1].total == 24 and progress[-1].turns > 24
    assert len({r.trace_id for r in records}) == 24


async def test_verify_strategy_critiques_every_turn(tmp_path: Path) -> None:
    async with open_mock_server(MockConfig(accuracy=1.0, confident_after=2)) as server:
        summary = await generate(config(server.url, tmp_path, strategy="verify", final_every=3))
    records = read(summary.out)
    assert {r.strategy for r in records} == {"verify"}
    for record in records:
        assert [t.kind for t in record.turns][1:] == ["critique"] * (len(record.turns) - 1)
        assert all(t.verifier_score is not None for t in record.turns[:-1])
        assert "A reviewer read your recent steps" in record.messages[3].content
    assert summary.correct == 24


async def test_the_verifier_vetoes_wrong_final_answers(tmp_path: Path) -> None:
    async with open_mock_server(MockConfig(accuracy=0.0, confident_after=1)) as server:
        wrong = await generate(config(server.url, tmp_path, verify_every=1, verify_window=20, max_turns=8,
                                      final_every=1, out=str(tmp_path / "wrong.jsonl")))
    assert wrong.statuses == {"max_turns": 24}  # every answer was wrong, and every one was sent back
    answered = 0
    for record in read(wrong.out):
        assert record.correct is None and record.final_answer is None
        if any("<final_answer>" in m.content for m in record.messages if m.role == "assistant"):
            answered += 1  # it answered, and the answer was scored low and sent back
            assert min(t.verifier_score for t in record.turns if t.verifier_score is not None) < 0.5
    assert answered >= 12
    async with open_mock_server(MockConfig(accuracy=1.0, confident_after=1)) as server:
        right = await generate(config(server.url, tmp_path, verify_every=1, verify_window=20, max_turns=12,
                                      final_every=1, out=str(tmp_path / "right.jsonl")))
    assert right.statuses == {"final": 24} and right.correct == 24


async def test_turn_and_token_budgets_stop_traces(tmp_path: Path) -> None:
    async with open_mock_server(MockConfig(confident_after=50)) as server:
        capped = await generate(config(server.url, tmp_path, max_turns=3, out=str(tmp_path / "a.jsonl")))
        spent = await generate(config(server.url, tmp_path, max_turns=50, max_trace_tokens=600,
                                      out=str(tmp_path / "b.jsonl")))
    assert capped.statuses == {"max_turns": 24}
    assert all(len(r.turns) == 3 and r.correct is None for r in read(capped.out))
    assert spent.statuses == {"budget": 24}
    assert all(r.usage.total_tokens >= 600 for r in read(spent.out))


async def test_the_default_grader_and_a_custom_one(tmp_path: Path) -> None:
    problems = tmp_path / "problems.jsonl"
    rows = [Problem(id="q1", prompt="What is 6 * 7?", answer="42"), Problem(id="q2", prompt="What is 2 + 2?",
                                                                           answer="four")]
    problems.write_bytes(b"".join(msgspec.json.encode(p) + b"\n" for p in rows))
    async with open_mock_server(MockConfig(accuracy=1.0, confident_after=1)) as server:
        default = await generate(config(server.url, tmp_path, problems=str(problems), samples=1, final_every=1,
                                        out=str(tmp_path / "d.jsonl")))
        custom = await generate(config(server.url, tmp_path, problems=str(problems), samples=1, final_every=1,
                                       grader="tests.pipeline.test_generate:spelled_or_digits",
                                       out=str(tmp_path / "c.jsonl")))
    assert {r.problem_id: r.correct for r in read(default.out)} == {"q1": True, "q2": False}
    assert {r.problem_id: r.correct for r in read(custom.out)} == {"q1": True, "q2": True}


def spelled_or_digits(answer: str, truth: str, problem: Problem) -> bool:
    words = {"four": "4", "forty-two": "42"}
    return words.get(truth, truth) == answer.strip()


async def test_a_rerun_resumes_and_asks_nothing_again(tmp_path: Path) -> None:
    async with open_mock_server(MockConfig(confident_after=1)) as server:
        first = await generate(config(server.url, tmp_path))
        calls = server.requests
        again = await generate(config(server.url, tmp_path))
        more = await generate(config(server.url, tmp_path, samples=3))
        assert server.requests - calls == sum(len(r.turns) for r in read(more.out) if r.sample == 2)
    assert (first.written, again.written, again.resumed) == (24, 0, 24)
    assert (more.written, more.resumed) == (12, 24)
    assert Counter((r.problem_id, r.sample) for r in read(more.out)).most_common(1)[0][1] == 1


async def test_a_separate_verifier_model_gets_the_critique_calls(tmp_path: Path) -> None:
    async with open_mock_server() as solver, open_mock_server() as critic:
        summary = await generate(config(solver.url, tmp_path, strategy="verify", max_turns=4,
                                        verifier_model=f"mock:critic@{critic.url}/v1"))
        turns = sum(len(r.turns) for r in read(summary.out))
        assert solver.requests == turns
        assert critic.requests > 0


async def test_an_unreachable_server_is_one_clear_error_before_the_run(tmp_path: Path) -> None:
    import socket

    import pytest

    from open_strawberry.errors import ConfigurationError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigurationError, match=rf"cannot reach the model server at http://127.0.0.1:{port}/v1"):
        await generate(config(f"http://127.0.0.1:{port}", tmp_path))
    assert not (tmp_path / "traces.jsonl").exists() or (tmp_path / "traces.jsonl").read_bytes() == b""


async def test_a_judge_model_grades_the_answers(tmp_path: Path) -> None:
    from open_strawberry.grading import NumericGrader
    from open_strawberry.problems.builtin import builtin_problems

    problems = tmp_path / "problems.jsonl"  # no grader field: the run's grader decides
    problems.write_bytes(b"".join(msgspec.json.encode(msgspec.structs.replace(p, grader=None)) + b"\n"
                                  for p in builtin_problems("arithmetic", 8)))
    async with open_mock_server(MockConfig(accuracy=0.5, confident_after=1)) as server, \
            open_mock_server() as judge:
        judged = await generate(config(server.url, tmp_path, problems=str(problems), final_every=1,
                                       grader=f"judge:mock:judge@{judge.url}/v1"))
        judge_calls = judge.requests
    records = read(judged.out)
    answered = [r for r in records if r.final_answer is not None]
    assert answered and judge_calls == len(answered)
    numeric = NumericGrader()
    for record in answered:
        assert record.grader == "judge" and "<verdict>" not in record.grade_detail
        assert record.correct == (await numeric.grade(record.final_answer or "", record.ground_truth,
                                                      PROBLEM_STUB)).correct
    assert 0 < sum(bool(r.correct) for r in answered) < len(answered)


PROBLEM_STUB = Problem(id="stub", prompt="", answer="")


async def test_observers_see_each_record_written_and_stats_agree_with_the_summary(tmp_path: Path) -> None:
    seen: list[TraceRecord] = []
    async with open_mock_server(MockConfig(accuracy=0.6, confident_after=2)) as server:
        summary = await generate(config(server.url, tmp_path), observers=[seen.append])
    records = read(summary.out)
    assert seen == records  # each one, in the order written
    stats = trace_stats(summary.out)  # the same tally, folded over the file
    assert (stats.traces, stats.statuses, stats.correct, stats.graded) == (
        summary.written, summary.statuses, summary.correct, summary.graded)
    assert (stats.input_tokens, stats.output_tokens) == (summary.input_tokens, summary.output_tokens)
