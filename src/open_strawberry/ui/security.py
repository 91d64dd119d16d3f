"""Who may talk to the UI server: the per-server token, the page's own origin, the Host header.

* Every page and every ``/api/`` request needs the server's token (made at start, printed
  in the URL): in the ``token`` query parameter or the ``X-UI-Token`` header. Static files
  (CSS, JavaScript) need none: they hold no data.
* A state-changing request (anything but GET and HEAD) needs the token in the header (a
  custom header that no cross-site form can send) and an ``Origin`` header naming the page's
  own origin; anything else is refused with 403.
* On loopback the ``Host`` header must name a loopback host, which stops DNS rebinding.
* A request aiohttp cannot parse (an empty or broken Host in the URL, a duplicate
  ``Content-Type``, a body that does not decode) is answered 400 by aiohttp and logged as one
  line by :class:`RequestLog`, not as a traceback.
* Every response says ``no-referrer`` (the token is in the page's URL), forbids framing,
  and carries a Content-Security-Policy that allows only the server's own scripts and
  styles: model text is rendered as text by the pages, and the policy is a second wall.

Binding anything but loopback needs ``allow_remote``; :func:`check_bind` says so.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger
from aiohttp.web_protocol import RequestPayloadError

from open_strawberry.errors import ConfigurationError

__all__ = ["TOKEN_HEADER", "Guard", "RequestLog", "check_bind", "is_loopback", "new_token"]

TOKEN_HEADER = "X-UI-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_log = structlog.get_logger("open_strawberry.ui")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, allow_remote: bool) -> str | None:
    """None for a loopback ``host``; for any other, a warning to print when ``allow_remote``,
    else ConfigurationError: the server would be reachable from other machines."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise ConfigurationError(
            f"the UI would listen on {host!r}, reachable from other machines; it serves traces and can spend "
            "your API keys through the playground. Pass --allow-remote (allow_remote=True) to do it anyway")
    return (f"warning: the UI listens on {host!r}: anyone who can reach this machine and has the URL (with its "
            "token) can read the traces and use the playground with this server's API keys")


def _host_name(host_header: str) -> str:
    """The host of a ``Host`` header (``127.0.0.1:8780``, ``[::1]:8780``, ``localhost``)."""
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """The aiohttp middleware that enforces the rules of the module docstring; ``refused``
    counts the requests it turned away."""

    def __init__(self, token: str, *, loopback_only: bool) -> None:
        self.token = token
        self.loopback_only = loopback_only
        self.refused = 0
        self.requests = RequestLog(token)  # for the site: malformed requests, one line each

    def _refuse(self, why: str) -> web.Response:
        self.refused += 1
        return web.json_response({"error": why}, status=403)

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and secrets.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if self.loopback_only and not is_loopback(_host_name(host)):
            return self._refuse("this server answers only to a loopback Host")
        if not request.path.startswith("/static/"):
            if request.method in _SAFE_METHODS:
                if not self._token_ok(request.headers.get(TOKEN_HEADER) or request.query.get("token")):
                    return self._refuse("missing or wrong token: open the URL the command printed")
            else:
                if not self._token_ok(request.headers.get(TOKEN_HEADER)):
                    return self._refuse(f"missing or wrong {TOKEN_HEADER} header")
                if request.headers.get("Origin") != f"http://{host}":
                    return self._refuse("a state-changing request must come from the page's own origin")
        return await handler(request)

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Adds the safety headers to every response, streamed ones and errors included."""
        response.headers.update(_HEADERS)

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        app.on_response_prepare.append(self.on_response_prepare)


def is_malformed(exc: BaseException) -> bool:
    """True for aiohttp's errors about a request it could not parse (its line, headers or body)."""
    return isinstance(exc, (HttpProcessingError, RequestPayloadError))


def malformed_reason(exc: BaseException, *, hide: str = "") -> str:
    """What is wrong with a malformed request, on one line (at most 200 characters), with
    ``hide`` (the server's token) shown as ``<token>``."""
    found = exc if isinstance(exc, HttpProcessingError) else exc.__cause__
    reason = found.message if isinstance(found, HttpProcessingError) and found.message else str(found or exc)
    if hide:
        reason = reason.replace(hide, "<token>")
    return " ".join(reason.split())[:200]


class RequestLog(logging.Logger):
    """The logger the UI gives aiohttp's request handler: a malformed request (aiohttp answers
    it 400) is one warning line naming the problem, and ``refused`` counts them; anything else
    goes on to aiohttp's own logger, traceback included (a bug of ours, not bad input). The
    line never shows ``token`` (a request's URL may hold it)."""

    def __init__(self, token: str) -> None:
        super().__init__(f"{server_logger.name}.ui")
        self.parent = server_logger
        self.token = token
        self.refused = 0

    def exception(self, msg: object, *args: object, exc_info: Any = True, stack_info: bool = False,
                  stacklevel: int = 1, extra: Mapping[str, object] | None = None) -> None:
        if isinstance(exc_info, BaseException) and is_malformed(exc_info):
            self.refused += 1
            _log.warning("malformed request refused", remote=str(args[0]) if args else None,
                         reason=malformed_reason(exc_info, hide=self.token))
            return
        super().exception(msg, *args, exc_info=exc_info, stack_info=stack_info, stacklevel=stacklevel + 1,
                          extra=extra)
