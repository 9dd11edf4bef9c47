"""Multi-label classification metrics (numpy): AUC, F1, validation-chosen thresholds, bootstrap CIs.

Arrays are ``(N,)`` for one finding or ``(N, C)`` over findings; ``mask`` (same shape, 1 = labelled) drops
unlabelled entries (CheXpert "not mentioned"), so every finding is scored on its own labelled cases.
Undefined values are NaN, never a silent 0: AUC with one class present, F1 with no positives at all.
Macro averages skip NaN findings and say how many findings they averaged.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np


class Interval(NamedTuple):
    """A point estimate with a bootstrap percentile interval (``level`` = coverage, e.g. 0.95)."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    n_valid: int = 0  # bootstrap replicates that gave a finite value

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level, "n_valid": self.n_valid}

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside [low, high] (e.g. a delta whose CI excludes 0)."""
        return bool(np.isfinite(self.low) and np.isfinite(self.high) and (value < self.low or value > self.high))


def _vector(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1D array, got shape {arr.shape}")
    return arr


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (as in the Mann-Whitney U statistic)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.concatenate([[0], np.flatnonzero(np.diff(xs)) + 1, [len(xs)]])
    ranks = np.empty(len(x))
    for start, stop in zip(boundaries[:-1], boundaries[1:]):
        ranks[order[start:stop]] = (start + stop + 1) / 2.0
    return ranks


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve (ties count half); NaN unless both classes are present.

    Args:
        y_true: ``(N,)`` 0/1 labels.
        y_score: ``(N,)`` scores, higher = more likely positive.
    """
    y, s = _vector(y_true, "y_true") > 0.5, _vector(y_score, "y_score")
    if y.shape != s.shape:
        raise ValueError(f"y_true and y_score differ in length: {y.shape} vs {s.shape}")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def f1_score(y_true, y_pred) -> float:
    """F1 of the positive class from 0/1 labels and 0/1 predictions; NaN when there are no positives in
    either (nothing to find and nothing claimed)."""
    y, p = _vector(y_true, "y_true") > 0.5, _vector(y_pred, "y_pred") > 0.5
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.shape} vs {p.shape}")
    tp = float(np.sum(y & p))
    denom = 2 * tp + float(np.sum(~y & p)) + float(np.sum(y & ~p))
    return float("nan") if denom == 0 else 2 * tp / denom


def best_f1_threshold(y_true, y_score, default: float = 0.5) -> float:
    """The score threshold that maximises F1 (predict positive when ``score >= threshold``).

    Chosen among midpoints between consecutive distinct scores, so it generalises better than a threshold
    sitting exactly on a training score. ``default`` when there are no positives or no scores.
    """
    y, s = _vector(y_true, "y_true") > 0.5, _vector(y_score, "y_score")
    if y.sum() == 0 or len(s) == 0:
        return float(default)
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(~ys)
    last_of_value = np.concatenate([np.flatnonzero(np.diff(ss)), [len(ss) - 1]])  # cut after each distinct score
    f1 = 2 * tp[last_of_value] / (2 * tp[last_of_value] + fp[last_of_value] + (y.sum() - tp[last_of_value]))
    best = int(np.argmax(f1))
    cut = last_of_value[best]
    if cut + 1 < len(ss):
        return float((ss[cut] + ss[cut + 1]) / 2.0)
    return float(ss[cut])  # every case positive: the lowest score itself


def _matrix(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected (N, C), got shape {arr.shape}")
    return arr


def _columns(labels, scores, mask):
    y, s = _matrix(labels, "labels"), _matrix(scores, "scores")
    m = np.ones_like(y) if mask is None else _matrix(mask, "mask")
    if not (y.shape == s.shape == m.shape):
        raise ValueError(f"labels, scores and mask must share one shape, got {y.shape}, {s.shape}, {m.shape}")
    return y, s, m > 0.5


def choose_thresholds(labels, scores, mask=None, default: float = 0.5) -> np.ndarray:
    """Per-column F1-optimal thresholds (``(C,)``), to be chosen on the VALIDATION split only."""
    y, s, m = _columns(labels, scores, mask)
    return np.array([best_f1_threshold(y[m[:, c], c], s[m[:, c], c], default) for c in range(y.shape[1])])


def per_finding_auc(labels, scores, mask=None) -> np.ndarray:
    """``(C,)`` AUC per column over its labelled rows (NaN where a class is missing)."""
    y, s, m = _columns(labels, scores, mask)
    return np.array([roc_auc(y[m[:, c], c], s[m[:, c], c]) for c in range(y.shape[1])])


def per_finding_f1(labels, scores, thresholds, mask=None) -> np.ndarray:
    """``(C,)`` F1 per column with ``scores >= thresholds[c]`` as the prediction."""
    y, s, m = _columns(labels, scores, mask)
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (y.shape[1],))
    return np.array([f1_score(y[m[:, c], c], s[m[:, c], c] >= t[c]) for c in range(y.shape[1])])


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def macro_auc(labels, scores, mask=None) -> float:
    """Mean AUC over the columns where it is defined."""
    return _nanmean(per_finding_auc(labels, scores, mask))


def macro_f1(labels, scores, thresholds, mask=None) -> float:
    """Mean F1 over the columns where it is defined."""
    return _nanmean(per_finding_f1(labels, scores, thresholds, mask))


def bootstrap_ci(metric_fn: Callable[..., float], *arrays, n: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap CI of ``metric_fn(*arrays)``, resampling rows (axis 0) of all arrays together.

    Args:
        metric_fn: returns a float from arrays with the same leading length (NaN replicates are dropped,
            e.g. a resample without positives).
        arrays: e.g. ``(labels, scores, mask)``; for a paired delta pass both systems' per-case values.
        n: bootstrap replicates.
        seed: replicates are reproducible given the seed.
        level: interval coverage.

    Returns:
        :class:`Interval` with the estimate on the full data and the ``(1-level)/2`` and ``(1+level)/2``
        percentiles; NaN bounds when fewer than 10 replicates were finite.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    arrs = [np.asarray(a) for a in arrays]
    length = len(arrs[0])
    if any(len(a) != length for a in arrs):
        raise ValueError(f"all arrays must share their first dimension, got {[len(a) for a in arrs]}")
    estimate = float(metric_fn(*arrs))
    if length == 0:
        return Interval(estimate, float("nan"), float("nan"), level, 0)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, length, length)
        v = float(metric_fn(*(a[idx] for a in arrs)))
        if np.isfinite(v):
            values.append(v)
    if len(values) < 10:
        return Interval(estimate, float("nan"), float("nan"), level, len(values))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), level, len(values))


def mean_ci(values: Sequence[float], n: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Bootstrap CI of the mean of per-case values, ignoring NaN entries."""
    v = np.asarray(values, dtype=np.float64)
    return bootstrap_ci(_nanmean, v[np.isfinite(v)], n=n, seed=seed, level=level)


__all__ = [
    "Interval",
    "roc_auc",
    "f1_score",
    "best_f1_threshold",
    "choose_thresholds",
    "per_finding_auc",
    "per_finding_f1",
    "macro_auc",
    "macro_f1",
    "bootstrap_ci",
    "mean_ci",
]
