"""Scanpath similarity: one predicted (or simulated) scanpath against one human scanpath of the same image.

A scanpath is a ``list[Fixation]`` or an ``(N, 3)`` array of x, y (original pixels) and duration (s), or an
``(N, 4)`` array x, y, t, duration as :func:`models.gaze.fixations_to_array` makes. Every function also
takes the image ``width`` and ``height`` in original pixels. Each returns a float (or a dict of floats);
NaN means "undefined for this pair" (documented per function) and is meant to be skipped with
``np.nanmean`` and counted.

Map-based scores render both scanpaths as fixation maps (the sum of Gaussians of
:func:`models.gaze.fixation_heatmap`) on a grid whose longer side is ``map_size`` cells and whose cell
width and height are chosen per axis so that the grid covers exactly the image (:func:`map_grid`), then
reuse :mod:`models.metrics.saliency`. A fixation at ``x`` lies in column ``floor(x * w / width)``;
fixations outside the image are clipped to the border cell, never dropped. Sigma is always a parameter
(``sigma_px`` in original pixels; default 16/224 of the image's longer side, the GazeSearch convention)
and must be reported with the numbers.
Two families, named so they are never confused:

- **continuous** (the saliency literature's definitions): :func:`cc_continuous` (Pearson CC of the two
  Gaussian maps), :func:`iou_topk` (IoU of the top-``k`` pixels of each map), :func:`nss` (the predicted
  map, z-scored, at the human fixations).
- **binarised, MedGaze's variant** (how the seed paper's IoU 0.41 / CC 0.50 were computed): each scanpath
  becomes a binary footprint, "map > 0" of its binary fixation map filtered with a truncated Gaussian
  (``scipy.ndimage.gaussian_filter``, ``truncate`` sigmas, so each fixated cell grows into a square of
  half-width ``int(truncate * sigma + 0.5)`` cells, not a disc); :func:`iou_binarised_medgaze` is the IoU of
  the two footprints and :func:`cc_binarised_medgaze` the Pearson CC of the two 0/1 maps. Provenance, partly
  verified: MedGaze's public notebook (github.com/a04101999/MedGaze,
  ``Notebook_to_test_results_miccaipaper2024.ipynb``, cell "IOU and CC Calculation") binarises both rendered
  heatmaps at ``> 0`` on a 128 x 128 grid and takes ``sum(A and B) / sum(A or B)`` and the CC of the 0/1
  maps, as here; the ``heatmap`` renderer it calls is not in that repository, so the truncated-Gaussian
  kernel (its sigma and truncation) is unverified. MedGaze's grid is square; this one keeps the aspect.

Sequence scores:

- :func:`multimatch`: the five MultiMatch dimensions (Jarodzka et al. 2010; Dewhurst et al. 2012) through
  the ``multimatch-gaze`` package (``docomparison`` with no simplification: grouping off, thresholds 0;
  screen = the image in original pixels). Fewer than 3 fixations in either path gives NaN for all five
  (the package needs two saccades).
- :func:`scanmatch`: ScanMatch (Cristino et al. 2010), written here from the paper: the image is cut into
  an ``xbins x ybins`` grid of regions (default 16 x 16: square cells on the near-square radiographs,
  about the size of the default sigma); each fixation becomes its cell's letter repeated
  ``round(duration / temp_bin)`` times (default 50 ms), so, as in the toolbox, a fixation shorter than half a
  bin (25 ms) is dropped (``short_fixations="keep"`` keeps it once); two letter strings are aligned by
  Needleman–Wunsch with gap penalty 0 and substitution score ``threshold - d``, where ``d`` is the
  Euclidean distance between the two cells in cell units (default threshold 3.5 cells, as in the
  ScanMatch settings used by Chen et al. 2021, so cells closer than 3.5 cells score positive); the score
  is divided by ``threshold * max(len_a, len_b)``, so identical paths score 1.
- :func:`sequence_score` (Yang et al. 2020 as used by Gazeformer/GazeSearch): human fixations of an image
  are clustered by mean shift (flat kernel, bandwidth ``bandwidth_fraction`` of the longer side, default
  0.1; the same centres as ``sklearn.cluster.MeanShift(bandwidth=...)``, which those codes call, without
  needing scikit-learn); every fixation takes its nearest cluster's label; Needleman–Wunsch with
  similarity 1 for equal labels, 0 otherwise and gap 0 (the longest common subsequence) is divided by the longer string's length.
  With ``temp_bin`` labels repeat per time bin as in ScanMatch (the "time" variant).
- :func:`duration_ks`: the two-sample Kolmogorov–Smirnov statistic between two sets of fixation durations
  (0 = same distribution, 1 = disjoint). Pool durations over a whole test set; per image it is noisy.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from models.gaze import fixations_to_array, resolve_sigma
from models.metrics import saliency
from models.schema import Fixation

MULTIMATCH_DIMENSIONS = ("vector", "direction", "length", "position", "duration")
DEFAULT_MAP_SIZE = 128
DEFAULT_TRUNCATE = 2.0
SCANMATCH_DEFAULTS = {"xbins": 16, "ybins": 16, "temp_bin": 0.05, "threshold": 3.5, "short_fixations": "drop"}
SHORT_FIXATIONS = ("drop", "keep")
MAX_TRUNCATE = 20.0  # beyond ~26 sigmas a Gaussian's tail underflows to 0 in float64 and the footprint shrinks


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
def map_grid(width: float, height: float, map_size: int = DEFAULT_MAP_SIZE) -> tuple[tuple[int, int], np.ndarray]:
    """Shape ``(h, w)`` of the rendering grid and its per-axis original->grid scale ``[w / width, h / height]``.

    The longer side gets ``map_size`` cells and the shorter side its rounded share; then the cell width
    (``width / w``) and height (``height / h``) are chosen per axis, so the grid covers exactly the image on
    both axes. (One scale for both, as before, covered e.g. 796.9 of 800 px and lost the fixations in the
    strip.) Cells are square up to that rounding, under half a cell over a side. The scale is x first, so
    ``points_xy * scale`` maps original pixels to grid units."""
    width, height = _size(width, height)
    if int(map_size) != map_size or map_size < 1:
        raise ValueError(f"map_size must be a positive whole number of cells, got {map_size}")
    scale = map_size / max(width, height)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    return (h, w), np.array([w / width, h / height])


def grid_cells(points_xy: np.ndarray, shape: tuple[int, int], scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of the grid cells holding ``(N, 2)`` points in original pixels; points outside the
    image are clipped to the border cell (so ``x = width - 0.1`` and ``x = width`` both land in the last column)."""
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    cols = np.clip(np.floor(pts[:, 0] * scale[0]), 0, shape[1] - 1).astype(np.int64)
    rows = np.clip(np.floor(pts[:, 1] * scale[1]), 0, shape[0] - 1).astype(np.int64)
    return rows, cols


