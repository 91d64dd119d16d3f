"""The trace browser's index: pages of a traces file, filters, search, a growing or replaced file."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
from structlog.testing import capture_logs

from open_strawberry.messages import json_encoder
from open_strawberry.ui import TraceIndex, TraceQuery
from tests.traces.records import record, write


def sample_file(path: Path, problems: int = 30) -> Path:
    records = [record(f"p{p:03d}", s, correct=[True, False, None][(p + s) % 3], steps=[f"step {p}-{s}", "then"])
               for p in range(problems) for s in range(2)]
    return write(path, records)


def test_pages_hold_the_records_in_file_order_and_say_where_to_go_on(tmp_path: Path) -> None:
    index = TraceIndex(sample_file(tmp_path / "t.jsonl"))
    assert index.refresh_sync()
    assert len(index) == 60
    first = index.query_sync(TraceQuery(limit=25))
    assert [item.line for item in first.items] == list(range(1, 26))
    assert first.next == 25 and first.indexed == 60 and first.caught_up
    rest = index.query_sync(TraceQuery(start=first.next or 0, limit=100))
    assert len(rest.items) == 35 and rest.next is None
    assert rest.items[0].problem_id == "p012" and rest.items[0].sample == 1


def test_filters_combine_and_search_reads_only_candidate_lines(tmp_path: Path) -> None:
    index = TraceIndex(sample_file(tmp_path / "t.jsonl"))
    index.refresh_sync()
    page = index.query_sync(TraceQuery(status="final", correct="false", limit=500))
    assert page.items and all(i.status == "final" and i.correct is False for i in page.items)
    assert len(page.items) == 20
    assert [i.problem_id for i in index.query_sync(TraceQuery(problem="P00", limit=500)).items] == [
        f"p00{p}" for p in range(10) for _ in range(2)]
    found = index.query_sync(TraceQuery(text="STEP 7-1", limit=500)).items
    assert [(i.problem_id, i.sample) for i in found] == [("p007", 1)]
    assert index.query_sync(TraceQuery(text='"quoted" and \\ back', limit=500)).items == []
    assert index.query_sync(TraceQuery(model="no such model")).items == []
    assert index.query_sync(TraceQuery(status="no such status")).items == []


def test_a_search_reads_at_most_scan_lines_and_says_where_it_stopped(tmp_path: Path) -> None:
    index = TraceIndex(sample_file(tmp_path / "t.jsonl"), scan_lines=10)
    index.refresh_sync()
    page = index.query_sync(TraceQuery(text="nothing matches this"))
    assert page.items == [] and page.next == 10 and page.scanned_to == 10


def test_a_growing_file_is_indexed_as_it_grows_and_a_torn_line_waits(tmp_path: Path) -> None:
    path = sample_file(tmp_path / "t.jsonl", problems=2)
    index = TraceIndex(path, chunk_lines=3)
    while not index.refresh_sync(index.chunk_lines):
        pass
    assert len(index) == 4
    extra = json_encoder.encode(record("late", 0, True, ["x"]))
    with path.open("ab") as file:
        file.write(extra[:20])  # a line still being written
    assert index.refresh_sync() and len(index) == 4
    with path.open("ab") as file:
        file.write(extra[20:] + b"\n\n")  # finished, then a blank line
    index.refresh_sync()
    assert len(index) == 5
    shown = index.record_sync(4)
    assert shown is not None and shown.record is not None and shown.record["problem_id"] == "late"
    assert index.facets_sync().statuses == {"final": 4, "max_turns": 1}


def test_a_replaced_or_shortened_file_is_indexed_again(tmp_path: Path) -> None:
    path = sample_file(tmp_path / "t.jsonl", problems=5)
    index = TraceIndex(path)
    index.refresh_sync()
    assert len(index) == 10
    replacement = sample_file(tmp_path / "new.jsonl", problems=1)
    os.replace(replacement, path)
    index.refresh_sync()
    assert len(index) == 2
    assert [i.problem_id for i in index.query_sync(TraceQuery()).items] == ["p000", "p000"]


def test_an_unreadable_line_is_listed_not_fatal_and_a_missing_file_is_empty(tmp_path: Path) -> None:
    path = sample_file(tmp_path / "t.jsonl", problems=1)
    with path.open("ab") as file:
        file.write(b"this is not json\n")
    index = TraceIndex(path)
    index.refresh_sync()
    assert [i.status for i in index.query_sync(TraceQuery()).items] == ["final", "final", "unreadable"]
    shown = index.record_sync(2)
    assert shown is not None and shown.unreadable and shown.raw and shown.raw.startswith("this is not json")
    assert shown.record is None and "record" not in msgspec.json.decode(msgspec.json.encode(shown))
    assert index.record_sync(3) is None
    missing = TraceIndex(tmp_path / "not-yet.jsonl")
    assert missing.refresh_sync() and len(missing) == 0
    assert missing.query_sync(TraceQuery()).items == []


def test_the_index_keeps_a_few_bytes_a_record_not_the_records(tmp_path: Path) -> None:
    path = sample_file(tmp_path / "t.jsonl", problems=500)
    index = TraceIndex(path)
    index.refresh_sync()
    kept = sum(a.itemsize * len(a) for a in (index.offsets, index.lines, index.status, index.correct,
                                             index.problem, index.model))
    assert kept / len(index) <= 26
    assert kept < path.stat().st_size / 10
    assert msgspec.json.decode(msgspec.json.encode(index.facets_sync()))["problem_count"] == 500


# ---------------------------------------------------------------------------- a file that changes under the browser


def big_record(path: Path, text_bytes: int) -> bytes:
    """A valid record whose line is a little over ``text_bytes`` long."""
    return json_encoder.encode(record("big", 0, True, ["x" * text_bytes])) + b"\n"


def test_a_line_over_the_cap_is_listed_with_its_size_and_shown_truncated(tmp_path: Path) -> None:
    path = sample_file(tmp_path / "t.jsonl", problems=1)
    huge = big_record(path, 10_000)
    with path.open("ab") as file:
        file.write(huge)
    with path.open("ab") as file:
        file.write(json_encoder.encode(record("after", 0, True, ["y"])) + b"\n")
    index = TraceIndex(path, max_line_bytes=4_000)
    assert index.refresh_sync()
    page = index.query_sync(TraceQuery())
    assert [i.status for i in page.items] == ["final", "final", "oversized", "final"]
    assert page.items[2].error == f"a line of {len(huge):,} bytes" and page.items[3].problem_id == "after"
    shown = index.record_sync(2)
    assert shown is not None and shown.record is None and shown.raw is not None
    assert f"{len(huge):,} bytes" in (shown.unreadable or "") and len(shown.raw) < len(huge)
    assert index.facets_sync().statuses == {"final": 3, "oversized": 1}


def test_a_long_unfinished_line_is_read_once_not_at_every_look(tmp_path: Path) -> None:
    path = sample_file(tmp_path / "t.jsonl", problems=1)
    index = TraceIndex(path, max_line_bytes=4_000)
    index.refresh_sync()
    before = index.bytes_read
    with path.open("ab") as file:
        file.write(bytes(range(256)).replace(b"\n", b"") * 100)  # ~25 kB of binary, no newline
    assert index.refresh_sync() and len(index) == 2
    first_look = index.bytes_read - before
    assert 25_000 <= first_look <= 25_500  # once, and no more
    assert index.refresh_sync() and index.bytes_read - before == first_look  # nothing new: nothing read
    with path.open("ab") as file:
        file.write(b"tail\n")
    assert index.refresh_sync() and len(index) == 3
    assert index.bytes_read - before - first_look == 5  # only what was appended
    assert index.query_sync(TraceQuery()).items[2].status == "oversized"


def test_a_deleted_file_empties_the_index_says_so_once_and_comes_back(tmp_path: Path) -> None:
    path = sample_file(tmp_path / "t.jsonl", problems=2)
    index = TraceIndex(path)
    index.refresh_sync()
    assert len(index) == 4
    path.unlink()
    with capture_logs() as logs:
        assert index.query_sync(TraceQuery()).items == []  # read before the index noticed: no error
        for _ in range(3):
            assert index.refresh_sync()
    assert len(index) == 0 and "not there" in (index.facets_sync().unavailable or "")
    assert [entry["event"] for entry in logs] == ["traces file unavailable"]
    sample_file(path, problems=1)
    with capture_logs() as logs:
        index.refresh_sync()
    assert len(index) == 2 and index.facets_sync().unavailable is None
    assert [entry["event"] for entry in logs] == ["traces file readable again"]


def test_a_file_replaced_by_a_directory_is_a_state_not_a_crash(tmp_path: Path) -> None:
    path = sample_file(tmp_path / "t.jsonl", problems=2)
    index = TraceIndex(path)
    index.refresh_sync()
    path.unlink()
    path.mkdir()
    assert index.refresh_sync() and len(index) == 0
    assert "directory" in (index.facets_sync().unavailable or "")
    assert index.query_sync(TraceQuery()).items == [] and index.record_sync(0) is None
    path.rmdir()
    sample_file(path, problems=1)
    index.refresh_sync()
    assert len(index) == 2 and index.facets_sync().unavailable is None


def test_a_record_read_after_its_file_went_away_says_why(tmp_path: Path) -> None:
    path = sample_file(tmp_path / "t.jsonl", problems=1)
    index = TraceIndex(path)
    index.refresh_sync()
    path.unlink()
    shown = index.record_sync(0)
    assert shown is not None and shown.record is None and "not there" in (shown.unreadable or "")
