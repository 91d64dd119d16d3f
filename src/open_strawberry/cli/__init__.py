"""The ``open-strawberry`` command line: one module per family of commands
(:mod:`~open_strawberry.cli.generate`, :mod:`~open_strawberry.cli.demo`,
:mod:`~open_strawberry.cli.data`, :mod:`~open_strawberry.cli.bench`,
:mod:`~open_strawberry.cli.mock_server`, :mod:`~open_strawberry.cli.train`,
:mod:`~open_strawberry.cli.bootstrap`, :mod:`~open_strawberry.cli.view`), each with an
``add_parsers(commands)`` and the ``run_*`` functions of its commands; what every command
checks first (:mod:`~open_strawberry.cli.checks`), the exit statuses
(:mod:`~open_strawberry.cli.status`), and the terminal progress display and summary
(:mod:`~open_strawberry.cli.progress`). :mod:`~open_strawberry.cli.main` builds the parser
and dispatches. Every command module is cheap to import: what a command runs is imported when
it runs.
"""

from open_strawberry.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