def scanpath_map(path, width: float, height: float, *, sigma_px: float | None = None, map_size: int = DEFAULT_MAP_SIZE,
                 duration_weighted: bool = False) -> np.ndarray:
    """Continuous fixation map ``(h, w)`` (peak 1; zeros for an empty path) on the :func:`map_grid` grid.

    The sum of isotropic Gaussians of :func:`models.gaze.fixation_heatmap`, with sigma converted to cells per
    axis (the cells are not exactly square) and floored at half a cell like there. ``sigma_px`` is in
    original pixels (default 16/224 of the longer side). Count maps by default (the EGD-CXR convention), so
    positions are judged apart from durations, which :func:`duration_ks` scores."""
    xyd = as_xyd(path)
    shape, scale = map_grid(width, height, map_size)
    out = np.zeros(shape, dtype=np.float64)
    if len(xyd) == 0:
        return out.astype(np.float32)
    sigma = resolve_sigma(int(width), int(height), sigma_px)
    sx, sy = max(sigma * scale[0], 0.5), max(sigma * scale[1], 0.5)
    weights = xyd[:, 2] if duration_weighted and xyd[:, 2].sum() > 0 else np.ones(len(xyd))
    xs = np.arange(shape[1]) + 0.5
    ys = np.arange(shape[0]) + 0.5
    gx = np.exp(-((xs[None, :] - xyd[:, 0:1] * scale[0]) ** 2) / (2 * sx**2))  # (N, w)
    gy = np.exp(-((ys[None, :] - xyd[:, 1:2] * scale[1]) ** 2) / (2 * sy**2))  # (N, h)
    out = (gy * weights[:, None]).T @ gx  # (h, w)
    if out.max() > 0:
        out /= out.max()
    return out.astype(np.float32)


