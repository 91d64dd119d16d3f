"""The UI server without a browser: tokens, origins and hosts; bounded, dropping queues; the
monitor's figures against the traces file; the playground's API."""

from __future__ import annotations

import contextlib
import re
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
from structlog.testing import capture_logs

from open_strawberry import ChatRequest, Completion
from open_strawberry.backends import create_backend
from open_strawberry.backends.base import DeltaCallback
from open_strawberry.errors import BadRequestError, ConfigurationError
from open_strawberry.events import EventStream, ReasoningDelta, TextDelta, TraceFinished, TurnFinished, TurnStarted
from open_strawberry.messages import Timings, Usage
from open_strawberry.mock import MockConfig, MockServer, open_mock_server
from open_strawberry.pipeline import generate
from open_strawberry.ui import Monitor, UIServer, open_monitor, open_ui_server, open_viewer
from open_strawberry.ui.contract import Message, UsageView
from open_strawberry.ui.sse import Broadcaster
from tests.ui.support import read_records


def settings(server: MockServer, **changes: Any) -> dict[str, Any]:
    return {"model": f"mock:reasoner@{server.url}/v1", "problem_id": "letters-0", "max_turns": 2, **changes}


class Client:
    """The page's side of the API: the token in a header, the page's own origin."""

    def __init__(self, http: aiohttp.ClientSession, server: UIServer) -> None:
        self.http, self.server = http, server
        self.headers = {"X-UI-Token": server.token, "Origin": server.base_url}

    async def post(self, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        async with self.http.post(self.server.base_url + path, json=body or {},
                                  headers={**self.headers, **headers}) as response:
            return response.status, await response.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(self.server.base_url + path, headers=self.headers) as response:
            return response.status, await response.json()

    async def events(self, path: str, until: str) -> list[tuple[str, str]]:
        """The stream's (event, data) pairs up to and including the first whose data matches ``until``."""
        seen: list[tuple[str, str]] = []
        async with self.http.get(self.server.base_url + path, headers=self.headers) as response:
            event = ""
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    seen.append((event, line[6:]))
                    if re.search(until, f"{event} {line[6:]}"):
                        return seen
        return seen


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Client]:
    """The playground served (keys from a made-up environment), and a client for it. (Not a
    fixture: a task group must be left in the task that entered it.)"""
    async with (open_viewer(save_to=tmp_path / "saved.jsonl", environ={"OPENAI_API_KEY": "sk-not-for-the-mock"})
                as server, aiohttp.ClientSession() as http):
        yield Client(http, server)



# ---------------------------------------------------------------------------- who may ask


async def test_pages_and_data_need_the_token_static_files_do_not(tmp_path: Path) -> None:
    async with serving(tmp_path) as client:
        http, viewer = client.http, client.server
        for path in ("/playground", "/api/playground", "/"):
            async with http.get(viewer.base_url + path, allow_redirects=False) as response:
                assert response.status == 403
        async with http.get(viewer.page_url("playground")) as response:
            assert response.status == 200
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert viewer.token in await response.text()
        async with http.get(viewer.base_url + "/static/common.js") as response:
            assert response.status == 200
            assert viewer.token not in await response.text()
        assert viewer.refused == 3


async def test_a_page_load_with_an_empty_or_near_miss_token_is_refused(tmp_path: Path) -> None:
    async with serving(tmp_path) as client:
        http, viewer, token = client.http, client.server, client.server.token
        near_misses = ["", " ", token[:-1], token + "x", token[1:], token[:8], token.swapcase()]
        for given in near_misses:
            for path in ("/playground", "/api/playground"):
                async with http.get(viewer.base_url + path, params={"token": given}) as response:
                    assert response.status == 403, (path, given)
                async with http.get(viewer.base_url + path, headers={"X-UI-Token": given}) as response:
                    assert response.status == 403, (path, given)
        async with http.get(viewer.base_url + "/playground", params={"token": token}) as response:
            assert response.status == 200
        assert viewer.refused == 4 * len(near_misses)


