"""The mock server's scripted "reasoner": a deterministic stand-in for an LLM.

It works the built-in problem kinds in small steps, one step per assistant turn:

* letter counting ("How many 'r's are in 'strawberry'?"): three letters per step, keeping a
  running count;
* arithmetic ("What is (12 + 7) * 3 - 4?"): one operation per step;
* crack-the-code puzzles (:mod:`open_strawberry.problems.codes`): one clue per step.

Each trace follows either the right path or, with probability ``1 - accuracy``, a path with
one slip (a miscounted chunk, an operation off by a little, a wrong final code). The choice is
seeded by the server seed, the request's ``seed`` and the problem, so a run replays exactly.
It answers nudges; asked for a final answer it writes ``<final_answer>`` tags only once it has
done every step and at least ``confident_after`` of them. Given a verifier prompt (a system
prompt that mentions a verifier or a critic) it checks the claims in the text (equations,
letter counts, the final code) and writes a critique with ``<score>``. Given a grader's prompt
(a system prompt that mentions a grader or a judge) it compares the candidate and reference
answers and gives a ``<verdict>``. Anything else gets plausible generic steps.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from open_strawberry.backends.tokens import count_tokens, split_tokens
from open_strawberry.grading.answers import last_number, parse_number, plain_text
from open_strawberry.problems.codes import candidates, parse_puzzle

__all__ = ["DECOY_ANSWER", "Plan", "Reasoner", "length_seed", "lengthen"]

DECOY_ANSWER = "decoy"
"""The answer the mock's thinking toys with in a ``<final_answer>`` tag: thinking is not an
answer, so a run that ever reports it read thinking as the answer."""

_LETTERS = re.compile(
    r"how many (?:times does )?['\"]?([a-z])['\"]?(?:'s|s)? (?:are |appear )?(?:there )?in (?:the word )?"
    r"['\"]?([a-z]+)['\"]?", re.IGNORECASE)
_ARITHMETIC = re.compile(r"what is ([\d\s+\-*()]+?)\s*\??\s*$", re.IGNORECASE | re.MULTILINE)
_EQUATION = re.compile(r"(-?\d+) ([+\-*]) (-?\d+) = (-?\d+)")
_LETTER_CLAIM = re.compile(r'Letters \d+-\d+ of "[a-z]+" are ((?:"[a-z]"(?:, )?)+): (\d+) "([a-z])" among them')
_CODE_CLAIM = re.compile(r"Only one code fits every clue: (\d+)")
_DOUBT = ("sure", "mistake", "verify", "check", "wrong", "consider", "error")
_CHUNK = 3


@dataclass(frozen=True)
class Plan:
    """The steps of one path through a problem, and the answer it ends on."""

    steps: tuple[str, ...]
    answer: str


class Reasoner:
    def __init__(self, *, accuracy: float = 0.8, confident_after: int = 3, seed: int = 0) -> None:
        self.accuracy = accuracy
        self.confident_after = confident_after
        self.seed = seed

    def thinking(self, messages: Sequence[tuple[str, str]]) -> str:
        """The thinking before the next turn of a reasoning model: short, and with a decoy
        ``<final_answer>`` in it (see :data:`DECOY_ANSWER`)."""
        turn = sum(1 for role, _ in messages if role == "assistant") + 1
        return (f"Turn {turn}. Let me think before I write. I could just say <final_answer>{DECOY_ANSWER}"
                "</final_answer>, but a guess is not an answer: I will work the next step and check it.")

    def reply(self, system: str, messages: Sequence[tuple[str, str]], seed: int | None = None) -> str:
        """The assistant's next turn for a conversation of ``(role, content)`` pairs."""
        last_user = next((content for role, content in reversed(messages) if role == "user"), "")
        if "grader" in system.lower() or "judge" in system.lower():
            return self.judge(last_user)
        if _is_verifier(system, last_user):
            return self.critique("\n".join(content for _, content in messages), seed)
        problem = next((content for role, content in messages if role == "user"), "")
        turn = sum(1 for role, _ in messages if role == "assistant")
        rng = random.Random(_digest(self.seed, seed, problem))
        plan = self.plan(problem, slip=rng.random() >= self.accuracy, rng=rng)
        asked = last_user.lower()
        wants_final = "final_answer" in asked or "final answer" in asked
        confident = turn >= max(len(plan.steps), self.confident_after)
        if wants_final and confident:
            return (f"I have worked through every step and checked them, so I am confident. "
                    f"<final_answer>{plan.answer}</final_answer>")
        opening = ""
        if wants_final:
            opening = "I am not confident enough to answer yet, so I will keep working. "
        elif any(word in asked for word in _DOUBT) and turn > 0:
            opening = "Looking back over my last step, it still holds. "
        if turn < len(plan.steps):
            return opening + plan.steps[turn]
        return opening + (f"All the steps are done and they point to {plan.answer}. "
                          "I will check them once more before I commit to it.")

    def plan(self, problem: str, *, slip: bool, rng: random.Random) -> Plan:
        if (match := _LETTERS.search(problem)) is not None:
            return _letters_plan(match[1].lower(), match[2].lower(), slip, rng)
        if (match := _ARITHMETIC.search(problem)) is not None and any(op in match[1] for op in "+-*"):
            plan = _arithmetic_plan(match[1], slip, rng)
            if plan is not None:
                return plan
        if (puzzle := parse_puzzle(problem)) is not None:
            plan = _code_plan(*puzzle, slip=slip, rng=rng)
            if plan is not None:
                return plan
        return _generic_plan(problem)

    def judge(self, request: str) -> str:
        """Compare the candidate and reference answers of a judge prompt, as a fair grader would."""
        reference = re.search(r"Reference answer:\s*(.*)", request)
        candidate = re.search(r"Candidate answer:\s*(.*)", request)
        if reference is None or candidate is None:
            return "<reasoning>I cannot find both answers to compare.</reasoning><verdict>incorrect</verdict>"
        got, expected = candidate[1], reference[1]
        if (truth := parse_number(expected)) is not None:
            value = parse_number(got)
            if value is None:
                value = last_number(got)
            correct = value == truth
        else:
            correct = plain_text(got) == plain_text(expected)
        verdict = "correct" if correct else "incorrect"
        return f"<reasoning>Compared {got!r} with {expected!r}.</reasoning>\n<verdict>{verdict}</verdict>"

    def critique(self, text: str, seed: int | None) -> str:
        """Check the claims in ``text``; a low score names the first wrong one."""
        rng = random.Random(_digest(self.seed, seed, text))
        problems = _find_errors(text)
        if problems:
            score = round(rng.uniform(0.1, 0.3), 2)
            return f"<critique>There is a mistake: {problems[0]} The conclusion cannot be trusted.</critique>\n" \
                   f"<score>{score}</score>"
        score = round(rng.uniform(0.8, 0.95), 2)
        return ("<critique>Each step I can check is correct and the reasoning follows from the problem. "
                f"Keep going carefully.</critique>\n<score>{score}</score>")