def footprint_map(path, width: float, height: float, *, sigma_px: float | None = None, map_size: int = DEFAULT_MAP_SIZE,
                  truncate: float = DEFAULT_TRUNCATE) -> np.ndarray:
    """MedGaze-style binary footprint ``(h, w)`` (float 0/1): ``> 0`` of the binary fixation map filtered with a
    Gaussian truncated at ``truncate`` sigmas.

    Each fixation marks its cell (clipped to the border when off the image); ``scipy.ndimage.gaussian_filter``
    with ``sigma`` in cells per axis and ``truncate`` then spreads it over a square of half-width
    ``int(truncate * sigma + 0.5)`` cells (the truncated kernel's support is the product of two 1-D windows),
    which ``> 0`` keeps. See the module docstring for what of this is verified against MedGaze's code."""
    if not 0 < truncate <= MAX_TRUNCATE:
        raise ValueError(f"truncate must be in (0, {MAX_TRUNCATE:g}] sigmas (further out the Gaussian underflows "
                         f"to 0), got {truncate}")
    xyd = as_xyd(path)
    shape, scale = map_grid(width, height, map_size)
    out = np.zeros(shape, dtype=np.float64)
    if len(xyd) == 0:
        return out
    sigma = resolve_sigma(int(width), int(height), sigma_px)
    rows, cols = grid_cells(xyd[:, :2], shape, scale)
    out[rows, cols] = 1.0
    blurred = gaussian_filter(out, sigma=(sigma * scale[1], sigma * scale[0]), truncate=truncate, mode="constant")
    return (blurred > 0).astype(np.float64)


def cc_continuous(pred, human, width, height, *, sigma_px=None, map_size=DEFAULT_MAP_SIZE, duration_weighted=False) -> float:
    """Pearson CC of the two Gaussian fixation maps (standard CC); NaN if either path is empty."""
    kw = dict(sigma_px=sigma_px, map_size=map_size, duration_weighted=duration_weighted)
    return saliency.correlation_coefficient(scanpath_map(pred, width, height, **kw), scanpath_map(human, width, height, **kw))


def iou_topk(pred, human, width, height, *, k: float = 0.1, sigma_px=None, map_size=DEFAULT_MAP_SIZE, duration_weighted=False) -> float:
    """IoU of the top-``k`` threshold masks of the two Gaussian maps (:func:`models.metrics.saliency.topk_mask`:
    cells at or above the map's ``1 - k`` quantile value, ties in or out together). NaN if either path is
    empty or either map is constant: such a map ranks no cell above another."""
    if len(as_xyd(pred, "pred")) == 0:
        return float("nan")
    kw = dict(sigma_px=sigma_px, map_size=map_size, duration_weighted=duration_weighted)
    return saliency.iou_topk(scanpath_map(pred, width, height, **kw), scanpath_map(human, width, height, **kw), k)


