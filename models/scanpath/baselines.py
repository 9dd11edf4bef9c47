"""Reference scanpath generators that every predictor must beat, fitted on the training cases.

All baselines draw a path length and durations from the training readers (empirical, with replacement),
so they differ from each other only in *where* they look, and the order is random:

- :class:`CentreBias`: positions from an isotropic-per-axis Gaussian around the image centre whose spread
  is the training fixations' root-mean-square offset from the centre (fractions of width and height).
- :class:`MapSampler` with the mean training fixation map (:func:`mean_fixation_map`): positions i.i.d.
  from where readers look on average, the "population saliency" baseline.
- :class:`MapSampler` with a per-image map, e.g. the classifier's attention (``ClassifierResult.heatmap()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from models.gaze import DEFAULT_SIGMA_FRACTION, fixation_heatmap
from models.schema import Case, Fixation
from models.scanpath.paths import image_size_of, reader_paths

MAP_GRID = 64


@dataclass
class PathStatistics:
    """Path lengths and fixation durations (s) of the training readers, for resampling."""

    lengths: np.ndarray
    durations: np.ndarray

    @classmethod
    def fit(cls, cases: Sequence[Case], max_length: int | None = None) -> "PathStatistics":
        lengths, durations = [], []
        for case in cases:
            for path in reader_paths(case).values():
                lengths.append(len(path) if max_length is None else min(len(path), max_length))
                durations += [f.duration for f in path]
        if not lengths:
            raise ValueError("no training case has fixations; baselines cannot be fitted")
        return cls(np.asarray(lengths), np.asarray(durations, dtype=np.float64))

    def draw(self, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        n = int(rng.choice(self.lengths))
        return n, rng.choice(self.durations, size=n)


def _path(xs: np.ndarray, ys: np.ndarray, durations: np.ndarray) -> list[Fixation]:
    starts = np.concatenate([[0.0], np.cumsum(durations[:-1])])
    return [Fixation(float(x), float(y), float(t), float(d)) for x, y, t, d in zip(xs, ys, starts, durations)]


class CentreBias:
    """Fixations around the image centre; spread fitted on training fixations (fractions of the image)."""

    name = "centre_bias"

    def __init__(self, stats: PathStatistics, spread: tuple[float, float]):
        self.stats = stats
        self.spread = spread

    @classmethod
    def fit(cls, cases: Sequence[Case], max_length: int | None = None) -> "CentreBias":
        offsets = []
        for case in cases:
            w, h = image_size_of(case)
            for path in reader_paths(case).values():
                offsets += [(f.x / w - 0.5, f.y / h - 0.5) for f in path]
        spread = tuple(float(v) for v in np.sqrt(np.mean(np.square(offsets), axis=0)))
        return cls(PathStatistics.fit(cases, max_length), spread)

    def __call__(self, width: float, height: float, rng: np.random.Generator) -> list[Fixation]:
        n, durations = self.stats.draw(rng)
        fx = np.clip(0.5 + self.spread[0] * rng.standard_normal(n), 0, 1)
        fy = np.clip(0.5 + self.spread[1] * rng.standard_normal(n), 0, 1)
        return _path(fx * width, fy * height, durations)


def mean_fixation_map(cases: Sequence[Case], grid: int = MAP_GRID, sigma_fraction: float = DEFAULT_SIGMA_FRACTION) -> np.ndarray:
    """``(grid, grid)`` mean of the training readers' fixation maps in image fractions (each case's
    positions divided by its width/height), sum 1."""
    total = np.zeros((grid, grid))
    for case in cases:
        w, h = image_size_of(case)
        for path in reader_paths(case).values():
            arr = np.array([[f.x / w * grid, f.y / h * grid, 0.0, 1.0] for f in path])
            m = fixation_heatmap(arr, (grid, grid), sigma_px=sigma_fraction * grid, duration_weighted=False, normalize="sum")
            total += m
    if total.sum() <= 0:
        raise ValueError("no training fixations: cannot build the mean fixation map")
    return total / total.sum()


def resize_map(saliency: np.ndarray, grid: int = MAP_GRID) -> np.ndarray:
    """Area-average an ``(H, W)`` non-negative map onto a ``(grid, grid)`` grid of image fractions."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(saliency, dtype=np.float32))[None, None]
    return F.adaptive_avg_pool2d(t, (grid, grid))[0, 0].numpy().astype(np.float64)


class MapSampler:
    """Fixations drawn i.i.d. from a saliency map (cell by probability, then uniform inside the cell).

    Args:
        stats: training path lengths and durations.
        saliency: a default ``(g, g)`` map over image fractions (e.g. :func:`mean_fixation_map`), or None
            when every call passes its own map.
        name: label in benchmark tables.
    """

    def __init__(self, stats: PathStatistics, saliency: np.ndarray | None = None, name: str = "saliency_sampling"):
        self.stats = stats
        self.saliency = saliency
        self.name = name

    def __call__(self, width: float, height: float, rng: np.random.Generator, saliency: np.ndarray | None = None) -> list[Fixation]:
        """A path on a ``width x height`` image; ``saliency`` (any ``(H, W)`` non-negative map over the whole
        image, e.g. in original pixels) overrides the default map."""
        m = self.saliency if saliency is None else resize_map(saliency)
        if m is None:
            raise ValueError(f"{self.name}: no saliency map given")
        m = np.clip(np.asarray(m, dtype=np.float64), 0, None)
        if m.sum() <= 0:
            m = np.ones_like(m)
        gh, gw = m.shape
        n, durations = self.stats.draw(rng)
        cells = rng.choice(m.size, size=n, p=(m / m.sum()).ravel())
        rows, cols = np.divmod(cells, gw)
        fx = (cols + rng.random(n)) / gw
        fy = (rows + rng.random(n)) / gh
        return _path(fx * width, fy * height, durations)
