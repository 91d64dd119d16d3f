"""The UI's aiohttp application: its pages, its JSON and server-sent-event endpoints, and the
async context managers that serve it.

Pages (each needs the server's token, ``?token=...``, as printed in the URL):

* ``/monitor``: a run's live figures (:mod:`~open_strawberry.ui.monitor`);
* ``/traces``: the trace browser (:mod:`~open_strawberry.ui.index`);
* ``/playground``: one trace at a time on any model (:mod:`~open_strawberry.ui.playground`).

The pages are static HTML, CSS and plain JavaScript from ``ui/static/`` (no build step); the
server fills in only the token and the list of pages, in a ``<meta>`` tag. The pages put
every piece of model text into the document as text (``textContent``), never as HTML, and
the Content-Security-Policy allows no inline script besides. The rules on tokens, origins and
hosts are in :mod:`~open_strawberry.ui.security`.

The server runs in the caller's event loop: everything it sends goes through bounded,
dropping queues (:mod:`~open_strawberry.ui.sse`), so no page can slow down a run. What it
sends is :mod:`~open_strawberry.ui.contract`'s Structs, encoded here, at the edge.

Who owns what: the application holds the parts it serves in typed ``web.AppKey`` s and owns
only what it starts itself: the event streams it opens to pages (ended when it shuts down)
and the polling of the trace browser's file (``cleanup_ctx``). It never closes a part it was
handed. :func:`open_monitor` and :func:`open_viewer` create the parts and close them, through
one ``AsyncExitStack`` each.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from open_strawberry.errors import ConfigurationError
from open_strawberry.events import EventStream
from open_strawberry.redact import MaskingEncoder
from open_strawberry.runtime.background import open_background_tasks
from open_strawberry.runtime.sites import Listener, bind_listener, open_site
from open_strawberry.ui.contract import Started
from open_strawberry.ui.index import TraceIndex, TraceQuery
from open_strawberry.ui.monitor import Monitor
from open_strawberry.ui.playground import Playground, PlaygroundSettings, open_playground
from open_strawberry.ui.security import Guard, check_bind, is_loopback, malformed_reason, new_token
from open_strawberry.ui.sse import Broadcaster, Channel, serve_channel, sse_message

__all__ = ["UIServer", "create_app", "open_monitor", "open_ui_server", "open_viewer"]

STATIC = Path(str(files("open_strawberry.ui").joinpath("static")))
_PAGES = ("monitor", "traces", "playground")
_SHUTDOWN_S = 2.0  # what a handler still running when the server stops is given

MONITOR = web.AppKey("monitor", Monitor)
INDEX = web.AppKey("index", TraceIndex)
PLAYGROUND = web.AppKey("playground", Playground)
STREAMS: web.AppKey[set[tuple[Broadcaster, Channel]]] = web.AppKey("streams")  # the pages' streams open now


@dataclass(frozen=True)
class UIServer:
    """A running UI server: ``url`` is the address to open (token included)."""

    base_url: str
    token: str
    pages: tuple[str, ...]
    guard: Guard

    @property
    def url(self) -> str:
        return self.page_url(self.pages[0]) if self.pages else self.base_url

    def page_url(self, page: str) -> str:
        return f"{self.base_url}/{page}?token={quote(self.token)}"

    @property
    def refused(self) -> int:
        """Requests turned away (no token, a foreign origin, a foreign Host)."""
        return self.guard.refused


_encoder = MaskingEncoder()


def _json(data: Any, status: int = 200) -> web.Response:
    """A JSON answer, with any key a server echoed into a reply masked (as in the records)."""
    return web.Response(body=_encoder.encode(data), status=status, content_type="application/json")


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


async def _body(request: web.Request, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ConfigurationError(str(exc)) from None
    except RequestPayloadError as exc:  # a body that does not decode (a broken gzip ...)
        raise ConfigurationError(f"the request's body cannot be read: {malformed_reason(exc)}") from None


def _pages(*, monitor: bool, index: bool, playground: bool) -> tuple[str, ...]:
    return tuple(name for name, given in zip(_PAGES, (monitor, index, playground), strict=True) if given)


def create_app(*, token: str, loopback_only: bool = True, monitor: Monitor | None = None,
               index: TraceIndex | None = None, playground: Playground | None = None,
               title: str = "open-strawberry") -> tuple[web.Application, Guard, tuple[str, ...]]:
    """The application for the parts given, its guard, and its pages (first: the home page)."""
    guard = Guard(token, loopback_only=loopback_only)
    pages = _pages(monitor=monitor is not None, index=index is not None, playground=playground is not None)
    return _application(guard, pages, title, monitor=monitor, index=index, playground=playground), guard, pages


def _application(guard: Guard, pages: tuple[str, ...], title: str, *, monitor: Monitor | None,
                 index: TraceIndex | None, playground: Playground | None) -> web.Application:
    app = web.Application(client_max_size=4 * 2**20)
    guard.install(app)
    token = guard.token
    config = {"token": token, "pages": list(pages), "title": title}
    meta = html.escape(msgspec.json.encode(config).decode(), quote=True)
    templates = {page: (STATIC / f"{page}.html").read_text().replace("__CONFIG__", meta) for page in pages}

    def page(name: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=templates[name], content_type="text/html", headers={"cache-control": "no-store"})
        return handler

    async def home(request: web.Request) -> web.Response:
        if not pages:
            raise web.HTTPNotFound()
        raise web.HTTPFound(f"/{pages[0]}?token={quote(token)}")

    routes = app.router
    routes.add_get("/", home)
    for name in pages:
        routes.add_get(f"/{name}", page(name))
    routes.add_static("/static/", STATIC, show_index=False)
    app[STREAMS] = set()
    app.on_shutdown.append(_end_streams)
    if monitor is not None:
        app[MONITOR] = monitor
        _monitor_routes(routes)
    if index is not None:
        app[INDEX] = index
        _trace_routes(routes)
        app.cleanup_ctx.append(_index_updates)
    if playground is not None:
        app[PLAYGROUND] = playground
        _playground_routes(routes)
    return app


async def _stream(request: web.Request, broadcaster: Broadcaster, channel: Channel) -> web.StreamResponse:
    """Serve ``channel`` to the page, as one of the streams the app ends when it shuts down."""
    streams = request.app[STREAMS]
    streams.add((broadcaster, channel))
    try:
        return await serve_channel(request, broadcaster, channel)
    finally:
        streams.discard((broadcaster, channel))


async def _end_streams(app: web.Application) -> None:
    """The server is stopping: end the pages' streams it opened (the pages keep what they show)."""
    streams = app[STREAMS]
    for broadcaster, channel in list(streams):
        broadcaster.discard(channel)


