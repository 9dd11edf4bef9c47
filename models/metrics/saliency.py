"""Agreement between a predicted saliency/attention map and a human gaze map (numpy, no torch).

Every function takes two ``(H, W)`` maps of the same shape (any non-negative scale: probabilities, counts,
max-normalised heatmaps) or a map plus points, and returns a float. Definitions follow the saliency
literature (MIT/Tuebingen benchmark, GazeSearch/Gazeformer ``metrics.py``), written from the formulas:

- :func:`correlation_coefficient` (CC): Pearson correlation of the two z-normalised maps. NaN when either map
  is constant (the correlation is undefined); aggregate with ``np.nanmean`` and report how many were NaN.
- :func:`kl_divergence` (KL): ``KL(gaze || pred)`` of the sum-normalised maps, in nats, exactly as the MIT
  saliency benchmark's ``KLdiv.m`` computes it (MATLAB's ``eps`` = 2.2204e-16 as the regulariser); 0 =
  identical, lower is better. The gaze map is the reference distribution, as in the saliency benchmarks.
- :func:`nss` (NSS): mean z-normalised prediction at the fixations; ``unique=True`` averages over the set of
  fixated pixels (the MIT benchmark's binary fixation map) instead of over fixations.
- :func:`iou_binarised`: MedGaze's IoU: both maps binarised at ``> threshold`` of their own maximum
  (threshold 0 = any non-zero pixel, MedGaze's choice), then |A and B| / |A or B|.
- :func:`iou_topk`: IoU of the top-``k`` threshold masks of the two maps (``k=0.1`` = the pixels at or above
  each map's 90th-percentile value; tied pixels are in or out together). NaN when either map is constant.
- :func:`pointing_hit`: the pointing game: does the map's maximum fall inside any of the boxes?
- :func:`mass_inside_boxes`: fraction of the map's mass inside the union of boxes.

Boxes and points are in the maps' pixel coordinates (x = column, y = row; pixel ``i`` spans ``[i, i+1)``).
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7
# MATLAB's ``eps`` (the spacing of doubles at 1.0), the regulariser of the MIT saliency benchmark's KLdiv.m.
MATLAB_EPS = float(np.finfo(np.float64).eps)  # 2.220446049250313e-16
NSS_OUTSIDE = ("clip", "drop", "raise")


def _map(m, name: str) -> np.ndarray:
    arr = np.asarray(m, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2D (H, W) map, got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"{name}: map is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: map contains NaN or infinite values")
    return arr


def _pair(pred, gaze) -> tuple[np.ndarray, np.ndarray]:
    p, g = _map(pred, "pred"), _map(gaze, "gaze")
    if p.shape != g.shape:
        raise ValueError(f"pred and gaze maps must have the same shape, got {p.shape} and {g.shape}")
    return p, g


def _nonneg(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.min() < 0:
        raise ValueError(f"{name}: a saliency map must be non-negative, minimum is {arr.min():.4g}")
    return arr


def _zscore(arr: np.ndarray) -> np.ndarray | None:
    std = arr.std()
    if std < EPS:
        return None
    return (arr - arr.mean()) / std


def correlation_coefficient(pred, gaze) -> float:
    """Pearson CC of the z-normalised maps, in [-1, 1]; NaN if either map is constant."""
    p, g = _pair(pred, gaze)
    zp, zg = _zscore(p), _zscore(g)
    if zp is None or zg is None:
        return float("nan")
    return float(np.clip((zp * zg).mean(), -1.0, 1.0))


def kl_divergence(pred, gaze, eps: float = MATLAB_EPS) -> float:
    """``KL(gaze || pred)`` in nats, the MIT saliency benchmark's definition; NaN if ``gaze`` is all zero.

    Both maps are normalised to sum 1 and ``KL = sum(gaze * log(eps + gaze / (pred + eps)))`` with
    ``eps = 2.2204e-16`` (MATLAB's ``eps``), which is ``code_forMetrics/KLdiv.m`` of the MIT saliency
    benchmark (Bylinskii et al., github.com/cvzoya/saliency; checked against that file and its copies in
    other repositories). Following that code, an all-zero prediction is left unnormalised (all zero), so it
    scores the large ``sum(gaze * log(eps + gaze / eps))`` = ``log(1 / eps) - H(gaze)`` (36.04 nats minus the
    gaze map's entropy): it is penalised, not treated as uniform. The one deliberate departure: an all-zero gaze map returns NaN (KLdiv.m returns 0, a perfect
    score for an undefined comparison).

    Args:
        eps: the regulariser; keep the default to compare with published MIT-benchmark numbers.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (MATLAB's eps, {MATLAB_EPS:.4g}, is the benchmark's), got {eps}")
    p, g = _pair(pred, gaze)
    p, g = _nonneg(p, "pred"), _nonneg(g, "gaze")
    if g.sum() <= 0:
        return float("nan")
    g = g / g.sum()
    if p.sum() > 0:
        p = p / p.sum()
    return float(np.sum(g * np.log(eps + g / (p + eps))))


def nss(pred, fixations, *, unique: bool = False, outside: str = "clip") -> float:
    """Normalised scanpath saliency: mean z-scored ``pred`` at the fixations.

    Args:
        pred: ``(H, W)`` saliency map.
        fixations: ``(N, 2+)`` array of (x, y[, ...]) in map pixels (point ``x`` lies in column
            ``floor(x)``), or an ``(H, W)`` non-negative fixation map (a count map, or 0/1).
        unique: False (default) averages over fixations: a pixel fixated twice counts twice (the mean over
            the fixation list, as scanpath papers compute it; for a fixation map, each pixel weighted by its
            count). True averages over the *set* of fixated pixels, i.e. over the binary fixation map
            ``fixations > 0``: the MIT saliency benchmark's convention (``NSS.m`` takes
            ``mean(map(logical(fixationMap)))``). Both z-score ``pred`` with its population std (MATLAB's
            ``std`` divides by N-1: a factor ``sqrt(1 - 1/(H*W))``, negligible on a saliency map).
        outside: what happens to points off the map. ``"clip"`` (default) moves them to the nearest border
            pixel, so every fixation is counted (eye trackers report points a little past the image edge,
            and ``x == W`` is the edge itself); ``"drop"`` ignores them (the old behaviour, now only when
            asked for); ``"raise"`` refuses them.

    Returns:
        NSS (0 = chance, higher is better); NaN when ``pred`` is constant or there is no fixation.
    """
    if outside not in NSS_OUTSIDE:
        raise ValueError(f"outside must be one of {NSS_OUTSIDE}, got {outside!r}")
    p = _map(pred, "pred")
    z = _zscore(p)
    fx = np.asarray(fixations, dtype=np.float64)
    if fx.shape == p.shape:  # a fixation map (an (N, 2) pred would be ambiguous, but is no saliency map)
        counts = _nonneg(_map(fx, "fixations"), "fixations")
        mask = counts > 0
        if z is None or not mask.any():
            return float("nan")
        if unique:
            return float(z[mask].mean())
        return float((z * counts).sum() / counts.sum())
    if fx.ndim != 2 or fx.shape[1] < 2:
        raise ValueError(f"fixations: expected (N, 2) x, y points or an {p.shape} fixation map, got shape {fx.shape}")
    if not np.all(np.isfinite(fx[:, :2])):
        raise ValueError("fixations: x, y contain NaN or infinite values; drop those rows first")
    h, w = p.shape
    cols, rows = np.floor(fx[:, 0]), np.floor(fx[:, 1])
    off = (cols < 0) | (cols >= w) | (rows < 0) | (rows >= h)
    if off.any() and outside == "raise":
        raise ValueError(f"fixations: {int(off.sum())} of {len(fx)} points lie outside the {w} x {h} map; "
                         "pass outside='clip' to move them to the border or outside='drop' to ignore them")
    if outside == "drop":
        cols, rows = cols[~off], rows[~off]
    cols = np.clip(cols, 0, w - 1).astype(np.int64)
    rows = np.clip(rows, 0, h - 1).astype(np.int64)
    if z is None or len(cols) == 0:
        return float("nan")
    if unique:
        flat = np.unique(rows * w + cols)
        return float(z.ravel()[flat].mean())
    return float(z[rows, cols].mean())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    if union == 0:
        return float("nan")
    return float(np.logical_and(a, b).sum() / union)


def iou_binarised(pred, gaze, threshold: float = 0.0) -> float:
    """MedGaze IoU: each map binarised at ``> threshold * its maximum``; NaN if both masks are empty.

    ``threshold=0`` keeps every non-zero pixel (MedGaze); use e.g. 0.5 for "at least half the peak"."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    p, g = _pair(pred, gaze)
    p, g = _nonneg(p, "pred"), _nonneg(g, "gaze")
    a = p > threshold * p.max() if p.max() > 0 else np.zeros(p.shape, bool)
    b = g > threshold * g.max() if g.max() > 0 else np.zeros(g.shape, bool)
    return _iou(a, b)


def topk_mask(m, k: float) -> np.ndarray:
    """Boolean threshold mask of the top ``k`` fraction of ``m``: ``m >= t``, where ``t`` is the
    ``ceil(k * H * W)``-th largest value (the value at the ``1 - k`` quantile).

    Tied pixels are in or out together, never picked by their position, so the mask can hold more than
    ``ceil(k * H * W)`` pixels when values tie at ``t``. One exception keeps the mask a ranking: when ``t`` is
    the map's minimum (e.g. the zero background of a sparse map that has fewer than ``k * H * W`` non-zero
    pixels), the tied minimum is left out, so the mask is the pixels above the floor and holds fewer than
    ``ceil(k * H * W)`` pixels (``m >= t`` would be the whole map). A constant map has no ranking: its mask
    is empty, and :func:`iou_topk` returns NaN for it."""
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be a fraction in (0, 1], got {k}")
    arr = _map(m, "map")
    n = max(1, math.ceil(k * arr.size))
    flat = arr.ravel()
    t = np.partition(flat, flat.size - n)[flat.size - n]  # the n-th largest value
    floor = flat.min()
    return arr > floor if t <= floor else arr >= t


def iou_topk(pred, gaze, k: float = 0.1) -> float:
    """IoU of the top-``k`` threshold masks (:func:`topk_mask`) of the two maps.

    NaN when either map is constant (all zero included): a constant map ranks no pixel above another, so it
    has no top-``k`` region to compare (filling one by pixel position, as before, gave an all-zero prediction
    a high score). Aggregate with ``np.nanmean`` and report the NaN count."""
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be a fraction in (0, 1], got {k}")
    p, g = _pair(pred, gaze)
    if p.max() <= p.min() or g.max() <= g.min():
        return float("nan")
    return _iou(topk_mask(p, k), topk_mask(g, k))


def _boxes(boxes) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 4))
    b = b.reshape(-1, b.shape[-1]) if b.ndim >= 1 else b
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes: expected (N, 4) x1, y1, x2, y2, got shape {np.asarray(boxes).shape}")
    return b


def boxes_mask(boxes, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` boolean union of boxes (x1, y1, x2, y2 in pixels); a pixel counts if its centre is inside."""
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
    for x1, y1, x2, y2 in _boxes(boxes):
        cols = (xs >= x1) & (xs <= x2)
        rows = (ys >= y1) & (ys <= y2)
        mask |= rows[:, None] & cols[None, :]
    return mask


