"""The typed messages actors exchange, and the data they carry.

Two kinds of Struct live here, all frozen:

* **Messages** (the :data:`Message` union) are what travels over channels between
  actors. They are tagged (``"type": "<ClassName>"`` on the wire), so any of them can be
  decoded from the union and dispatched with ``match``. Every message but
  :class:`TraceRecord` wraps the trace's :class:`TraceState`; a trace has exactly one
  message in flight at any time, which is what lets the runtime bound memory by the
  number of traces admitted.
* **Values** (:class:`Problem`, :class:`ChatMessage`, :class:`Usage`,
  :class:`Timings`, :class:`Completion`, :class:`TurnRecord`, :class:`ErrorInfo`,
  :class:`TraceState`) are carried inside messages and written into the traces file.
  They are untagged so that the file holds plain records that Hugging Face
  ``datasets`` and TRL read directly (``{"role": ..., "content": ...}`` messages).

Messages are immutable: derive a new state with ``msgspec.structs.replace`` or the
helpers on :class:`TraceState`. Encode only at the edges, with :data:`json_encoder`.

Thinking is part of a turn, not of its text: a reasoning model's thinking travels beside the
answer (:attr:`Completion.reasoning`, :attr:`ChatMessage.reasoning_content`, TRL's name),
with the provider's opaque blocks needed to send it back exactly. Records of replies without
thinking are byte for byte what they were before thinking was kept: the new fields are left
out of the JSON when empty (``omit_defaults`` on :class:`ChatMessage`, ``msgspec.UNSET`` in
:class:`Usage` and :class:`Timings`, whose other defaults are written).
"""

from __future__ import annotations

import time
from typing import Any, Literal, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from open_strawberry.redact import MaskingEncoder, redact

__all__ = [
    "ChatMessage", "Completion", "Critique", "CritiqueRequest", "ErrorInfo", "FailedAttempt", "GenerateRequest",
    "Generated", "Message", "NewTrace", "NextTurn", "Problem", "RateLimitWindow", "RateLimits", "Role",
    "TraceMessage", "TraceRecord", "TraceState", "TraceStatus", "TurnRecord", "Timings", "Usage", "Verdict",
    "json_encoder", "record_decoder",
]

Role: TypeAlias = Literal["system", "user", "assistant"]
TraceStatus: TypeAlias = Literal["final", "max_turns", "budget", "error"]


