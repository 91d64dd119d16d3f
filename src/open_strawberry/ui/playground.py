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
its record to the playground's traces file, under that file's lock. What pages see of a
session is in :mod:`~open_strawberry.ui.session`.

Keys come from the server's environment, never from the page: a model string that points a
hosted provider at another URL is refused, saying why (its key only ever goes to its own
provider's URL), and a local provider elsewhere gets no key from the environment. A page may
only name a built-in grader.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from open_strawberry.actors import Prompter
from open_strawberry.backends.base import Backend
from open_strawberry.backends.models import PROVIDERS, parse_model
from open_strawberry.errors import ConfigurationError
from open_strawberry.grading import BUILTIN_GRADERS, open_grader
from open_strawberry.limiter import LimitedBackend, RetryPolicy, create_limited_backend
from open_strawberry.messages import (
    Critique,
    Generated,
    GenerateRequest,
    Message,
    NewTrace,
    Problem,
    TraceRecord,
    json_encoder,
)
from open_strawberry.pipeline import GenerateConfig, check_reachable, standard_pipeline
from open_strawberry.problems.builtin import builtin_problems
from open_strawberry.prompting import create_strategy
from open_strawberry.redact import redact
from open_strawberry.runtime import Actor, Graph
from open_strawberry.runtime.background import open_background_tasks
from open_strawberry.traces.lock import locked_traces_file
from open_strawberry.ui import contract
from open_strawberry.ui.session import PlaygroundSettings, Session
from open_strawberry.ui.sse import sse_message

__all__ = ["Playground", "PlaygroundSettings", "Session", "default_problems", "open_playground"]


def default_problems(per_set: int = 4) -> list[Problem]:
    """A few problems of each built-in set, for the page's list."""
    return [problem for name in ("letters", "arithmetic", "codes") for problem in builtin_problems(name, per_set)]


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

    def catalog(self) -> contract.Catalog:
        """What the page offers: the problems, strategies, graders, and the default model."""
        return contract.Catalog(
            problems=[contract.ProblemView(id=p.id, prompt=p.prompt, answer=p.answer) for p in self.problems.values()],
            strategies=["nudge", "verify"], graders=list(BUILTIN_GRADERS), default_model=self.default_model,
            save_to=str(self.save_to), defaults=PlaygroundSettings(model=self.default_model))

    async def _backend(self, model: str) -> LimitedBackend:
        backend = self._backends.get(model)
        if backend is None:
            spec = parse_model(model)
            provider = PROVIDERS[spec.provider]
            own_url = spec.base_url == provider.base_url.rstrip("/")
            if not own_url and provider.key_required:
                raise ConfigurationError(
                    f"{spec.provider}: at {spec.base_url} this model would need a key, and the playground never "
                    f"sends {provider.key_env} to a URL other than {spec.provider}'s own ({provider.base_url}); "
                    "for a server of your own, use vllm:, sglang: or llamacpp:")
            environ = self.environ if own_url else {}  # a key goes only to its own provider
            if spec.base_url not in self._checked:
                await check_reachable(spec.base_url, timeout_s=5.0, provider=spec.provider)
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

    async def save(self, session_id: str) -> contract.Saved:
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
        return contract.Saved(path=str(path), trace_id=record.trace_id)

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
    elif isinstance(handled, Generated | Critique):  # the arbiter's decision on a reply or a critique
        session.state = state = sent.state
        if isinstance(handled, Critique):
            session._publish("score", contract.Score(turn=len(state.turns), score=state.turns[-1].verifier_score))


@asynccontextmanager
async def open_playground(*, save_to: str | os.PathLike[str] = "playground.jsonl",
                          problems: Sequence[Problem] | None = None, environ: Mapping[str, str] | None = None,
                          default_model: str = "mock:reasoner", max_sessions: int = 16,
                          timeout_s: float = 120.0) -> AsyncIterator[Playground]:
    """A playground for the block; on the way out every session is cancelled and every
    backend it opened is closed. An exception raised in the block comes out as it is.
    ConfigurationError first when ``default_model`` is not a model string or ``save_to`` is a
    directory."""
    parse_model(default_model)
    if await anyio.Path(save_to).is_dir():
        raise ConfigurationError(f"{save_to} is a directory: name the traces file the playground's 'save' "
                                 "appends to (--save-to)")
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