def nss(pred, human, width, height, *, sigma_px=None, map_size=DEFAULT_MAP_SIZE, duration_weighted=False,
        unique: bool = False) -> float:
    """NSS: the predicted path's Gaussian map, z-scored, averaged at the human fixations' cells.

    Human fixations outside the image are clipped to the border cell (counted, never dropped).
    ``unique=False`` averages over fixations (a cell fixated twice counts twice); ``unique=True`` over the
    set of fixated cells, the MIT benchmark's binary fixation map (see :func:`models.metrics.saliency.nss`).
    NaN when the predicted map is empty or the human path is."""
    pred_map = scanpath_map(pred, width, height, sigma_px=sigma_px, map_size=map_size, duration_weighted=duration_weighted)
    shape, scale = map_grid(width, height, map_size)
    rows, cols = grid_cells(as_xyd(human, "human")[:, :2], shape, scale)
    return saliency.nss(pred_map, np.stack([cols + 0.5, rows + 0.5], axis=1), unique=unique, outside="raise")


def iou_binarised_medgaze(pred, human, width, height, *, sigma_px=None, map_size=DEFAULT_MAP_SIZE, truncate=DEFAULT_TRUNCATE) -> float:
    """MedGaze's IoU: IoU of the two binary footprints (:func:`footprint_map`, truncated-Gaussian support); 0
    when exactly one path is empty, NaN when both are."""
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
    """The Sequence Score's time variant: each label repeated ``round(duration / temp_bin)`` times, at least once."""
    if not temp_bin:
        return labels
    reps = np.maximum(1, np.round(durations / temp_bin)).astype(np.int64)
    return np.repeat(labels, reps)


def scanmatch_repeats(durations, temp_bin: float | None = 0.05, short_fixations: str = "drop") -> np.ndarray:
    """How many letters each fixation contributes to its ScanMatch string.

    The ScanMatch toolbox (Cristino et al. 2010; ``ScanMatch_FixationToSequence.m`` v1.00, checked in a
    public copy of the MATLAB toolbox) repeats each fixation's letter ``round(duration / TempBin)`` times with
    MATLAB's ``round`` (halves away from zero) and no minimum, so a fixation shorter than half a bin (25 ms at
    the default 50 ms bin) contributes no letter: it is dropped. ``short_fixations="drop"`` (default) follows
    the toolbox; ``"keep"`` keeps such a fixation once (this module's earlier rule). ``temp_bin`` 0 or None =
    no temporal binning, one letter per fixation (the toolbox's ``TempBin = 0``).

    Two toolbox details are not copied: it first casts the data to ``uint16`` (integer milliseconds, so
    24.6 ms counts as 25 ms and is kept; durations here are seconds, not rounded), and its binning loop
    starts at the second fixation (``for i=2:size(data,1)``), silently losing the first one, which looks like
    an off-by-one and would make every path lose its first fixation."""
    if short_fixations not in SHORT_FIXATIONS:
        raise ValueError(f"short_fixations must be one of {SHORT_FIXATIONS} ('drop' is the ScanMatch toolbox's rule), "
                         f"got {short_fixations!r}")
    d = np.asarray(durations, dtype=np.float64).ravel()
    if not temp_bin:
        return np.ones(len(d), dtype=np.int64)
    if temp_bin < 0:
        raise ValueError(f"temp_bin must be > 0 seconds (or 0/None for no temporal binning), got {temp_bin}")
    reps = np.floor(d / temp_bin + 0.5).astype(np.int64)  # MATLAB round() of a non-negative number
    return np.maximum(1, reps) if short_fixations == "keep" else reps


def scanmatch_string(path, width, height, *, xbins=16, ybins=16, temp_bin=0.05, short_fixations: str = "drop") -> np.ndarray:
    """A scanpath as ScanMatch letters: grid cell ``row * xbins + col``, repeated per :func:`scanmatch_repeats`
    (fixations under half a ``temp_bin`` dropped by default, as the toolbox does)."""
    xyd = as_xyd(path)
    width, height = _size(width, height)
    col = np.clip(np.floor(xyd[:, 0] / width * xbins), 0, xbins - 1).astype(np.int64)
    row = np.clip(np.floor(xyd[:, 1] / height * ybins), 0, ybins - 1).astype(np.int64)
    return np.repeat(row * xbins + col, scanmatch_repeats(xyd[:, 2], temp_bin, short_fixations))


