"""Scanpath similarity: one predicted (or simulated) scanpath against one human scanpath of the same image.

A scanpath is a ``list[Fixation]`` or an ``(N, 3)`` array of x, y (original pixels) and duration (s), or an
``(N, 4)`` array x, y, t, duration as :func:`models.gaze.fixations_to_array` makes. Every function also
takes the image ``width`` and ``height`` in original pixels. Each returns a float (or a dict of floats);
NaN means "undefined for this pair" (documented per function) and is meant to be skipped with
``np.nanmean`` and counted.

Map-based scores render both scanpaths as fixation maps with :func:`models.gaze.fixation_heatmap` on a grid
whose longer side is ``map_size`` pixels (positions and sigma scaled alike), then reuse
:mod:`models.metrics.saliency`. Sigma is always a parameter (``sigma_px`` in original pixels; default
16/224 of the image's longer side, the GazeSearch convention) and must be reported with the numbers.
Two families, named so they are never confused:

- **continuous** (the saliency literature's definitions): :func:`cc_continuous` (Pearson CC of the two
  Gaussian maps), :func:`iou_topk` (IoU of the top-``k`` pixels of each map), :func:`nss` (the predicted
  map, z-scored, at the human fixations).
- **binarised, MedGaze's variant** (how the seed paper's IoU 0.41 / CC 0.50 were computed): each scanpath
  becomes a binary footprint, the pixels within ``truncate * sigma`` of any fixation (what "map > 0" of a
  Gaussian filtered with a truncated kernel gives); :func:`iou_binarised_medgaze` is the IoU of the two
  footprints and :func:`cc_binarised_medgaze` the Pearson CC of the two 0/1 maps.

Sequence scores:

- :func:`multimatch`: the five MultiMatch dimensions (Jarodzka et al. 2010; Dewhurst et al. 2012) through
  the ``multimatch-gaze`` package (``docomparison`` with no simplification: grouping off, thresholds 0;
  screen = the image in original pixels). Fewer than 3 fixations in either path gives NaN for all five
  (the package needs two saccades).
- :func:`scanmatch`: ScanMatch (Cristino et al. 2010), written here from the paper: the image is cut into
  an ``xbins x ybins`` grid of regions (default 16 x 16: square cells on the near-square radiographs,
  about the size of the default sigma); each fixation becomes its cell's letter repeated once per
  ``temp_bin`` seconds of duration (default 50 ms, at least once); two letter strings are aligned by
  Needleman–Wunsch with gap penalty 0 and substitution score ``threshold - d``, where ``d`` is the
  Euclidean distance between the two cells in cell units (default threshold 3.5 cells, as in the
  ScanMatch settings used by Chen et al. 2021, so cells closer than 3.5 cells score positive); the score
  is divided by ``threshold * max(len_a, len_b)``, so identical paths score 1.
- :func:`sequence_score` (Yang et al. 2020 as used by Gazeformer/GazeSearch): human fixations of an image
  are clustered by mean shift (flat kernel, bandwidth ``bandwidth_fraction`` of the longer side, default
  0.1); every fixation takes its nearest cluster's label; Needleman–Wunsch with similarity 1 for equal
  labels, 0 otherwise and gap 0 (the longest common subsequence) is divided by the longer string's length.
  With ``temp_bin`` labels repeat per time bin as in ScanMatch (the "time" variant).
- :func:`duration_ks`: the two-sample Kolmogorov–Smirnov statistic between two sets of fixation durations
  (0 = same distribution, 1 = disjoint). Pool durations over a whole test set; per image it is noisy.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from models.gaze import fixation_heatmap, fixations_to_array, resolve_sigma
from models.metrics import saliency
from models.schema import Fixation

MULTIMATCH_DIMENSIONS = ("vector", "direction", "length", "position", "duration")
DEFAULT_MAP_SIZE = 128
DEFAULT_TRUNCATE = 2.0
SCANMATCH_DEFAULTS = {"xbins": 16, "ybins": 16, "temp_bin": 0.05, "threshold": 3.5}


# ------------------------------------------------------------------------------------------------ inputs
def as_xyd(path: Sequence[Fixation] | np.ndarray, name: str = "scanpath") -> np.ndarray:
    """``(N, 3)`` float64 array of x, y (pixels) and duration (s) from a fixation list or an array."""
    if isinstance(path, np.ndarray):
        arr = np.asarray(path, dtype=np.float64)
        if arr.size == 0:
            return np.zeros((0, 3))
        if arr.ndim != 2 or arr.shape[1] not in (3, 4):
            raise ValueError(f"{name}: expected an (N, 3) x, y, duration or (N, 4) x, y, t, duration array, got shape {arr.shape}")
        arr = arr if arr.shape[1] == 3 else arr[:, [0, 1, 3]]
    else:
        arr = fixations_to_array(list(path))
        arr = arr[:, [0, 1, 3]] if len(arr) else np.zeros((0, 3))
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if (arr[:, 2] < 0).any():
        raise ValueError(f"{name}: durations must be >= 0 seconds")
    return arr


def _size(width: float, height: float) -> tuple[float, float]:
    if not (width > 0 and height > 0):
        raise ValueError(f"image width and height must be > 0, got {width} x {height}")
    return float(width), float(height)


# ------------------------------------------------------------------------------------------------ maps
def map_grid(width: float, height: float, map_size: int = DEFAULT_MAP_SIZE) -> tuple[tuple[int, int], float]:
    """Shape ``(h, w)`` of the rendering grid (longer side ``map_size``) and the original->grid scale."""
    width, height = _size(width, height)
    scale = map_size / max(width, height)
    return (max(1, round(height * scale)), max(1, round(width * scale))), scale


def scanpath_map(path, width: float, height: float, *, sigma_px: float | None = None, map_size: int = DEFAULT_MAP_SIZE,
                 duration_weighted: bool = False) -> np.ndarray:
    """Continuous fixation map ``(h, w)`` (peak 1; zeros for an empty path) on the ``map_size`` grid.

    ``sigma_px`` is in original pixels (default 16/224 of the longer side). Count maps by default (the
    EGD-CXR convention), so positions are judged apart from durations, which :func:`duration_ks` scores."""
    xyd = as_xyd(path)
    shape, scale = map_grid(width, height, map_size)
    sigma = resolve_sigma(int(width), int(height), sigma_px)
    arr = np.concatenate([xyd[:, :2], np.zeros((len(xyd), 1)), xyd[:, 2:3]], axis=1)
    return fixation_heatmap(arr, shape, sigma_px=sigma, duration_weighted=duration_weighted, scale=scale)


def footprint_map(path, width: float, height: float, *, sigma_px: float | None = None, map_size: int = DEFAULT_MAP_SIZE,
                  truncate: float = DEFAULT_TRUNCATE) -> np.ndarray:
    """Binary ``(h, w)`` float map: 1 where a pixel centre lies within ``truncate * sigma`` of a fixation."""
    if truncate <= 0:
        raise ValueError(f"truncate must be > 0, got {truncate}")
    xyd = as_xyd(path)
    shape, scale = map_grid(width, height, map_size)
    out = np.zeros(shape, dtype=np.float64)
    if len(xyd) == 0:
        return out
    radius = truncate * resolve_sigma(int(width), int(height), sigma_px) * scale
    xs = np.arange(shape[1]) + 0.5
    ys = np.arange(shape[0]) + 0.5
    dx2 = (xs[None, :] - xyd[:, 0:1] * scale) ** 2  # (N, w)
    dy2 = (ys[None, :] - xyd[:, 1:2] * scale) ** 2  # (N, h)
    d2 = (dy2[:, :, None] + dx2[:, None, :]).min(axis=0)  # (h, w) squared distance to the nearest fixation
    out[d2 <= radius**2] = 1.0
    return out


def cc_continuous(pred, human, width, height, *, sigma_px=None, map_size=DEFAULT_MAP_SIZE, duration_weighted=False) -> float:
    """Pearson CC of the two Gaussian fixation maps (standard CC); NaN if either path is empty."""
    kw = dict(sigma_px=sigma_px, map_size=map_size, duration_weighted=duration_weighted)
    return saliency.correlation_coefficient(scanpath_map(pred, width, height, **kw), scanpath_map(human, width, height, **kw))


def iou_topk(pred, human, width, height, *, k: float = 0.1, sigma_px=None, map_size=DEFAULT_MAP_SIZE, duration_weighted=False) -> float:
    """IoU of the top-``k`` fraction of pixels of the two Gaussian maps (standard, equal-area); NaN if either
    path is empty (an empty map has no top pixels)."""
    if len(as_xyd(pred, "pred")) == 0:
        return float("nan")
    kw = dict(sigma_px=sigma_px, map_size=map_size, duration_weighted=duration_weighted)
    return saliency.iou_topk(scanpath_map(pred, width, height, **kw), scanpath_map(human, width, height, **kw), k)


def nss(pred, human, width, height, *, sigma_px=None, map_size=DEFAULT_MAP_SIZE, duration_weighted=False) -> float:
    """NSS: the predicted path's Gaussian map, z-scored, averaged at the human fixations; NaN when the
    predicted map is empty or no human fixation lies on the image."""
    pred_map = scanpath_map(pred, width, height, sigma_px=sigma_px, map_size=map_size, duration_weighted=duration_weighted)
    _, scale = map_grid(width, height, map_size)
    return saliency.nss(pred_map, as_xyd(human, "human")[:, :2] * scale)


def iou_binarised_medgaze(pred, human, width, height, *, sigma_px=None, map_size=DEFAULT_MAP_SIZE, truncate=DEFAULT_TRUNCATE) -> float:
    """MedGaze's IoU: IoU of the two binary footprints (radius ``truncate * sigma``); 0 when exactly one path
    is empty, NaN when both are."""
    kw = dict(sigma_px=sigma_px, map_size=map_size, truncate=truncate)
    return saliency.iou_binarised(footprint_map(pred, width, height, **kw), footprint_map(human, width, height, **kw), 0.0)


def cc_binarised_medgaze(pred, human, width, height, *, sigma_px=None, map_size=DEFAULT_MAP_SIZE, truncate=DEFAULT_TRUNCATE) -> float:
    """MedGaze's CC: Pearson CC of the two binary footprints; NaN if either footprint is empty or full."""
    kw = dict(sigma_px=sigma_px, map_size=map_size, truncate=truncate)
    return saliency.correlation_coefficient(footprint_map(pred, width, height, **kw), footprint_map(human, width, height, **kw))


