"""The settings a run folder was made with: recorded by its first run, checked by every rerun.

``train`` keeps its :class:`~open_strawberry.training.TrainConfig` in ``OUT/train_config.json``
and ``bootstrap`` its config in ``RUN/bootstrap.json`` (under ``"config"``, beside the
versions); both resume only with the same settings and refuse others with one line naming them.
This module has no heavy import, so the bootstrap loop and the trainer both stand on it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from open_strawberry.errors import ConfigurationError
from open_strawberry.traces.files import write_lines_atomically

__all__ = ["claim_settings"]


def _recorded(file: Path, *, key: str | None = None) -> dict[str, Any] | None:
    """The settings recorded in ``file`` (at ``key``, or the whole file), None when there is none."""
    if not file.is_file():
        return None
    recorded: dict[str, Any] = json.loads(file.read_text())
    return dict(recorded[key]) if key is not None else recorded


def claim_settings(file: Path, settings: Mapping[str, Any], *, run: str, elsewhere: str, free: Collection[str] = (),
                   key: str | None = None, record: Mapping[str, Any] | None = None) -> None:
    """Check that the run recorded in ``file`` (if any) had ``settings``, apart from the ones in
    ``free`` (which a rerun may change); then, when ``record`` is given, write it to ``file`` as
    indented JSON, whole or not at all (the folder is made).

    Another run is refused with one line: ``FOLDER holds RUN with other settings (NAMES): use
    ELSEWHERE, or the same settings to resume it``. ``key`` says where in the file the settings
    are (None: the file is the settings)."""
    theirs = _recorded(file, key=key)
    if theirs is not None:
        changed = sorted(name for name in settings.keys() | theirs.keys()
                         if name not in free and settings.get(name) != theirs.get(name))
        if changed:
            raise ConfigurationError(f"{file.parent} holds {run} with other settings ({', '.join(changed)}): "
                                     f"use {elsewhere}, or the same settings to resume it")
    if record is not None:
        write_lines_atomically(file, [(json.dumps(record, indent=2) + "\n").encode()])
