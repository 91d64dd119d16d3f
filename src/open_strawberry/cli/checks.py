"""What every command checks before it does any work, and how it reports a file it cannot write.

* Numbers: :func:`check_count` (whole, at least some bound) and :func:`check_number` (finite,
  within bounds); each error names the option and the value.
* Outputs: :func:`check_output_file` and :func:`check_output_dir` refuse, before anything is
  read or written, an output that cannot be made (a directory where a file goes, a path
  under a regular file) or that is one of the command's inputs: by identity, so a symlink,
  a hard link or ``./t.jsonl`` for ``t.jsonl`` is caught too.
* :func:`writing`: an ``OSError`` while writing an output becomes one
  :class:`~open_strawberry.errors.ConfigurationError` that names the path.

Every error is a :class:`~open_strawberry.errors.ConfigurationError`, which the command line
prints as one ``open-strawberry: error: ...`` line (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from open_strawberry.errors import ConfigurationError

__all__ = ["check_count", "check_number", "check_output_dir", "check_output_file", "file_to_write", "writing"]


def check_count(option: str, value: int | None, *, at_least: int = 1, at_most: int | None = None) -> None:
    """ConfigurationError unless ``value`` (when given) is a whole number in ``[at_least, at_most]``."""
    if value is None:
        return
    if value < at_least:
        raise ConfigurationError(f"{option} must be at least {at_least}, got {value}")
    if at_most is not None and value > at_most:
        raise ConfigurationError(f"{option} must be at most {at_most}, got {value}")


def check_number(option: str, value: float | None, *, low: float = 0.0, high: float = math.inf,
                 low_open: bool = False) -> None:
    """ConfigurationError unless ``value`` (when given) is a finite number in ``[low, high]``
    (``(low, high]`` with ``low_open``); NaN and infinities are refused."""
    if value is None:
        return
    inside = math.isfinite(value) and (low < value if low_open else low <= value) and value <= high
    if inside:
        return
    if math.isinf(high):
        wanted = f"above {low:g}" if low_open else f"of at least {low:g}"
    else:
        wanted = f"between {low:g} and {high:g}"
    raise ConfigurationError(f"{option} must be a number {wanted}, got {value}")


def file_to_write(text: str) -> Path:
    """The argparse ``type`` of an option that names a file to write: a name that ends with a
    slash names a folder (``Path`` would drop the slash and write a file of that name)."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text!r} ends with a slash: name a file to write")
    return Path(text)


def check_output_file(option: str, path: Path | str, *, inputs: Iterable[tuple[str, Path | None]] = ()) -> None:
    """Refuse ``path`` as a file to write: a directory (or a name ending with a slash), a path
    whose folder cannot be made (under a regular file), or one of ``inputs`` (``(what it is,
    path)`` pairs, e.g. ``("the traces file", ...)``), which the output would replace."""
    if isinstance(path, str) and path.endswith(("/", os.sep)):
        raise ConfigurationError(f"{option} {path} ends with a slash: name a file to write")
    path = Path(path)
    if os.path.isdir(path):
        raise ConfigurationError(f"{option} {path} is a directory: name a file to write")
    _check_folder(option, path, path.parent)
    for what, source in inputs:
        if source is not None and _same_file(path, source):
            shown = "" if os.fspath(source) == os.fspath(path) else f" {source}"
            raise ConfigurationError(f"{option} {path} is {what}{shown}: name another file (writing there would "
                                     "destroy it)")


def check_output_dir(option: str, path: Path) -> None:
    """Refuse ``path`` as a directory to write into: something else by that name, or a path
    under a regular file."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ConfigurationError(f"{option} {path} is not a directory: name a directory to write into")
    _check_folder(option, path, path)


def _check_folder(option: str, path: Path, folder: Path) -> None:
    """The nearest existing folder at or above ``folder`` must be a directory."""
    for above in (folder, *folder.parents):
        if os.path.lexists(above):
            if not os.path.isdir(above):
                raise ConfigurationError(f"{option} {path}: {above} is not a directory")
            return


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either is missing (or no valid path): then they are not one file
        return False


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block into a ConfigurationError naming ``path`` (the
    output being written) and, when it is another, the file the error is about."""
    try:
        yield
    except OSError as exc:
        about = f"{exc.filename}: " if exc.filename is not None and os.fspath(exc.filename) != os.fspath(path) else ""
        raise ConfigurationError(f"cannot write {path}: {about}{exc.strerror or exc}") from None
