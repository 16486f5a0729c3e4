"""attnviz.report.stats: the bootstrap behind every interval of the report (pure numpy, seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from attnviz.report import stats
from attnviz.report.stats import bootstrap_mean, bootstrap_means


def _sample(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).beta(2, 5, size=n)


def test_interval_covers_the_mean():
    for seed in range(20):
        values = _sample(15, seed)
        mean, low, high = bootstrap_mean(values)
        assert mean == pytest.approx(values.mean()) and low <= mean <= high and low < high


def test_interval_shrinks_with_n():
    widths = []
    for n in (10, 100, 1000):
        _, low, high = bootstrap_mean(_sample(n))
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    # the standard error shrinks as 1/sqrt(n): tenfold more samples, about a third of the width
    assert widths[1] / widths[2] == pytest.approx(np.sqrt(10), rel=0.35)


def test_interval_matches_the_normal_approximation_for_many_samples():
    values = _sample(2000)
    _, low, high = bootstrap_mean(values)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)


def test_degenerate_sizes():
    assert bootstrap_mean([0.25]) == (0.25, 0.25, 0.25)  # one sample: nothing to resample
    assert all(np.isnan(bootstrap_mean([])))  # none: no mean
    assert bootstrap_mean([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))  # no spread: no width
    empty = bootstrap_means(np.zeros((0, 3)))
    assert np.isnan(empty.mean).all() and empty.n.tolist() == [0, 0, 0]


def test_same_seed_same_interval_other_seed_other_interval():
    values = _sample(40)
    assert bootstrap_mean(values, seed=3) == bootstrap_mean(values, seed=3)
    assert bootstrap_mean(values, seed=3)[1:] != bootstrap_mean(values, seed=4)[1:]


def test_columns_with_missing_values_resample_the_samples_that_have_them():
    rng = np.random.default_rng(0)
    values = rng.random((50, 3))
    values[10:, 1] = np.nan  # column 1: 10 samples
    values[:, 2] = np.nan
    values[7, 2] = 0.4  # column 2: one sample
    est = bootstrap_means(values)
    assert est.n.tolist() == [50, 10, 1]
    assert est.mean[:2] == pytest.approx([values[:, 0].mean(), values[:10, 1].mean()])
    assert est.low[2] == est.high[2] == est.mean[2] == 0.4
    # fewer samples, wider interval: about sqrt(5) times here
    assert (est.high[1] - est.low[1]) > 1.5 * (est.high[0] - est.low[0])
    alone = bootstrap_mean(values[:, 0])
    assert (est.mean[0], est.low[0], est.high[0]) == pytest.approx(alone)  # a column's result: its own


def test_drawing_in_chunks_gives_the_same_intervals(monkeypatch):
    """The chunk only bounds memory: the draws, and so the intervals, are the same."""
    values = _sample(300).reshape(-1, 1)
    whole = bootstrap_means(values, resamples=500)
    monkeypatch.setattr(stats, "CHUNK", 1000)  # three resamples a chunk
    chunked = bootstrap_means(values, resamples=500)
    assert chunked.low == pytest.approx(whole.low) and chunked.high == pytest.approx(whole.high)


def test_level_widens_the_interval():
    values = _sample(60)
    _, low90, high90 = bootstrap_mean(values, level=0.90)
    _, low99, high99 = bootstrap_mean(values, level=0.99)
    assert low99 < low90 < high90 < high99


def test_rejects_a_cube():
    with pytest.raises(ValueError, match="samples × columns"):
        bootstrap_means(np.zeros((2, 2, 2)))
