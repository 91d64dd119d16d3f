"""Every problem source on a sample file written for these tests (no network)."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from open_strawberry.problems.sources import FieldMap, ProblemFileError, boxed_answer, open_problem_source

DATA = Path(__file__).parents[1] / "data"


def test_gsm8k_answers_come_after_the_hashes() -> None:
    source = open_problem_source(str(DATA / "gsm8k_sample.jsonl"))
    assert source.name == "gsm8k" and source.check() == 3
    problems = list(source)
    assert [p.answer for p in problems] == ["53", "2500", "2"]
    assert [p.id for p in problems] == ["gsm8k-1", "gsm8k-2", "gsm8k-3"]
    assert problems[0].prompt.startswith("A baker") and problems[0].grader == "numeric"


def test_math_answers_are_the_last_box_with_nested_braces() -> None:
    source = open_problem_source(str(DATA / "math_sample.jsonl"))
    assert source.name == "math" and source.check() == 3
    problems = list(source)
    assert [p.answer for p in problems] == [r"\frac{3}{4}", r"2\sqrt{2}", r"\{-1, 1\}"]
    assert problems[0].id == "test/prealgebra/1.json" and problems[0].grader == "math"
    assert problems[1].meta == {"level": "Level 2", "type": "Algebra"}


@pytest.mark.parametrize(
    ("solution", "answer"),
    [(r"so \boxed{5}.", "5"), (r"\boxed{1} then \boxed{\frac{a}{b}}", r"\frac{a}{b}"),
     (r"\fbox{x}", "x"), (r"\boxed {\{1,2\}}", r"\{1,2\}"), (r"\boxed{unclosed", None), ("none", None)],
)
def test_boxed_answers(solution: str, answer: str | None) -> None:
    assert boxed_answer(solution) == answer


def test_a_generic_file_with_a_field_mapping() -> None:
    source = open_problem_source(str(DATA / "mapped_sample.jsonl"),
                                 fields=FieldMap(id="qid", prompt="text", answer="target"))
    assert source.check() == 2
    assert [(p.id, p.prompt, p.answer) for p in source] == [("q-1", "What is 2 + 2?", "4"),
                                                            ("q-2", "What is 3 * 3?", "9")]
    with pytest.raises(ProblemFileError, match=r"mapped_sample.jsonl:1: missing field 'prompt'"):
        open_problem_source(str(DATA / "mapped_sample.jsonl"), fields=FieldMap(id="qid")).check()


def test_malformed_lines_in_each_format_name_the_line(tmp_path: Path) -> None:
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text((DATA / "gsm8k_sample.jsonl").read_text() + '{"question": "q", "answer": "no hashes"}\n')
    with pytest.raises(ProblemFileError, match=r"gsm.jsonl:4: field 'answer' has no '#### <answer>' line"):
        open_problem_source(str(gsm), format="gsm8k").check()
    math = tmp_path / "math.jsonl"
    math.write_text('{"problem": "p", "solution": "no box"}\n')
    with pytest.raises(ProblemFileError, match=r"math.jsonl:1: field 'solution' has no \\boxed"):
        open_problem_source(str(math), format="math").check()
    bad = tmp_path / "bad.jsonl"
    bad.write_text((DATA / "math_sample.jsonl").read_text() + "{oops\n")
    with pytest.raises(ProblemFileError, match=r"bad.jsonl:4: not valid JSON"):
        open_problem_source(str(bad)).check()


def test_parquet_streams_in_batches_with_the_mapping(tmp_path: Path) -> None:
    path = tmp_path / "problems.parquet"
    pq.write_table(pa.table({"qid": [f"p{i}" for i in range(5000)], "text": ["What is 1 + 1?"] * 5000,
                             "target": ["2"] * 5000}), path)
    source = open_problem_source(str(path), fields=FieldMap(id="qid", prompt="text", answer="target"))
    assert source.name == "parquet" and source.check() == 5000
    assert next(iter(source)).id == "p0"
    pq.write_table(pa.table({"qid": ["a"], "text": ["x"]}), tmp_path / "short.parquet")
    with pytest.raises(ProblemFileError, match=r"short.parquet: row 1: missing field 'answer'"):
        open_problem_source(str(tmp_path / "short.parquet"), fields=FieldMap(id="qid", prompt="text")).check()


def test_a_local_hugging_face_dataset(tmp_path: Path) -> None:
    rows = [{"id": "h1", "prompt": "What is 5 - 3?", "answer": "2"}, {"id": "h2", "prompt": "What is 1 + 0?",
                                                                    "answer": "1"}]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "local"))
    source = open_problem_source(f"hf:{tmp_path / 'local'}", split="test")
    assert source.check() == 2
    assert [p.id for p in source] == ["h1", "h2"]


@pytest.mark.timeout(60)  # a guard against hanging, not a timing assertion
def test_a_hub_dataset_offline_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import open_strawberry.problems.sources as sources

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "_hub_reachable", lambda: False)  # as on a machine without network
    with pytest.raises(ProblemFileError, match=r"'no-such-org/no-such-set': the Hugging Face hub .* cannot be reached"):
        open_problem_source("hf:no-such-org/no-such-set").check()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline on purpose: only the cache is tried
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    with pytest.raises(ProblemFileError, match=r"cannot load the dataset 'no-such-org/no-such-set'.*HF_HUB_OFFLINE"):
        open_problem_source("hf:no-such-org/no-such-set").check()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"id": "a", "prompt": "?", "answer": "1", "grader": "judge:openai:gpt-4o@http://127.0.0.1:9/v1"}',
         "not allowed in a problems file"),
        ('{"id": "a", "prompt": "?", "answer": "1", "grader": "judge:anthropic:claude"}', "not allowed"),
        ('{"id": "a", "prompt": "?", "answer": "1", "grader": "this:nothing"}', "not allowed"),
        ('{"id": "a", "prompt": "?", "answer": "1", "grader": "nosuch"}', "not allowed"),
        ('{"id": "a", "prompt": "?", "answer": "1", "grader": 5}', "grader must be a string, got int"),
        ('{"id": "a", "prompt": "?", "answer": "1", "meta": [1]}', "field 'meta' must be an object, got list"),
    ],
)
def test_a_problems_file_may_only_name_built_in_graders_and_is_checked_first(
        tmp_path: Path, row: str, message: str) -> None:
    import sys

    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "ok", "prompt": "?", "answer": "2", "grader": "numeric"}\n' + row + "\n")
    with pytest.raises(ProblemFileError, match=rf"p.jsonl:2: .*{message}"):
        open_problem_source(str(path)).check()
    assert "this" not in sys.modules  # nothing named by the file was imported