async def _index_updates(app: web.Application) -> AsyncIterator[None]:
    """Keep the trace browser's index in step with its file while the app runs."""
    task = asyncio.create_task(app[INDEX].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _monitor_routes(routes: web.UrlDispatcher) -> None:
    async def state(request: web.Request) -> web.Response:
        return _json(request.app[MONITOR].snapshot())

    async def stream(request: web.Request) -> web.StreamResponse:
        monitor = request.app[MONITOR]
        channel = monitor.pages.open([sse_message("state", monitor.snapshot())])
        return await _stream(request, monitor.pages, channel)

    async def trace(request: web.Request) -> web.StreamResponse:
        found = request.app[MONITOR].watch(request.match_info["trace_id"])
        if found is None:
            return _error("no such trace in flight or among the recent ones", 404)
        return await _stream(request, *found)

    routes.add_get("/api/monitor/state", state)
    routes.add_get("/api/monitor/stream", stream)
    routes.add_get("/api/monitor/traces/{trace_id}/stream", trace)


def _trace_routes(routes: web.UrlDispatcher) -> None:
    async def listing(request: web.Request) -> web.Response:
        query = {key: value for key, value in request.query.items() if key != "token" and value != ""}
        try:
            parsed = msgspec.convert(query, TraceQuery, strict=False)
        except msgspec.ValidationError as exc:
            return _error(str(exc))
        return _json(await request.app[INDEX].query(parsed))

    async def facets(request: web.Request) -> web.Response:
        return _json(await request.app[INDEX].facets())

    async def record(request: web.Request) -> web.Response:
        try:
            position = int(request.match_info["index"])
        except ValueError:
            return _error("a trace is named by its index, a number")
        found = await request.app[INDEX].record(position)
        return _error("no trace at that index", 404) if found is None else _json(found)

    routes.add_get("/api/traces", listing)
    routes.add_get("/api/traces/facets", facets)
    routes.add_get("/api/traces/{index}", record)


def _playground_routes(routes: web.UrlDispatcher) -> None:
    async def catalog(request: web.Request) -> web.Response:
        return _json(request.app[PLAYGROUND].catalog())

    async def start(request: web.Request) -> web.Response:
        try:
            session = await request.app[PLAYGROUND].start(await _body(request, PlaygroundSettings))
        except ConfigurationError as exc:
            return _error(str(exc))
        return _json(Started(id=session.id, trace_id=session.state.trace_id))

    def session_action(action: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            playground, session_id = request.app[PLAYGROUND], request.match_info["session"]
            try:
                if action == "continue":
                    playground.extend(session_id)
                elif action == "stop":
                    playground.stop(session_id)
                elif action == "reset":
                    playground.reset(session_id)
                    return _json({"id": session_id, "reset": True})
                else:
                    return _json(await playground.save(session_id))
            except KeyError:
                return _error("no such playground trace (reset, or the server restarted)", 404)
            except ConfigurationError as exc:
                return _error(str(exc), 409)
            return _json({"id": session_id})
        return handler

    async def stream(request: web.Request) -> web.StreamResponse:
        try:
            session = request.app[PLAYGROUND].session(request.match_info["session"])
        except KeyError:
            return _error("no such playground trace", 404)
        return await _stream(request, session.pages, session.watch())

    routes.add_get("/api/playground", catalog)
    routes.add_post("/api/playground/sessions", start)
    routes.add_get("/api/playground/sessions/{session}/stream", stream)
    for action in ("continue", "stop", "reset", "save"):
        routes.add_post(f"/api/playground/sessions/{{session}}/{action}", session_action(action))


def _print_warning(message: str) -> None:
    print(message, file=sys.stderr)


@asynccontextmanager
async def _listening(host: str, port: int, *, allow_remote: bool,
                     warn: Callable[[str], None]) -> AsyncIterator[Listener]:
    """The UI's address, bound: ConfigurationError for a port out of range, a host beyond
    loopback without ``allow_remote``, or an address that cannot be bound."""
    if not 0 <= port <= 65_535:
        raise ConfigurationError(f"the UI's port must be between 0 (any free port) and 65535, got {port}")
    warning = check_bind(host, allow_remote=allow_remote)
    try:
        listener = await bind_listener(host, port)
    except OSError as exc:
        raise ConfigurationError(f"the UI cannot listen on {host!r} port {port}: {exc.strerror or exc}") from None
    with listener.sock:
        if warning is not None:
            warn(warning)
        yield listener


def _site(app: web.Application, listener: Listener, server: UIServer) -> AbstractAsyncContextManager[None]:
    """Serve ``app`` for ``server``: a malformed request is logged as one line (its guard's)."""
    return open_site(app, listener, shutdown_timeout=_SHUTDOWN_S, logger=server.guard.requests)


def _server(listener: Listener, host: str, pages: tuple[str, ...]) -> UIServer:
    token = new_token()
    return UIServer(base_url=listener.url, token=token, pages=pages,
                    guard=Guard(token, loopback_only=is_loopback(host)))


@asynccontextmanager
async def open_ui_server(*, monitor: Monitor | None = None, index: TraceIndex | None = None,
                         playground: Playground | None = None, host: str = "127.0.0.1", port: int = 0,
                         allow_remote: bool = False, title: str = "open-strawberry",
                         warn: Callable[[str], None] = _print_warning) -> AsyncIterator[UIServer]:
    """Serve the parts given in this event loop; yields once the server accepts connections.

    Binding anything but loopback raises ConfigurationError unless ``allow_remote``, and then
    calls ``warn`` (default: print to stderr). The parts stay the caller's: on the way out the
    server ends the pages' streams it opened and stops, and closes none of them (close the
    monitor first for its pages to get its final state). An ``index`` is kept in step with
    its file while the server runs.
    """
    pages = _pages(monitor=monitor is not None, index=index is not None, playground=playground is not None)
    async with _listening(host, port, allow_remote=allow_remote, warn=warn) as listener:
        server = _server(listener, host, pages)
        app = _application(server.guard, pages, title, monitor=monitor, index=index, playground=playground)
        async with _site(app, listener, server):
            yield server


async def _first_chunk(index: TraceIndex | None) -> None:
    """Index the first chunk of the file before serving: a page's first look finds records."""
    if index is not None:
        await anyio.to_thread.run_sync(index.refresh_sync, index.chunk_lines)


@asynccontextmanager
async def open_monitor(events: EventStream | None = None, *, host: str = "127.0.0.1", port: int = 0,
                       allow_remote: bool = False, traces: str | os.PathLike[str] | None = None, title: str = "run",
                       prices: Mapping[str, tuple[float, float]] | None = None,
                       batch_prices: Mapping[str, tuple[float, float]] | None = None, tick_s: float = 0.5,
                       warn: Callable[[str], None] = _print_warning) -> AsyncIterator[Monitor]:
    """Serve a live monitor of a run; yields the :class:`Monitor` (its page: ``monitor.url``)::

        async with open_monitor(traces="traces.jsonl") as monitor:
            print("watch it at", monitor.url)
            summary = await generate(config, **monitor.generate_options())

    ``events`` is the run's event stream (default: the monitor makes one; pass it to
    ``generate`` as ``events=monitor.events``). ``traces`` adds the trace browser on that file,
    kept up to date as the run appends to it. ``prices``, ``batch_prices``: see :class:`Monitor`.
    When the block is left the monitor is closed: it sends the final state to the pages (which
    keep showing it), and the server stops.
    """
    index = TraceIndex(traces) if traces is not None else None
    async with AsyncExitStack() as stack:
        listener = await stack.enter_async_context(_listening(host, port, allow_remote=allow_remote, warn=warn))
        await _first_chunk(index)
        server = _server(listener, host, _pages(monitor=True, index=index is not None, playground=False))
        monitor = Monitor(events, title=title, prices=prices, batch_prices=batch_prices, tick_s=tick_s,
                          server=server)
        app = _application(server.guard, server.pages, title, monitor=monitor, index=index, playground=None)
        await stack.enter_async_context(_site(app, listener, server))
        stack.callback(monitor.close)  # before the server stops: the pages get the final state
        services = await stack.enter_async_context(open_background_tasks())
        await services.start(monitor.run)
        yield monitor


@asynccontextmanager
async def open_viewer(traces: str | os.PathLike[str] | None = None, *, playground: bool = True,
                      save_to: str | os.PathLike[str] = "playground.jsonl", host: str = "127.0.0.1", port: int = 0,
                      allow_remote: bool = False, environ: Mapping[str, str] | None = None,
                      default_model: str = "mock:reasoner", max_line_bytes: int = 16 * 2**20,
                      warn: Callable[[str], None] = _print_warning) -> AsyncIterator[UIServer]:
    """Serve the trace browser on ``traces`` (a finished or growing traces file) and, with
    ``playground``, the playground (saving to ``save_to``); yields the running server. A line
    of ``traces`` over ``max_line_bytes`` is listed with its size and shown truncated."""
    if traces is None and not playground:
        raise ConfigurationError("nothing to serve: give a traces file or keep the playground")
    if traces is not None and await anyio.Path(traces).is_dir():
        raise ConfigurationError(f"{traces} is a directory: name a traces file")
    index = TraceIndex(traces, max_line_bytes=max_line_bytes) if traces is not None else None
    title = f"open-strawberry view {traces}" if traces is not None else "open-strawberry playground"
    async with AsyncExitStack() as stack:
        listener = await stack.enter_async_context(_listening(host, port, allow_remote=allow_remote, warn=warn))
        await _first_chunk(index)
        lab = None
        if playground:
            lab = await stack.enter_async_context(open_playground(save_to=save_to, environ=environ,
                                                                  default_model=default_model))
        server = _server(listener, host, _pages(monitor=False, index=index is not None, playground=lab is not None))
        app = _application(server.guard, server.pages, title, monitor=None, index=index, playground=lab)
        await stack.enter_async_context(_site(app, listener, server))
        yield server
