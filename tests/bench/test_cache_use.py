"""The traces workload's prompt-cache figures, from the counts the server states per turn."""

from __future__ import annotations

from open_strawberry.bench.traces import cache_use
from open_strawberry.messages import TraceRecord, TurnRecord, Usage


def record(*turns: tuple[int, int, int]) -> TraceRecord:
    """A trace whose turns had these (prompt, reply, cached) token counts."""
    return TraceRecord(trace_id="t", problem_id="p", sample=0, model="m", strategy="nudge",
                       system_prompt_variant=None, status="final", messages=(), final_answer=None, ground_truth="",
                       correct=None, usage=Usage(), error=None, started_at=0.0, finished_at=1.0,
                       turns=tuple(TurnRecord(kind="nudge", usage=Usage(input_tokens=prompt, output_tokens=reply,
                                                                        cache_read_tokens=cached))
                                   for prompt, reply, cached in turns))


def test_later_turns_are_measured_against_the_previous_prompt_and_reply() -> None:
    # turn 2 (150 tokens) could reuse 100 + 20; it read 60. Turn 3 (200) could reuse 150 + 30; it read 180.
    use = cache_use([record((100, 20, 0), (150, 30, 60), (200, 10, 180)), record((90, 5, 0))])
    assert use == {"cached_share": 240 / 350, "ideal_share": 300 / 350, "cached_over_ideal": 240 / 300}


def test_no_later_turn_or_no_stated_cache_gives_no_figure() -> None:
    assert cache_use([record((90, 5, 0))]) == {"cached_share": None, "ideal_share": None, "cached_over_ideal": None}
    assert cache_use([record((90, 5, 0), (100, 5, 0))])["cached_over_ideal"] is None
