"""Watching runs live, browsing traces files, and trying models, in the browser.

An aiohttp application served from the caller's event loop (127.0.0.1 by default), with
static HTML, CSS and plain JavaScript pages (no build step):

- :mod:`~open_strawberry.ui.monitor`: a run's live figures, fed by the event stream and
  ``generate``'s hooks (:func:`open_monitor`; ``open-strawberry generate --ui``), with
  :mod:`~open_strawberry.ui.live` (the traces in flight, the series over time);
- :mod:`~open_strawberry.ui.index`: the trace browser's index of a traces file, read in
  pages and kept up to date as the file grows (``open-strawberry view TRACES``);
- :mod:`~open_strawberry.ui.playground`: one trace at a time on any model, through the
  standard graph, streamed turn by turn, continued, reset and saved
  (:mod:`~open_strawberry.ui.session`: one trace as its pages see it);
- :mod:`~open_strawberry.ui.contract`: the JSON the pages read, as msgspec Structs;
- :mod:`~open_strawberry.ui.server`: the application, its routes, and the context managers
  that serve it; :mod:`~open_strawberry.ui.security`: tokens, origins, hosts;
  :mod:`~open_strawberry.ui.sse`: server-sent events through bounded, dropping queues.

This package loads aiohttp's server: nothing imports it until a UI is asked for.
"""

from open_strawberry.ui.index import TraceIndex, TracePage, TraceQuery
from open_strawberry.ui.monitor import Monitor
from open_strawberry.ui.playground import Playground, PlaygroundSettings, open_playground
from open_strawberry.ui.server import UIServer, create_app, open_monitor, open_ui_server, open_viewer

__all__ = [
    "Monitor",
    "Playground",
    "PlaygroundSettings",
    "TraceIndex",
    "TracePage",
    "TraceQuery",
    "UIServer",
    "create_app",
    "open_monitor",
    "open_playground",
    "open_ui_server",
    "open_viewer",
]
