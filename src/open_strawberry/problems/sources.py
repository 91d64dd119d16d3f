"""Problem sources behind one :class:`ProblemSource` protocol, each streaming.

* ``jsonl``: JSONL with a field mapping (``id_field``, ``prompt_field``, ``answer_field``);
  without an id field, ids are ``<file stem>-<line>``.
* ``gsm8k``: GSM8K's format, ``question`` and an ``answer`` that ends in ``#### 42``.
* ``math``: the MATH format, ``problem`` and a ``solution`` whose last ``\\boxed{...}`` (nested
  braces and all) is the answer; graded with the ``math`` grader.
* ``parquet``: a Parquet file with the same field mapping (needs pyarrow, the ``data`` extra).
* ``hf``: a Hugging Face dataset, a local directory saved with ``save_to_disk`` or a hub
  name (needs ``datasets``, the ``data`` extra). Offline, a hub name fails at once with a
  clear message instead of waiting on the network.

Every source checks all of its rows before any call (:meth:`ProblemSource.check`), naming
the file, line or row and the field at fault, and then streams them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec

from open_strawberry.errors import ConfigurationError
from open_strawberry.grading.registry import check_grader_name
from open_strawberry.jsonl import read_jsonl
from open_strawberry.messages import Problem

__all__ = ["FieldMap", "ProblemFileError", "ProblemSource", "boxed_answer", "open_problem_source"]


class ProblemFileError(ConfigurationError):
    """Problems that cannot be used, with the file and line (or row) at fault."""


_row_decoder = msgspec.json.Decoder(dict[str, Any])


@runtime_checkable
class ProblemSource(Protocol):
    """Where problems come from. ``check`` reads everything once and returns the count."""

    @property
    def name(self) -> str: ...

    def check(self) -> int: ...

    def __iter__(self) -> Iterator[Problem]: ...


@dataclass(frozen=True)
class FieldMap:
    id: str | None = "id"
    prompt: str = "prompt"
    answer: str = "answer"
    grader: str | None = "grader"


def boxed_answer(solution: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces included."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", solution)]
    if not starts:
        return None
    depth, start = 1, starts[-1]
    for index in range(start, len(solution)):
        char = solution[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return solution[start:index].strip()
    return None  # unbalanced braces


def _text(row: Mapping[str, Any], field: str, where: str) -> str:
    if field not in row:
        raise ProblemFileError(f"{where}: missing field {field!r}")
    value = row[field]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ProblemFileError(f"{where}: field {field!r} must be text, got {type(value).__name__}")
    return value


class _RowSource:
    """Turns rows (mappings) into problems by ``fields``; subclasses say where the rows come
    from, and a dataset format with fields of its own (GSM8K, MATH) how a row reads."""

    name = "rows"

    def __init__(self, origin: str, fields: FieldMap = FieldMap()) -> None:
        self.origin = origin
        self.fields = fields

    def rows(self) -> Iterator[tuple[str, Mapping[str, Any]]]:  # (where, row)
        raise NotImplementedError

    def problem(self, where: str, index: int, row: Mapping[str, Any]) -> Problem:
        f = self.fields
        problem_id = _text(row, f.id, where) if f.id and f.id in row else f"{Path(self.origin).stem}-{index}"
        if not problem_id.strip():
            raise ProblemFileError(f"{where}: field {f.id!r} is empty")
        grader = row.get(f.grader) if f.grader else None
        if grader is not None:
            try:  # a data file may only name a built-in grader: no judge (a key sent elsewhere), no code
                check_grader_name(grader, trusted=False)
            except ConfigurationError as exc:
                raise ProblemFileError(f"{where}: field {f.grader!r}: {exc}") from None
        meta = row.get("meta", {})
        if not isinstance(meta, dict):
            raise ProblemFileError(f"{where}: field 'meta' must be an object, got {type(meta).__name__}")
        return Problem(id=problem_id, prompt=_text(row, f.prompt, where), answer=_text(row, f.answer, where),
                       grader=grader, meta=meta)

    def check(self) -> int:
        seen: dict[str, str] = {}
        for index, (where, row) in enumerate(self.rows(), start=1):
            problem = self.problem(where, index, row)
            if problem.id in seen:
                first = seen[problem.id].rsplit(":", 1)[-1].strip()
                raise ProblemFileError(f"{where}: duplicate id {problem.id!r} (first on line {first})")
            seen[problem.id] = where
        if not seen:
            raise ProblemFileError(f"{self.origin}: holds no problems")
        return len(seen)

    def __iter__(self) -> Iterator[Problem]:
        for index, (where, row) in enumerate(self.rows(), start=1):
            yield self.problem(where, index, row)


class JsonlSource(_RowSource):
    name = "jsonl"

    def rows(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for line in read_jsonl(self.origin, _row_decoder, kind="problems file",
                               invalid="not valid JSON, or not an object ({reason})", error=ProblemFileError):
            yield f"{self.origin}:{line.number}", line.value


class Gsm8kSource(JsonlSource):
    name = "gsm8k"

    def problem(self, where: str, index: int, row: Mapping[str, Any]) -> Problem:
        solution = _text(row, "answer", where)
        if "####" not in solution:
            raise ProblemFileError(f"{where}: field 'answer' has no '#### <answer>' line")
        answer = solution.rsplit("####", 1)[1].strip().replace(",", "")
        problem_id = str(row["id"]) if "id" in row else f"gsm8k-{index}"
        return Problem(id=problem_id, prompt=_text(row, "question", where), answer=answer, grader="numeric",
                       meta={"solution": solution})


class MathSource(JsonlSource):
    name = "math"

    def problem(self, where: str, index: int, row: Mapping[str, Any]) -> Problem:
        solution = _text(row, "solution", where)
        answer = row.get("answer") if isinstance(row.get("answer"), str) else boxed_answer(solution)
        if not answer:
            raise ProblemFileError(f"{where}: field 'solution' has no \\boxed{{...}} answer")
        problem_id = str(row.get("unique_id") or row.get("id") or f"math-{index}")
        meta = {k: row[k] for k in ("level", "type", "subject") if k in row}
        return Problem(id=problem_id, prompt=_text(row, "problem", where), answer=answer, grader="math", meta=meta)


class ParquetSource(_RowSource):
    name = "parquet"

    def rows(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        try:
            import pyarrow.parquet as pq  # type: ignore[import-untyped]
        except ImportError:
            raise ProblemFileError("reading Parquet needs pyarrow: pip install -e '.[data]'") from None
        try:
            parquet = pq.ParquetFile(self.origin)
        except (OSError, ValueError) as exc:
            raise ProblemFileError(f"{self.origin}: cannot read the Parquet file: {exc}") from None
        row_number = 0
        for batch in parquet.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                row_number += 1
                yield f"{self.origin}: row {row_number}", row


class HFDatasetSource(_RowSource):
    name = "hf"

    def __init__(self, origin: str, fields: FieldMap, split: str = "train") -> None:
        super().__init__(origin, fields)
        self.split = split

    def rows(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for number, row in enumerate(self._load(), start=1):
            yield f"{self.origin}[{self.split}] row {number}", row

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")  # never hang long on an unreachable hub
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
        try:
            import datasets  # type: ignore[import-untyped]
        except ImportError:
            raise ProblemFileError("Hugging Face datasets need the datasets package: "
                                   "pip install -e '.[data]'") from None
        try:
            if Path(self.origin).is_dir():
                loaded = datasets.load_from_disk(self.origin)
                return loaded[self.split] if isinstance(loaded, datasets.DatasetDict) else loaded
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
                _go_offline(datasets)
            elif not _hub_reachable():
                raise ProblemFileError(
                    f"cannot load the dataset {self.origin!r}: the Hugging Face hub (huggingface.co) cannot be "
                    "reached. Offline, use a local directory saved with save_to_disk, or a dataset already in "
                    "the cache with HF_HUB_OFFLINE=1.")
            return datasets.load_dataset(self.origin, split=self.split, streaming=True)
        except ProblemFileError:
            raise
        except Exception as exc:
            raise ProblemFileError(
                f"cannot load the dataset {self.origin!r} (split {self.split!r}): {type(exc).__name__}: {exc}. "
                "Offline, use a local directory saved with save_to_disk, or a dataset already in the cache "
                "with HF_HUB_OFFLINE=1.") from None


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the hub opens: without one, datasets would retry for a long time."""
    import socket

    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _go_offline(datasets: Any) -> None:
    """Make an already imported ``datasets`` honour HF_HUB_OFFLINE set after its import."""
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True


