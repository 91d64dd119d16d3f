"""The ``judge:MODEL`` grader: an LLM decides whether a final answer matches the reference,
through any backend (``judge:anthropic:claude-3-5-haiku-latest``, ``judge:vllm:qwen@http://...``).

Its verdict and reasoning are kept in the grade's detail. The Grader protocol is synchronous
and the Grader actor calls it from a worker thread; the judge hands its call back to the
event loop from there (``anyio.from_thread``), so it shares the loop's connection pool.
"""

from __future__ import annotations

import re

import anyio.from_thread

from open_strawberry import prompts
from open_strawberry.backends.base import Backend, ChatRequest
from open_strawberry.grading import GradeResult
from open_strawberry.messages import ChatMessage, Problem

__all__ = ["JudgeGrader", "parse_judgement"]

_VERDICT = re.compile(r"<verdict>\s*(correct|incorrect)\s*</verdict>", re.IGNORECASE)
_REASONING = re.compile(r"<reasoning>(.*?)(?:</reasoning>|$)", re.IGNORECASE | re.DOTALL)


def parse_judgement(text: str) -> tuple[bool | None, str]:
    """(verdict, reasoning) from a judge's reply; verdict ``None`` when it gave none."""
    verdicts = _VERDICT.findall(text)
    reasoning = _REASONING.search(text)
    explained = (reasoning[1] if reasoning else _VERDICT.sub("", text)).strip()
    return (verdicts[-1].lower() == "correct" if verdicts else None), explained


class JudgeGrader:
    def __init__(self, backend: Backend, *, max_tokens: int = 400) -> None:
        self.backend = backend
        self.max_tokens = max_tokens
        self.name = "judge"

    def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        return anyio.from_thread.run(self.agrade, answer, truth, problem)

    async def agrade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
        from open_strawberry.grading import GradeResult

        request = ChatRequest(
            system=prompts.JUDGE_SYSTEM, temperature=0.0, max_tokens=self.max_tokens,
            messages=(ChatMessage(role="user", content=prompts.JUDGE_REQUEST.format(
                problem=problem.prompt, reference=truth, candidate=answer)),))
        completion = await self.backend.complete(request)
        verdict, reasoning = parse_judgement(completion.text)
        if verdict is None:
            return GradeResult(correct=False, grader=self.name, detail=f"the judge gave no verdict: {reasoning[:300]}")
        return GradeResult(correct=verdict, grader=self.name,
                           detail=f"{reasoning[:500]} (candidate {answer!r}, reference {truth!r})")

    async def aclose(self) -> None:
        await self.backend.aclose()

