"""Fresh-seed scoring's statistics, checked against independent references (no SUMO)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.traffic.scoring import bootstrap_interval, bootstrap_ratio_interval, summary_statistics


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


def test_bootstrap_ratio_interval_agrees_with_the_delta_method_and_keeps_the_pairs() -> None:
    """The interval of mean(a) / mean(b) (refine's loss over direct's): for a large paired sample it is the
    delta method's; pairing matters, so losses that move together give a narrower interval than shuffled ones."""
    rng = np.random.default_rng(7)
    b = rng.gamma(4.0, 0.02, 500)  # per-scenario losses, scenario difficulty shared by both methods
    a = 1.05 * b + rng.normal(0.0, 0.004, 500)
    ratio = a.mean() / b.mean()
    var = (a.var(ddof=1) - 2 * ratio * np.cov(a, b)[0, 1] + ratio**2 * b.var(ddof=1)) / (len(a) * b.mean() ** 2)
    low, high = bootstrap_ratio_interval(a, b, n=20_000, seed=2)
    assert low == pytest.approx(ratio - 1.96 * math.sqrt(var), abs=0.003)
    assert high == pytest.approx(ratio + 1.96 * math.sqrt(var), abs=0.003)
    shuffled = bootstrap_ratio_interval(rng.permutation(a), b, n=20_000, seed=2)
    assert shuffled[1] - shuffled[0] > 3 * (high - low)
    assert all(math.isnan(v) for v in bootstrap_ratio_interval(np.array([1.0]), np.array([1.0])))


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