# --------------------------------------------------------------------------- values


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One problem with a verifiable answer, as read from the problems file."""

    id: str
    prompt: str
    answer: str
    grader: str | None = None  # name of the grader to use; None: the run's default
    meta: dict[str, Any] = {}


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One turn of a conversation, in the OpenAI/TRL ``{"role", "content"}`` shape.

    An assistant turn of a reasoning model keeps its thinking apart from its answer:
    ``reasoning_content`` (the key TRL's Qwen3 and DeepSeek-R1 training templates read;
    ``None``: no thinking) and ``reasoning_blocks``, the provider's opaque blocks that must go
    back unmodified in later requests (Anthropic ``thinking``/``redacted_thinking`` blocks with
    their signatures, OpenRouter ``reasoning_details``). ``content`` is the answer alone; the
    arbiter and the graders read nothing else. Both are left out of the JSON when empty.
    """

    role: Role
    content: str
    reasoning_content: str | None = None
    reasoning_blocks: tuple[dict[str, Any], ...] = ()


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts of one call, or summed over a trace.

    ``input_tokens`` counts every prompt token, cached or not (OpenAI's ``prompt_tokens``;
    Anthropic's ``input_tokens`` plus its cache reads and writes); ``cache_read_tokens`` and
    ``cache_write_tokens`` say how many of them were read from or written to a prompt cache.
    ``estimated`` is true when any count came from our own tokenizer because the server
    reported none.

    ``reasoning_tokens`` counts the thinking tokens, which are inside ``output_tokens`` as
    providers bill them (OpenAI's ``completion_tokens_details.reasoning_tokens``). Servers that
    send thinking without that count (Anthropic, llama.cpp) get our tokenizer's count of the
    thinking text, and ``estimated`` is set; a redacted block counts nothing. It is
    ``msgspec.UNSET`` (falsy, left out of records) for replies without thinking: read it as
    ``usage.reasoning_tokens or 0``.

    ``batch_input_tokens`` and ``batch_output_tokens`` say how many of the input and output
    tokens went through a provider's batch API (``generate --batch``), billed at its batch
    price: a batched call has all of its tokens there (:meth:`batched`), a trace's sum those of
    its batched calls. They are ``msgspec.UNSET`` (left out of records) when no call was batched.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False
    reasoning_tokens: int | UnsetType = UNSET
    batch_input_tokens: int | UnsetType = UNSET
    batch_output_tokens: int | UnsetType = UNSET

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            estimated=self.estimated or other.estimated,
            reasoning_tokens=_sum_set(self.reasoning_tokens, other.reasoning_tokens),
            batch_input_tokens=_sum_set(self.batch_input_tokens, other.batch_input_tokens),
            batch_output_tokens=_sum_set(self.batch_output_tokens, other.batch_output_tokens),
        )

    def batched(self) -> Usage:
        """The usage of a call that went through a batch API: every token of it at the batch price."""
        return msgspec.structs.replace(self, batch_input_tokens=self.input_tokens,
                                       batch_output_tokens=self.output_tokens)


def _sum_set(a: int | UnsetType, b: int | UnsetType) -> int | UnsetType:
    """The sum of two counts, UNSET when neither was set."""
    if a is UNSET and b is UNSET:
        return UNSET
    return (a or 0) + (b or 0)


class FailedAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """An attempt of a call that failed and was retried: why, how long it took, and the
    wait before the next attempt."""

    error: str
    status: int | None = None
    elapsed_s: float = 0.0
    backoff_s: float = 0.0


class Timings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the time of one LLM call went, in seconds.

    ``queued_s`` is the wait in the calling actor's inbox, ``limiter_wait_s`` the waits for
    the backend's limiter (all attempts); ``ttft_s`` and ``e2e_s`` run from the moment the
    final attempt was sent to the first content byte and to the last byte. Earlier attempts
    that failed are in ``failed_attempts``, apart from the final one.

    For a reply with thinking, ``ttft_s`` is the time to its first token of either kind
    (thinking or answer: what a server's latency is), and the two are also timed apart:
    ``first_thinking_s`` to the first thinking token, ``first_answer_s`` to the first answer
    token (``None``: the reply had no answer text). Both are ``msgspec.UNSET`` (left out of
    records) for replies without thinking, where the first answer token is ``ttft_s``.
    ``chunk_gaps_s`` are the gaps between all chunks, of either kind.
    """

    queued_s: float = 0.0
    limiter_wait_s: float = 0.0
    ttft_s: float | None = None
    chunk_gaps_s: tuple[float, ...] = ()
    e2e_s: float = 0.0
    attempts: int = 1
    failed_attempts: tuple[FailedAttempt, ...] = ()
    first_thinking_s: float | UnsetType | None = UNSET
    first_answer_s: float | UnsetType | None = UNSET


class RateLimitWindow(msgspec.Struct, frozen=True, kw_only=True):
    """One budget as the server reported it: its size, what is left, and seconds until full."""

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None


class RateLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The budgets a response reported; ``None`` where the server said nothing."""

    requests: RateLimitWindow | None = None
    tokens: RateLimitWindow | None = None
    input_tokens: RateLimitWindow | None = None
    output_tokens: RateLimitWindow | None = None


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """What a backend returns for one chat request (``rate_limits``: what the response's
    headers said of the provider's budgets, for the limiter).

    ``text`` is the answer alone; a reasoning model's thinking is apart in ``reasoning`` (""
    when none came), whatever the provider called it, and ``reasoning_blocks`` holds the
    provider's opaque blocks needed to send it back exactly (see :class:`ChatMessage`).
    """

    text: str
    finish_reason: str | None = None
    usage: Usage = Usage()
    timings: Timings = Timings()
    model: str | None = None
    rate_limits: RateLimits | None = None
    reasoning: str = ""
    reasoning_blocks: tuple[dict[str, Any], ...] = ()

    def message(self) -> ChatMessage:
        """The assistant turn this completion makes: the answer, with its thinking beside it."""
        return ChatMessage(role="assistant", content=self.text, reasoning_content=self.reasoning or None,
                           reasoning_blocks=self.reasoning_blocks)


class TurnRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Bookkeeping of one assistant turn: why it was asked for and what it cost.

    ``served_model`` is the model the server said answered, kept only when it differs from
    the one asked for (``gpt-4o-mini`` answered by ``gpt-4o-mini-2024-07-18``, a router's or a
    proxy's substitute); ``msgspec.UNSET`` (left out of the record) otherwise. Per turn, since
    a router may answer the turns of one trace with different models.
    """

    kind: str  # which prompt asked for it: "first", "nudge", "final_request", "critique", ...
    usage: Usage = Usage()
    timings: Timings = Timings()
    finish_reason: str | None = None
    verifier_score: float | None = None
    served_model: str | UnsetType = UNSET


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Why a trace failed: the exception's type and message, and where it happened."""

    type: str
    message: str
    actor: str | None = None
    attempts: int | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, *, actor: str | None = None) -> ErrorInfo:
        """The record of ``exc``; its message has the keys in use masked (a server may echo one)."""
        return cls(
            type=type(exc).__name__,
            message=redact(str(exc)),
            actor=actor,
            attempts=getattr(exc, "attempts", None),
        )


class TraceState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything known about one trace; it travels inside every message of that trace.

    Actors keep no per-trace state of their own: they read the state from the message
    they handle and put an updated copy into the message they send on.
    """

    trace_id: str
    problem: Problem
    sample: int = 0
    model: str = ""
    strategy: str = ""
    system_prompt_variant: str | None = None
    messages: tuple[ChatMessage, ...] = ()
    turns: tuple[TurnRecord, ...] = ()
    usage: Usage = Usage()
    started_at: float = msgspec.field(default_factory=time.time)

    def with_message(self, message: ChatMessage) -> TraceState:
        """A copy with ``message`` appended to the conversation."""
        return msgspec.structs.replace(self, messages=(*self.messages, message))

    def with_turn(self, reply: ChatMessage, turn: TurnRecord) -> TraceState:
        """A copy with an assistant ``reply`` appended and its cost added to the totals."""
        return msgspec.structs.replace(
            self,
            messages=(*self.messages, reply),
            turns=(*self.turns, turn),
            usage=self.usage + turn.usage,
        )


# ------------------------------------------------------------------------- messages


class TraceMessage(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every message that carries a trace's state between actors."""

    state: TraceState

    @property
    def trace_id(self) -> str:
        return self.state.trace_id


class NewTrace(TraceMessage, frozen=True, kw_only=True):
    """Admission of a new trace: sent by the source to the first actor."""


class GenerateRequest(TraceMessage, frozen=True, kw_only=True):
    """Ask the Generator for the next assistant turn of ``state.messages``."""

    kind: str = "nudge"  # the kind of user prompt that ends state.messages


class Generated(TraceMessage, frozen=True, kw_only=True):
    """The Generator's answer: the state already holds the new assistant turn."""

    completion: Completion


class CritiqueRequest(TraceMessage, frozen=True, kw_only=True):
    """Ask the Verifier to critique the last ``window`` assistant turns."""

    window: int = 1


class Critique(TraceMessage, frozen=True, kw_only=True):
    """The Verifier's judgement of a window of turns (score in [0, 1])."""

    score: float
    text: str
    usage: Usage = Usage()


class NextTurn(TraceMessage, frozen=True, kw_only=True):
    """The Arbiter decided the trace goes on; the Prompter builds the next user turn."""

    reason: str = ""
    critique: Critique | None = None
    last_call: bool = False  # the turn budget is spent: ask once more, only for the final answer


class Verdict(TraceMessage, frozen=True, kw_only=True):
    """The Arbiter decided the trace is over, and why."""

    status: TraceStatus
    final_answer: str | None = None
    reason: str = ""


class TraceRecord(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One finished trace, success or failure: the line the Sink writes. With the first user
    message (the prompt), ``ground_truth``, ``grader`` and ``problem_meta`` it holds what
    ``select`` needs to write its problem again."""

    trace_id: str
    problem_id: str
    sample: int
    model: str
    strategy: str
    system_prompt_variant: str | None
    status: TraceStatus
    messages: tuple[ChatMessage, ...]
    final_answer: str | None
    ground_truth: str
    correct: bool | None
    turns: tuple[TurnRecord, ...]
    usage: Usage
    error: ErrorInfo | None
    started_at: float
    finished_at: float
    stop_reason: str = ""
    grader: str | None = None
    grade_detail: str = ""
    problem_meta: dict[str, Any] | UnsetType = UNSET  # the problem's ``meta``; UNSET (left out): it had none

    @classmethod
    def from_state(
        cls,
        state: TraceState,
        *,
        status: TraceStatus,
        final_answer: str | None = None,
        correct: bool | None = None,
        error: ErrorInfo | None = None,
        stop_reason: str = "",
        grader: str | None = None,
        grade_detail: str = "",
    ) -> TraceRecord:
        return cls(
            trace_id=state.trace_id,
            problem_id=state.problem.id,
            sample=state.sample,
            model=state.model,
            strategy=state.strategy,
            system_prompt_variant=state.system_prompt_variant,
            status=status,
            messages=state.messages,
            final_answer=final_answer,
            ground_truth=state.problem.answer,
            correct=correct,
            turns=state.turns,
            usage=state.usage,
            error=error,
            started_at=state.started_at,
            finished_at=time.time(),
            stop_reason=stop_reason,
            grader=grader,
            grade_detail=grade_detail,
            problem_meta=state.problem.meta or UNSET,
        )

    @classmethod
    def failed(cls, state: TraceState, exc: BaseException, *, actor: str | None = None) -> TraceRecord:
        """The record of a trace that ``exc`` ended while ``actor`` handled it."""
        error = ErrorInfo.from_exception(exc, actor=actor)
        return cls.from_state(state, status="error", error=error, stop_reason="error")


Message: TypeAlias = (
    NewTrace
    | GenerateRequest
    | Generated
    | CritiqueRequest
    | Critique
    | NextTurn
    | Verdict
    | TraceRecord
)
"""Every message an actor may send or receive."""

json_encoder = MaskingEncoder()
"""The one JSON encoder for records and messages that are written (reuse it: it keeps a
buffer); registered keys a reply echoed are masked in its output. Never use it for what is
sent back to a model: the masked text would not match (an Anthropic thinking block's
signature covers its text)."""

record_decoder = msgspec.json.Decoder(TraceRecord)
"""Decodes one line of a traces file."""
