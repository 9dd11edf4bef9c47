"""Saliency agreement metrics on hand-made maps whose answers are known."""

import math

import numpy as np
import pytest

from models.metrics.saliency import (
    boxes_mask,
    correlation_coefficient,
    iou_binarised,
    iou_topk,
    kl_divergence,
    mass_inside_boxes,
    nss,
    pointing_hit,
    saliency_agreement,
    topk_mask,
)


def blob(cx, cy, size=32, sigma=3.0):
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))


def test_cc_identical_and_opposite():
    a = blob(10, 10)
    assert correlation_coefficient(a, a) == pytest.approx(1.0)
    assert correlation_coefficient(a, 3 * a + 1) == pytest.approx(1.0)  # scale/offset invariant
    assert correlation_coefficient(a, -a) == pytest.approx(-1.0)
    assert correlation_coefficient(a, blob(25, 25)) < 0.1


def test_cc_constant_map_is_nan():
    assert math.isnan(correlation_coefficient(np.ones((8, 8)), blob(4, 4, 8)))


def test_kl_zero_for_same_distribution_and_grows_with_distance():
    a = blob(10, 10)
    assert kl_divergence(a, 5 * a) == pytest.approx(0.0, abs=1e-6)
    near, far = kl_divergence(blob(12, 10), a), kl_divergence(blob(25, 25), a)
    assert 0 < near < far


def test_kl_rejects_negative_and_handles_empty_gaze():
    with pytest.raises(ValueError, match="non-negative"):
        kl_divergence(-blob(5, 5), blob(5, 5))
    assert math.isnan(kl_divergence(blob(5, 5), np.zeros((32, 32))))


def test_nss_points_and_map_agree():
    a = blob(10, 10)
    pts = np.array([[10.2, 10.7], [100, 100]])  # second point off the map: ignored
    fmap = np.zeros_like(a)
    fmap[10, 10] = 1
    assert nss(a, pts) == pytest.approx(nss(a, fmap))
    assert nss(a, pts) > 3
    assert nss(a, [[25.0, 25.0]]) < 0


def test_nss_bad_shape():
    with pytest.raises(ValueError, match="fixations"):
        nss(blob(5, 5), np.zeros(3))


def test_iou_binarised_medgaze_and_threshold():
    a = np.zeros((10, 10)); a[2:6, 2:6] = 1
    b = np.zeros((10, 10)); b[4:8, 4:8] = 0.3
    assert iou_binarised(a, b) == pytest.approx(4 / 28)
    assert iou_binarised(a, a * 0.1) == 1.0
    assert math.isnan(iou_binarised(np.zeros((4, 4)), np.zeros((4, 4))))
    with pytest.raises(ValueError, match="threshold"):
        iou_binarised(a, b, threshold=1.0)


def test_iou_topk_scale_free():
    a, b = blob(10, 10), blob(11, 10)
    assert iou_topk(a, a, 0.1) == 1.0
    assert iou_topk(a, 100 * a + 3, 0.05) == 1.0
    assert iou_topk(a, b, 0.05) > iou_topk(a, blob(25, 25), 0.05)
    assert topk_mask(a, 0.1).sum() == math.ceil(0.1 * a.size)
    with pytest.raises(ValueError, match="k must"):
        iou_topk(a, b, 0.0)


def test_shape_mismatch_and_dimensionality_errors():
    with pytest.raises(ValueError, match="same shape"):
        correlation_coefficient(np.ones((4, 4)), np.ones((5, 5)))
    with pytest.raises(ValueError, match="2D"):
        iou_topk(np.ones((1, 4, 4)), np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        correlation_coefficient(np.full((4, 4), np.nan), np.ones((4, 4)))


def test_pointing_and_mass():
    a = blob(10, 20)
    assert pointing_hit(a, [[5, 15, 15, 25]]) == 1.0
    assert pointing_hit(a, [[20, 0, 30, 10]]) == 0.0
    assert math.isnan(pointing_hit(a, []))
    assert mass_inside_boxes(a, [[0, 0, 32, 32]]) == pytest.approx(1.0)
    inside = mass_inside_boxes(a, [[5, 15, 15, 25]])
    assert 0.8 < inside < 1.0
    assert boxes_mask([[0, 0, 2, 3]], (5, 5)).sum() == 6


def test_agreement_bundle_keys():
    out = saliency_agreement(blob(10, 10), blob(10, 10))
    assert set(out) == {"cc", "kl", "iou_topk", "iou_binarised"}
    assert out["cc"] == pytest.approx(1.0)
