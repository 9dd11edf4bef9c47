"""Agreement between a predicted saliency/attention map and a human gaze map (numpy, no torch).

Every function takes two ``(H, W)`` maps of the same shape (any non-negative scale: probabilities, counts,
max-normalised heatmaps) or a map plus points, and returns a float. Definitions follow the saliency
literature (MIT/Tuebingen benchmark, GazeSearch/Gazeformer ``metrics.py``), written from the formulas:

- :func:`correlation_coefficient` (CC): Pearson correlation of the two z-normalised maps. NaN when either map
  is constant (the correlation is undefined); aggregate with ``np.nanmean`` and report how many were NaN.
- :func:`kl_divergence` (KL): ``KL(gaze || pred)`` of the sum-normalised maps, in nats; 0 = identical, lower
  is better. The gaze map is the reference distribution, as in the saliency benchmarks.
- :func:`nss` (NSS): mean z-normalised prediction at the fixated pixels.
- :func:`iou_binarised`: MedGaze's IoU: both maps binarised at ``> threshold`` of their own maximum
  (threshold 0 = any non-zero pixel, MedGaze's choice), then |A and B| / |A or B|.
- :func:`iou_topk`: IoU of the top-``k`` fraction of pixels of each map (equal areas, so the score does not
  depend on the maps' spread or scale; ``k=0.1`` = top 10%).
- :func:`pointing_hit`: the pointing game: does the map's maximum fall inside any of the boxes?
- :func:`mass_inside_boxes`: fraction of the map's mass inside the union of boxes.

Boxes and points are in the maps' pixel coordinates (x = column, y = row; pixel ``i`` spans ``[i, i+1)``).
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7


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


def kl_divergence(pred, gaze, eps: float = EPS) -> float:
    """``KL(gaze || pred)`` in nats of the sum-normalised non-negative maps; NaN if ``gaze`` is all zero.

    An all-zero prediction is treated as uniform (it carries no information)."""
    p, g = _pair(pred, gaze)
    p, g = _nonneg(p, "pred"), _nonneg(g, "gaze")
    if g.sum() <= 0:
        return float("nan")
    g = g / g.sum()
    p = p / p.sum() if p.sum() > 0 else np.full_like(p, 1.0 / p.size)
    return float(np.sum(g * np.log((g + eps) / (p + eps))))


def nss(pred, fixations) -> float:
    """Normalised scanpath saliency: mean z-scored ``pred`` at the fixated pixels.

    Args:
        pred: ``(H, W)`` saliency map.
        fixations: ``(N, 2+)`` array of (x, y[, ...]) in map pixels, or an ``(H, W)`` binary fixation map.
            Points outside the map are ignored.

    Returns:
        NSS (0 = chance, higher is better); NaN when ``pred`` is constant or no fixation lies on the map.
    """
    p = _map(pred, "pred")
    z = _zscore(p)
    fx = np.asarray(fixations, dtype=np.float64)
    if fx.shape == p.shape:  # a fixation map (an (N, 2) pred would be ambiguous, but is no saliency map)
        mask = fx > 0
        if z is None or not mask.any():
            return float("nan")
        return float(z[mask].mean())
    if fx.ndim != 2 or fx.shape[1] < 2:
        raise ValueError(f"fixations: expected (N, 2) x, y points or an {p.shape} fixation map, got shape {fx.shape}")
    cols, rows = np.floor(fx[:, 0]).astype(int), np.floor(fx[:, 1]).astype(int)
    ok = (cols >= 0) & (cols < p.shape[1]) & (rows >= 0) & (rows < p.shape[0])
    if z is None or not ok.any():
        return float("nan")
    return float(z[rows[ok], cols[ok]].mean())


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
    """Boolean mask of the ``ceil(k * H * W)`` highest pixels of ``m`` (ties broken by position)."""
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be a fraction in (0, 1], got {k}")
    arr = _map(m, "map")
    n = max(1, math.ceil(k * arr.size))
    flat = np.zeros(arr.size, dtype=bool)
    flat[np.argsort(-arr.ravel(), kind="stable")[:n]] = True
    return flat.reshape(arr.shape)


def iou_topk(pred, gaze, k: float = 0.1) -> float:
    """IoU of the top-``k`` fraction of pixels of each map (equal-area masks); NaN if ``gaze`` is all zero."""
    p, g = _pair(pred, gaze)
    if g.max() <= g.min():
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
    "nss",
    "iou_binarised",
    "iou_topk",
    "topk_mask",
    "boxes_mask",
    "pointing_hit",
    "mass_inside_boxes",
    "saliency_agreement",
]