def _sniff(path: str) -> str:
    """The format of a JSONL file, from its first row's fields."""
    try:
        with closing(read_jsonl(path, _row_decoder)) as lines:
            first = next(lines, None)
    except ConfigurationError:
        return "jsonl"  # the check will report the bad line
    row = first.value if first else {}
    if "question" in row and isinstance(row.get("answer"), str) and "####" in row["answer"]:
        return "gsm8k"
    if "problem" in row and "solution" in row:
        return "math"
    return "jsonl"


def open_problem_source(spec: str, *, format: str = "auto", fields: FieldMap | None = None,
                        split: str = "train") -> ProblemSource:
    """A source for ``spec``: a file path, or ``hf:NAME_OR_DIR``. ``format`` ``auto`` goes by the
    suffix (``.parquet``), the ``hf:`` prefix, or the first row's fields."""
    fields = fields or FieldMap()
    if spec.startswith("hf:") or format == "hf":
        return HFDatasetSource(spec.removeprefix("hf:"), fields, split)
    if format == "auto":
        if spec.endswith(".parquet"):
            format = "parquet"
        elif Path(spec).is_file():
            format = _sniff(spec)
        else:
            format = "jsonl"
    if format == "gsm8k":
        return Gsm8kSource(spec)
    if format == "math":
        return MathSource(spec)
    if format == "parquet":
        return ParquetSource(spec, fields)
    if format == "jsonl":
        return JsonlSource(spec, fields)
    raise ProblemFileError(f"unknown problems format {format!r}: use auto, jsonl, gsm8k, math, parquet or hf")