def scanmatch_substitution(xbins: int = 16, ybins: int = 16, threshold: float = 3.5) -> np.ndarray:
    """``(xbins*ybins, xbins*ybins)`` matrix ``threshold - distance`` between cells (cell units)."""
    rows, cols = np.divmod(np.arange(xbins * ybins), xbins)
    dist = np.hypot(rows[:, None] - rows[None, :], cols[:, None] - cols[None, :])
    return threshold - dist


def scanmatch(pred, human, width, height, *, xbins=16, ybins=16, temp_bin=0.05, threshold=3.5,
              short_fixations: str = "drop") -> float:
    """ScanMatch similarity (see module docstring); 1 = identical, about 0 or below = unrelated.
    NaN when either path is empty, including when every fixation of it is shorter than half a ``temp_bin``
    and ``short_fixations="drop"`` (the toolbox default) removed them all."""
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0 cells, got {threshold}")
    kw = dict(xbins=xbins, ybins=ybins, temp_bin=temp_bin, short_fixations=short_fixations)
    sa = scanmatch_string(pred, width, height, **kw)
    sb = scanmatch_string(human, width, height, **kw)
    if len(sa) == 0 or len(sb) == 0:
        return float("nan")
    score = needleman_wunsch(sa, sb, scanmatch_substitution(xbins, ybins, threshold), 0.0)
    return score / (threshold * max(len(sa), len(sb)))


# ------------------------------------------------------------------------------------------------ sequence score
def _bin_seeds(pts: np.ndarray, bin_size: float, min_bin_freq: int) -> np.ndarray:
    """scikit-learn's ``get_bin_seeds``: one seed per grid bin (side ``bin_size``) holding at least
    ``min_bin_freq`` points, at the bin's centre, in float32 as there; all points when no two share a bin."""
    counts: dict[tuple, int] = {}
    for key in map(tuple, np.round(pts / bin_size)):
        counts[key] = counts.get(key, 0) + 1
    seeds = np.array([key for key, n in counts.items() if n >= min_bin_freq], dtype=np.float32).reshape(-1, 2)
    if len(seeds) == len(pts):
        return pts.copy()
    return (seeds * bin_size).astype(np.float64)


def _within(centres: np.ndarray, pts: np.ndarray, bw2: float, chunk: int = 512) -> np.ndarray:
    """``(C, N)`` boolean: squared distance ``dx*dx + dy*dy <= bw2`` (the k-d tree's test, same arithmetic)."""
    out = np.empty((len(centres), len(pts)), dtype=bool)
    for i in range(0, len(centres), chunk):
        dx = centres[i:i + chunk, None, 0] - pts[None, :, 0]
        dy = centres[i:i + chunk, None, 1] - pts[None, :, 1]
        out[i:i + chunk] = dx * dx + dy * dy <= bw2
    return out


