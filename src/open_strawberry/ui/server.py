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
dropping queues (:mod:`~open_strawberry.ui.sse`), so no page can slow down a run.
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import msgspec
from aiohttp import web

from open_strawberry.errors import ConfigurationError
from open_strawberry.events import EventStream
from open_strawberry.ui.index import TraceIndex, TraceQuery
from open_strawberry.ui.monitor import Monitor
from open_strawberry.ui.playground import Playground, PlaygroundSettings, open_playground
from open_strawberry.ui.security import Guard, check_bind, is_loopback, new_token
from open_strawberry.ui.sse import serve_channel, sse_message

__all__ = ["UIServer", "create_app", "open_monitor", "open_ui_server", "open_viewer"]

STATIC = Path(str(files("open_strawberry.ui").joinpath("static")))
_PAGES = ("monitor", "traces", "playground")


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


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


async def _body(request: web.Request, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ConfigurationError(str(exc)) from None


def create_app(*, token: str, loopback_only: bool = True, monitor: Monitor | None = None,
               index: TraceIndex | None = None, playground: Playground | None = None,
               title: str = "open-strawberry") -> tuple[web.Application, Guard, tuple[str, ...]]:
    """The application for the parts given, its guard, and its pages (first: the home page)."""
    guard = Guard(token, loopback_only=loopback_only)
    app = web.Application(client_max_size=4 * 2**20)
    guard.install(app)
    pages = tuple(name for name, part in zip(_PAGES, (monitor, index, playground), strict=True) if part is not None)
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
    if monitor is not None:
        _monitor_routes(routes, monitor)
    if index is not None:
        _trace_routes(routes, index)
    if playground is not None:
        _playground_routes(routes, playground)
    return app, guard, pages


def _monitor_routes(routes: web.UrlDispatcher, monitor: Monitor) -> None:
    async def state(request: web.Request) -> web.Response:
        return _json(monitor.snapshot())

    async def stream(request: web.Request) -> web.StreamResponse:
        channel = monitor.pages.open([sse_message("state", monitor.snapshot())])
        return await serve_channel(request, monitor.pages, channel)

    async def trace(request: web.Request) -> web.StreamResponse:
        found = monitor.watch(request.match_info["trace_id"])
        if found is None:
            return _error("no such trace in flight or among the recent ones", 404)
        return await serve_channel(request, *found)

    routes.add_get("/api/monitor/state", state)
    routes.add_get("/api/monitor/stream", stream)
    routes.add_get("/api/monitor/traces/{trace_id}/stream", trace)


def _trace_routes(routes: web.UrlDispatcher, index: TraceIndex) -> None:
    async def listing(request: web.Request) -> web.Response:
        query = {key: value for key, value in request.query.items() if key != "token" and value != ""}
        try:
            parsed = msgspec.convert(query, TraceQuery, strict=False)
        except msgspec.ValidationError as exc:
            return _error(str(exc))
        return _json(await index.query(parsed))

    async def facets(request: web.Request) -> web.Response:
        return _json(await index.facets())

    async def record(request: web.Request) -> web.Response:
        try:
            position = int(request.match_info["index"])
        except ValueError:
            return _error("a trace is named by its index, a number")
        found = await index.record(position)
        return _error("no trace at that index", 404) if found is None else _json(found)

    routes.add_get("/api/traces", listing)
    routes.add_get("/api/traces/facets", facets)
    routes.add_get("/api/traces/{index}", record)


def _playground_routes(routes: web.UrlDispatcher, playground: Playground) -> None:
    async def catalog(request: web.Request) -> web.Response:
        return _json(playground.catalog())

    async def start(request: web.Request) -> web.Response:
        try:
            session = await playground.start(await _body(request, PlaygroundSettings))
        except ConfigurationError as exc:
            return _error(str(exc))
        return _json({"id": session.id, "trace_id": session.state.trace_id})

    def session_action(action: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            session_id = request.match_info["session"]
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
            session = playground.session(request.match_info["session"])
        except KeyError:
            return _error("no such playground trace", 404)
        return await serve_channel(request, session.pages, session.watch())

    routes.add_get("/api/playground", catalog)
    routes.add_post("/api/playground/sessions", start)
    routes.add_get("/api/playground/sessions/{session}/stream", stream)
    for action in ("continue", "stop", "reset", "save"):
        routes.add_post(f"/api/playground/sessions/{{session}}/{action}", session_action(action))


def _print_warning(message: str) -> None:
    print(message, file=sys.stderr)


@asynccontextmanager
async def open_ui_server(*, monitor: Monitor | None = None, index: TraceIndex | None = None,
                         playground: Playground | None = None, host: str = "127.0.0.1", port: int = 0,
                         allow_remote: bool = False, title: str = "open-strawberry",
                         warn: Callable[[str], None] = _print_warning) -> AsyncIterator[UIServer]:
    """Serve the parts given in this event loop; yields once the server accepts connections.

    Binding anything but loopback raises ConfigurationError unless ``allow_remote``, and then
    calls ``warn`` (default: print to stderr). On the way out the pages' streams are ended
    (the monitor's with its final state; see :meth:`Monitor.close`), then the server stops.
    """
    if not 0 <= port <= 65_535:
        raise ConfigurationError(f"the UI's port must be between 0 (any free port) and 65535, got {port}")
    warning = check_bind(host, allow_remote=allow_remote)
    token = new_token()
    app, guard, pages = create_app(token=token, loopback_only=is_loopback(host), monitor=monitor, index=index,
                                   playground=playground, title=title)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigurationError(f"the UI cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if warning is not None:
            warn(warning)
        yield UIServer(base_url=f"http://{shown}:{bound_port}", token=token, pages=pages, guard=guard)
    finally:
        if monitor is not None:
            monitor.close()
        if playground is not None:
            for session in playground.sessions.values():
                session.pages.close()
        await runner.cleanup()


async def _first_chunk(index: TraceIndex | None) -> None:
    """Index the first chunk of the file before serving: a page's first look finds records."""
    if index is not None:
        await anyio.to_thread.run_sync(index.refresh_sync, index.chunk_lines)


@asynccontextmanager
async def _running(*services: Callable[..., Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run ``services`` (each started with ``task_group.start``) for the block, then cancel them.

    An exception raised in the block comes out as it is, not wrapped in an exception group
    (it is re-raised once the task group has closed)."""
    body_error: Exception | None = None
    async with anyio.create_task_group() as tg:
        for service in services:
            await tg.start(service)
        try:
            yield
        except Exception as exc:
            body_error = exc
        finally:
            tg.cancel_scope.cancel()
    if body_error is not None:
        raise body_error


@asynccontextmanager
async def open_monitor(events: EventStream | None = None, *, host: str = "127.0.0.1", port: int = 0,
                       allow_remote: bool = False, traces: str | os.PathLike[str] | None = None, title: str = "run",
                       prices: Mapping[str, tuple[float, float]] | None = None, tick_s: float = 0.5,
                       warn: Callable[[str], None] = _print_warning) -> AsyncIterator[Monitor]:
    """Serve a live monitor of a run; yields the :class:`Monitor` (its page: ``monitor.url``)::

        async with open_monitor(traces="traces.jsonl") as monitor:
            print("watch it at", monitor.url)
            summary = await generate(config, **monitor.generate_options())

    ``events`` is the run's event stream (default: the monitor makes one; pass it to
    ``generate`` as ``events=monitor.events``). ``traces`` adds the trace browser on that file,
    kept up to date as the run appends to it. ``prices``: see :class:`Monitor`. When the block
    is left the monitor takes in the events still queued, sends the final state to the pages
    (which keep showing it), and the server stops.
    """
    monitor = Monitor(events, title=title, prices=prices, tick_s=tick_s)
    index = TraceIndex(traces) if traces is not None else None
    await _first_chunk(index)
    services = [monitor.run] if index is None else [monitor.run, index.run]
    async with open_ui_server(monitor=monitor, index=index, host=host, port=port, allow_remote=allow_remote,
                              title=title, warn=warn) as server:
        monitor.url = server.url
        monitor.server = server
        async with _running(*services):
            try:
                yield monitor
            finally:
                monitor.drain()


@asynccontextmanager
async def open_viewer(traces: str | os.PathLike[str] | None = None, *, playground: bool = True,
                      save_to: str | os.PathLike[str] = "playground.jsonl", host: str = "127.0.0.1", port: int = 0,
                      allow_remote: bool = False, environ: Mapping[str, str] | None = None,
                      default_model: str = "mock:reasoner",
                      warn: Callable[[str], None] = _print_warning) -> AsyncIterator[UIServer]:
    """Serve the trace browser on ``traces`` (a finished or growing traces file) and, with
    ``playground``, the playground (saving to ``save_to``); yields the running server."""
    if traces is None and not playground:
        raise ConfigurationError("nothing to serve: give a traces file or keep the playground")
    if traces is not None and await anyio.Path(traces).is_dir():
        raise ConfigurationError(f"{traces} is a directory: name a traces file")
    index = TraceIndex(traces) if traces is not None else None
    await _first_chunk(index)
    title = f"open-strawberry view {traces}" if traces is not None else "open-strawberry playground"
    async with AsyncExitStack() as stack:
        lab = None
        if playground:
            lab = await stack.enter_async_context(open_playground(save_to=save_to, environ=environ,
                                                                  default_model=default_model))
        server = await stack.enter_async_context(open_ui_server(
            index=index, playground=lab, host=host, port=port, allow_remote=allow_remote, title=title, warn=warn))
        async with _running(*([index.run] if index is not None else [])):
            yield server
