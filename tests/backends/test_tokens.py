"""The estimating tokenizer: counts that join back to the text, remembered within a bound."""

from __future__ import annotations

from open_strawberry.backends.tokens import _TokenMemo, count_tokens, estimate_prompt_tokens, split_tokens
from open_strawberry.messages import ChatMessage


def test_the_pieces_join_back_and_count_alike() -> None:
    text = "Twelve eggs, then 3 more: antidisestablishmentarianism!\n"
    assert "".join(split_tokens(text)) == text
    assert count_tokens(text) == len(split_tokens(text))


def test_a_prompt_estimate_is_the_same_however_often_it_is_asked() -> None:
    messages = tuple(ChatMessage(role="user" if i % 2 else "assistant", content=f"step {i} " * (i + 1))
                     for i in range(6))
    expected = sum(count_tokens(m.content) + 4 for m in messages) + count_tokens("be brief") + 4 + 2
    assert [estimate_prompt_tokens(messages[:n], "be brief") for n in (6, 6, 3)] == [
        expected, expected, sum(count_tokens(m.content) + 4 for m in messages[:3]) + count_tokens("be brief") + 6]


def test_the_memo_holds_no_more_text_than_its_bound() -> None:
    memo = _TokenMemo(max_chars=100)
    texts = [f"text number {i} " * 3 for i in range(40)] + ["x" * 250]  # the last is over the bound alone
    for text in texts * 2:
        assert memo.count(text) == count_tokens(text)
        assert sum(map(len, memo._counts)) <= 100
    assert "x" * 250 not in memo._counts
