"""Fresh-seed scoring's statistics, checked against independent references (no SUMO)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.traffic.scoring import bootstrap_interval, summary_statistics


def test_bootstrap_interval_agrees_with_the_normal_interval_of_a_large_sample() -> None:
    values = np.random.default_rng(4).normal(0.3, 1.0, 400)
    low, high = bootstrap_interval(values, n=20_000, seed=1)
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert low == pytest.approx(values.mean() - half, abs=0.02) and high == pytest.approx(
        values.mean() + half, abs=0.02
    )


def test_bootstrap_interval_can_exclude_zero_or_not() -> None:
    assert bootstrap_interval(np.array([-0.3, -0.2, -0.25, -0.35, -0.1]))[1] < 0  # always better: below 0
    low, high = bootstrap_interval(np.array([-0.3, 0.2, -0.25, 0.35, 0.1]))
    assert low < 0 < high  # mixed: not shown
    assert bootstrap_interval(np.array([1.0, 1.0, 1.0])) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_interval(np.array([0.5])))


def test_summary_statistics_of_observations() -> None:
    observed = {
        "counts": [[10, 20], [30, 40]],
        "speeds": [[4.0, None], [10.0, 12.0]],
        "occupancy": [[5.0, 7.0], [None, 3.0]],
        "queue": [[0.0, 15.0], [0.0, 0.0]],
    }
    mean_count, mean_speed, occupancy, queue, slow = summary_statistics(observed)
    assert (mean_count, mean_speed, occupancy, queue) == (25.0, pytest.approx(26 / 3), 5.0, 3.75)
    assert slow == 0.5  # 4 m/s and the empty cell (nothing got through) are below 5 m/s
