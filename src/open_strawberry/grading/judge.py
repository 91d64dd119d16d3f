"""The ``judge:MODEL`` grader: an LLM decides whether a final answer matches the reference,
through any backend (``judge:anthropic:claude-3-5-haiku-latest``, ``judge:vllm:qwen@http://...``).

Its verdict and reasoning are kept in the grade's detail. The judge is given its backend and
does not close it: :func:`~open_strawberry.grading.open_grader` creates both and closes the
backend after the block.
"""

from __future__ import annotations

import re

from open_strawberry.backends.base import Backend, ChatRequest
from open_strawberry.grading.base import GradeResult
from open_strawberry.messages import ChatMessage, Problem
from open_strawberry.prompting import prompts

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
    """Asks ``backend`` whether a candidate answer matches the reference."""

    def __init__(self, backend: Backend, *, max_tokens: int = 400) -> None:
        self.backend = backend
        self.max_tokens = max_tokens
        self.name = "judge"

    async def grade(self, answer: str, truth: str, problem: Problem) -> GradeResult:
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