# ------------------------------------------------------------------------------------------------ MultiMatch
def _recarray(xyd: np.ndarray) -> np.recarray:
    return np.rec.fromarrays([xyd[:, 0], xyd[:, 1], xyd[:, 2]], names="start_x,start_y,duration")


def multimatch(pred, human, width, height) -> dict[str, float]:
    """MultiMatch similarities in [0, 1] (1 = identical): ``vector, direction, length, position, duration``
    plus ``mean`` (all five, MedGaze/Gazeformer "MM") and ``mean_spatial`` (first four, GazeSearch).

    NaN for every key when either path has fewer than 3 fixations; ``duration`` is NaN when both paths'
    aligned durations are all zero."""
    import multimatch_gaze

    a, b = as_xyd(pred, "pred"), as_xyd(human, "human")
    width, height = _size(width, height)
    if len(a) < 3 or len(b) < 3:
        out = {k: float("nan") for k in MULTIMATCH_DIMENSIONS}
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            values = multimatch_gaze.docomparison(_recarray(a), _recarray(b), screensize=[width, height],
                                                  grouping=False, TDir=0.0, TDur=0.0, TAmp=0.0)
        out = {k: float(v) for k, v in zip(MULTIMATCH_DIMENSIONS, values)}
    vals = [out[k] for k in MULTIMATCH_DIMENSIONS]
    out["mean"] = float(np.mean(vals)) if all(np.isfinite(vals)) else float("nan")
    out["mean_spatial"] = float(np.mean(vals[:4])) if all(np.isfinite(vals[:4])) else float("nan")
    return out


