"""The ``open-strawberry`` command line: one module per group of commands
(:mod:`~open_strawberry.cli.generate`, :mod:`~open_strawberry.cli.data`,
:mod:`~open_strawberry.cli.bench`, :mod:`~open_strawberry.cli.mock_server`), the terminal
progress display and summary (:mod:`~open_strawberry.cli.progress`), and the offline demo
(:mod:`~open_strawberry.cli.demo`). :mod:`~open_strawberry.cli.main` builds the parser and
dispatches; it imports no command's heavy dependencies until that command runs.
"""

from open_strawberry.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
