"""The settings a run folder was made with: recorded by its first run, checked by every rerun.

``train`` keeps its :class:`~open_strawberry.training.TrainConfig` in ``OUT/train_config.json``
and ``bootstrap`` its config in ``RUN/bootstrap.json`` (under ``"config"``, beside the
versions); both resume only with the same settings and refuse others with one line naming them.
A folder that is not theirs is never written into (:func:`check_ours`), nor one that holds,
or sits inside, a model the run reads (:func:`check_apart`).
This module has no heavy import, so the bootstrap loop and the trainer both stand on it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from open_strawberry.errors import ConfigurationError
from open_strawberry.traces.files import write_lines_atomically

__all__ = ["check_apart", "check_ours", "claim_settings", "recorded_settings"]


def recorded_settings(file: Path, *, key: str | None = None) -> dict[str, Any] | None:
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
    theirs = recorded_settings(file, key=key)
    if theirs is not None:
        changed = sorted(name for name in settings.keys() | theirs.keys()
                         if name not in free and settings.get(name) != theirs.get(name))
        if changed:
            raise ConfigurationError(f"{file.parent} holds {run} with other settings ({', '.join(changed)}): "
                                     f"use {elsewhere}, or the same settings to resume it")
    if record is not None:
        write_lines_atomically(file, [(json.dumps(record, indent=2) + "\n").encode()])


def check_ours(folder: Path, marker: str, *, option: str, run: str) -> None:
    """ConfigurationError unless ``folder`` is missing, empty, or holds ``run`` (its ``marker``
    file, which a run writes before anything else): someone else's files are never touched."""
    if not folder.is_dir() or (folder / marker).is_file():
        return
    if any(folder.iterdir()):
        raise ConfigurationError(f"{option} {folder} holds files but no {run} (no {marker}): name a new or empty "
                                 "folder (nothing there was touched)")


def check_apart(out: Path, option: str, sources: Mapping[str, Path | str | None]) -> None:
    """ConfigurationError when the folder ``out`` is, holds or sits inside one of ``sources``
    (``{option: path}``, e.g. ``{"--model": ...}``): writing there would change a model the run reads."""
    mine = Path(out).resolve()
    for source_option, source in sources.items():
        if source is None:
            continue
        theirs = Path(source).resolve()
        if mine == theirs:
            where = "is"
        elif theirs in mine.parents:
            where = "is inside"
        elif mine in theirs.parents:
            where = "holds"
        else:
            continue
        raise ConfigurationError(f"{option} {out} {where} {source_option} {source}: name a folder apart from it "
                                 "(writing there would change the model)")
