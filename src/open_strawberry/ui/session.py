"""One playground trace as its pages see it: the settings a page sends
(:class:`PlaygroundSettings`), and the :class:`Session` that holds the trace's state, what
streams now, and the pages that watch it (what they are sent is :mod:`~open_strawberry.ui.contract`'s).
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

import anyio
import msgspec

from open_strawberry.backends.models import parse_model
from open_strawberry.errors import ConfigurationError
from open_strawberry.events import Event, EventStream, ReasoningDelta, TextDelta, TurnStarted
from open_strawberry.grading import check_grader_name
from open_strawberry.messages import ChatMessage, GenerateRequest, Problem, TraceRecord, TraceState, TurnRecord
from open_strawberry.prompting import PromptStrategy
from open_strawberry.redact import StreamMasker, redact
from open_strawberry.ui import contract
from open_strawberry.ui.sse import Broadcaster, Channel, sse_message

__all__ = ["PlaygroundSettings", "Session"]

_MAX_TURNS = 64


class PlaygroundSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the page sends to start a trace; :meth:`check` says what is wrong, naming the field."""

    model: str
    problem_id: str | None = None  # a problem of the playground's list; else prompt and answer
    prompt: str = ""
    answer: str = ""
    strategy: Literal["nudge", "verify"] = "nudge"
    final_every: int = 3
    verify_every: int = 0
    verifier_model: str | None = None  # None or "": the same model
    max_turns: int = 6  # turns of a start, and of each continue
    grader: str = "auto"
    temperature: float | None = 0.7
    max_tokens: int = 1024

    def check(self) -> None:
        for name, model in {"model": self.model, "verifier_model": self.verifier_model or None}.items():
            if model is not None:
                try:
                    parse_model(model)
                except ConfigurationError as exc:
                    raise ConfigurationError(f"{name}: {exc}") from None
        if not 1 <= self.max_turns <= _MAX_TURNS:
            raise ConfigurationError(f"max_turns must be between 1 and {_MAX_TURNS}, got {self.max_turns}")
        if not 0 <= self.final_every <= _MAX_TURNS or not 0 <= self.verify_every <= _MAX_TURNS:
            raise ConfigurationError("final_every and verify_every must be between 0 and 64")
        if not 1 <= self.max_tokens <= 65_536:
            raise ConfigurationError(f"max_tokens must be between 1 and 65536, got {self.max_tokens}")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ConfigurationError(f"temperature must be between 0 and 2, got {self.temperature}")
        check_grader_name(self.grader, trusted=False)
        if self.problem_id is None and not self.prompt.strip():
            raise ConfigurationError("choose a problem, or write one (prompt) with its answer")


class _Turn(msgspec.Struct, kw_only=True):
    """The reply streaming now, as pages may see it: keys masked, the start of one held back."""

    turn: int
    kind: str
    parts: list[str] = []
    thinking: list[str] = []
    masks: tuple[StreamMasker, StreamMasker] = msgspec.field(default_factory=lambda: (StreamMasker(), StreamMasker()))

    def shown(self, text: str, *, thinking: bool) -> str:
        """What may be shown of a streamed piece now; kept in ``parts`` or ``thinking``."""
        shown = self.masks[thinking].feed(text)
        if shown:
            (self.thinking if thinking else self.parts).append(shown)
        return shown