# ------------------------------------------------------------------------------------------------ alignment
def needleman_wunsch(a: Sequence[int], b: Sequence[int], substitution: np.ndarray, gap: float = 0.0) -> float:
    """Best global alignment score of two integer strings.

    Args:
        a, b: symbol ids indexing ``substitution``.
        substitution: ``(V, V)`` score of aligning symbol i with symbol j.
        gap: score added per gap (<= 0).

    Row-wise vectorised: with a linear gap, ``H[i, j] = max(D[j], H[i, j-1] + gap)`` where ``D`` holds the
    diagonal and vertical moves, which is ``gap * j + cummax(D[k] - gap * k)``.
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    m = len(b)
    cols = np.arange(m + 1, dtype=np.float64)
    prev = gap * cols
    for i, sym in enumerate(a, start=1):
        scores = substitution[sym, b]  # (m,)
        d = np.empty(m + 1)
        d[0] = gap * i
        d[1:] = np.maximum(prev[:-1] + scores, prev[1:] + gap)
        prev = gap * cols + np.maximum.accumulate(d - gap * cols)
    return float(prev[-1])


def _repeat_by_duration(labels: np.ndarray, durations: np.ndarray, temp_bin: float | None) -> np.ndarray:
    if not temp_bin:
        return labels
    reps = np.maximum(1, np.round(durations / temp_bin)).astype(np.int64)
    return np.repeat(labels, reps)


def scanmatch_string(path, width, height, *, xbins=16, ybins=16, temp_bin=0.05) -> np.ndarray:
    """A scanpath as ScanMatch letters: grid cell ``row * xbins + col``, repeated per ``temp_bin`` s."""
    xyd = as_xyd(path)
    width, height = _size(width, height)
    col = np.clip(np.floor(xyd[:, 0] / width * xbins), 0, xbins - 1).astype(np.int64)
    row = np.clip(np.floor(xyd[:, 1] / height * ybins), 0, ybins - 1).astype(np.int64)
    return _repeat_by_duration(row * xbins + col, xyd[:, 2], temp_bin)


def scanmatch_substitution(xbins: int = 16, ybins: int = 16, threshold: float = 3.5) -> np.ndarray:
    """``(xbins*ybins, xbins*ybins)`` matrix ``threshold - distance`` between cells (cell units)."""
    rows, cols = np.divmod(np.arange(xbins * ybins), xbins)
    dist = np.hypot(rows[:, None] - rows[None, :], cols[:, None] - cols[None, :])
    return threshold - dist


def scanmatch(pred, human, width, height, *, xbins=16, ybins=16, temp_bin=0.05, threshold=3.5) -> float:
    """ScanMatch similarity (see module docstring); 1 = identical, about 0 or below = unrelated.
    NaN when either path is empty."""
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0 cells, got {threshold}")
    sa = scanmatch_string(pred, width, height, xbins=xbins, ybins=ybins, temp_bin=temp_bin)
    sb = scanmatch_string(human, width, height, xbins=xbins, ybins=ybins, temp_bin=temp_bin)
    if len(sa) == 0 or len(sb) == 0:
        return float("nan")
    score = needleman_wunsch(sa, sb, scanmatch_substitution(xbins, ybins, threshold), 0.0)
    return score / (threshold * max(len(sa), len(sb)))


# ------------------------------------------------------------------------------------------------ sequence score
def mean_shift(points: np.ndarray, bandwidth: float, *, max_iter: int = 300, tol: float = 1e-3) -> np.ndarray:
    """Cluster centres ``(C, 2)`` of ``(N, 2)`` points by flat-kernel mean shift.

    Every point climbs to a density mode (repeatedly moving to the mean of the points within
    ``bandwidth``); modes are kept in order of how many points they hold, dropping any within
    ``bandwidth`` of a kept one. Deterministic."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((0, 2))
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    modes = pts.copy()
    for _ in range(max_iter):
        near = np.linalg.norm(modes[:, None, :] - pts[None, :, :], axis=-1) <= bandwidth  # (N, N)
        moved = (near @ pts) / near.sum(1, keepdims=True)
        shift = np.abs(moved - modes).max()
        modes = moved
        if shift < tol * bandwidth:
            break
    support = (np.linalg.norm(modes[:, None, :] - pts[None, :, :], axis=-1) <= bandwidth).sum(1)
    order = np.lexsort((modes[:, 1], modes[:, 0], -support))
    kept: list[np.ndarray] = []
    for i in order:
        if all(np.linalg.norm(modes[i] - k) > bandwidth for k in kept):
            kept.append(modes[i])
    return np.array(kept)


