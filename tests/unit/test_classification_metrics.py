"""AUC, F1, thresholds and bootstrap intervals against brute-force definitions."""

import math

import numpy as np
import pytest

from models.metrics.classification import (
    Interval,
    best_f1_threshold,
    bootstrap_ci,
    choose_thresholds,
    f1_score,
    macro_auc,
    macro_f1,
    mean_ci,
    per_finding_auc,
    roc_auc,
)


def brute_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60) + 0.3 * y, 1)  # rounding creates ties
    assert roc_auc(y, s) == pytest.approx(brute_auc(y, s))
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_auc_single_class_is_nan_and_length_checked():
    assert math.isnan(roc_auc([1, 1, 1], [0.2, 0.3, 0.4]))
    with pytest.raises(ValueError, match="length"):
        roc_auc([0, 1], [0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="1D"):
        roc_auc(np.zeros((2, 2)), np.zeros((2, 2)))


def test_f1_definition():
    assert f1_score([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert f1_score([1, 1, 0], [1, 1, 0]) == 1.0
    assert math.isnan(f1_score([0, 0], [0, 0]))
    assert f1_score([0, 0], [1, 0]) == 0.0


def test_best_threshold_maximises_f1():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 80)
    s = rng.random(80) + 0.5 * y
    t = best_f1_threshold(y, s)
    best = f1_score(y, s >= t)
    for cand in np.linspace(0, 1.5, 151):
        assert f1_score(y, s >= cand) <= best + 1e-12
    assert best_f1_threshold([0, 0], [0.3, 0.4]) == 0.5  # no positives -> default


def test_masked_columns():
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.1], [0.1, 0.9]])
    mask = np.array([[1, 1], [1, 1], [1, 0], [1, 0]])  # column 1 only labelled on rows 0-1
    aucs = per_finding_auc(labels, scores, mask)
    assert aucs[0] == 1.0 and aucs[1] == 1.0
    assert per_finding_auc(labels, scores)[1] < 1.0
    th = choose_thresholds(labels, scores, mask)
    assert macro_f1(labels, scores, th, mask) == 1.0
    assert macro_auc(labels, scores, mask) == 1.0
    with pytest.raises(ValueError, match="one shape"):
        per_finding_auc(labels, scores[:, :1])


def test_bootstrap_ci_contains_estimate_and_is_reproducible():
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 1.0, 200)
    ci = bootstrap_ci(np.mean, x, n=500, seed=3)
    assert isinstance(ci, Interval)
    assert ci.low < ci.estimate < ci.high
    assert ci.low < 1.0 < ci.high  # true mean covered (holds for this seed)
    assert ci.high - ci.low == pytest.approx(2 * 1.96 / math.sqrt(200), rel=0.25)
    assert bootstrap_ci(np.mean, x, n=500, seed=3) == ci
    assert ci.excludes(0.0) and not ci.excludes(1.0)


def test_bootstrap_paired_arrays_and_errors():
    y = np.array([0, 1] * 30)
    s = y + np.random.default_rng(0).normal(0, 0.8, 60)
    ci = bootstrap_ci(roc_auc, y, s, n=200)
    assert 0.5 < ci.low <= ci.estimate <= ci.high <= 1.0
    with pytest.raises(ValueError, match="first dimension"):
        bootstrap_ci(roc_auc, y, s[:10])
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci(np.mean)
    nan_ci = mean_ci([1.0, float("nan"), 3.0], n=100)
    assert nan_ci.estimate == 2.0
