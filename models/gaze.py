"""Gaze utilities: fixation heatmaps, scanpath arrays and resampling.

Heatmap conventions differ between datasets, so sigma is always a parameter and always reported:
REFLACX uses 1 degree of visual angle with duration weighting; EGD-CXR uses a 150 px Gaussian on a count
map; GazeSearch uses 16 px at 224 px. ``sigma_px`` or ``sigma_deg`` + ``px_per_deg`` choose it here.
Raw-sample fixation detection (I-VT / I-DT) lives in :mod:`models.gaze_events`.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from models.schema import Fixation

# Default sigma as a fraction of the image's longer side: 16 px at 224 px, the GazeSearch convention.
DEFAULT_SIGMA_FRACTION = 16.0 / 224.0


def fixations_to_array(fixations: Sequence[Fixation]) -> np.ndarray:
    """``(N, 4)`` float array of x, y, t, duration (pixels, seconds)."""
    if not fixations:
        return np.zeros((0, 4), dtype=np.float64)
    return np.array([[f.x, f.y, f.t, f.duration] for f in fixations], dtype=np.float64)


def array_to_fixations(arr: np.ndarray) -> list[Fixation]:
    """Inverse of :func:`fixations_to_array`; accepts ``(N, 3)`` (x, y, duration) with t accumulated."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 0:
        return []
    if arr.shape[1] == 3:
        t = np.concatenate([[0.0], np.cumsum(arr[:-1, 2])])
        arr = np.stack([arr[:, 0], arr[:, 1], t, arr[:, 2]], axis=1)
    return [Fixation(float(x), float(y), float(t), float(d)) for x, y, t, d in arr[:, :4]]


def resolve_sigma(width: int, height: int, sigma_px: float | None = None, sigma_deg: float | None = None, px_per_deg: float | None = None) -> float:
    """Sigma in pixels from either convention; defaults to 16/224 of the longer side."""
    if sigma_px is not None:
        if sigma_px <= 0:
            raise ValueError(f"sigma_px must be > 0, got {sigma_px}")
        return float(sigma_px)
    if sigma_deg is not None:
        if not px_per_deg or px_per_deg <= 0:
            raise ValueError("sigma_deg needs px_per_deg (pixels per degree of visual angle) > 0")
        return float(sigma_deg * px_per_deg)
    return DEFAULT_SIGMA_FRACTION * max(width, height)


def fixation_heatmap(
    fixations: Sequence[Fixation] | np.ndarray,
    shape: tuple[int, int],
    *,
    sigma_px: float | None = None,
    sigma_deg: float | None = None,
    px_per_deg: float | None = None,
    duration_weighted: bool = True,
    scale: float = 1.0,
    normalize: str = "max",
) -> np.ndarray:
    """Sum of isotropic Gaussians at the fixations, rendered on a ``shape = (H, W)`` grid.

    Args:
        fixations: Fixation list or ``(N, 4)`` array (x, y, t, duration) in *original* pixels.
        shape: output ``(H, W)``; with ``scale`` != 1 positions and sigma are multiplied by ``scale``
            (e.g. render a 2048 px case at 64 px with ``scale=64/2048``).
        duration_weighted: weight each Gaussian by its duration (REFLACX) rather than 1 (EGD count map).
        normalize: "max" (peak 1), "sum" (a probability map) or "none".

    Returns:
        ``(H, W)`` float32 map; all zeros when there are no fixations.
    """
    arr = fixations if isinstance(fixations, np.ndarray) else fixations_to_array(fixations)
    h, w = shape
    out = np.zeros((h, w), dtype=np.float64)
    if len(arr) == 0:
        return out.astype(np.float32)
    sigma = resolve_sigma(w / scale, h / scale, sigma_px, sigma_deg, px_per_deg) * scale
    sigma = max(sigma, 0.5)
    xs = (np.arange(w) + 0.5)[None, :]
    ys = (np.arange(h) + 0.5)[:, None]
    weights = arr[:, 3] if duration_weighted and arr.shape[1] >= 4 and arr[:, 3].sum() > 0 else np.ones(len(arr))
    # Separable Gaussians: exp(-(dx^2 + dy^2) / 2s^2) = gx(x) * gy(y), so N outer products of 1-D vectors.
    gx = np.exp(-((xs - arr[:, 0:1] * scale) ** 2) / (2 * sigma**2))  # (N, W)
    gy = np.exp(-((ys.T - arr[:, 1:2] * scale) ** 2) / (2 * sigma**2))  # (N, H)
    out = (gy * weights[:, None]).T @ gx  # (H, W)
    if normalize == "max" and out.max() > 0:
        out /= out.max()
    elif normalize == "sum" and out.sum() > 0:
        out /= out.sum()
    elif normalize not in ("max", "sum", "none"):
        raise ValueError(f"normalize must be 'max', 'sum' or 'none', got {normalize!r}")
    return out.astype(np.float32)


def resample_scanpath(fixations: Sequence[Fixation], n: int, *, pad: bool = False) -> list[Fixation]:
    """Keep the first ``n`` fixations; with ``pad`` repeat the last one (zero duration) up to ``n``."""
    out = list(fixations[:n])
    if pad and out and len(out) < n:
        last = out[-1]
        out += [Fixation(last.x, last.y, last.t + last.duration, 0.0) for _ in range(n - len(out))]
    return out


def clip_fixations(fixations: Iterable[Fixation], width: int, height: int, *, drop: bool = True) -> list[Fixation]:
    """Drop (or clamp) fixations outside the image; eye trackers report off-image points."""
    out = []
    for f in fixations:
        inside = 0 <= f.x <= width and 0 <= f.y <= height
        if inside:
            out.append(f)
        elif not drop:
            out.append(Fixation(min(max(f.x, 0.0), width), min(max(f.y, 0.0), height), f.t, f.duration))
    return out


def saccade_amplitudes(fixations: Sequence[Fixation] | np.ndarray) -> np.ndarray:
    """``(N-1,)`` Euclidean distances between consecutive fixations, in the fixations' pixels."""
    arr = fixations if isinstance(fixations, np.ndarray) else fixations_to_array(fixations)
    if len(arr) < 2:
        return np.zeros(0)
    return np.linalg.norm(np.diff(arr[:, :2], axis=0), axis=1)
