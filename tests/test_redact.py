"""Masking a key in a text that streams in pieces: never shown in part, nothing else held up for long."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from open_strawberry import redact
from open_strawberry.redact import MASK, StreamMasker, redact_json, register_secret

KEY = "sk-stream-0123456789abcdefXYZ"


@contextmanager
def only_our_key(*others: str) -> Iterator[None]:
    """KEY (and ``others``) the only registered values (other tests register theirs in the same process)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(redact, "_values", ())
        patch.setattr(redact, "_json_values", ())
        for value in (KEY, *others):
            register_secret(value)
        yield


LONGER = KEY + "-and-then-some-more"  # a key that begins with another


@pytest.mark.parametrize(("others", "text", "masked"), [
    ((), f"your key is {KEY}, see?", f"your key is {MASK}, see?"),
    ((LONGER,), f"one {LONGER}; two {KEY}; three {KEY}", f"one {MASK}; two {MASK}; three {MASK}"),
], ids=["one key", "a key that begins with another"])
def test_a_key_streamed_one_character_at_a_time_is_never_shown_in_part(others: tuple[str, ...], text: str,
                                                                      masked: str) -> None:
    with only_our_key(*others):
        masker = StreamMasker()
        shown = [masker.feed(char) for char in text] + [masker.flush()]
    so_far = ""
    for piece in shown:
        so_far += piece
        assert not any(KEY[:n] in so_far for n in range(3, len(KEY) + 1))  # no 3 characters of it in a row
        assert "-and-then" not in so_far
    assert so_far == masked


@only_our_key()
def test_text_that_is_no_key_is_held_only_while_it_could_begin_one() -> None:
    masker = StreamMasker()
    assert masker.feed("plain text") == "plain text"
    assert masker.feed(" sk-str") == " "  # could be the key
    assert masker.feed("eam-9") == "sk-stream-9"  # it was not
    assert masker.feed(" and s") == " and "
    assert masker.flush() == "s"  # the text ended: no key
    assert masker.flush() == ""


@given(text=st.text(alphabet="sk-treamXYZ0123 ", max_size=80), cuts=st.lists(st.integers(0, 80), max_size=12))
@only_our_key()
def test_the_pieces_shown_add_up_to_the_whole_text_masked(text: str, cuts: list[int]) -> None:
    whole = text[:40] + KEY + text[40:]
    bounds = sorted({0, len(whole), *(c % (len(whole) + 1) for c in cuts)})
    masker = StreamMasker()
    shown = "".join(masker.feed(whole[a:b]) for a, b in itertools.pairwise(bounds)) + masker.flush()
    assert shown == redact_json(whole.encode()).decode()  # as the assembled turn is masked when written


@given(text=st.text(alphabet="sk-treamXYZ0123 ", max_size=80), cuts=st.lists(st.integers(0, 120), max_size=12),
       longer_first=st.booleans())
@only_our_key(LONGER)
def test_with_two_keys_the_pieces_shown_add_up_to_the_whole_text_masked(text: str, cuts: list[int],
                                                                       longer_first: bool) -> None:
    first, second = (LONGER, KEY) if longer_first else (KEY, LONGER)
    whole = text[:20] + first + text[20:50] + second + text[50:]
    bounds = sorted({0, len(whole), *(c % (len(whole) + 1) for c in cuts)})
    masker = StreamMasker()
    shown = "".join(masker.feed(whole[a:b]) for a, b in itertools.pairwise(bounds)) + masker.flush()
    assert shown == redact_json(whole.encode()).decode()
