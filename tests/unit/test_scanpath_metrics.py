"""Scanpath metrics on hand-computed cases: identical paths, known shifts, too-short paths, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.metrics import scanpath as sm
from models.schema import Fixation

W, H = 512, 512


def path(*points, duration=0.25):
    """Fixations at (x, y) points with equal durations and cumulative start times."""
    return [Fixation(float(x), float(y), i * duration, duration) for i, (x, y) in enumerate(points)]


ZIGZAG = path((100, 100), (400, 120), (120, 300), (420, 320), (250, 450), (260, 250))


# ------------------------------------------------------------------------------------------------ identity
def test_identical_paths_score_one_on_every_similarity():
    scores = sm.compare_scanpaths(ZIGZAG, ZIGZAG, W, H)
    for key in ("cc", "iou_topk", "iou_binarised_medgaze", "cc_binarised_medgaze", "scanmatch", "sequence_score",
                "mm_vector", "mm_direction", "mm_length", "mm_position", "mm_duration", "mm_mean", "mm_mean_spatial"):
        assert scores[key] == pytest.approx(1.0, abs=1e-9), key
    assert scores["nss"] > 1.0
    assert sm.duration_ks([f.duration for f in ZIGZAG], [f.duration for f in ZIGZAG]) == 0.0


def test_array_and_fixation_inputs_agree():
    arr3 = np.array([[f.x, f.y, f.duration] for f in ZIGZAG])
    arr4 = np.array([[f.x, f.y, f.t, f.duration] for f in ZIGZAG])
    other = path((90, 110), (380, 140), (150, 280), (400, 300))
    a = sm.compare_scanpaths(ZIGZAG, other, W, H)
    for variant in (arr3, arr4):
        b = sm.compare_scanpaths(variant, other, W, H)
        assert a == pytest.approx(b, nan_ok=True)


# ------------------------------------------------------------------------------------------------ maps
def test_cc_of_shifted_single_fixation_matches_gaussian_overlap():
    # Two unit Gaussians d apart: correlation = exp(-d^2 / (4 sigma^2)) (up to the small mean-subtraction
    # term of a finite map). sigma = 4 map px, shift = 4 map px -> exp(-1/4).
    sigma, shift = 16.0, 16.0  # original px; map_size 128 on 512 px -> scale 1/4
    cc = sm.cc_continuous(path((256, 256)), path((256 + shift, 256)), W, H, sigma_px=sigma, map_size=128)
    assert cc == pytest.approx(math.exp(-0.25), abs=0.01)
    far = sm.cc_continuous(path((100, 100)), path((400, 400)), W, H, sigma_px=sigma, map_size=128)
    assert -0.03 < far < 0  # only the mean-subtraction term is left


def test_medgaze_binarised_iou_is_the_overlap_of_two_truncated_kernel_squares():
    # sigma 20 px = 5 map px, truncate 2: the truncated kernel reaches int(2 * 5 + 0.5) = 10 cells, so each
    # footprint is a 21 x 21 square; centres 40 px = 10 cells apart overlap in 11 x 21 cells.
    inter = 11 * 21
    expected = inter / (2 * 21 * 21 - inter)  # 231 / 651
    iou = sm.iou_binarised_medgaze(path((256, 256)), path((296, 256)), W, H, sigma_px=20, map_size=128, truncate=2.0)
    assert iou == pytest.approx(expected, abs=1e-12)
    assert sm.iou_binarised_medgaze(path((100, 100)), path((400, 400)), W, H, sigma_px=20, map_size=128) == 0.0


def test_binarised_and_continuous_cc_differ_and_are_named_apart():
    a, b = path((200, 200), (260, 220), (300, 300)), path((210, 190), (330, 260), (280, 330))
    cont = sm.cc_continuous(a, b, W, H)
    binar = sm.cc_binarised_medgaze(a, b, W, H)
    assert -1 <= cont <= 1 and -1 <= binar <= 1
    assert cont != pytest.approx(binar, abs=1e-3)
    footprint = sm.footprint_map(a, W, H)
    assert set(np.unique(footprint)) <= {0.0, 1.0}


def test_iou_topk_identical_one_and_disjoint_zero():
    a = path((100, 100), (120, 110), (90, 130))
    assert sm.iou_topk(a, a, W, H, k=0.05) == pytest.approx(1.0)
    assert sm.iou_topk(a, path((420, 420), (400, 430), (430, 400)), W, H, k=0.05) == 0.0


def test_nss_positive_on_the_predicted_spot_and_negative_elsewhere():
    pred = path((128, 128), (140, 120), (120, 140))
    assert sm.nss(pred, path((130, 130)), W, H) > 2.0
    assert sm.nss(pred, path((450, 450)), W, H) < 0.0


def test_duration_weighting_changes_the_map():
    a = [Fixation(100, 100, 0, 1.0), Fixation(400, 400, 1.0, 0.1)]
    count = sm.scanpath_map(a, W, H)
    weighted = sm.scanpath_map(a, W, H, duration_weighted=True)
    # with weighting, the short fixation's peak drops to about a tenth of the long one's
    assert count[100, 100] == pytest.approx(count[25, 25], rel=0.05)
    assert weighted[100, 100] < 0.2 * weighted[25, 25]


# ------------------------------------------------------------------------------------------------ MultiMatch
def test_multimatch_wrapper_equals_the_package_called_directly():
    import multimatch_gaze

    other = path((110, 90), (380, 140), (150, 280), (400, 330), (240, 430), duration=0.3)
    direct = multimatch_gaze.docomparison(
        np.rec.fromarrays([[f.x for f in ZIGZAG], [f.y for f in ZIGZAG], [f.duration for f in ZIGZAG]],
                          names="start_x,start_y,duration"),
        np.rec.fromarrays([[f.x for f in other], [f.y for f in other], [f.duration for f in other]],
                          names="start_x,start_y,duration"),
        screensize=[W, H], grouping=False, TDir=0.0, TDur=0.0, TAmp=0.0)
    ours = sm.multimatch(ZIGZAG, other, W, H)
    assert [ours[k] for k in sm.MULTIMATCH_DIMENSIONS] == pytest.approx(list(direct))
    assert ours["mean"] == pytest.approx(np.mean(direct))
    assert ours["mean_spatial"] == pytest.approx(np.mean(direct[:4]))
    assert all(0 <= ours[k] <= 1 for k in sm.MULTIMATCH_DIMENSIONS)
    assert ours["mean"] < 1.0


@pytest.mark.parametrize("n", [0, 1, 2])
def test_multimatch_with_fewer_than_three_fixations_is_nan(n):
    short = ZIGZAG[:n]
    out = sm.multimatch(short, ZIGZAG, W, H)
    assert all(math.isnan(out[k]) for k in (*sm.MULTIMATCH_DIMENSIONS, "mean", "mean_spatial"))
    assert all(math.isnan(v) for v in sm.multimatch(ZIGZAG, short, W, H).values())


def test_multimatch_duration_reflects_a_known_ratio():
    slow = [Fixation(f.x, f.y, f.t * 2, f.duration * 2) for f in ZIGZAG]
    out = sm.multimatch(ZIGZAG, slow, W, H)
    # spatially identical; every aligned pair has durations d and 2d: 1 - |d - 2d| / 2d = 0.5
    assert out["position"] == pytest.approx(1.0)
    assert out["duration"] == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ alignment
def test_needleman_wunsch_with_zero_gap_is_the_longest_common_subsequence():
    letters = {c: i for i, c in enumerate("ABCD")}
    a = [letters[c] for c in "ABCBDAB"]
    b = [letters[c] for c in "BDCABA"]
    assert sm.needleman_wunsch(a, b, np.eye(4), 0.0) == 4.0  # e.g. BCBA


def test_needleman_wunsch_gap_penalty_matches_a_hand_alignment():
    # a = AB, b = B: best is gap + match = -1 + 2 = 1 (match 2, mismatch -1, gap -1)
    sub = np.array([[2.0, -1.0], [-1.0, 2.0]])
    assert sm.needleman_wunsch([0, 1], [1], sub, -1.0) == 1.0
    assert sm.needleman_wunsch([0, 1], [0, 1], sub, -1.0) == 4.0
    assert sm.needleman_wunsch([0], [1], sub, -5.0) == -1.0  # mismatch beats two gaps


def test_scanmatch_known_shift_and_length_mismatch():
    cell = W / 16
    a = [Fixation(cell * 0.5, cell * 0.5, 0, 0.05)]
    one_right = [Fixation(cell * 1.5, cell * 0.5, 0, 0.05)]
    assert sm.scanmatch(a, one_right, W, H) == pytest.approx((3.5 - 1) / 3.5)
    # 100 ms = two letters each; same per-letter score
    a2 = [Fixation(cell * 0.5, cell * 0.5, 0, 0.1)]
    r2 = [Fixation(cell * 1.5, cell * 0.5, 0, 0.1)]
    assert sm.scanmatch(a2, r2, W, H) == pytest.approx((3.5 - 1) / 3.5)
    # one letter vs two identical letters: score 3.5 / (3.5 * 2)
    assert sm.scanmatch(a, a2, W, H) == pytest.approx(0.5)
    # beyond the threshold distance the substitution is negative, the gap (0) wins: score 0
    far = [Fixation(cell * 10.5, cell * 10.5, 0, 0.05)]
    assert sm.scanmatch(a, far, W, H) == 0.0


def test_scanmatch_string_temporal_binning():
    cell = W / 16
    p = [Fixation(cell * 2.5, cell * 1.5, 0, 0.149), Fixation(cell * 0.5, cell * 0.5, 0.149, 0.01)]
    letters = sm.scanmatch_string(p, W, H)
    assert letters.tolist() == [1 * 16 + 2] * 3  # round(0.149/0.05)=3; the 10 ms fixation is dropped (toolbox)
    assert sm.scanmatch_string(p, W, H, short_fixations="keep").tolist() == [18] * 3 + [0]
    assert sm.scanmatch_string(p, W, H, temp_bin=None).tolist() == [18, 0]


def test_sequence_score_counts_the_shared_cluster_order():
    clusters = np.array([[100.0, 100.0], [400.0, 100.0], [250.0, 400.0]])
    human = path((100, 100), (400, 100), (250, 400))
    pred = path((105, 98), (255, 395), (395, 105))  # clusters 0, 2, 1 vs 0, 1, 2 -> LCS 2
    assert sm.sequence_score(pred, human, W, H, clusters=clusters) == pytest.approx(2 / 3)
    assert sm.sequence_score(human, human, W, H, clusters=clusters) == 1.0
    longer = path((100, 100), (400, 100), (250, 400), (100, 100))
    assert sm.sequence_score(longer, human, W, H, clusters=clusters) == pytest.approx(3 / 4)


def test_mean_shift_finds_separated_blobs():
    rng = np.random.default_rng(0)
    a = rng.normal([100, 100], 5, size=(30, 2))
    b = rng.normal([400, 300], 5, size=(20, 2))
    centres = sm.mean_shift(np.concatenate([a, b]), bandwidth=40)
    assert len(centres) == 2
    assert np.linalg.norm(centres[0] - a.mean(0)) < 3  # the bigger cluster first
    assert np.linalg.norm(centres[1] - b.mean(0)) < 3


def test_duration_ks_known_values():
    assert sm.duration_ks([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
    assert sm.duration_ks([0.1, 0.2], [0.5, 0.6]) == 1.0
    assert math.isnan(sm.duration_ks([], [0.3]))


# ------------------------------------------------------------------------------------------------ edge cases
def test_empty_paths_give_nan_not_errors():
    out = sm.compare_scanpaths([], ZIGZAG, W, H)
    assert out.pop("iou_binarised_medgaze") == 0.0  # an empty footprint overlaps nothing
    assert all(math.isnan(v) for v in out.values())
    assert math.isnan(sm.iou_binarised_medgaze([], [], W, H))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="width and height"):
        sm.cc_continuous(ZIGZAG, ZIGZAG, 0, 100)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        sm.scanmatch(np.zeros((3, 2)), ZIGZAG, W, H)
    with pytest.raises(ValueError, match="NaN"):
        sm.multimatch(np.array([[np.nan, 1, 0.2]] * 3), ZIGZAG, W, H)
    with pytest.raises(ValueError, match="durations"):
        sm.as_xyd(np.array([[1.0, 1.0, -0.1]]))
    with pytest.raises(ValueError, match="threshold"):
        sm.scanmatch(ZIGZAG, ZIGZAG, W, H, threshold=0)


def test_nan_summary_counts_missing_values():
    assert sm.nan_summary([1.0, float("nan"), 3.0]) == {"mean": 2.0, "n": 2, "n_nan": 1}


# ------------------------------------------------------------------------------------------------ audit fixes
@pytest.mark.parametrize("width,height", [(800, 1000), (1000, 800), (800, 2500), (2544, 3056), (3, 1000), (512, 512)])
def test_map_grid_covers_the_image_exactly_on_both_axes(width, height):
    (h, w), scale = sm.map_grid(width, height, 128)
    assert max(h, w) == 128 or (h, w) == (128, 1) or min(h, w) >= 1
    assert w / scale[0] == pytest.approx(width, rel=1e-12)  # cell width * cells = image width
    assert h / scale[1] == pytest.approx(height, rel=1e-12)
    rows, cols = sm.grid_cells(np.array([[width - 0.1, height - 0.1], [0.0, 0.0], [width, height]]), (h, w), scale)
    assert cols.tolist() == [w - 1, 0, w - 1] and rows.tolist() == [h - 1, 0, h - 1]


def test_nss_counts_a_fixation_at_the_right_edge_in_the_last_cell():
    # 800 x 1000: the old single scale 0.128 gave a 102-column grid covering 796.9 px, and a fixation at
    # x = 799.9 fell off it (NSS silently NaN). Now the cell width is 800 / 102 and x = 799.9 is in column 101.
    width, height = 800, 1000
    pred = path((780, 500), (700, 300), (100, 900))
    pred_map = sm.scanpath_map(pred, width, height).astype(np.float64)
    z = (pred_map - pred_map.mean()) / pred_map.std()
    (h, w), _ = sm.map_grid(width, height)
    assert (h, w) == (128, 102)
    edge = path((width - 0.1, 500.0))
    assert sm.nss(pred, edge, width, height) == pytest.approx(z[int(500 * 128 / 1000), w - 1])
    # off the image: clipped to the border cell, still counted
    assert sm.nss(pred, path((width + 30.0, 500.0)), width, height) == pytest.approx(z[64, w - 1])


def test_nss_unique_counts_each_fixated_cell_once():
    pred = path((128, 128), (140, 120))
    pred_map = sm.scanpath_map(pred, W, H).astype(np.float64)
    z = (pred_map - pred_map.mean()) / pred_map.std()
    human = path((130, 130), (131, 129), (400, 400))  # the first two share cell (32, 32) on the 128 grid
    assert sm.nss(pred, human, W, H) == pytest.approx((2 * z[32, 32] + z[100, 100]) / 3)
    assert sm.nss(pred, human, W, H, unique=True) == pytest.approx((z[32, 32] + z[100, 100]) / 2)


def test_footprint_is_the_support_of_a_truncated_gaussian_filter():
    # one fixation at cell (row 40, col 60): the footprint is the square the truncated kernel reaches,
    # int(truncate * sigma + 0.5) cells each way per axis; the old disc of radius truncate * sigma was not
    width, height, sigma, truncate = 512, 512, 14.0, 2.0  # sigma = 3.5 cells; reach int(7.5) = 7 cells
    fp = sm.footprint_map(path((60.5 * 4, 40.5 * 4)), width, height, sigma_px=sigma, truncate=truncate)
    expected = np.zeros((128, 128))
    expected[40 - 7:40 + 8, 60 - 7:60 + 8] = 1.0
    assert np.array_equal(fp, expected)
    # non-square image: the reach is per axis (cells are width / w by height / h pixels)
    fp2 = sm.footprint_map(path((400.0, 10.0)), 800, 1000, sigma_px=40.0, truncate=1.5)
    (h, w), scale = sm.map_grid(800, 1000)
    ry, rx = int(1.5 * 40 * scale[1] + 0.5), int(1.5 * 40 * scale[0] + 0.5)
    r0, c0 = int(10 * scale[1]), int(400 * scale[0])
    expected2 = np.zeros((h, w))
    expected2[max(0, r0 - ry):r0 + ry + 1, c0 - rx:c0 + rx + 1] = 1.0
    assert np.array_equal(fp2, expected2)
    with pytest.raises(ValueError, match="truncate"):
        sm.footprint_map(path((1, 1)), W, H, truncate=0)


def test_scanmatch_repeats_follow_the_toolbox_round_and_drop_short_fixations():
    d = np.array([0.25, 0.2, 1.25, 0.75, 0.0])
    # temp_bin 0.5: round(0.5) = 1 (MATLAB rounds halves away from zero), round(0.4) = 0 (dropped),
    # round(2.5) = 3, round(1.5) = 2, round(0) = 0
    assert sm.scanmatch_repeats(d, 0.5).tolist() == [1, 0, 3, 2, 0]
    assert sm.scanmatch_repeats(d, 0.5, "keep").tolist() == [1, 1, 3, 2, 1]
    assert sm.scanmatch_repeats(d, None).tolist() == [1] * 5
    # the default 50 ms bin: under 25 ms dropped, 25 ms kept once
    assert sm.scanmatch_repeats([0.024, 0.025, 0.049], 0.05).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="short_fixations"):
        sm.scanmatch_repeats(d, 0.5, "ignore")


def test_scanmatch_ignores_a_short_fixation_as_the_toolbox_does():
    cell = W / 16
    a = [Fixation(cell * 0.5, cell * 0.5, 0, 0.1)]
    b = a + [Fixation(cell * 12.5, cell * 12.5, 0.1, 0.01)]  # a 10 ms glance far away
    assert sm.scanmatch(a, b, W, H) == 1.0
    # kept once (the old rule): 2 matched letters of 3 -> 2 * 3.5 / (3.5 * 3)
    assert sm.scanmatch(a, b, W, H, short_fixations="keep") == pytest.approx(2 / 3)
    assert math.isnan(sm.scanmatch(a, [Fixation(10, 10, 0, 0.01)], W, H))  # nothing left of the path
    assert sm.compare_scanpaths(a, b, W, H)["scanmatch"] == 1.0
    assert sm.SCANMATCH_DEFAULTS["short_fixations"] == "drop"


def test_mean_shift_equal_intensity_ties_break_as_scikit_learn_does():
    # two 2-point clusters (intensity 2 each): sklearn sorts (intensity, x, y) descending, so the right one
    # comes first; the old code put the smaller x first
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [100.0, 0.0], [101.0, 0.0]])
    assert sm.mean_shift(pts, 5.0).tolist() == [[100.5, 0.0], [0.5, 0.0]]
    # three points 10 apart with bandwidth 10: every window holds two or three points; the middle mode wins
    line = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    assert sm.mean_shift(line, 10.0).tolist() == [[10.0, 0.0]]


def _point_sets(n_sets: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(n_sets):
        kind = i % 4
        n = int(rng.integers(3, 40))
        if kind == 0:
            x = rng.uniform(0, 500, size=(n, 2))
        elif kind == 1:  # integer grid: duplicate points, exact distance ties at the bandwidth
            x = rng.integers(0, 8, size=(n, 2)).astype(float) * 10
        elif kind == 2:  # equal-sized blobs: intensity ties
            k = int(rng.integers(2, 6))
            x = np.concatenate([c + rng.normal(0, 5, size=(k, 2)) for c in rng.uniform(0, 400, size=(3, 2))])
        else:
            x = np.concatenate([c + rng.normal(0, 20, size=(n, 2)) for c in rng.uniform(0, 400, size=(3, 2))])
        yield x, float(rng.choice([15.0, 20.0, 30.0, 50.0]))


@pytest.mark.parametrize("bin_seeding", [False, True])
def test_mean_shift_equals_scikit_learn_on_random_and_tied_point_sets(bin_seeding):
    cluster = pytest.importorskip("sklearn.cluster")
    import warnings

    for x, bw in _point_sets(40, seed=7):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "binning data failed" when no two points share a bin
            ref = cluster.MeanShift(bandwidth=bw, bin_seeding=bin_seeding).fit(x).cluster_centers_
        before = x.copy()
        ours = sm.mean_shift(x, bw, bin_seeding=bin_seeding)
        assert np.array_equal(x, before)  # the input points are never moved in place
        assert ours.shape == ref.shape, (x.tolist(), bw)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9 * bw)


def test_sequence_score_clusters_match_scikit_learn_meanshift():
    cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(11)
    humans = [path(*(rng.uniform(0, 512, size=(8, 2)).round())) for _ in range(4)]
    pts = np.array([[f.x, f.y] for p in humans for f in p])
    ref = cluster.MeanShift(bandwidth=0.1 * 512).fit(pts).cluster_centers_
    np.testing.assert_allclose(sm.gaze_clusters(humans, W, H), ref, rtol=0, atol=1e-9)
