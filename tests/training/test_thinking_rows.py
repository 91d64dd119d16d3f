"""Training rows with thinking: checked as data, and put where the model's chat template reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from open_strawberry.errors import ConfigurationError
from open_strawberry.training.data import read_rows, thinking_for_template

QWEN3_LIKE = "{% if message.reasoning_content %}<think>{{ message.reasoning_content }}</think>{% endif %}"
CHATML = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>{% endfor %}"


def _write(path: Path, *rows: object) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _row(thinking: str | None) -> dict[str, object]:
    answer = {"role": "assistant", "content": "4"}
    if thinking is not None:
        answer["reasoning_content"] = thinking
    return {"messages": [{"role": "user", "content": "2 + 2?"}, answer]}


def test_a_template_that_renders_reasoning_content_gets_the_rows_as_they_are(tmp_path: Path) -> None:
    rows = read_rows(_write(tmp_path / "sft.jsonl", _row("two and two"), _row(None)), "sft")
    assert thinking_for_template(rows, QWEN3_LIKE) == (rows, 0)
    assert rows[0]["messages"][1]["reasoning_content"] == "two and two"
    assert "reasoning_content" not in rows[1]["messages"][1]


def test_any_other_template_gets_the_thinking_inline_before_the_answer(tmp_path: Path) -> None:
    rows = read_rows(_write(tmp_path / "sft.jsonl", _row("two and two"), _row(None)), "sft")
    folded, moved = thinking_for_template(rows, CHATML)
    assert moved == 1
    assert folded[0]["messages"][1] == {"role": "assistant", "content": "<think>\ntwo and two\n</think>\n\n4"}
    assert folded[1]["messages"] == rows[1]["messages"]
    assert thinking_for_template(rows, None)[1] == 1  # no template known: the same


def test_dpo_rows_have_their_thinking_moved_on_every_side(tmp_path: Path) -> None:
    prompt = [{"role": "user", "content": "2 + 2?"}]
    row = {"prompt": prompt, "chosen": [{"role": "assistant", "content": "4", "reasoning_content": "sum"}],
           "rejected": [{"role": "assistant", "content": "5", "reasoning_content": "guess"}]}
    folded, moved = thinking_for_template(read_rows(_write(tmp_path / "dpo.jsonl", row), "dpo"), CHATML)
    assert moved == 2
    assert folded[0]["rejected"][0]["content"].startswith("<think>\nguess\n</think>")


@pytest.mark.parametrize("thinking", [7, ["a"], {"x": 1}])
def test_thinking_that_is_not_text_is_refused_naming_the_line(tmp_path: Path, thinking: object) -> None:
    path = _write(tmp_path / "sft.jsonl", _row("fine"), _row(thinking))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"sft\.jsonl:2: .*reasoning_content is not text"):
        read_rows(path, "sft")


def test_keys_training_does_not_read_are_left_out(tmp_path: Path) -> None:
    row = {"messages": [{"role": "user", "content": "hi", "name": "x"},
                        {"role": "assistant", "content": "hello", "reasoning_content": None}], "meta": 1}
    assert read_rows(_write(tmp_path / "sft.jsonl", row), "sft") == [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
