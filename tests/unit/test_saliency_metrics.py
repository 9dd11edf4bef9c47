"""Saliency agreement metrics on hand-made maps whose answers are known."""

import math

import numpy as np
import pytest

from models.metrics.saliency import (
    MATLAB_EPS,
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
    pts = np.array([[10.2, 10.7], [100, 100]])  # second point off the map: ignored only when asked to
    fmap = np.zeros_like(a)
    fmap[10, 10] = 1
    assert nss(a, pts, outside="drop") == pytest.approx(nss(a, fmap))
    assert nss(a, pts[:1]) == pytest.approx(nss(a, fmap))
    assert nss(a, pts[:1]) > 3
    # by default the off-map point is clipped to the corner pixel (31, 31) and counted
    assert nss(a, pts) == pytest.approx((nss(a, pts[:1]) + nss(a, [[31.5, 31.5]])) / 2)
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
    # the blob is symmetric about (10, 10): values tie in pairs, so the threshold mask may hold a few more
    assert topk_mask(a, 0.1).sum() >= math.ceil(0.1 * a.size)
    assert topk_mask(a + 1e-9 * np.arange(a.size).reshape(a.shape), 0.1).sum() == math.ceil(0.1 * a.size)
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


# ------------------------------------------------------------------------------------------------ audit fixes
def _zscored(m):
    return (m - m.mean()) / m.std()


def _topk_reference(m, k):
    """Independent top-k threshold mask: sort descending, threshold at the ceil(k*N)-th value, ties in; when
    that value is the minimum the tied floor is out."""
    desc = np.sort(m.ravel())[::-1]
    t = desc[math.ceil(k * m.size) - 1]
    return m > m.min() if t == m.min() else m >= t


def test_topk_mask_keeps_ties_together_and_never_picks_by_position():
    # 10 x 10, k = 0.1 -> the 10th largest value is 2.0, shared by 10 pixels: all 15 pixels >= 2 are in
    m = np.zeros((10, 10))
    m.flat[[3, 17, 29, 51, 88]] = 3.0
    m.flat[[0, 5, 12, 33, 40, 47, 60, 71, 92, 99]] = 2.0
    mask = topk_mask(m, 0.1)
    assert mask.sum() == 15 and np.array_equal(mask, m >= 2.0)
    # moving pixels around moves the mask with them (the old argsort filled ties by position)
    perm = np.random.default_rng(1).permutation(m.size)
    assert np.array_equal(topk_mask(m.ravel()[perm].reshape(10, 10), 0.1).ravel(), mask.ravel()[perm])
    # the tied floor is out: a sparse map's mask is its support, not its support plus background by position
    sparse = np.zeros((10, 10))
    sparse.flat[[7, 8]] = 1.0
    assert np.array_equal(topk_mask(sparse, 0.1), sparse > 0)


@pytest.mark.parametrize("seed", range(6))
def test_iou_topk_matches_an_independent_threshold_iou(seed):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    k = [0.05, 0.1, 0.25][seed % 3]
    # quantised maps, so ties are frequent and straddle the threshold
    a = np.round(rng.gamma(0.6, size=(24, 20)) * 4) / 4
    b = np.round(rng.gamma(0.6, size=(24, 20)) * 4) / 4
    ra, rb = _topk_reference(a, k), _topk_reference(b, k)
    assert np.array_equal(topk_mask(a, k), ra)
    assert iou_topk(a, b, k) == pytest.approx(sklearn_metrics.jaccard_score(ra.ravel(), rb.ravel()))


def test_iou_topk_disjoint_sparse_maps_score_zero_and_constant_maps_are_nan():
    a = np.zeros((32, 32)); a[2:7, 2:7] = 1.0  # 25 pixels < ceil(0.1 * 1024) = 103
    b = np.zeros((32, 32)); b[20:25, 20:25] = 1.0
    assert iou_topk(a, b, 0.1) == 0.0  # was 0.609: both masks were padded with the same zero pixels
    assert iou_topk(a, a, 0.1) == 1.0
    assert math.isnan(iou_topk(np.zeros((32, 32)), b, 0.1))  # all-zero prediction: was 0.609
    assert math.isnan(iou_topk(np.full((32, 32), 0.3), b, 0.1))  # any constant prediction
    assert math.isnan(iou_topk(b, np.zeros((32, 32)), 0.1))
    assert not topk_mask(np.ones((4, 4)), 0.5).any()  # no ranking, no mask


def test_kl_is_the_mit_benchmark_formula_with_matlab_eps():
    assert MATLAB_EPS == 2.220446049250313e-16
    rng = np.random.default_rng(3)
    p = rng.random((16, 16)) * (rng.random((16, 16)) > 0.3)  # zeros where gaze has mass
    g = rng.random((16, 16))
    pn, gn = p / p.sum(), g / g.sum()
    eps = 2.220446049250313e-16
    expected = float(np.sum(gn * np.log(eps + gn / (pn + eps))))  # KLdiv.m, line for line
    assert kl_divergence(p, g) == pytest.approx(expected, rel=1e-12)
    # strictly positive maps: eps is negligible and KL is the textbook relative entropy
    from scipy.stats import entropy

    q = rng.random((16, 16)) + 0.05
    assert kl_divergence(q, g) == pytest.approx(entropy(gn.ravel(), (q / q.sum()).ravel()), rel=1e-9)
    # an all-zero prediction is not normalised (KLdiv.m's `if any(map1(:))`): heavily penalised, not uniform
    assert kl_divergence(np.zeros((16, 16)), g) == pytest.approx(float(np.sum(gn * np.log(eps + gn / eps))), rel=1e-12)
    with pytest.raises(ValueError, match="eps"):
        kl_divergence(q, g, eps=0.0)


def test_nss_unique_averages_over_fixated_pixels_and_default_over_fixations():
    a = blob(10, 10)
    z = _zscored(a)
    pts = np.array([[10.2, 10.7], [10.9, 10.1], [25.5, 25.5]])  # the first two share pixel (row 10, col 10)
    assert nss(a, pts) == pytest.approx((2 * z[10, 10] + z[25, 25]) / 3)
    assert nss(a, pts, unique=True) == pytest.approx((z[10, 10] + z[25, 25]) / 2)
    counts = np.zeros_like(a); counts[10, 10] = 2; counts[25, 25] = 1
    assert nss(a, counts) == pytest.approx(nss(a, pts))  # a count map counts repeats, as points do
    assert nss(a, counts, unique=True) == pytest.approx(nss(a, counts > 0))  # MIT: binary fixation map


def test_nss_never_drops_fixations_silently():
    a = blob(28, 4)
    z = _zscored(a)
    h, w = a.shape
    assert nss(a, [[w - 0.1, 3.5]]) == pytest.approx(z[3, w - 1])  # the last column
    assert nss(a, [[w, 3.5]]) == pytest.approx(z[3, w - 1])  # the image's edge: clipped to the border
    assert nss(a, [[w + 40, -2]]) == pytest.approx(z[0, w - 1])
    assert nss(a, [[3.5, 3.5], [w + 40, 3.5]]) == pytest.approx((z[3, 3] + z[3, w - 1]) / 2)
    assert math.isnan(nss(a, [[w + 40, 3.5]], outside="drop"))
    with pytest.raises(ValueError, match="outside='clip'"):
        nss(a, [[w + 40, 3.5]], outside="raise")
    with pytest.raises(ValueError, match="outside must be"):
        nss(a, [[1, 1]], outside="ignore")
    with pytest.raises(ValueError, match="NaN"):
        nss(a, [[np.nan, 1.0]])