_FILLER = ("Before the next step I restate what I know so far, in my own words, and look again at each "
           "part of the problem to be sure that nothing was missed or misread along the way. ")
_FILLER_TOKENS = count_tokens(_FILLER)


def length_seed(server_seed: int, request_seed: int | None, messages: Sequence[tuple[str, str]]) -> int:
    """The seed of a reply's drawn length: the server's and the request's seeds, the problem (the
    first user message) and the turn (assistant messages so far), not the rest of the words."""
    problem = next((content for role, content in messages if role == "user"), "")
    turn = sum(1 for role, _ in messages if role == "assistant")
    return _digest("length", server_seed, request_seed, problem, turn)


def lengthen(text: str, tokens: int) -> str:
    """``text`` with filler before it, to about ``tokens`` tokens (as
    :func:`~open_strawberry.backends.tokens.count_tokens` counts them); as it is when it is
    that long already. The text stays last, so a final answer still ends the reply."""
    missing = tokens - count_tokens(text)
    if missing <= 0:
        return text
    pieces = split_tokens(_FILLER * (missing // _FILLER_TOKENS + 2))[:missing]
    return "".join(pieces).strip() + " " + text  # the space joins the text's first token


def _is_verifier(system: str, last_user: str) -> bool:
    """A verifier is told so in its system prompt (a solver's nudges may mention checking)."""
    text = system.lower()
    return "verifier" in text or "critic" in text


def _digest(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def _letters_plan(letter: str, word: str, slip: bool, rng: random.Random) -> Plan:
    chunks = [word[i : i + _CHUNK] for i in range(0, len(word), _CHUNK)]
    wrong_chunk = rng.randrange(len(chunks)) if slip else -1
    steps, total = [], 0
    for index, chunk in enumerate(chunks):
        found = chunk.count(letter)
        if index == wrong_chunk:
            found = found + 1 if found == 0 or rng.random() < 0.5 else found - 1
        listed = ", ".join(f'"{c}"' for c in chunk)
        start = index * _CHUNK + 1
        steps.append(f'Letters {start}-{start + len(chunk) - 1} of "{word}" are {listed}: {found} "{letter}" '
                     f"among them. Running count: {total} + {found} = {total + found}.")
        total += found
    steps[-1] += f' So "{word}" has {total} "{letter}".'
    return Plan(tuple(steps), str(total))


def _arithmetic_plan(expression: str, slip: bool, rng: random.Random) -> Plan | None:
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        return None
    operations: list[tuple[int, str, int, int]] = []
    symbols = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}

    def evaluate(node: ast.expr) -> int | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = evaluate(node.operand)
            return None if inner is None else -inner
        if isinstance(node, ast.BinOp) and type(node.op) in symbols:
            left, right = evaluate(node.left), evaluate(node.right)
            if left is None or right is None:
                return None
            symbol = symbols[type(node.op)]
            value = left + right if symbol == "+" else left - right if symbol == "-" else left * right
            operations.append((left, symbol, right, value))
            return value
        return None

    if evaluate(tree) is None or not operations:
        return None
    wrong = rng.randrange(len(operations)) if slip else -1
    # Replay the operations in order; after a slip every later operand that used it is off too.
    steps: list[str] = []
    replaced: dict[int, int] = {}  # {true value: the wrong value the trace carries instead}
    for index, (left, symbol, right, value) in enumerate(operations):
        left, right = replaced.get(left, left), replaced.get(right, right)
        shown = left + right if symbol == "+" else left - right if symbol == "-" else left * right
        if index == wrong:
            shown += rng.choice((-3, -2, -1, 1, 2, 3))
        if shown != value:
            replaced[value] = shown
        steps.append(f"Next operation: {left} {symbol} {right} = {shown}.")
    result = int(steps[-1].rsplit("= ", 1)[1].rstrip("."))
    steps[-1] += f" So the value of the expression is {result}."
    return Plan(tuple(steps), str(result))


def _code_plan(length: int, clues: list[tuple[str, int, int]], *, slip: bool, rng: random.Random) -> Plan | None:
    if length > 5:
        return None
    steps = []
    for count in range(1, len(clues) + 1):
        guess, placed, misplaced = clues[count - 1]
        left = len(candidates(length, clues[:count]))
        noun = "code" if left == 1 else "codes"
        steps.append(f"Clue {guess} ({placed} in place, {misplaced} misplaced) leaves {left} possible {noun}.")
    solutions = candidates(length, clues)
    if not solutions:
        return None
    code = solutions[0]
    if slip:
        position = rng.randrange(length)
        code = code[:position] + str((int(code[position]) + rng.randint(1, 9)) % 10) + code[position + 1 :]
    steps.append(f"Only one code fits every clue: {code}.")
    return Plan(tuple(steps), code)


def _generic_plan(problem: str) -> Plan:
    numbers = re.findall(r"-?\d+(?:\.\d+)?", problem)
    subject = problem.strip().splitlines()[0][:80] if problem.strip() else "the question"
    steps = (
        f"First I restate the task to be sure I read it right: {subject}",
        "Next I list what is given and what is asked, and pick the smallest useful step.",
        "Now I combine what I have; the pieces fit together without contradiction.",
    )
    return Plan(steps, numbers[-1] if numbers else "unknown")


def _find_errors(text: str) -> list[str]:
    errors = []
    for left, symbol, right, result in _EQUATION.findall(text):
        a, b, shown = int(left), int(right), int(result)
        value = a + b if symbol == "+" else a - b if symbol == "-" else a * b
        if value != shown:
            errors.append(f"{left} {symbol} {right} is {value}, not {shown}.")
    for listed, count, letter in _LETTER_CLAIM.findall(text):
        actual = re.findall(r'"([a-z])"', listed).count(letter)
        if actual != int(count):
            errors.append(f'{listed} hold {actual} "{letter}", not {count}.')
    puzzle = parse_puzzle(text)
    if puzzle is not None:
        length, clues = puzzle
        for code in _CODE_CLAIM.findall(text):
            if len(code) == length and code not in candidates(length, clues):
                errors.append(f"the code {code} does not fit every clue.")
    return errors
