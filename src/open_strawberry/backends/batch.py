"""Batch mode as a transport: :class:`BatchBackend`, a :class:`~open_strawberry.backends.base.Backend`
whose calls go through a provider's batch API (:mod:`~open_strawberry.backends.batch_apis`).

The actors stay as they are: each trace awaits its call. The calls waiting at a moment are
gathered into one round: the first call of a round waits ``gather_s`` for the others, then
sends every call waiting as batches (split at the API's request and byte limits), each
written in the journal (:mod:`~open_strawberry.backends.batch_journal`) before it is sent.
Each call then waits for its batch to end; one waiting call at a time polls it (every
``poll_s``, the interval doubling up to 16 times that), so a cancelled poller hands over to
the next. Its result line resolves the call: a succeeded line is read as a synchronous
reply, its usage marked as batched (:meth:`~open_strawberry.messages.Usage.batched`: priced at
the batch price); any other raises the mapped error, which the limiter retries as a synchronous one
(the retry is the next attempt, in a later round), up to ``max_attempts`` sends of one request.

Never pay twice: each request has a key made from its trace, turn, kind and body
(:func:`request_key`), and ``custom_id = <key>-<attempt>``. A rerun asks the same turns
again; a key the journal holds is answered from the batch it went in (polled, its results
fetched again: the providers keep them), and only requests never sent, or whose last send
errored or expired, are sent again. :meth:`BatchBackend.aclose` cancels the batches still
open (a cancelled run's); their finished lines stay readable for the rerun.
"""

from __future__ import annotations

import copy
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
import structlog

from open_strawberry.backends.base import ChatRequest, DeltaCallback
from open_strawberry.backends.batch_apis import BATCH_APIS, ROUND_KEY, BatchAPI, BatchView, LineResult
from open_strawberry.backends.batch_journal import BatchJournal, JournalRequest
from open_strawberry.backends.models import ModelSpec, api_key_for, parse_model
from open_strawberry.backends.timing import Stopwatch
from open_strawberry.errors import (
    BackendError,
    BadRequestError,
    ConfigurationError,
    FatalBackendError,
    ModelNotFoundError,
    RetryableBackendError,
    ServerError,
)
from open_strawberry.messages import Completion

__all__ = ["BATCH_PROVIDERS", "BatchBackend", "BatchStatistics", "create_batch_backend", "request_key",
           "split_batches"]

BATCH_PROVIDERS = ("openai", "anthropic", "groq", "mock", "mock-anthropic")
"""The providers whose servers have batch routes (``openai:`` takes any OpenAI-compatible
server that has them, with ``@base_url``)."""

_log = structlog.get_logger("open_strawberry.batch")
_CANCEL_WAIT_S = 10.0  # the longest aclose waits to cancel each open batch
_MAX_BACKOFF = 16  # the poll interval grows up to this many times poll_s


@dataclass(frozen=True)
class BatchStatistics:
    """Where a batch run stands: its batches by state (open, ended, failed), its requests by
    state (waiting to be sent, processing, succeeded, errored, expired, canceled), the round
    (batches sent so far, as rounds of calls), and the seconds spent with a batch open."""

    batches: dict[str, int]
    requests: dict[str, int]
    round: int
    waiting_s: float

    @classmethod
    def combined(cls, parts: Sequence[BatchStatistics]) -> BatchStatistics:
        """The statistics of several backends of one run (a verifier's batches beside the
        generator's) as one: batches and requests added up, the round and the time spent
        waiting as the furthest of them (their rounds go side by side)."""
        batches: Counter[str] = Counter()
        requests: Counter[str] = Counter()
        for part in parts:
            batches.update(part.batches)
            requests.update(part.requests)
        return cls(batches=dict(batches), requests=dict(requests), round=max((p.round for p in parts), default=0),
                   waiting_s=max((p.waiting_s for p in parts), default=0.0))


