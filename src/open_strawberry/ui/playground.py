"""The playground: one trace at a time, on any model, streamed to the page turn by turn.

A trace runs through the same graph as a ``generate`` run (:func:`~open_strawberry.pipeline.standard_pipeline`,
with the same arbiter policy, its sink replaced by one that keeps the record), each message
handed to the actor its route names, in the playground's task rather than an actor system
(one trace has one message in flight, so no pool or channel is needed)::

    Prompter ─► Generator ─► Arbiter ─► (Verifier ─► Arbiter) ─► ... ─► Grader ─► (kept)

A :class:`Session` is one trace: :meth:`Playground.start` opens it and runs it in the
playground's task group; :meth:`Playground.extend` ("continue") adds turns to a trace that
stopped, in place (the same state, the next user message from the strategy);
:meth:`Playground.stop` cancels the turn in flight (its partial text is dropped, so the trace
stays clean); :meth:`Playground.reset` forgets the session; :meth:`Playground.save` appends
its record to the playground's traces file, under that file's lock.

Keys come from the server's environment, never from the page: a model string that points a
hosted provider at another URL gets no key from the environment, so a key only ever goes to
its own provider. A page may only name a built-in grader.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
import msgspec

from open_strawberry.actors import Prompter
from open_strawberry.backends.base import Backend
from open_strawberry.backends.models import PROVIDERS, parse_model
from open_strawberry.errors import ConfigurationError
from open_strawberry.events import Event, EventStream, TextDelta, TurnStarted
from open_strawberry.grading import BUILTIN_GRADERS, check_grader_name, open_grader
from open_strawberry.limiter import LimitedBackend, RetryPolicy, create_limited_backend
from open_strawberry.messages import (
    Critique,
    CritiqueRequest,
    Generated,
    GenerateRequest,
    Message,
    NewTrace,
    NextTurn,
    Problem,
    TraceRecord,
    TraceState,
    TurnRecord,
    Verdict,
    json_encoder,
)
from open_strawberry.pipeline import GenerateConfig, check_reachable, standard_pipeline
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.prompting import PromptStrategy, create_strategy
from open_strawberry.redact import redact
from open_strawberry.runtime import Actor, Graph
from open_strawberry.runtime.background import open_background_tasks
from open_strawberry.traces.lock import locked_traces_file
from open_strawberry.ui import contract
from open_strawberry.ui.sse import Broadcaster, Channel, sse_message

__all__ = ["Playground", "PlaygroundSettings", "Session", "default_problems", "open_playground"]

_MAX_TURNS = 64


def default_problems(per_set: int = 4) -> list[Problem]:
    """A few problems of each built-in set, for the page's list."""
    return [problem for name in ("letters", "arithmetic", "codes") for problem in builtin_problems(name, per_set)]


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
    turn: int
    kind: str
    parts: list[str] = []


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
                shown.append(_reply_message(index, message.content, assistant + 1, turns[assistant]))
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
                                                                    text="".join(current.parts)))

    def watch(self) -> Channel:
        """A channel for a page: the whole session first (``session``), then what happens."""
        return self.pages.open([sse_message("session", self.describe())])

    def on_event(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            if self.current is not None:
                self.current.parts.append(event.text)
            self._publish("delta", contract.Delta(turn=event.turn, text=event.text))
        elif isinstance(event, TurnStarted):
            if self.current is not None and self.current.turn == event.turn:  # a retry starts the turn again
                self.current.parts.clear()
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
        self._publish("turn_end", _reply_message(index, state.messages[-1].content, len(state.turns), state.turns[-1]))

    def _status(self) -> None:
        self._publish("status", contract.SessionStatus(status=self.status, verdict=self.verdict, error=self.error,
                                                       saved=self.saved))


def _reply_message(index: int, content: str, number: int, turn: TurnRecord) -> contract.Message:
    usage, timings = turn.usage, turn.timings
    return contract.Message(
        index=index, role="assistant", content=content, turn=number, kind=turn.kind, finish_reason=turn.finish_reason,
        score=turn.verifier_score,
        usage=contract.TurnUsage(input=usage.input_tokens, output=usage.output_tokens,
                                 cache_read=usage.cache_read_tokens, cache_write=usage.cache_write_tokens,
                                 estimated=usage.estimated),
        timings=contract.TurnTimings(ttft_s=timings.ttft_s, e2e_s=timings.e2e_s, attempts=timings.attempts))


class _Kept(Actor):
    """The playground's sink: keeps the trace's record (saving it is the page's choice)."""

    inputs = (TraceRecord,)
    outputs = ()

    async def handle(self, message: TraceRecord) -> None:
        return None


class Playground:
    """Sessions, the backends they use, and the task group they run in; open it with
    :func:`open_playground` (which closes every backend it created). ``environ`` is where keys
    come from (default: the process environment); ``save_to`` is the traces file "save"
    appends to."""

    def __init__(self, task_group: anyio.abc.TaskGroup, stack: AsyncExitStack, *, save_to: Path,
                 problems: Sequence[Problem], environ: Mapping[str, str] | None, default_model: str,
                 max_sessions: int, timeout_s: float) -> None:
        self._tg = task_group
        self._stack = stack
        self.save_to = save_to
        self.problems = {problem.id: problem for problem in problems}
        self.environ = os.environ if environ is None else environ
        self.default_model = default_model
        self.max_sessions = max_sessions
        self.timeout_s = timeout_s
        self.sessions: dict[str, Session] = {}
        self._backends: dict[str, LimitedBackend] = {}
        self._checked: set[str] = set()  # base URLs found reachable

    def catalog(self) -> dict[str, Any]:
        """What the page offers: the problems, strategies, graders, and the default model."""
        return {"problems": [{"id": p.id, "prompt": p.prompt, "answer": p.answer} for p in self.problems.values()],
                "strategies": ["nudge", "verify"], "graders": list(BUILTIN_GRADERS),
                "default_model": self.default_model, "save_to": str(self.save_to),
                "defaults": msgspec.to_builtins(PlaygroundSettings(model=self.default_model))}

    async def _backend(self, model: str) -> LimitedBackend:
        backend = self._backends.get(model)
        if backend is None:
            spec = parse_model(model)
            own_url = spec.base_url == PROVIDERS[spec.provider].base_url.rstrip("/")
            environ = self.environ if own_url else {}  # a key goes only to its own provider
            if spec.base_url not in self._checked:
                await check_reachable(spec.base_url, timeout_s=5.0)
                self._checked.add(spec.base_url)
            backend = create_limited_backend(spec, environ=environ, timeout_s=self.timeout_s,
                                             retry=RetryPolicy(max_attempts=3, deadline_s=self.timeout_s))
            self._stack.push_async_callback(backend.aclose)
            self._backends[model] = backend
        return backend

    def session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise KeyError(session_id)
        return session

    async def start(self, settings: PlaygroundSettings) -> Session:
        """Check ``settings``, open the backends, and start a new trace (returns at once)."""
        settings.check()
        if settings.problem_id is not None:
            problem = self.problems.get(settings.problem_id)
            if problem is None:
                raise ConfigurationError(f"no problem {settings.problem_id!r} in the playground's list")
        else:
            digest = hashlib.blake2b(settings.prompt.encode(), digest_size=4).hexdigest()
            problem = Problem(id=f"playground-{digest}", prompt=settings.prompt, answer=settings.answer.strip())
        await self._backend(settings.model)
        if settings.verifier_model:
            await self._backend(settings.verifier_model)
        strategy = create_strategy(settings.strategy, final_every=settings.final_every)
        session = Session(settings, problem, strategy)
        while len(self.sessions) >= self.max_sessions:  # forget the oldest idle session
            oldest = next((s for s in self.sessions.values() if s.status != "running"), None)
            if oldest is None:
                raise ConfigurationError(f"{self.max_sessions} playground traces are running: stop one first")
            self.reset(oldest.id)
        self.sessions[session.id] = session
        opening = await Prompter(strategy).handle(NewTrace(state=session.state))
        self._launch(session, opening)
        return session

    def extend(self, session_id: str) -> Session:
        """"Continue": the next user message from the strategy, then up to ``max_turns`` more
        turns, appended to the same trace. A trace stopped mid-turn asks that turn again."""
        session = self.session(session_id)
        if session.status == "running":
            raise ConfigurationError("the trace is still running")
        state = session.state
        if state.messages and state.messages[-1].role == "user":
            request = GenerateRequest(state=state, kind=session.pending_kind)
        else:
            user, kind = session.strategy.next_message(state, None)
            request = GenerateRequest(state=state.with_message(user), kind=kind)
        self._launch(session, request)
        return session

    def stop(self, session_id: str) -> Session:
        session = self.session(session_id)
        if session.scope is not None:
            session.scope.cancel()
        return session

    def reset(self, session_id: str) -> None:
        """Stop and forget the session; its pages' streams end."""
        session = self.sessions.pop(session_id, None)
        if session is not None:
            if session.scope is not None:
                session.scope.cancel()
            session.pages.close(sse_message("reset", {"id": session.id}))

    async def save(self, session_id: str) -> dict[str, Any]:
        """Append the trace's record to ``save_to`` (one whole line), under the file's lock."""
        session = self.session(session_id)
        if session.status == "running":
            raise ConfigurationError("the trace is still running: stop it or wait for it to end")
        if not any(m.role == "assistant" for m in session.state.messages):
            raise ConfigurationError("the trace has no turns yet")
        record = session.record or TraceRecord.from_state(session.state, status="max_turns",
                                                          stop_reason="stopped in the playground")
        line = json_encoder.encode(record) + b"\n"
        path = self.save_to

        def append() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with locked_traces_file(path, holder="open-strawberry view (playground save)"):
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    done = 0
                    while done < len(line):
                        done += os.write(fd, line[done:])
                finally:
                    os.close(fd)

        try:
            await anyio.to_thread.run_sync(append)
        except OSError as exc:
            raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from None
        session.saved = str(path)
        session._status()
        return {"path": str(path), "trace_id": record.trace_id}

    # ------------------------------------------------------------------ running

    def _launch(self, session: Session, request: GenerateRequest) -> None:
        session.status, session.verdict, session.record, session.error = "running", None, None, None
        session.done = anyio.Event()
        session.scope = anyio.CancelScope()
        session._status()
        self._tg.start_soon(self._run, session, request)

    async def _run(self, session: Session, request: GenerateRequest) -> None:
        settings = session.settings
        assert session.scope is not None
        try:
            with session.scope:
                main = self._backends[settings.model]
                critic = self._backends[settings.verifier_model] if settings.verifier_model else main
                await _run_trace(session, request, main, critic)
            if session.status == "running":  # cancelled by stop: the partial turn is dropped
                session.status, session.current = "stopped", None
        except Exception as exc:  # any failure ends this trace alone, and the page shows it
            session.status, session.current = "error", None
            session.error = redact(f"{type(exc).__name__}: {exc}")
            session.record = TraceRecord.failed(session.state, exc, actor="playground")
        finally:
            session.scope = None
            session.done.set()
            session._status()


def _graph(session: Session, main: Backend, critic: Backend, grader: Any) -> Graph:
    """The graph of a ``generate`` run with the session's settings (the same actors, routes and
    arbiter policy), up to ``max_turns`` more turns, its sink one that only keeps the record."""
    settings = session.settings
    config = GenerateConfig(model=settings.model, strategy=settings.strategy, final_every=settings.final_every,
                            verify_every=settings.verify_every, max_turns=len(session.state.turns) + settings.max_turns,
                            temperature=settings.temperature, max_tokens=settings.max_tokens,
                            grader=settings.grader, max_traces=1)
    pipeline = standard_pipeline(config, main=main, critic=critic, grader=grader, strategy=session.strategy,
                                 verify_every=session.strategy.verify_every(settings.verify_every),
                                 events=session.events, observers=())
    return pipeline.replace("sink", _Kept()).check(max_traces=1)


async def _run_trace(session: Session, request: GenerateRequest, main: Backend, critic: Backend) -> None:
    """Hand ``request`` and each message after it to the actor its route names, showing each
    step to the session's pages, until the grader's record reaches the sink."""
    async with AsyncExitStack() as stack:
        graph = _graph(session, main, critic, await stack.enter_async_context(open_grader(session.settings.grader)))
        for spec in graph.specs.values():
            await spec.actor.setup()
            stack.push_async_callback(spec.actor.teardown)
        name = graph.routes[graph.entry][GenerateRequest]
        message: Message | None = request
        session._user_message(request)
        while message is not None and name != graph.sink:
            sent = message
            message = await graph.specs[name].actor.handle(sent)
            if message is not None:
                _show(session, sent, message)
                name = graph.routes[name][type(message)]


def _show(session: Session, handled: Message, sent: Message) -> None:
    """What the pages see of one step: ``sent`` is the answer to ``handled``."""
    if isinstance(sent, GenerateRequest):
        session._user_message(sent)
    elif isinstance(sent, Generated):
        session._reply(sent.state)
    elif isinstance(sent, TraceRecord):
        session.record, session.status = sent, "stopped"
        session.verdict = contract.Verdict(status=sent.status, final_answer=sent.final_answer, correct=sent.correct,
                                           stop_reason=sent.stop_reason, grade_detail=sent.grade_detail)
    elif isinstance(sent, NextTurn | Verdict | CritiqueRequest):  # the arbiter's decision
        session.state = state = sent.state
        if isinstance(handled, Critique):
            session._publish("score", contract.Score(turn=len(state.turns), score=state.turns[-1].verifier_score))


@asynccontextmanager
async def open_playground(*, save_to: str | os.PathLike[str] = "playground.jsonl",
                          problems: Sequence[Problem] | None = None, environ: Mapping[str, str] | None = None,
                          default_model: str = "mock:reasoner", max_sessions: int = 16,
                          timeout_s: float = 120.0) -> AsyncIterator[Playground]:
    """A playground for the block; on the way out every session is cancelled and every
    backend it opened is closed. An exception raised in the block comes out as it is."""
    async with AsyncExitStack() as stack, open_background_tasks() as tg:
        playground = Playground(tg, stack, save_to=Path(save_to),
                                problems=default_problems() if problems is None else problems,
                                environ=environ, default_model=default_model, max_sessions=max_sessions,
                                timeout_s=timeout_s)
        try:
            yield playground
        finally:
            for session_id in list(playground.sessions):
                playground.reset(session_id)
