"""The mock's batch APIs: OpenAI's Batch API and Anthropic's Message Batches.

OpenAI: ``POST /v1/files`` (multipart, ``purpose=batch``; JSONL lines ``{custom_id, method,
url, body}``), ``POST /v1/batches``, ``GET /v1/batches`` (newest first, paged), ``GET
/v1/batches/{id}``, ``POST /v1/batches/{id}/cancel`` and ``GET /v1/files/{id}/content`` (the
output and error files). Anthropic: ``POST /v1/messages/batches {requests: [{custom_id,
params}]}``, ``GET /v1/messages/batches/{id}``, its ``results_url`` and ``POST
/v1/messages/batches/{id}/cancel``.

Each line is answered when its batch is created, by the same reasoner and wire code as the
synchronous routes (:meth:`Answerer.answer_whole`), and shown once the batch has been in
progress for :attr:`BatchBehaviour.delay_s`. :class:`BatchBehaviour` also draws per-request
failures (``errored``: a 500 line; ``expired``: OpenAI's ``batch_expired`` error, Anthropic's
``expired`` result) and can fail every batch's validation. A batch is checked as the
providers check it: each line decodes as the wire's request, its ``custom_id`` matches
``^[a-zA-Z0-9_-]{1,64}$`` and is unique, OpenAI's ``method`` is POST and ``url`` the batch's
endpoint, Anthropic's ``params`` do not stream; the first bad line fails the whole batch.
:attr:`MockBatches.submitted` counts each ``custom_id`` submitted (never-pay-twice tests).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import msgspec
from aiohttp import web

from open_strawberry.mock.config import BatchBehaviour
from open_strawberry.mock.wire import Wire, encode, json_response

__all__ = ["Answerer", "MockBatches"]

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DAY_S = 24 * 3600
Outcome = Literal["succeeded", "errored", "expired", "canceled"]


class Answerer(Protocol):
    """What the batches ask of the server: its wires, and one request answered whole."""

    @property
    def openai(self) -> Wire[Any]: ...

    @property
    def anthropic(self) -> Wire[Any]: ...

    def answer_whole(self, wire: Wire[Any], raw: bytes) -> tuple[int, bytes]: ...


class _Invalid(Exception):
    """A batch that fails validation: the message names the line."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class _Result:
    custom_id: str
    outcome: Outcome
    status: int = 200
    body: bytes = b""  # the wire's response body (succeeded, or an errored line's error body)


@dataclass
class _Batch:
    id: str
    api: Literal["openai", "anthropic"]
    created: float  # time.time()
    ready_at: float  # monotonic: when it ends
    results: list[_Result]
    endpoint: str = "/v1/chat/completions"
    input_file_id: str = ""
    metadata: dict[str, str] | None = None
    cancelled: bool = False
    invalid: _Invalid | None = None
    files: dict[str, str] = field(default_factory=dict)  # {"output"/"error": file id}


class _OpenAILine(msgspec.Struct):
    custom_id: str
    method: str
    url: str
    body: msgspec.Raw


class _OpenAICreate(msgspec.Struct):
    input_file_id: str
    endpoint: str
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None


class _AnthropicRequest(msgspec.Struct):
    custom_id: str
    params: msgspec.Raw


class _AnthropicCreate(msgspec.Struct):
    requests: list[_AnthropicRequest]


_line_decoder = msgspec.json.Decoder(_OpenAILine)