def request_key(body: bytes, request: ChatRequest) -> tuple[str, str, int, str]:
    """``(key, trace_id, turn, kind)`` of a call: the trace and actor the runtime bound to the
    calling task (``"x"`` and ``"c"`` outside a run), the turn (assistant messages so far,
    plus one) and a digest of the request ``body``. The same turn asked again gives the same key."""
    bound = structlog.contextvars.get_contextvars()
    trace_id = "".join(c for c in str(bound.get("trace_id") or "x") if c.isalnum())[:24] or "x"
    kind = str(bound.get("actor") or "c")[:1].lower()
    kind = kind if kind.isalnum() else "c"
    turn = 1 + sum(1 for m in request.messages if m.role == "assistant")
    digest = hashlib.blake2b(body, digest_size=5).hexdigest()
    return f"{trace_id}-{kind}{turn}-{digest}", trace_id, turn, kind


def split_batches(lines: list[bytes], *, max_requests: int, max_bytes: int) -> Iterator[range]:
    """The index ranges of ``lines`` that make batches within both limits (a line and its newline
    count against ``max_bytes``)."""
    start = size = 0
    for index, line in enumerate(lines):
        cost = len(line) + 1
        if index > start and (index - start >= max_requests or size + cost > max_bytes):
            yield range(start, index)
            start, size = index, 0
        size += cost
    if start < len(lines):
        yield range(start, len(lines))


@dataclass(eq=False)
class _Batch:
    id: str
    members: list[str]
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    view: BatchView | None = None
    results: dict[str, LineResult] | None = None  # {custom_id: result}, once it has ended


@dataclass(eq=False)
class _Attempt:
    request: JournalRequest
    body: bytes | None  # None: sent by an earlier run
    batch: _Batch | None = None
    failure: BackendError | None = None  # the whole send failed
    reported: bool = False  # its failure was raised once: the next call is the retry