async def test_a_state_changing_request_needs_the_header_token_and_the_pages_origin(
        tmp_path: Path, mock_server: MockServer) -> None:
    body = settings(mock_server)
    async with serving(tmp_path) as client:
        http, base, token = client.http, client.server.base_url, client.server.token
        async with http.post(f"{base}/api/playground/sessions?token={token}", json=body,
                             headers={"Origin": base}) as response:
            assert response.status == 403  # the token in the URL is not enough for a change
        assert (await client.post("/api/playground/sessions", body, Origin="http://evil.example"))[0] == 403
        async with http.post(f"{base}/api/playground/sessions", json=body, headers={"X-UI-Token": token}) as response:
            assert response.status == 403  # no Origin at all
        assert (await client.post("/api/playground/sessions", body, **{"X-UI-Token": "wrong"}))[0] == 403
        assert mock_server.requests == 0
        status, started = await client.post("/api/playground/sessions", body)
        assert status == 200 and started["id"]


async def test_a_foreign_host_header_is_refused_on_loopback(tmp_path: Path) -> None:
    async with serving(tmp_path) as client:
        page = client.server.page_url("playground")
        async with client.http.get(page, headers={"Host": "rebound.example:80"}) as response:
            assert response.status == 403


async def test_binding_beyond_loopback_needs_allow_remote_and_warns(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="allow-remote"):
        async with open_viewer(host="0.0.0.0", save_to=tmp_path / "s.jsonl"):
            pass
    warnings: list[str] = []
    async with open_viewer(host="0.0.0.0", allow_remote=True, save_to=tmp_path / "s.jsonl",
                           warn=warnings.append) as server, aiohttp.ClientSession() as http:
        async with http.get(server.page_url("playground")) as response:
            assert response.status == 200
        async with http.get(server.base_url + "/playground") as response:
            assert response.status == 403
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0]
    with pytest.raises(ConfigurationError, match="port"):
        async with open_viewer(port=70_000, save_to=tmp_path / "s.jsonl"):
            pass


# ---------------------------------------------------------------------------- never slowing the run


def test_a_full_page_queue_drops_and_counts_and_a_closed_page_is_forgotten() -> None:
    pages = Broadcaster(buffer=2)
    slow, gone = pages.open(), pages.open()
    gone.close_reader()
    for number in range(5):
        pages.publish(str(number).encode())  # never waits
    assert pages.queues == 1 and slow.dropped == 3 and pages.dropped == 3
    pages.close(b"last")  # does not fit either
    assert pages.dropped == 4 and pages.queues == 0
    late = pages.open([b"late"])
    assert late.offer(b"more") is False
    for channel in (slow, late):
        channel.close_reader()


