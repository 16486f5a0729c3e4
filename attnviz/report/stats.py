"""Means over samples with percentile-bootstrap intervals: pure numpy, seeded, vectorised.

Values come as a matrix, one row per sample and one column per plotted point (a layer, a position bin), NaN where
a sample has no value. Every column is resampled with the same draws (rows are resampled, not cells), so one
matrix product gives all columns' bootstrap means at once: the cost is one draw of ``resamples × n`` indices per
plotted line, not per point. A resample's mean over a column averages the drawn samples that have a value there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 0
CHUNK = 2_000_000  # indices drawn at once: bounds the draw's memory (16 MB) whatever the number of samples


@dataclass(frozen=True)
class Estimate:
    """Per column: the mean, its interval and how many samples had a value (NaN where none had)."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) float64: how often each resample drew each of ``n`` samples (``resamples × n`` draws)."""
    draws = rng.integers(0, n, size=(resamples, n)) + np.arange(resamples)[:, None] * n  # resample r's draws: r's bins
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float64)


@lru_cache(maxsize=2)
def _seeded_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """The counts of a seed's first draw, kept: the report's lines over the same samples draw the same counts (one
    draw of ``resamples × n`` indices instead of one a line; at most CHUNK values, 16 MB, each)."""
    counts = resample_counts(n, resamples, np.random.default_rng(seed))
    counts.flags.writeable = False
    return counts


def resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, columns): each resample's mean per column over the samples it drew that have a value there
    (NaN where it drew none). Drawn in chunks, so memory stays bounded however many samples there are."""
    n = values.shape[0]
    out = np.empty((resamples, values.shape[1]))
    step = max(1, CHUNK // max(n, 1))
    for start in range(0, resamples, step):
        m = min(step, resamples - start)
        out[start : start + m] = _means(resample_counts(n, m, rng), values)
    return out


def _means(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(resamples, columns) means of ``values`` (samples × columns, NaN = no value) under resample ``counts``."""
    filled, present = np.nan_to_num(values), (~np.isnan(values)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts @ filled) / (counts @ present)


def bootstrap_means(values: np.ndarray, *, resamples: int = RESAMPLES, level: float = LEVEL,
                    seed: int = SEED) -> Estimate:
    """Mean of each column of ``values`` (samples × columns, NaN = no value) and its percentile interval.

    A column with one value has the interval [value, value]; a column with none is NaN throughout. The same
    ``seed`` gives the same intervals for the same matrix.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be samples × columns, not shape {values.shape}")
    present = ~np.isnan(values)
    n = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(values, axis=0) / np.maximum(n, 1), np.nan)
    low, high = mean.copy(), mean.copy()
    spread = n > 1  # one value: nothing to resample; none: NaN
    if spread.any():
        # a resample that drew no sample with a value in a column has no mean there: NaN, left out
        rows = values.shape[0]
        if rows * resamples <= CHUNK:  # one draw: the same for every line over as many samples
            means = _means(_seeded_counts(rows, resamples, seed), values[:, spread])
        else:
            means = resampled_means(values[:, spread], resamples, np.random.default_rng(seed))
        tail = (1.0 - level) / 2.0
        low[spread], high[spread] = np.nanquantile(means, [tail, 1.0 - tail], axis=0)
    return Estimate(mean=mean, low=low, high=high, n=n)


def bootstrap_mean(values, *, resamples: int = RESAMPLES, level: float = LEVEL,
                   seed: int = SEED) -> tuple[float, float, float]:
    """(mean, low, high) of one list of values (NaN left out); NaN throughout for no values."""
    column = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    est = bootstrap_means(column, resamples=resamples, level=level, seed=seed)
    return float(est.mean[0]), float(est.low[0]), float(est.high[0])
