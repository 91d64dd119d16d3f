"""The exit statuses of the command line, and the one of a finished run of traces.

* 0: done; 1: an error (one ``open-strawberry: error: ...`` line); 2: a wrong command line
  (argparse's message);
* :data:`RUN_FAILED` (3): the run ended, but failed (see :func:`run_status`);
* :data:`INTERRUPTED` (130): stopped by Ctrl-C, the shell's status for SIGINT (128 + 2).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from open_strawberry.pipeline import RunSummary

__all__ = ["INTERRUPTED", "RUN_FAILED", "interrupted_status", "run_status"]

INTERRUPTED = 130
RUN_FAILED = 3


def run_status(summary: RunSummary, *, max_failed_share: float) -> int:
    """The exit code of a finished run: 3 when it failed (stopped by an error no trace could get
    past, or more than ``max_failed_share`` of its traces failed), 130 when interrupted, else 0.
    Each but 0 comes with a line on standard error that says what to do next."""
    made = summary.written
    if summary.stopped:
        print(f"open-strawberry: error: the run stopped early: {summary.stopped}; fix that, then rerun with "
              "--retry-failed to make the failed traces again", file=sys.stderr)
        return RUN_FAILED
    if made and summary.failed / made > max_failed_share:
        print(f"open-strawberry: error: {summary.failed:,} of {made:,} traces failed (more than "
              f"{max_failed_share:.0%}); see the error field of the records, then rerun with --retry-failed",
              file=sys.stderr)
        return RUN_FAILED
    return interrupted_status(summary)


def interrupted_status(summary: RunSummary) -> int:
    """130, and a line on how to resume, when the run was interrupted; else 0."""
    if summary.interrupted:
        print("interrupted: the traces with a call in flight were finished and written (calls still waiting for a "
              "rate limit were never sent); rerun the same command to resume", file=sys.stderr)
        return INTERRUPTED
    return 0
