"""The providers' batch APIs, as :class:`BatchAPI`: OpenAI's Batch API and Anthropic's Message Batches.

Each is the native client of its synchronous API (same session, key, deadlines and error
mapping) with the batch routes added, and writes its lines with the same request body the
synchronous call sends (unstreamed: Anthropic's ``cache_control`` breakpoints included) and
reads a succeeded line with the same code as a synchronous reply
(:func:`~open_strawberry.backends.openai_chat.decode_chat_completion`,
:func:`~open_strawberry.backends.anthropic_messages.decode_message`).

OpenAI: the lines go up as a file (``POST /files``, ``purpose=batch``), then ``POST /batches``;
results come from the output and error files. Anthropic: ``POST /v1/messages/batches`` with
the requests inline; results from the batch's ``results_url``. A line that did not succeed
becomes the :class:`~open_strawberry.errors.BackendError` a synchronous call would have
raised (a status's error class, or a retryable one for an expired or canceled request),
never an empty reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import aiohttp
import msgspec

from open_strawberry.backends.anthropic_messages import AnthropicMessagesBackend, anthropic_body, decode_message
from open_strawberry.backends.base import ChatRequest
from open_strawberry.backends.http_errors import ErrorBody, stream_error
from open_strawberry.backends.openai_chat import OpenAIChatBackend, decode_chat_completion
from open_strawberry.backends.timing import Stopwatch
from open_strawberry.errors import BackendError, BadRequestError, ServerError, StreamError, error_for_status
from open_strawberry.messages import Completion
from open_strawberry.redact import redact

__all__ = ["BATCH_APIS", "ROUND_KEY", "AnthropicBatches", "BatchAPI", "BatchView", "LineResult", "OpenAIBatches",
           "Outcome"]

Outcome = Literal["succeeded", "errored", "expired", "canceled"]
ROUND_KEY = "open_strawberry_round"  # the metadata key naming a batch's round in the journal
T = TypeVar("T")
_MESSAGE_CHARS = 300
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class LineResult:
    """How one request of a batch came back: its body when it succeeded, else its error."""

    custom_id: str
    outcome: Outcome
    body: bytes = b""
    error: BackendError | None = None


@dataclass(frozen=True)
class BatchView:
    """A batch as the provider reports it: ``state`` is ``open`` (still running), ``ended``
    (results to read) or ``failed`` (refused whole; ``problem`` names the first bad line)."""

    id: str
    status: str  # the provider's own word
    state: Literal["open", "ended", "failed"]
    counts: dict[str, int] = field(default_factory=dict)
    problem: str | None = None
    files: tuple[str, ...] = ()  # OpenAI: the output and error files; Anthropic: the results URL


class BatchAPI(Protocol):
    """One provider's batch API. ``encode`` is a request's body as the synchronous call sends
    it; ``line`` wraps it with its ``custom_id``; ``submit`` sends lines as one batch and returns
    its id (raising the mapped error, a whole batch refused included); ``retrieve``, ``results``
    and ``cancel`` work on a submitted one; ``completion`` reads a succeeded line's body, timed
    on ``clock`` (started when the call began to wait: its time to first token is the time the
    batch took)."""

    provider: str
    model: str
    max_requests: int
    max_bytes: int

    def encode(self, request: ChatRequest) -> bytes: ...

    def line(self, custom_id: str, body: bytes) -> bytes: ...

    async def submit(self, lines: list[bytes], metadata: dict[str, str]) -> str: ...

    async def retrieve(self, batch_id: str) -> BatchView: ...

    async def results(self, view: BatchView) -> list[LineResult]: ...

    async def cancel(self, batch_id: str) -> None: ...

    async def find(self, round_id: str) -> str | None:
        """The id of the batch submitted with ``round_id`` in its metadata, if the API can tell
        (None: not found, or an API without metadata)."""
        ...

    def completion(self, body: bytes, request: ChatRequest, clock: Stopwatch) -> Completion: ...

    async def aclose(self) -> None: ...


def _lost(custom_id: str, outcome: Outcome, provider: str) -> LineResult:
    """An expired or canceled request: worth sending again, in the next round."""
    return LineResult(custom_id, outcome, error=ServerError(f"the request was {outcome} before it ran (batch)",
                                                            provider=provider))


class _Errors(msgspec.Struct):
    data: list[dict[str, Any]] = []


class _OpenAIBatch(msgspec.Struct):
    id: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: dict[str, int] | None = None  # {total, completed, failed}
    errors: _Errors | None = None


class _OpenAIResponse(msgspec.Struct):
    status_code: int
    body: msgspec.Raw = msgspec.Raw(b"null")


class _OpenAILine(msgspec.Struct):
    custom_id: str
    response: _OpenAIResponse | None = None
    error: ErrorBody | None = None


class _Id(msgspec.Struct):
    id: str


class _Listed(msgspec.Struct):
    id: str
    metadata: dict[str, str] | None = None


class _Page(msgspec.Struct):
    data: list[_Listed] = []
    has_more: bool = False


_FIND_PAGES = 10  # the most pages of 100 batches searched for one that was sent before a kill
_OPEN_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
_ENDPOINT = "/v1/chat/completions"


class OpenAIBatches(OpenAIChatBackend):
    """OpenAI's Batch API (and any OpenAI-compatible server with its routes): 50,000 requests
    and 200 MB a batch."""

    max_requests = 50_000
    max_bytes = 200 * 10**6

    def encode(self, request: ChatRequest) -> bytes:
        return self.encode_request(request, stream=False)

    def line(self, custom_id: str, body: bytes) -> bytes:
        return (b'{"custom_id":' + _encoder.encode(custom_id) + b',"method":"POST","url":"' + _ENDPOINT.encode()
                + b'","body":' + body + b"}")

    async def submit(self, lines: list[bytes], metadata: dict[str, str]) -> str:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", b"\n".join(lines) + b"\n", filename="batch.jsonl",
                       content_type="application/jsonl")
        payload = form()
        uploaded = _decode(self.provider, await self._exchange("POST", "/files", data=payload,
                                                            headers={"content-type": payload.content_type}), shape=_Id)
        create = {"input_file_id": uploaded.id, "endpoint": _ENDPOINT, "completion_window": "24h",
                  "metadata": metadata}
        return _decode(self.provider, await self._exchange("POST", "/batches", data=_encoder.encode(create)),
                                   shape=_Id).id

    async def retrieve(self, batch_id: str) -> BatchView:
        batch = _decode(self.provider, await self._exchange("GET", f"/batches/{batch_id}"), shape=_OpenAIBatch)
        counts = dict(batch.request_counts or {})
        if batch.status == "failed":
            first = (batch.errors.data[:1] if batch.errors else []) or [{}]
            where = f"line {first[0]['line']}: " if first[0].get("line") is not None else ""
            problem = where + str(first[0].get("message") or "no reason given")
            return BatchView(batch.id, batch.status, "failed", counts, problem=redact(problem)[:_MESSAGE_CHARS])
        state: Literal["open", "ended"] = "open" if batch.status in _OPEN_STATUSES else "ended"
        files = tuple(f for f in (batch.output_file_id, batch.error_file_id) if f)
        return BatchView(batch.id, batch.status, state, counts, files=files)

    async def results(self, view: BatchView) -> list[LineResult]:
        found = []
        for file_id in view.files:
            for raw in (await self._exchange("GET", f"/files/{file_id}/content")).splitlines():
                if raw.strip():
                    found.append(self._result(_decode(self.provider, raw, shape=_OpenAILine)))
        return found

    def _result(self, line: _OpenAILine) -> LineResult:
        if line.error is not None:
            code = line.error.code or ""
            if code in ("batch_expired", "batch_cancelled"):
                return _lost(line.custom_id, "expired" if code == "batch_expired" else "canceled", self.provider)
            return LineResult(line.custom_id, "errored", error=_line_error(self.provider, line.error))
        response = line.response
        if response is None:
            return LineResult(line.custom_id, "errored", error=ServerError("a result line with neither response "
                                                                           "nor error", provider=self.provider))
        if response.status_code == 200:
            return LineResult(line.custom_id, "succeeded", body=bytes(response.body))
        error = error_for_status(response.status_code)(
            f"the request failed in the batch: {_message(bytes(response.body))}", provider=self.provider,
            status=response.status_code)
        return LineResult(line.custom_id, "errored", error=error)

    async def cancel(self, batch_id: str) -> None:
        await self._exchange("POST", f"/batches/{batch_id}/cancel")

    async def find(self, round_id: str) -> str | None:
        after = ""
        for _ in range(_FIND_PAGES):
            page = _decode(self.provider, await self._exchange("GET", f"/batches?limit=100{after}"), shape=_Page)
            for listed in page.data:
                if (listed.metadata or {}).get(ROUND_KEY) == round_id:
                    return listed.id
            if not page.has_more or not page.data:
                return None
            after = f"&after={page.data[-1].id}"
        return None

    def completion(self, body: bytes, request: ChatRequest, clock: Stopwatch) -> Completion:
        return decode_chat_completion(body, request, self.provider, clock=clock)


class _AnthropicBatch(msgspec.Struct):
    id: str
    processing_status: str
    request_counts: dict[str, int] = {}  # {processing, succeeded, errored, canceled, expired}
    results_url: str | None = None


class _ErrorWrap(msgspec.Struct):
    error: ErrorBody | None = None


class _AnthropicOutcome(msgspec.Struct):
    type: str
    message: msgspec.Raw = msgspec.Raw(b"null")
    error: _ErrorWrap | None = None


class _AnthropicLine(msgspec.Struct):
    custom_id: str
    result: _AnthropicOutcome


class AnthropicBatches(AnthropicMessagesBackend):
    """Anthropic's Message Batches: 100,000 requests or 256 MB a batch; prompt caching stays on."""

    max_requests = 100_000
    max_bytes = 256 * 10**6

    def encode(self, request: ChatRequest) -> bytes:
        return _encoder.encode(anthropic_body(request, self.model, prompt_cache=self.prompt_cache, stream=False))

    def line(self, custom_id: str, body: bytes) -> bytes:
        return b'{"custom_id":' + _encoder.encode(custom_id) + b',"params":' + body + b"}"

    async def submit(self, lines: list[bytes], metadata: dict[str, str]) -> str:
        body = b'{"requests":[' + b",".join(lines) + b"]}"
        try:
            raw = await self._exchange("POST", "/v1/messages/batches", data=body)
        except BadRequestError as exc:
            raise BadRequestError(f"the batch failed validation: {exc.args[0] if exc.args else exc}",
                                  provider=self.provider, status=exc.status) from exc
        return _decode(self.provider, raw, shape=_Id).id

    async def retrieve(self, batch_id: str) -> BatchView:
        batch = _decode(self.provider, await self._exchange("GET", f"/v1/messages/batches/{batch_id}"),
                                    shape=_AnthropicBatch)
        state: Literal["open", "ended"] = "ended" if batch.processing_status == "ended" else "open"
        return BatchView(batch.id, batch.processing_status, state, dict(batch.request_counts),
                         files=(batch.results_url,) if batch.results_url else ())

    async def results(self, view: BatchView) -> list[LineResult]:
        url = view.files[0] if view.files else f"/v1/messages/batches/{view.id}/results"
        found = []
        for raw in (await self._exchange("GET", url)).splitlines():
            if raw.strip():
                found.append(self._result(_decode(self.provider, raw, shape=_AnthropicLine)))
        return found

    def _result(self, line: _AnthropicLine) -> LineResult:
        kind = line.result.type
        if kind == "succeeded":
            return LineResult(line.custom_id, "succeeded", body=bytes(line.result.message))
        if kind in ("expired", "canceled"):
            return _lost(line.custom_id, "expired" if kind == "expired" else "canceled", self.provider)
        wrapped = line.result.error.error if line.result.error is not None else None
        return LineResult(line.custom_id, "errored",
                          error=_line_error(self.provider, wrapped or ErrorBody(message="no reason given")))

    async def cancel(self, batch_id: str) -> None:
        await self._exchange("POST", f"/v1/messages/batches/{batch_id}/cancel")

    async def find(self, round_id: str) -> str | None:
        return None  # message batches carry no metadata to find one by

    def completion(self, body: bytes, request: ChatRequest, clock: Stopwatch) -> Completion:
        return decode_message(body, request, self.provider, clock=clock)


def _decode(provider: str, raw: bytes, *, shape: type[T]) -> T:
    """``raw`` decoded as ``shape``; a body that is not one is a :class:`StreamError` (worth another try)."""
    try:
        return msgspec.json.decode(raw, type=shape)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StreamError(f"malformed batch API response: {exc}", provider=provider) from None


def _line_error(provider: str, error: ErrorBody) -> BackendError:
    """The error of a line that errored: the class a synchronous call's error of that type gets."""
    mapped = stream_error(provider, error)
    return type(mapped)(f"the request errored in the batch: {redact(error.message)[:_MESSAGE_CHARS]}",
                        provider=provider)


def _message(body: bytes) -> str:
    """The message of an error body, masked and cut."""
    try:
        error = msgspec.json.decode(body, type=_ErrorWrap).error
    except msgspec.DecodeError:
        error = None
    text = error.message if error is not None else body.decode(errors="replace")
    return redact(text or "no body")[:_MESSAGE_CHARS]


# the OpenAI-compatible model and the Anthropic one, as models.create_backend picks them
BATCH_APIS: dict[str, type[OpenAIBatches] | type[AnthropicBatches]] = {
    "openai": OpenAIBatches, "anthropic": AnthropicBatches}