def mean_shift(points: np.ndarray, bandwidth: float, *, max_iter: int = 300, tol: float = 1e-3,
               bin_seeding: bool = False, min_bin_freq: int = 1) -> np.ndarray:
    """Cluster centres ``(C, 2)`` of ``(N, 2)`` points by flat-kernel mean shift, the same centres, in the same
    order, as ``sklearn.cluster.MeanShift(bandwidth=bandwidth, bin_seeding=bin_seeding,
    min_bin_freq=min_bin_freq, max_iter=max_iter).fit(points).cluster_centers_`` (scikit-learn 1.x), which
    the Gazeformer/GazeSearch Sequence Score code calls; written from its algorithm so scikit-learn is not
    a run-time dependency:

    - seeds: every point (``bin_seeding=False``, the default) or the bin seeds of ``get_bin_seeds``;
    - each seed moves on its own to the mean of the points within ``bandwidth`` (distance ``<= bandwidth``)
      until it moves ``<= tol * bandwidth`` or ``max_iter`` moves were made; its intensity is the number
      of points in its last window (the one whose mean is its final position);
    - seeds ending on exactly the same position are one candidate; candidates are sorted by
      ``(intensity, x, y)`` descending (equal intensities: larger x first, then larger y), and each kept
      centre removes the later candidates within ``bandwidth`` of it.

    Agreement is to rounding (the window means are summed in a different order), not bit for bit.
    Returns ``(0, 2)`` for no points (scikit-learn raises)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((0, 2))
    if not np.all(np.isfinite(pts)):
        raise ValueError("points: contain NaN or infinite values; drop those fixations first")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    if int(max_iter) != max_iter or max_iter < 0:
        raise ValueError(f"max_iter must be a whole number >= 0, got {max_iter}")
    if int(min_bin_freq) != min_bin_freq or min_bin_freq < 1:
        raise ValueError(f"min_bin_freq must be a whole number >= 1, got {min_bin_freq}")
    bandwidth = float(bandwidth)
    bw2 = bandwidth * bandwidth
    stop = tol * bandwidth
    means = _bin_seeds(pts, bandwidth, int(min_bin_freq)) if bin_seeding else pts.copy()  # never the caller's array
    intensity = np.zeros(len(means), dtype=np.int64)
    active = np.arange(len(means))
    for it in range(int(max_iter) + 1):
        if len(active) == 0:
            break
        cur = means[active]
        near = _within(cur, pts, bw2)
        n = near.sum(1)
        empty = n == 0  # a seed with no point in its window stops where it is, with intensity 0 (discarded)
        moved = (near.astype(np.float64) @ pts) / np.maximum(n, 1)[:, None]
        shift = np.linalg.norm(moved - cur, axis=1)
        means[active[~empty]] = moved[~empty]
        intensity[active] = n
        active = active[~(empty | (shift <= stop) | (it == max_iter))]
    candidates: dict[tuple, int] = {}
    for centre, n in zip(means, intensity):
        if n:
            candidates[tuple(float(v) for v in centre)] = int(n)
    if not candidates:
        raise ValueError(f"mean_shift: no point lies within bandwidth={bandwidth:g} of any seed; "
                         "lower min_bin_freq or use bin_seeding=False")
    ranked = sorted(candidates.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    centres = np.array([c for c, _ in ranked], dtype=np.float64)
    keep = np.ones(len(centres), dtype=bool)
    for i in range(len(centres)):
        if keep[i]:
            keep[_within(centres[i:i + 1], centres, bw2)[0]] = False
            keep[i] = True
    return centres[keep]


def gaze_clusters(human_paths: Sequence, width, height, *, bandwidth_fraction: float = 0.1,
                  bin_seeding: bool = False) -> np.ndarray:
    """Mean-shift centres ``(C, 2)`` of all human fixations of one image (bandwidth = fraction of the
    longer side); the centres ``sklearn.cluster.MeanShift`` finds with the same settings (:func:`mean_shift`)."""
    width, height = _size(width, height)
    pts = [as_xyd(p, "human")[:, :2] for p in human_paths]
    pts = np.concatenate(pts) if pts else np.zeros((0, 2))
    return mean_shift(pts, bandwidth_fraction * max(width, height), bin_seeding=bin_seeding)


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
    "needleman_wunsch", "scanmatch_repeats", "scanmatch_string", "scanmatch_substitution", "scanmatch", "mean_shift",
    "gaze_clusters", "grid_cells", "SHORT_FIXATIONS",
    "sequence_score", "duration_ks", "compare_scanpaths", "nan_summary",
]
