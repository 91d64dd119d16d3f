"""What the UI tests share: records and problems files, and the browser's settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from open_strawberry import Problem, TraceRecord
from open_strawberry.messages import record_decoder

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1200, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WAIT_MS = 20_000  # the longest any expectation waits

# Model text that would run if it were put into the page as HTML: the mock repeats a generic
# problem's first line in its first step, so a problem made of this comes back from the model.
PAYLOAD = '<script>window.pw=1</script><img src=x onerror="window.pw=2;alert(1)">'


@dataclass
class Tab:
    """A page, with what it said that a test may check: dialogs, uncaught errors, console errors."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]


def read_records(path: Path) -> list[TraceRecord]:
    return [record_decoder.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


def write_problems(path: Path, problems: Sequence[Problem]) -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(p) + b"\n" for p in problems))
    return path


def screenshot_path(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")