def gaze_clusters(human_paths: Sequence, width, height, *, bandwidth_fraction: float = 0.1) -> np.ndarray:
    """Mean-shift centres ``(C, 2)`` of all human fixations of one image (bandwidth = fraction of the
    longer side)."""
    width, height = _size(width, height)
    pts = [as_xyd(p, "human")[:, :2] for p in human_paths]
    pts = np.concatenate(pts) if pts else np.zeros((0, 2))
    return mean_shift(pts, bandwidth_fraction * max(width, height))


def sequence_score(pred, human, width, height, *, clusters: np.ndarray | None = None, bandwidth_fraction: float = 0.1,
                   temp_bin: float | None = None) -> float:
    """Sequence Score in [0, 1]: shared cluster-label subsequence / longer length.

    Args:
        clusters: ``(C, 2)`` centres from :func:`gaze_clusters` over *all* human paths of the image (pass
            them so every comparison on an image uses the same clusters); default: clusters of ``human``.
        temp_bin: seconds per repeated label (the time-aware variant); None = one label per fixation.

    Returns NaN when either path is empty.
    """
    a, b = as_xyd(pred, "pred"), as_xyd(human, "human")
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    if clusters is None:
        clusters = gaze_clusters([b], width, height, bandwidth_fraction=bandwidth_fraction)
    clusters = np.asarray(clusters, dtype=np.float64).reshape(-1, 2)

    def labels(xyd: np.ndarray) -> np.ndarray:
        nearest = np.linalg.norm(xyd[:, None, :2] - clusters[None], axis=-1).argmin(1)
        return _repeat_by_duration(nearest, xyd[:, 2], temp_bin)

    la, lb = labels(a), labels(b)
    score = needleman_wunsch(la, lb, np.eye(len(clusters)), 0.0)
    return score / max(len(la), len(lb))


