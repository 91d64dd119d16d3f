"""The one percentile definition: linear interpolation between the closest ranks."""

from __future__ import annotations

import random
import statistics

import pytest

from open_strawberry.runtime.statistics import percentile


def test_percentiles_interpolate_between_the_closest_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    random.Random(0).shuffle(values)  # order does not matter
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 90) == pytest.approx(90.1)
    assert percentile(values, 99.9) == pytest.approx(99.901)
    assert (percentile(values, 0), percentile(values, 100)) == (1.0, 100.0)


def test_whole_percentiles_agree_with_the_inclusive_method_of_the_standard_library() -> None:
    values = [random.Random(1).expovariate(1.0) for _ in range(257)]
    quantiles = statistics.quantiles(values, n=100, method="inclusive")
    for pct in (1, 25, 50, 90, 99):
        assert percentile(values, pct) == pytest.approx(quantiles[pct - 1], rel=1e-12)


def test_one_value_is_every_percentile_and_none_is_none() -> None:
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)
