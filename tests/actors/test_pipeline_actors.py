"""Each pipeline actor's logic on its own: no network, no runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_strawberry import ChatMessage, Completion, Critique, Generated, NewTrace, NextTurn, Problem, TraceState, Usage
from open_strawberry.actors import Arbiter, ArbiterPolicy, GraderActor, Prompter, extract_final_answer, parse_critique
from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import CritiqueRequest, GenerateRequest, TurnRecord, Verdict
from open_strawberry.prompting.prompts import FINAL_ANSWER_REQUEST, NUDGES, SYSTEM_PROMPTS
from open_strawberry.prompting.strategies import NudgeStrategy, VerifyStrategy, create_strategy

PROBLEM = Problem(id="p1", prompt="How many r's are in strawberry?", answer="3")


def state(turns: int = 0, *, trace_id: str = "t1", tokens: int = 0) -> TraceState:
    s = TraceState(trace_id=trace_id, problem=PROBLEM)
    for i in range(turns):
        s = s.with_message(ChatMessage(role="user", content="next?"))
        s = s.with_turn(ChatMessage(role="assistant", content=f"step {i + 1}"),
                        TurnRecord(kind="nudge", usage=Usage(input_tokens=tokens // max(turns, 1))))
    return s


def generated(s: TraceState, text: str) -> Generated:
    reply = ChatMessage(role="assistant", content=text)
    return Generated(state=s.with_turn(reply, TurnRecord(kind="nudge")), completion=Completion(text=text))


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("So: <final_answer>3</final_answer>", "3"),
        ("<final_answer> 42 </final_answer> trailing words", "42"),
        ("<FINAL_ANSWER>**7**</FINAL_ANSWER>", "7"),
        ("first <final_answer>1</final_answer> then <final_answer>2</final_answer>", "2"),
        ("no closing tag <final_answer>  12\n", "12"),
        ("fenced <final_answer>`x = 5`</final_answer>", "x = 5"),
        ("<final_answer></final_answer>", None),
        ("I am not sure yet; final answer later.", None),
    ],
)
def test_final_answers_are_extracted_tolerantly(text: str, answer: str | None) -> None:
    assert extract_final_answer(text) == answer


async def test_the_prompter_opens_with_a_drawn_system_prompt_and_the_problem() -> None:
    prompter = Prompter(NudgeStrategy())
    opened = await prompter.handle(NewTrace(state=state()))
    assert isinstance(opened, GenerateRequest) and opened.kind == "first"
    system, user = opened.state.messages
    assert system.role == "system" and system.content == SYSTEM_PROMPTS[opened.state.system_prompt_variant or ""]
    assert user.content == PROBLEM.prompt
    assert opened.state.strategy == "nudge"
    variants = {(await prompter.handle(NewTrace(state=state(trace_id=f"t{i}")))).state.system_prompt_variant
                for i in range(40)}
    assert variants == set(SYSTEM_PROMPTS)  # every variant gets drawn
    again = await prompter.handle(NewTrace(state=state()))
    assert again.state.system_prompt_variant == opened.state.system_prompt_variant  # seeded by the trace


async def test_nudges_vary_and_every_nth_turn_asks_for_a_final_answer() -> None:
    prompter = Prompter(NudgeStrategy(final_every=3))
    kinds, texts = [], set()
    for turns in range(1, 10):
        request = await prompter.handle(NextTurn(state=state(turns, trace_id=f"x{turns}")))
        kinds.append(request.kind)
        texts.add(request.state.messages[-1].content)
    assert kinds == ["nudge", "nudge", "final_request"] * 3
    assert FINAL_ANSWER_REQUEST in texts
    assert len(texts & set(NUDGES)) >= 3


async def test_a_critique_becomes_the_next_user_message() -> None:
    critique = Critique(state=state(1), score=0.2, text="2 + 2 is 4, not 5.")
    for strategy in (NudgeStrategy(final_every=3), VerifyStrategy(final_every=3)):
        request = await Prompter(strategy).handle(NextTurn(state=state(1), critique=critique))
        assert request.kind == "critique"
        assert "2 + 2 is 4, not 5." in request.state.messages[-1].content
    final = await Prompter(VerifyStrategy(final_every=3)).handle(NextTurn(state=state(3), critique=critique))
    assert FINAL_ANSWER_REQUEST in final.state.messages[-1].content  # the critique and the request together


def test_strategies_by_name() -> None:
    assert create_strategy("verify", final_every=4).verify_every(0) == 1
    assert create_strategy("nudge").verify_every(2) == 2
    with pytest.raises(ValueError, match="unknown strategy 'tree'"):
        create_strategy("tree")


async def test_the_arbiter_finalises_continues_and_stops() -> None:
    arbiter = Arbiter(ArbiterPolicy(max_turns=3, max_trace_tokens=1000))
    final = await arbiter.handle(generated(state(1), "<final_answer>3</final_answer>"))
    assert isinstance(final, Verdict) and (final.status, final.final_answer) == ("final", "3")
    going = await arbiter.handle(generated(state(1), "step"))
    assert isinstance(going, NextTurn) and going.reason == "no final answer yet"
    capped = await arbiter.handle(generated(state(2), "still thinking"))
    assert isinstance(capped, Verdict) and capped.status == "max_turns" and capped.reason == "reached 3 turns"
    spent = await arbiter.handle(generated(state(1, tokens=1200), "step"))
    assert isinstance(spent, Verdict) and spent.status == "budget"
    assert "of a 1000-token budget" in spent.reason


async def test_the_verifier_is_asked_every_k_turns_and_can_veto_a_final_answer() -> None:
    arbiter = Arbiter(ArbiterPolicy(max_turns=10, verify_every=2, verify_window=3, veto_below=0.5))
    assert isinstance(await arbiter.handle(generated(state(0), "step")), NextTurn)
    asked = await arbiter.handle(generated(state(1), "step"))
    assert isinstance(asked, CritiqueRequest) and asked.window == 3
    answered = generated(state(2), "<final_answer>4</final_answer>").state
    assert isinstance(await arbiter.handle(generated(state(2), "<final_answer>4</final_answer>")), CritiqueRequest)
    vetoed = await arbiter.handle(Critique(state=answered, score=0.2, text="wrong count", usage=Usage(output_tokens=9)))
    assert isinstance(vetoed, NextTurn) and vetoed.critique is not None
    assert "vetoed" in vetoed.reason
    assert vetoed.state.turns[-1].verifier_score == 0.2
    assert vetoed.state.usage.output_tokens == 9  # the verifier's tokens count toward the trace
    accepted = await arbiter.handle(Critique(state=answered, score=0.9, text="fine"))
    assert isinstance(accepted, Verdict) and accepted.final_answer == "4"


def test_without_a_verifier_the_arbiter_cannot_ask_for_one() -> None:
    assert CritiqueRequest not in Arbiter(ArbiterPolicy()).outputs
    assert CritiqueRequest in Arbiter(ArbiterPolicy(verify_every=1)).outputs


@pytest.mark.parametrize(
    ("text", "score", "critique"),
    [
        ("<critique>All good.</critique>\n<score>0.9</score>", 0.9, "All good."),
        ("<critique>Step 2 is wrong.</critique><score>.25</score>", 0.25, "Step 2 is wrong."),
        ("Looks right. Score: 1", 1.0, "Looks right."),
        ("no score at all", 0.5, "no score at all"),
        ("<critique>cut off", 0.5, "cut off"),
    ],
)
def test_critiques_are_parsed_tolerantly(text: str, score: float, critique: str) -> None:
    assert parse_critique(text) == (score, critique)


async def test_the_grader_uses_the_problems_grader_or_the_default() -> None:
    actor = GraderActor("exact")
    await actor.setup()
    try:
        verdict = Verdict(state=state(2), status="final", final_answer="**3**")
        record = await actor.handle(verdict)
        assert (record.correct, record.grader, record.final_answer) == (True, "exact", "**3**")
        coded = TraceState(trace_id="t", problem=Problem(id="c", prompt="?", answer="0.5", grader="numeric"))
        record = await actor.handle(Verdict(state=coded, status="final", final_answer="1/2"))
        assert (record.correct, record.grader) == (True, "numeric")
        assert record.grade_detail == "1/2 (~0.5) vs 1/2 (~0.5)"
        unanswered = await actor.handle(Verdict(state=state(3), status="max_turns", reason="reached 3 turns"))
        assert unanswered.correct is None and unanswered.status == "max_turns" and unanswered.stop_reason
    finally:
        await actor.teardown()


async def test_a_problem_may_not_name_a_judge_or_code_and_nothing_is_imported(tmp_path: Path) -> None:
    import sys

    actor = GraderActor("auto")
    await actor.setup()
    try:
        for name in ("judge:openai:gpt-4o@http://127.0.0.1:9/v1", "this:nothing", "os:system"):
            hostile = TraceState(trace_id="h", problem=Problem(id="h", prompt="?", answer="1", grader=name))
            with pytest.raises(ConfigurationError, match="not allowed in a problems file"):
                await actor.handle(Verdict(state=hostile, status="final", final_answer="1"))
        assert "this" not in sys.modules
    finally:
        await actor.teardown()


def test_an_unknown_default_grader_fails_at_start_up() -> None:
    from open_strawberry.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="unknown grader 'fuzzy'"):
        GraderActor("fuzzy")


@pytest.mark.parametrize(
    ("text", "verdict"),
    [("<reasoning>same number</reasoning><verdict>correct</verdict>", True),
     ("<reasoning>off by one</reasoning>\n<verdict> Incorrect </verdict>", False),
     ("I think it is right.", None)],
)
def test_judgements_are_parsed(text: str, verdict: bool | None) -> None:
    from open_strawberry.grading.judge import parse_judgement

    assert parse_judgement(text)[0] is verdict


async def test_the_last_number_fallback_grades_an_unanswered_numeric_trace_and_says_so() -> None:
    problem = Problem(id="n", prompt="2+3?", answer="5")
    talked = TraceState(trace_id="f", problem=problem, messages=(
        ChatMessage(role="user", content="2+3?"), ChatMessage(role="assistant", content="2 plus 3 makes 5 apples.")))
    words = TraceState(trace_id="w", problem=Problem(id="w", prompt="?", answer="Paris"), messages=(
        ChatMessage(role="assistant", content="It has 2 million people."),))
    unanswered = Verdict(state=talked, status="max_turns", reason="reached 3 turns")
    for fallback, expected in (("none", None), ("last_number", True)):
        actor = GraderActor("auto", fallback=fallback)  # type: ignore[arg-type]
        await actor.setup()
        try:
            record = await actor.handle(unanswered)
            assert record.correct is expected and record.status == "max_turns"
            if expected:
                assert record.final_answer == "5" and record.grade_detail.startswith("fallback")
            # only numeric truths fall back: a number in a reply is no answer to "Paris"
            other = await actor.handle(Verdict(state=words, status="max_turns", reason="reached 3 turns"))
            assert other.correct is None and other.final_answer is None
        finally:
            await actor.teardown()


async def test_a_last_call_asks_once_for_the_answer_after_max_turns() -> None:
    arbiter = Arbiter(ArbiterPolicy(max_turns=2, last_call=True))
    at_limit = generated(state(1), "still thinking")  # the second turn, no answer
    asked = await arbiter.handle(at_limit)
    assert isinstance(asked, NextTurn) and asked.last_call
    request = await Prompter(NudgeStrategy()).handle(asked)
    assert request.kind == "last_call" and "last step" in request.state.messages[-1].content
    reply = ChatMessage(role="assistant", content="no idea")
    after = request.state.with_turn(reply, TurnRecord(kind="last_call"))
    ended = await arbiter.handle(Generated(state=after, completion=Completion(text="no idea")))
    assert isinstance(ended, Verdict) and ended.status == "max_turns"  # asked once, not again
    answered = request.state.with_turn(ChatMessage(role="assistant", content="<final_answer>3</final_answer>"),
                                       TurnRecord(kind="last_call"))
    final = await arbiter.handle(Generated(state=answered, completion=Completion(
        text="<final_answer>3</final_answer>")))
    assert isinstance(final, Verdict) and final.status == "final" and final.final_answer == "3"
    without = await Arbiter(ArbiterPolicy(max_turns=2)).handle(at_limit)
    assert isinstance(without, Verdict) and without.status == "max_turns"


async def test_a_critique_scoring_exactly_the_veto_threshold_lets_the_answer_stand() -> None:
    arbiter = Arbiter(ArbiterPolicy(max_turns=10, verify_every=1, veto_below=0.5))
    answered = generated(state(2), "<final_answer>4</final_answer>").state
    at = await arbiter.handle(Critique(state=answered, score=0.5, text="fine"))
    assert isinstance(at, Verdict) and (at.status, at.final_answer) == ("final", "4")
    below = await arbiter.handle(Critique(state=answered, score=0.49, text="doubtful"))
    assert isinstance(below, NextTurn) and "vetoed" in below.reason


async def test_a_trace_that_uses_exactly_its_token_budget_stops() -> None:
    arbiter = Arbiter(ArbiterPolicy(max_turns=10, max_trace_tokens=1000))
    spent = await arbiter.handle(generated(state(1, tokens=1000), "step"))
    assert isinstance(spent, Verdict) and spent.status == "budget"
    assert spent.reason == "used 1000 tokens of a 1000-token budget"
    short = await arbiter.handle(generated(state(1, tokens=999), "step"))
    assert isinstance(short, NextTurn)