class MockBatches:
    """Both batch APIs, over ``server``'s wires and answers; state lives as long as the server."""

    def __init__(self, server: Answerer, behaviour: BatchBehaviour, *, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server = server
        self.behaviour = behaviour
        self.seed = seed
        self.clock = clock
        self.submitted: Counter[str] = Counter()  # {custom_id: times submitted in a valid batch}
        self.batches: dict[str, _Batch] = {}
        self.files: dict[str, bytes] = {}
        self._ids = itertools.count(1)

    def statistics(self) -> dict[str, int]:
        """Requests submitted in all, distinct custom ids, and batches created."""
        return {"total": sum(self.submitted.values()), "distinct": len(self.submitted), "batches": len(self.batches)}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/files", self._upload)
        router.add_get("/v1/files/{id}/content", self._file_content)
        router.add_post("/v1/batches", self._openai_create)
        router.add_get("/v1/batches", self._openai_list)
        router.add_get("/v1/batches/{id}", self._openai_retrieve)
        router.add_post("/v1/batches/{id}/cancel", self._openai_cancel)
        router.add_post("/v1/messages/batches", self._anthropic_create)
        router.add_get("/v1/messages/batches/{id}", self._anthropic_retrieve)
        router.add_get("/v1/messages/batches/{id}/results", self._anthropic_results)
        router.add_post("/v1/messages/batches/{id}/cancel", self._anthropic_cancel)

    # ---------------------------------------------------------------- shared

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _outcome(self, custom_id: str) -> Outcome:
        # a hash, not random.Random(str): the first draws of seeds that differ in a digit are alike
        digest = hashlib.blake2b(f"{self.seed}:batch:{custom_id}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest) / 2**64
        if draw < self.behaviour.errored:
            return "errored"
        if draw < self.behaviour.errored + self.behaviour.expired:
            return "expired"
        return "succeeded"

    def _answer(self, wire: Wire[Any], custom_id: str, raw: bytes) -> _Result:
        self.submitted[custom_id] += 1
        outcome = self._outcome(custom_id)
        if outcome != "succeeded":
            return _Result(custom_id, outcome, status=500)
        status, body = self.server.answer_whole(wire, raw)
        return _Result(custom_id, "succeeded" if status == 200 else "errored", status, body)

    def _check_ids(self, ids: list[str], where: Callable[[int], str], *, first: int = 0) -> None:
        """The first id that is malformed or repeated fails the batch (lines numbered from ``first``)."""
        seen: set[str] = set()
        for index, custom_id in enumerate(ids, first):
            if not CUSTOM_ID.match(custom_id):
                raise _Invalid(f"{where(index)}: custom_id {custom_id!r} must match ^[a-zA-Z0-9_-]{{1,64}}$", index)
            if custom_id in seen:
                raise _Invalid(f"{where(index)}: custom_id {custom_id!r} is used more than once", index)
            seen.add(custom_id)

    def _ended(self, batch: _Batch) -> bool:
        return batch.cancelled or batch.invalid is not None or self.clock() >= batch.ready_at

    def _find(self, request: web.Request, api: str) -> _Batch:
        batch = self.batches.get(request.match_info["id"])
        if batch is None or batch.api != api:
            raise web.HTTPNotFound(text="no such batch")
        return batch

    def _cancel(self, batch: _Batch) -> None:
        if not self._ended(batch):
            batch.cancelled = True
            batch.results = [_Result(r.custom_id, "canceled", 500) for r in batch.results]

    # ---------------------------------------------------------------- OpenAI

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField) or form.get("purpose") != "batch":
            return json_response({"error": {"message": "send a file with purpose=batch", "type":
                                            "invalid_request_error", "param": "file", "code": None}}, 400)
        data = upload.file.read()
        file_id = self._new_id("file-mock")
        self.files[file_id] = data
        return json_response({"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                              "filename": upload.filename, "purpose": "batch", "status": "processed"})

    async def _file_content(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["id"])
        if data is None:
            raise web.HTTPNotFound(text="no such file")
        return web.Response(body=data, content_type="application/jsonl")

    def _openai_lines(self, raw: bytes, endpoint: str) -> list[tuple[str, bytes]]:
        lines: list[tuple[str, bytes]] = []
        for number, text in enumerate(raw.splitlines(), 1):
            if not text.strip():
                continue
            try:
                line = _line_decoder.decode(text)
                self.server.openai.decode(bytes(line.body))
            except msgspec.DecodeError as exc:
                raise _Invalid(f"line {number}: {exc}", number) from None
            if line.method != "POST" or line.url != endpoint:
                raise _Invalid(f"line {number}: method must be POST and url {endpoint}", number)
            lines.append((line.custom_id, bytes(line.body)))
        self._check_ids([custom_id for custom_id, _ in lines], lambda number: f"line {number}", first=1)
        if not lines:
            raise _Invalid("the input file holds no requests", 1)
        return lines

    async def _openai_create(self, request: web.Request) -> web.Response:
        create = msgspec.json.decode(await request.read(), type=_OpenAICreate)
        raw = self.files.get(create.input_file_id)
        if raw is None:
            raise web.HTTPNotFound(text="no such input file")
        batch = _Batch(self._new_id("batch_mock"), "openai", time.time(), self.clock() + self.behaviour.delay_s, [],
                       endpoint=create.endpoint, input_file_id=create.input_file_id, metadata=create.metadata)
        try:
            if self.behaviour.invalid:
                raise _Invalid("line 1: refused (the mock's batch.invalid)", 1)
            lines = self._openai_lines(raw, create.endpoint)
        except _Invalid as invalid:
            batch.invalid = invalid
        else:
            batch.results = [self._answer(self.server.openai, custom_id, body) for custom_id, body in lines]
        self.batches[batch.id] = batch
        return json_response(self._openai_view(batch))

    async def _openai_list(self, request: web.Request) -> web.Response:
        """Newest first, ``limit`` a page (default 20), after the id ``after``, as OpenAI pages them."""
        batches = [b for b in reversed(self.batches.values()) if b.api == "openai"]
        after = request.query.get("after")
        if after is not None:
            ids = [b.id for b in batches]
            batches = batches[ids.index(after) + 1:] if after in ids else []
        limit = int(request.query.get("limit", "20"))
        page = [self._openai_view(b) for b in batches[:limit]]
        return json_response({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                              "last_id": page[-1]["id"] if page else None, "has_more": len(batches) > limit})

    async def _openai_retrieve(self, request: web.Request) -> web.Response:
        return json_response(self._openai_view(self._find(request, "openai")))

    async def _openai_cancel(self, request: web.Request) -> web.Response:
        batch = self._find(request, "openai")
        self._cancel(batch)
        return json_response(self._openai_view(batch))

    def _openai_view(self, batch: _Batch) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": batch.id, "object": "batch", "endpoint": batch.endpoint, "completion_window": "24h",
            "created_at": int(batch.created), "input_file_id": batch.input_file_id, "metadata": batch.metadata,
            "expires_at": int(batch.created) + _DAY_S}
        if batch.invalid is not None:
            error = {"code": "invalid_request", "message": str(batch.invalid), "param": None,
                     "line": batch.invalid.line}
            return {**view, "status": "failed", "errors": {"object": "list", "data": [error]},
                    "request_counts": {"total": 0, "completed": 0, "failed": 0}}
        total = len(batch.results)
        if not self._ended(batch):
            return {**view, "status": "in_progress", "request_counts": {"total": total, "completed": 0, "failed": 0}}
        completed = sum(r.outcome == "succeeded" for r in batch.results)
        if not batch.files:
            self._write_openai_files(batch)
        status = "cancelled" if batch.cancelled else (
            "expired" if any(r.outcome == "expired" for r in batch.results) else "completed")
        return {**view, "status": status, "output_file_id": batch.files.get("output"),
                "error_file_id": batch.files.get("error"),
                "request_counts": {"total": total, "completed": completed, "failed": total - completed}}

    def _write_openai_files(self, batch: _Batch) -> None:
        """The output file (lines of succeeded requests) and the error file (the rest), each
        written only when it has a line, in reverse order (the providers promise none)."""
        output, errors = [], []
        for number, result in enumerate(reversed(batch.results), 1):
            line: dict[str, Any] = {"id": f"batch_req_mock{number}", "custom_id": result.custom_id,
                                    "response": None, "error": None}
            if result.outcome == "succeeded":
                line["response"] = {"status_code": 200, "request_id": f"req_mock_b{number}",
                                    "body": msgspec.Raw(result.body)}
                output.append(encode(line))
            elif result.outcome in ("expired", "canceled"):
                code = "batch_expired" if result.outcome == "expired" else "batch_cancelled"
                line["error"] = {"code": code, "message": f"This request was {result.outcome}."}
                errors.append(encode(line))
            else:
                body = msgspec.Raw(result.body) if result.body else {"error": {
                    "message": "The server had an error processing your request.", "type": "server_error"}}
                line["response"] = {"status_code": result.status, "request_id": f"req_mock_b{number}", "body": body}
                errors.append(encode(line))
        for kind, lines in (("output", output), ("error", errors)):
            if lines:
                file_id = self._new_id("file-mock")
                self.files[file_id] = b"\n".join(lines) + b"\n"
                batch.files[kind] = file_id

    # ---------------------------------------------------------------- Anthropic

    async def _anthropic_create(self, request: web.Request) -> web.Response:
        try:
            create = msgspec.json.decode(await request.read(), type=_AnthropicCreate)
            self._check_anthropic(create)
        except (msgspec.DecodeError, _Invalid) as exc:
            return json_response({"type": "error", "error": {"type": "invalid_request_error", "message": str(exc)}},
                                 400)
        batch = _Batch(self._new_id("msgbatch_mock"), "anthropic", time.time(),
                       self.clock() + self.behaviour.delay_s, [])
        batch.results = [self._answer(self.server.anthropic, r.custom_id, bytes(r.params)) for r in create.requests]
        self.batches[batch.id] = batch
        return json_response(self._anthropic_view(batch, request))

    def _check_anthropic(self, create: _AnthropicCreate) -> None:
        if self.behaviour.invalid:
            raise _Invalid("requests[0]: refused (the mock's batch.invalid)", 0)
        if not create.requests:
            raise _Invalid("requests: at least one request is needed", 0)
        self._check_ids([r.custom_id for r in create.requests], lambda index: f"requests[{index}]")
        for index, item in enumerate(create.requests):
            try:
                call = self.server.anthropic.decode(bytes(item.params))
            except msgspec.DecodeError as exc:
                raise _Invalid(f"requests[{index}].params: {exc}", index) from None
            if call.stream:
                raise _Invalid(f"requests[{index}].params.stream: streaming is not supported in batches", index)

    async def _anthropic_retrieve(self, request: web.Request) -> web.Response:
        return json_response(self._anthropic_view(self._find(request, "anthropic"), request))

    async def _anthropic_cancel(self, request: web.Request) -> web.Response:
        batch = self._find(request, "anthropic")
        self._cancel(batch)
        return json_response(self._anthropic_view(batch, request))

    async def _anthropic_results(self, request: web.Request) -> web.Response:
        batch = self._find(request, "anthropic")
        if not self._ended(batch):
            return json_response({"type": "error", "error": {"type": "invalid_request_error",
                                                             "message": "the batch is still processing"}}, 400)
        lines = []
        for result in reversed(batch.results):
            outcome: dict[str, Any] = {"type": result.outcome}
            if result.outcome == "succeeded":
                outcome["message"] = msgspec.Raw(result.body)
            elif result.outcome == "errored":
                outcome["error"] = {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
            lines.append(encode({"custom_id": result.custom_id, "result": outcome}))
        return web.Response(body=b"\n".join(lines) + b"\n", content_type="application/binary")

    def _anthropic_view(self, batch: _Batch, request: web.Request) -> dict[str, Any]:
        ended = self._ended(batch)
        counts = Counter(r.outcome for r in batch.results)
        created = datetime.fromtimestamp(batch.created, UTC)
        return {
            "id": batch.id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
            "request_counts": {"processing": 0 if ended else len(batch.results),
                               "succeeded": counts["succeeded"] if ended else 0,
                               "errored": counts["errored"] if ended else 0,
                               "canceled": counts["canceled"] if ended else 0,
                               "expired": counts["expired"] if ended else 0},
            "created_at": created.isoformat(), "expires_at": datetime.fromtimestamp(batch.created + _DAY_S,
                                                                                    UTC).isoformat(),
            "ended_at": datetime.fromtimestamp(time.time(), UTC).isoformat() if ended else None,
            "cancel_initiated_at": created.isoformat() if batch.cancelled else None, "archived_at": None,
            "results_url": f"{request.url.origin()}/v1/messages/batches/{batch.id}/results" if ended else None}