class BatchBackend:
    """A :class:`~open_strawberry.backends.base.Backend` over ``api``'s batches; see the module.

    ``complete`` blocks until the call's batch has ended (a provider may take up to 24 h);
    ``stream`` and ``on_delta`` are ignored (a batch reply comes whole). ``journal`` (owned
    by the caller) makes reruns resume; without it nothing survives the process. This backend
    owns ``api`` and closes it in :meth:`aclose`, after cancelling the batches still open.
    """

    def __init__(self, api: BatchAPI, *, journal: BatchJournal | None = None, poll_s: float = 30.0,
                 gather_s: float = 0.5, max_attempts: int = 4,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.journal = journal
        self.poll_s = poll_s
        self.gather_s = gather_s
        self.max_attempts = max_attempts
        self._sleep, self._now = sleep, now
        self._attempts: dict[str, _Attempt] = {}  # {key: its latest attempt}
        self._batches: dict[str, _Batch] = {}  # {batch id: batch}
        self._pending: list[_Attempt] = []
        self._submit_lock = anyio.Lock()
        self._recovered = False
        self._outcomes: Counter[str] = Counter()  # {succeeded/errored/expired/canceled: requests}
        self._rounds = 0
        self._open_since: float | None = None
        self._waited_s = 0.0

    @property
    def provider(self) -> str:
        return self.api.provider

    @property
    def model(self) -> str:
        return self.api.model

    async def complete(self, request: ChatRequest, *, on_delta: DeltaCallback | None = None,
                       stream: bool = True) -> Completion:
        clock = Stopwatch()  # the turn's time to first token is the time its batch took
        body = self.api.encode(request)
        await self._recover()
        attempt = self._attempt_for(body, request)
        if attempt.batch is None and attempt.failure is None:
            await self._send_round(attempt)
        result = await self._outcome(attempt)
        if result.outcome == "succeeded":
            completion = self.api.completion(result.body, request, clock)
            return msgspec.structs.replace(completion, usage=completion.usage.batched())  # billed at batch price
        attempt.reported = True
        assert result.error is not None
        raise copy.copy(result.error)  # one error may answer a whole batch: each call raises its own

    async def _recover(self) -> None:
        """Once, before the first call: find the batches an earlier run sent but was killed
        before it journaled their ids (where the API can tell, by the round in their metadata)."""
        if self._recovered or self.journal is None:
            return
        async with self._submit_lock:
            if self._recovered:
                return
            for round_id in self.journal.unconfirmed():
                batch_id = await self.api.find(round_id)
                if batch_id is not None:
                    _log.info("batch_recovered", batch_id=batch_id, round=round_id)
                    self.journal.submitted(round_id, batch_id)
            self._recovered = True

    def _attempt_for(self, body: bytes, request: ChatRequest) -> _Attempt:
        """The attempt this call waits on: the one already sent for its key (by this run or, from
        the journal, an earlier one), else a new one: the first, or the next after a failure
        that was raised already. Past ``max_attempts`` sends, a fatal error."""
        key, trace_id, turn, kind = request_key(body, request)
        attempt = self._attempts.get(key)
        if attempt is None and self.journal is not None and (sent := self.journal.latest(key)) is not None:
            attempt = _Attempt(sent.request, None, batch=self._batch(sent.batch_id) if sent.batch_id else None)
            self._attempts[key] = attempt
        if attempt is not None and attempt.batch is None and attempt.body is None:
            number = attempt.request.attempt  # journaled, never confirmed sent: send it now
        elif attempt is not None and attempt.reported:
            number = attempt.request.attempt + 1
            if number > self.max_attempts:
                raise FatalBackendError(f"request {key} failed in {attempt.request.attempt} batches; giving up",
                                        provider=self.provider)
        elif attempt is not None:
            return attempt
        else:
            number = 1
        journaled = JournalRequest(custom_id=f"{key}-{number}", key=key, trace_id=trace_id, turn=turn, kind=kind,
                                   attempt=number)
        self._attempts[key] = fresh = _Attempt(journaled, body)
        return fresh

    def _batch(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            members = self.journal.members(batch_id) if self.journal is not None else []
            batch = self._batches[batch_id] = _Batch(batch_id, members)
        return batch

    # ---------------------------------------------------------------- sending

    async def _send_round(self, attempt: _Attempt) -> None:
        """Wait for ``attempt`` to be sent: the first call of a round waits ``gather_s`` for the
        calls of the same moment, then sends them all (shielded: a send half done would be paid
        for and not journaled)."""
        self._pending.append(attempt)
        async with self._submit_lock:
            if attempt.batch is not None or attempt.failure is not None:
                return
            await self._sleep(self.gather_s)
            taken, self._pending = self._pending, []
            with anyio.CancelScope(shield=True):
                self._rounds += 1
                lines = [self.api.line(a.request.custom_id, a.body or b"") for a in taken]
                for part in split_batches(lines, max_requests=self.api.max_requests, max_bytes=self.api.max_bytes):
                    await self._send([taken[i] for i in part], [lines[i] for i in part])

    async def _send(self, attempts: list[_Attempt], lines: list[bytes]) -> None:
        round_id = uuid.uuid4().hex[:16]
        if self.journal is not None:
            self.journal.intend(round_id, [a.request for a in attempts])
        try:
            batch_id = await self.api.submit(lines, {ROUND_KEY: round_id})
        except BackendError as exc:
            _log.warning("batch_refused", requests=len(lines), error=str(exc))
            for attempt in attempts:
                attempt.failure = exc
            return
        if self.journal is not None:
            self.journal.submitted(round_id, batch_id)
        batch = self._batches[batch_id] = _Batch(batch_id, [a.request.custom_id for a in attempts])
        for attempt in attempts:
            attempt.batch = batch
        self._opened()
        _log.info("batch_submitted", batch_id=batch_id, requests=len(lines), round=self._rounds)

    # ---------------------------------------------------------------- waiting

    async def _outcome(self, attempt: _Attempt) -> LineResult:
        custom_id = attempt.request.custom_id
        if attempt.failure is not None:
            return LineResult(custom_id, "errored", error=attempt.failure)
        batch = attempt.batch
        assert batch is not None
        while batch.results is None:
            async with batch.lock:  # one poller a batch; a cancelled one hands over to the next
                if batch.results is None:
                    await self._poll(batch)
        found = batch.results.get(custom_id)
        if found is None:
            error = ServerError(f"batch {batch.id} ended without a result for {custom_id}", provider=self.provider)
            return LineResult(custom_id, "errored", error=error)
        return found

    async def _poll(self, batch: _Batch) -> None:
        """Poll ``batch`` until it ends, then read its results (a failed batch: each of its
        requests gets the error naming the first bad line; one the provider no longer knows:
        each is to be sent again)."""
        interval = self.poll_s
        while True:
            try:
                view = await self.api.retrieve(batch.id)
            except ModelNotFoundError:
                self._resolve(batch, {c: LineResult(c, "expired", error=ServerError(
                    f"batch {batch.id} is unknown to the provider", provider=self.provider)) for c in batch.members})
                return
            except RetryableBackendError as exc:
                _log.warning("batch_poll_failed", batch_id=batch.id, error=str(exc))
            else:
                batch.view = view
                if view.state != "open":
                    break
            await self._sleep(interval)
            interval = min(interval * 2, self.poll_s * _MAX_BACKOFF)
        if view.state == "failed":
            error = BadRequestError(f"batch {batch.id} failed validation: {view.problem}", provider=self.provider)
            self._resolve(batch, {c: LineResult(c, "errored", error=error) for c in batch.members})
            return
        self._resolve(batch, {r.custom_id: r for r in await self.api.results(view)})

    def _resolve(self, batch: _Batch, results: dict[str, LineResult]) -> None:
        batch.results = results
        self._outcomes.update(r.outcome for r in results.values())
        _log.info("batch_ended", batch_id=batch.id, outcomes=dict(Counter(r.outcome for r in results.values())))
        self._closed_one()

    def _opened(self) -> None:
        if self._open_since is None:
            self._open_since = self._now()

    def _closed_one(self) -> None:
        if self._open_since is not None and not any(b.results is None for b in self._batches.values()):
            self._waited_s += self._now() - self._open_since
            self._open_since = None

    # ---------------------------------------------------------------- reporting and closing

    def statistics(self) -> BatchStatistics:
        states: Counter[str] = Counter()
        processing = 0
        for batch in self._batches.values():
            if batch.results is None:
                states["open"] += 1
                processing += len(batch.members)
            else:
                states["failed" if batch.view is not None and batch.view.state == "failed" else "ended"] += 1
        waiting = self._waited_s + (self._now() - self._open_since if self._open_since is not None else 0.0)
        requests = {"waiting": len(self._pending), "processing": processing, **dict(self._outcomes)}
        return BatchStatistics(batches=dict(states), requests=requests, round=self._rounds, waiting_s=waiting)

    async def aclose(self) -> None:
        """Cancel the batches still open (shielded, each given ``_CANCEL_WAIT_S``), then close the API."""
        with anyio.CancelScope(shield=True):
            for batch in self._batches.values():
                if batch.results is None:
                    with anyio.move_on_after(_CANCEL_WAIT_S):
                        try:
                            await self.api.cancel(batch.id)
                            _log.warning("batch_cancelled", batch_id=batch.id)
                        except BackendError as exc:
                            _log.warning("batch_cancel_failed", batch_id=batch.id, error=str(exc))
            await self.api.aclose()


def create_batch_backend(model: str | ModelSpec, *, journal: BatchJournal | None = None, poll_s: float = 30.0,
                         gather_s: float = 0.5, api_key_env: str | None = None, **options: Any) -> BatchBackend:
    """A :class:`BatchBackend` for ``model`` (one of :data:`BATCH_PROVIDERS`; another is a
    ConfigurationError in one line); ``options`` go to the API's client (timeouts...)."""
    spec = parse_model(model) if isinstance(model, str) else model
    if spec.provider not in BATCH_PROVIDERS:
        raise ConfigurationError(f"--batch needs a provider with a batch API ({', '.join(BATCH_PROVIDERS)}); "
                                 f"{spec.provider}: has none (use openai:MODEL@URL for a compatible server that has)")
    key = api_key_for(spec, api_key_env=api_key_env)
    api = BATCH_APIS[spec.api](base_url=spec.base_url, model=spec.model, api_key=key, provider=spec.provider,
                               **options)
    return BatchBackend(api, journal=journal, poll_s=poll_s, gather_s=gather_s)