def pointing_hit(pred, boxes) -> float:
    """Pointing game: 1.0 if the map's maximum pixel lies inside any box, else 0.0; NaN without boxes."""
    p = _map(pred, "pred")
    b = _boxes(boxes)
    if len(b) == 0:
        return float("nan")
    row, col = np.unravel_index(int(np.argmax(p)), p.shape)
    x, y = col + 0.5, row + 0.5
    return float(np.any((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3])))


def mass_inside_boxes(pred, boxes) -> float:
    """Fraction of a non-negative map's mass inside the union of boxes; NaN without boxes or mass."""
    p = _nonneg(_map(pred, "pred"), "pred")
    b = _boxes(boxes)
    if len(b) == 0 or p.sum() <= 0:
        return float("nan")
    return float(p[boxes_mask(b, p.shape)].sum() / p.sum())


def saliency_agreement(pred, gaze, *, k: float = 0.1, threshold: float = 0.0) -> dict[str, float]:
    """All map-vs-map scores at once: ``{"cc", "kl", "iou_topk", "iou_binarised"}``."""
    return {
        "cc": correlation_coefficient(pred, gaze),
        "kl": kl_divergence(pred, gaze),
        "iou_topk": iou_topk(pred, gaze, k),
        "iou_binarised": iou_binarised(pred, gaze, threshold),
    }


__all__ = [
    "correlation_coefficient",
    "kl_divergence",
    "MATLAB_EPS",
    "nss",
    "iou_binarised",
    "iou_topk",
    "topk_mask",
    "boxes_mask",
    "pointing_hit",
    "mass_inside_boxes",
    "saliency_agreement",
]