class Session:
    """One playground trace: its state, what streams now, and the pages that watch it."""

    def __init__(self, settings: PlaygroundSettings, problem: Problem, strategy: PromptStrategy) -> None:
        self.id = secrets.token_hex(8)
        self.settings = settings
        self.strategy = strategy
        self.state = TraceState(trace_id=f"playground-{self.id}", problem=problem, model=redact(settings.model),
                                strategy=strategy.name)
        self.pending_kind = "first"  # the kind of the user message that ends the state, when one does
        self.status: Literal["running", "stopped", "error"] = "stopped"
        self.current: _Turn | None = None
        self.verdict: contract.Verdict | None = None
        self.record: TraceRecord | None = None
        self.error: str | None = None
        self.saved: str | None = None
        self.pages = Broadcaster(buffer=8192)
        self.events = EventStream()  # the Generator's, taken in as they are published
        self.events.listen(self.on_event)
        self.scope: anyio.CancelScope | None = None
        self.done = anyio.Event()
        self.done.set()

    # ------------------------------------------------------------------ what pages see

    def _publish(self, event: str, data: Any) -> None:
        self.pages.publish(sse_message(event, data))

    def messages(self) -> list[contract.Message]:
        """The conversation with each message's kind, and each reply's tokens, timings, score."""
        turns = self.state.turns
        shown: list[contract.Message] = []
        assistant = 0
        for index, message in enumerate(self.state.messages):
            if message.role == "assistant" and assistant < len(turns):
                shown.append(_reply_message(index, message, assistant + 1, turns[assistant]))
                assistant += 1
                continue
            kind = None
            if message.role == "user":
                kind = turns[assistant].kind if assistant < len(turns) else self.pending_kind
            shown.append(contract.Message(index=index, role=message.role, content=message.content, kind=kind))
        return shown

    def describe(self) -> contract.SessionView:
        current = self.current
        problem = self.state.problem
        return contract.SessionView(
            id=self.id, trace_id=self.state.trace_id, settings=self.settings,
            problem=contract.ProblemView(id=problem.id, prompt=problem.prompt, answer=problem.answer),
            messages=self.messages(), status=self.status, verdict=self.verdict, error=self.error, saved=self.saved,
            current=None if current is None else contract.Current(turn=current.turn, kind=current.kind,
                                                                    text="".join(current.parts),
                                                                    reasoning="".join(current.thinking)))

    def watch(self) -> Channel:
        """A channel for a page: the whole session first (``session``), then what happens."""
        return self.pages.open([sse_message("session", self.describe())])

    def on_event(self, event: Event) -> None:
        if isinstance(event, (TextDelta, ReasoningDelta)):
            thinking = isinstance(event, ReasoningDelta)
            shown = self.current.shown(event.text, thinking=thinking) if self.current is not None else ""
            if shown:
                self._publish("thinking" if thinking else "delta", contract.Delta(turn=event.turn, text=shown))
        elif isinstance(event, TurnStarted):
            if self.current is not None and self.current.turn == event.turn:  # a retry starts the turn again
                self.current = _Turn(turn=event.turn, kind=self.current.kind)
            else:
                self.current = _Turn(turn=event.turn, kind=event.kind)
            self._publish("turn_start", contract.TurnStart(turn=event.turn, kind=event.kind))

    def _user_message(self, request: GenerateRequest) -> None:
        """The request's last message is the user message it asks a reply to: show it."""
        self.state, self.pending_kind = request.state, request.kind
        index = len(request.state.messages) - 1
        message = request.state.messages[-1]
        self._publish("prompt", contract.Message(index=index, role=message.role, content=message.content,
                                                 kind=request.kind))

    def _reply(self, state: TraceState) -> None:
        self.state, self.current = state, None
        index = len(state.messages) - 1
        self._publish("turn_end", _reply_message(index, state.messages[-1], len(state.turns), state.turns[-1]))

    def _status(self) -> None:
        self._publish("status", contract.SessionStatus(status=self.status, verdict=self.verdict, error=self.error,
                                                       saved=self.saved))


def _reply_message(index: int, message: ChatMessage, number: int, turn: TurnRecord) -> contract.Message:
    """A reply as the page shows it: its answer, its thinking apart, and its turn's figures."""
    timings = turn.timings
    return contract.Message(
        index=index, role="assistant", content=message.content, turn=number, kind=turn.kind,
        finish_reason=turn.finish_reason, score=turn.verifier_score, usage=contract.TurnUsage.of(turn.usage),
        timings=contract.TurnTimings(ttft_s=timings.ttft_s, e2e_s=timings.e2e_s, attempts=timings.attempts),
        reasoning=message.reasoning_content)