# ------------------------------------------------------------------------------------------------ durations
def duration_ks(pred_durations, human_durations) -> float:
    """Two-sample Kolmogorov–Smirnov statistic (sup |F_a - F_b|) between two sets of durations (s);
    NaN if either set is empty."""
    a = np.sort(np.asarray(pred_durations, dtype=np.float64).ravel())
    b = np.sort(np.asarray(human_durations, dtype=np.float64).ravel())
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


# ------------------------------------------------------------------------------------------------ all at once
PAIR_METRICS = ("cc", "iou_topk", "nss", "iou_binarised_medgaze", "cc_binarised_medgaze", "scanmatch", "sequence_score",
                "mm_vector", "mm_direction", "mm_length", "mm_position", "mm_duration", "mm_mean", "mm_mean_spatial")


def compare_scanpaths(pred, human, width, height, *, sigma_px: float | None = None, map_size: int = DEFAULT_MAP_SIZE,
                      truncate: float = DEFAULT_TRUNCATE, k: float = 0.1, clusters: np.ndarray | None = None,
                      scanmatch_params: dict | None = None) -> dict[str, float]:
    """Every pairwise score in :data:`PAIR_METRICS` for one predicted and one human scanpath."""
    sm = {**SCANMATCH_DEFAULTS, **(scanmatch_params or {})}
    out = {
        "cc": cc_continuous(pred, human, width, height, sigma_px=sigma_px, map_size=map_size),
        "iou_topk": iou_topk(pred, human, width, height, k=k, sigma_px=sigma_px, map_size=map_size),
        "nss": nss(pred, human, width, height, sigma_px=sigma_px, map_size=map_size),
        "iou_binarised_medgaze": iou_binarised_medgaze(pred, human, width, height, sigma_px=sigma_px, map_size=map_size, truncate=truncate),
        "cc_binarised_medgaze": cc_binarised_medgaze(pred, human, width, height, sigma_px=sigma_px, map_size=map_size, truncate=truncate),
        "scanmatch": scanmatch(pred, human, width, height, **sm),
        "sequence_score": sequence_score(pred, human, width, height, clusters=clusters),
    }
    mm = multimatch(pred, human, width, height)
    out.update({f"mm_{k_}": v for k_, v in mm.items()})
    return out


def nan_summary(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "n", "n_nan"}`` of scores that may contain NaN."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    return {"mean": float(v[ok].mean()) if ok.any() else math.nan, "n": int(ok.sum()), "n_nan": int((~ok).sum())}


__all__ = [
    "MULTIMATCH_DIMENSIONS", "PAIR_METRICS", "SCANMATCH_DEFAULTS", "as_xyd", "map_grid", "scanpath_map", "footprint_map",
    "cc_continuous", "iou_topk", "nss", "iou_binarised_medgaze", "cc_binarised_medgaze", "multimatch",
    "needleman_wunsch", "scanmatch_string", "scanmatch_substitution", "scanmatch", "mean_shift", "gaze_clusters",
    "sequence_score", "duration_ks", "compare_scanpaths", "nan_summary",
]