async def test_a_page_that_stops_reading_never_slows_the_run(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    mock = MockConfig(ttft_s=0.01, tokens_per_s=2000)
    async with open_mock_server(mock) as server, open_monitor(tick_s=0.005) as monitor:
        assert monitor.server is not None
        base = monitor.server.base_url.removeprefix("http://")
        host, port = base.rsplit(":", 1)
        stuck = monitor.pages.open()  # a page whose connection is blocked: nothing drains its queue
        with socket.socket() as raw:  # and a real one that reads nothing, with the smallest receive buffer
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect((host, int(port)))  # loopback: the kernel completes it at once
            raw.sendall(f"GET /api/monitor/stream?token={monitor.server.token} HTTP/1.1\r\nHost: {base}\r\n\r\n"
                        .encode())
            with anyio.fail_after(60):
                summary = await generate(problems="builtin:mixed:40", model=f"mock:reasoner@{server.url}/v1",
                                         out=str(out), max_traces=8, **monitor.generate_options())
        assert summary.written == 40 and len(read_records(out)) == 40
        assert stuck.dropped > 0 and monitor.pages.dropped >= stuck.dropped  # the page lost messages, the run nothing
        assert monitor.snapshot().dropped.pages == monitor.pages.dropped
        stuck.close_reader()


# ---------------------------------------------------------------------------- the monitor's figures


class FailsOnCodes:
    """The mock's backend, failing for good on the code puzzles: failed traces of one error type."""

    def __init__(self, url: str) -> None:
        self.inner = create_backend(f"mock:reasoner@{url}/v1")
        self.provider, self.model = "mock", "reasoner"

    async def complete(self, request: ChatRequest, *, on_delta: DeltaCallback | None = None,
                       stream: bool = True) -> Completion:
        if "code" in request.messages[1].content.lower():
            raise BadRequestError("no puzzles today", status=400)
        return await self.inner.complete(request, on_delta=on_delta, stream=stream)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("events", ["its own", "given"])
async def test_the_monitors_figures_are_the_traces_files(tmp_path: Path, mock_server: MockServer, events: str) -> None:
    out = tmp_path / "traces.jsonl"
    backend = FailsOnCodes(mock_server.url)
    stream = EventStream() if events == "given" else None  # read through a bounded subscription
    async with open_monitor(stream, prices={"mock:reasoner": (1.0, 10.0)}) as monitor:
        await generate(problems="builtin:mixed:9", model="mock:reasoner", out=str(out), backend=backend,
                       **monitor.generate_options())
    state = monitor.snapshot()  # leaving the block took in every event the run sent
    await backend.aclose()
    records = read_records(out)
    assert state.finished and state.done == state.total == len(records) == 9
    assert state.statuses == dict(Counter(r.status for r in records))
    assert state.errors == {"BadRequestError": 3}
    assert state.correct == sum(r.correct is True for r in records)
    assert state.graded == sum(r.correct is not None for r in records)
    assert state.turns == sum(len(r.turns) for r in records)
    tokens_in = sum(r.usage.input_tokens for r in records)
    tokens_out = sum(r.usage.output_tokens for r in records)
    assert (state.tokens.input, state.tokens.output) == (tokens_in, tokens_out)
    assert state.cost == pytest.approx((tokens_in * 1.0 + tokens_out * 10.0) / 1e6)
    assert state.in_flight == 0 and state.traces == []
    assert [r.trace_id for r in state.recent] == [r.trace_id for r in reversed(records)]
    assert monitor.event_errors == 0 and state.dropped.events == 0


def test_a_watched_trace_gets_its_text_so_far_then_each_delta_and_its_end() -> None:
    monitor = Monitor(trace_chars=30)
    usage = Usage(input_tokens=5, output_tokens=2)
    monitor.events.publish(TurnStarted(trace_id="t", turn=1, kind="first"))
    for piece in ("twenty characters.. ", "and more"):
        monitor.events.publish(TextDelta(trace_id="t", turn=1, text=piece))
    monitor.events.publish(TurnFinished(trace_id="t", turn=1, usage=usage, timings=Timings(ttft_s=0.1, e2e_s=0.2)))
    found = monitor.watch("t")
    assert found is not None
    _, channel = found
    monitor.events.publish(TurnStarted(trace_id="t", turn=2, kind="nudge"))
    monitor.events.publish(TextDelta(trace_id="t", turn=2, text="x" * 20))  # over trace_chars: turn 1's text goes
    monitor.events.publish(TraceFinished(trace_id="t", problem_id="p", sample=0, status="final", correct=True, turns=2))

    async def read() -> bytes:
        batch = await channel.next_batch()
        assert await channel.next_batch() is None  # the trace ended: so does its stream
        return b"".join(batch or [])

    sent = anyio.run(read).decode()
    channel.close_reader()
    assert [line[7:] for line in sent.splitlines() if line.startswith("event: ")] == [
        "trace", "turn_start", "delta", "trace_end"]
    assert "twenty characters.. and more" in sent
    recent = monitor._recent[-1]
    assert recent.turns[0].parts is None and recent.turns[1].parts == ["x" * 20]
    state = monitor.snapshot()
    assert state.done == state.correct == 1 and state.ttft_s.p50 == 0.1
    assert monitor.watch("unknown") is None
    monitor.close()


def test_the_series_keeps_its_whole_history_in_a_bounded_number_of_points() -> None:
    times = iter(float(t) for t in range(10_000))
    monitor = Monitor(series_points=50, clock=lambda: next(times))
    for _ in range(1_000):
        monitor.turns += 2
        monitor.tick()
    series = monitor.snapshot().series
    assert 25 <= len(series["t"]) < 50
    assert series["t"][0] <= 64 and series["t"][-1] >= 960  # from the start to now, at a coarser grain
    assert all(rate == pytest.approx(2.0) for rate in series["turns_per_s"])
    monitor.close()


# ---------------------------------------------------------------------------- the playground's API


async def test_a_key_goes_only_to_its_own_provider(tmp_path: Path, mock_server: MockServer) -> None:
    async with serving(tmp_path) as client:  # the key is set: the refusal says why it is not sent
        status, body = await client.post("/api/playground/sessions",
                                         settings(mock_server, model=f"openai:gpt-4o-mini@{mock_server.url}/v1"))
    assert status == 400 and "OPENAI_API_KEY" in body["error"]
    assert "never sends OPENAI_API_KEY to a URL other than openai's own" in body["error"]  # why, not "set it"
    assert "set OPENAI_API_KEY" not in body["error"]
    assert mock_server.requests == 0


async def test_the_page_may_name_only_a_built_in_grader_and_a_reachable_server(
        tmp_path: Path, mock_server: MockServer) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    async with serving(tmp_path) as client:
        status, body = await client.post("/api/playground/sessions", settings(mock_server, grader="os:system"))
        assert status == 400 and "built-in" in body["error"]
        status, body = await client.post("/api/playground/sessions",
                                         settings(mock_server, model=f"mock:m@http://127.0.0.1:{port}/v1"))
        assert status == 400 and "cannot reach" in body["error"]
        status, body = await client.post("/api/playground/sessions", {"model": "mock:m", "max_turns": "two"})
        assert status == 400


async def test_stop_drops_the_turn_in_flight_and_continue_asks_it_again(tmp_path: Path) -> None:
    async with open_mock_server(MockConfig(ttft_s=0.01, tokens_per_s=50)) as slow, serving(tmp_path) as client:
        status, started = await client.post("/api/playground/sessions", settings(slow, max_turns=3))
        assert status == 200
        path = f"/api/playground/sessions/{started['id']}"
        seen = await client.events(f"{path}/stream", until=r'^delta .*"turn":2')  # turn 2 is streaming: stop it
        assert seen[0][0] == "session"
        assert (await client.post(f"{path}/stop"))[0] == 200
        await client.events(f"{path}/stream", until='"status":"stopped"')
        [(_, first)] = (await client.events(f"{path}/stream", until="^session "))
        stopped = msgspec.json.decode(first)
        assert stopped["current"] is None and stopped["messages"][-1]["role"] == "user"  # the partial reply is gone
        assert (await client.post(f"{path}/save"))[0] == 200  # as it is
        assert (await client.post(f"{path}/continue"))[0] == 200
        assert (await client.post(f"{path}/continue"))[0] == 409  # it is running
        await client.events(f"{path}/stream", until='"status":"stopped"')
        [(_, last)] = await client.events(f"{path}/stream", until="^session ")
        session = msgspec.json.decode(last)
        roles = [m["role"] for m in session["messages"]]
        assert roles == ["system", "user", *["assistant", "user"] * 3, "assistant"]  # turn 2 once, then 3 and 4
        assert [m["turn"] for m in session["messages"] if m["role"] == "assistant"] == [1, 2, 3, 4]
        assert (await client.post(f"{path}/reset"))[0] == 200
        assert (await client.post(f"{path}/continue"))[0] == 404
    [saved] = read_records(tmp_path / "saved.jsonl")
    assert saved.status == "max_turns" and saved.stop_reason == "stopped in the playground"
    assert len(saved.turns) == 1 and saved.messages[-1].role == "user"  # saved as it was when stopped


def test_a_retried_turn_shows_the_recorded_reply_not_the_failed_attempts_start() -> None:
    monitor = Monitor()
    monitor.events.publish(TurnStarted(trace_id="t", turn=1, kind="first"))
    for piece in ("The answer is 4", "The answer is 5."):  # the first call broke off; the retry streamed again
        monitor.events.publish(TextDelta(trace_id="t", turn=1, text=piece))
    monitor.events.publish(TurnFinished(trace_id="t", turn=1, usage=Usage(input_tokens=5, output_tokens=4),
                                        timings=Timings(ttft_s=0.1, e2e_s=0.2, attempts=2), text="The answer is 5."))
    turn = monitor._traces["t"].turns[0].describe()
    assert (turn.text, turn.attempts) == ("The answer is 5.", 2)
    assert monitor._traces["t"].chars == len("The answer is 5.")
    monitor.close()


async def test_the_server_closes_no_part_it_was_handed(tmp_path: Path) -> None:
    monitor = Monitor()
    async with open_ui_server(monitor=monitor) as server, aiohttp.ClientSession() as http:
        async with http.get(f"{server.base_url}/api/monitor/state?token={server.token}") as response:
            assert response.status == 200 and (await response.json())["finished"] is False
    assert not monitor.pages.closed and monitor.events.has_subscribers  # still the caller's to close
    monitor.close()
    assert monitor.pages.closed and monitor.finished


async def test_the_monitor_knows_its_page_from_the_start(tmp_path: Path) -> None:
    async with open_monitor() as monitor, aiohttp.ClientSession() as http:
        assert monitor.server is not None and monitor.url == monitor.server.page_url("monitor")
        async with http.get(monitor.url) as response:
            assert response.status == 200
    assert monitor.pages.closed and monitor.finished  # open_monitor made it, and closed it


# ---------------------------------------------------------------------------- thinking


def test_a_watched_trace_streams_its_thinking_apart_from_its_answer() -> None:
    monitor = Monitor(trace_chars=40)
    monitor.events.publish(TurnStarted(trace_id="t", turn=1, kind="first"))
    monitor.events.publish(ReasoningDelta(trace_id="t", turn=1, text="Hmm, "))
    found = monitor.watch("t")
    assert found is not None
    _, channel = found
    monitor.events.publish(ReasoningDelta(trace_id="t", turn=1, text="two."))
    monitor.events.publish(TextDelta(trace_id="t", turn=1, text="It is 2."))
    usage = Usage(input_tokens=5, output_tokens=6, reasoning_tokens=3)
    monitor.events.publish(TurnFinished(trace_id="t", turn=1, usage=usage, timings=Timings(ttft_s=0.1, e2e_s=0.2),
                                        text="It is 2.", reasoning="Hmm, two."))
    turn = monitor._traces["t"].turns[0].describe()
    assert (turn.text, turn.reasoning, turn.usage and turn.usage.reasoning) == ("It is 2.", "Hmm, two.", 3)
    assert monitor._traces["t"].chars == len("It is 2.") + len("Hmm, two.")  # thinking counts against trace_chars
    monitor.events.publish(TurnStarted(trace_id="t", turn=2, kind="nudge"))
    monitor.events.publish(ReasoningDelta(trace_id="t", turn=2, text="y" * 30))  # over: turn 1's text and thinking go
    assert monitor._traces["t"].turns[0].describe().reasoning is None
    monitor.events.publish(TraceFinished(trace_id="t", problem_id="p", sample=0, status="final", correct=True, turns=2))

    async def read() -> list[tuple[str, Any]]:
        batches = []
        while (batch := await channel.next_batch()) is not None:
            batches += batch
        lines = b"".join(batches).decode().splitlines()
        return [(event[7:], msgspec.json.decode(data[6:])) for event, data in zip(lines[::3], lines[1::3], strict=True)]

    sent = anyio.run(read)
    channel.close_reader()
    assert [event for event, _ in sent] == ["trace", "thinking", "delta", "turn_end", "turn_start", "thinking",
                                            "trace_end"]
    assert sent[0][1]["turns"][0]["reasoning"] == "Hmm, "  # the thinking so far, apart from the text
    assert sent[1][1] == {"turn": 1, "text": "two."} and sent[2][1] == {"turn": 1, "text": "It is 2."}
    assert sent[3][1]["reasoning"] == "Hmm, two." and sent[3][1]["usage"]["reasoning"] == 3
    monitor.close()


def test_a_turn_without_thinking_is_sent_as_before() -> None:
    plain = msgspec.json.decode(msgspec.json.encode(UsageView.of(Usage(input_tokens=1, output_tokens=2))))
    assert plain == {"input": 1, "output": 2, "cache_read": 0, "cache_write": 0}
    thought = UsageView.of(Usage(input_tokens=1, output_tokens=2, reasoning_tokens=1))
    assert msgspec.json.decode(msgspec.json.encode(thought))["reasoning"] == 1
    message = Message(index=1, role="assistant", content="x")
    assert "reasoning" not in msgspec.json.decode(msgspec.json.encode(message))


async def test_the_playground_streams_and_keeps_each_replys_thinking_apart(tmp_path: Path) -> None:
    async with (open_mock_server(MockConfig(thinking="reasoning_content")) as server,
                serving(tmp_path) as client):
        status, started = await client.post("/api/playground/sessions", settings(server, max_turns=2))
        assert status == 200
        path = f"/api/playground/sessions/{started['id']}/stream"
        seen = await client.events(path, until='"status":"stopped"')
        thinking = "".join(msgspec.json.decode(data)["text"] for event, data in seen if event == "thinking")
        answers = "".join(msgspec.json.decode(data)["text"] for event, data in seen if event == "delta")
        [(_, last)] = await client.events(path, until="^session ")
    replies = [m for m in msgspec.json.decode(last)["messages"] if m["role"] == "assistant"]
    assert len(replies) == 2
    assert thinking == "".join(m["reasoning"] for m in replies)  # streamed apart, as recorded
    assert answers == "".join(m["content"] for m in replies)
    assert all(m["reasoning"] not in m["content"] and m["usage"]["reasoning"] > 0 for m in replies)


# ---------------------------------------------------------------------------- the browser's file changing


async def test_the_browser_keeps_serving_when_its_file_goes_away(tmp_path: Path) -> None:
    traces = tmp_path / "t.jsonl"
    traces.write_bytes(b'{"type": "TraceRecord"}\n' * 3)
    async with (open_viewer(traces, playground=False) as server, aiohttp.ClientSession() as http):
        client = Client(http, server)
        assert (await client.get("/api/traces/facets"))[1]["indexed"] == 3
        traces.unlink()
        traces.mkdir()
        status, page = await client.get("/api/traces")
        assert status == 200 and page["items"] == []
        status, facets = await client.get("/api/traces/facets")
        assert status == 200 and facets["unavailable"] and facets["indexed"] == 0
        assert (await client.get("/api/traces/0"))[0] == 404


# ---------------------------------------------------------------------------- malformed requests


async def raw_request(server: UIServer, request: bytes) -> bytes:
    """Send ``request`` as it is; the whole answer, up to the server closing the connection
    (as it does after a request it cannot parse, or one that asks ``Connection: close``)."""
    port = int(server.base_url.rsplit(":", 1)[1])
    answer = b""
    with anyio.fail_after(10):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(request)
            with contextlib.suppress(anyio.EndOfStream):
                while True:
                    answer += await stream.receive()
    return answer


async def test_a_malformed_request_is_answered_400_and_logged_as_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with open_viewer(save_to=tmp_path / "s.jsonl") as server:
        host, token = server.base_url.removeprefix("http://"), server.token
        page = f"/playground?token={token}".encode()
        post = (f"POST /api/playground/sessions HTTP/1.1\r\nHost: {host}\r\nX-UI-Token: {token}\r\n"
                f"Origin: {server.base_url}\r\nConnection: close\r\n").encode()
        malformed = [
            b"GET http://" + page + b" HTTP/1.1\r\nHost: \r\n\r\n",  # an empty host
            b"GET " + page + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\nHost: \r\n\r\n",
            post + b"Content-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
            post + b"Content-Encoding: gzip\r\nContent-Length: 5\r\n\r\nxxxxx",  # a body that does not decode
        ]
        with capture_logs() as logs:
            answers = [await raw_request(server, request) for request in malformed]
    assert [answer.split(b" ", 2)[1] for answer in answers] == [b"400"] * 4
    refused = [entry for entry in logs if entry["event"] == "malformed request refused"]
    assert len(refused) == 4 and all(token not in str(entry) for entry in refused)
    assert any("Duplicate 'Content-Type'" in entry["reason"] for entry in refused)
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"


def test_a_withdrawn_trace_leaves_the_traces_in_flight_and_counts_as_no_finished_one() -> None:
    from open_strawberry import ChatMessage, Problem, TraceState
    from open_strawberry.actors import Generator
    from open_strawberry.errors import CallWithdrawnError
    from open_strawberry.events import WITHDRAWN
    from open_strawberry.messages import GenerateRequest

    class Withdrawn:  # a backend whose limiter withdrew the call (the run was interrupted)
        provider, model = "scripted", "m"

        async def complete(self, *_: object, **__: object) -> None:
            raise CallWithdrawnError("the run was interrupted")

        async def aclose(self) -> None:
            pass

    monitor = Monitor()
    state = TraceState(trace_id="t", problem=Problem(id="p", prompt="?", answer="1"), sample=1,
                       messages=(ChatMessage(role="user", content="?"),))
    generator = Generator(Withdrawn(), events=monitor.events)  # type: ignore[arg-type]
    with pytest.raises(CallWithdrawnError):
        anyio.run(generator.handle, GenerateRequest(state=state, kind="first"))
    found = monitor._recent[-1] if monitor._recent else None
    after = monitor.snapshot()
    assert [row.trace_id for row in after.traces] == [] and after.in_flight == 0
    assert (after.done, after.statuses) == (0, {}) and found is None
    monitor.events.publish(TraceFinished(trace_id="u", problem_id="p", sample=0, status=WITHDRAWN, correct=None,
                                         turns=0))
    assert monitor.snapshot().done == 0
    monitor.close()
