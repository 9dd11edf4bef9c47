"""Systematic-search coverage: which named anatomical regions a scanpath looked at, and which it missed."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from models.schema import Fixation
from models.vocab import REGION_NAMES, region_box_pixels

# Foveal radius as a fraction of the image's longer side. A radiograph shown full height on a typical
# reading display (EGD-CXR: 1080 px on a 24" screen at ~60 cm) spans about 27 degrees, so 0.05 of it is
# ~1.4 degrees: the central, high-acuity field a radiologist inspects in one fixation.
DEFAULT_RADIUS_FRACTION = 0.05


def coverage(fixations: Sequence[Fixation], width: float, height: float, chest_box: Sequence[float] | None = None,
             radius_fraction: float = DEFAULT_RADIUS_FRACTION) -> dict[str, list[str]]:
    """Regions of :data:`models.vocab.REGIONS` visited and missed by a scanpath.

    A region is visited when the foveal disc of some fixation (radius ``radius_fraction`` of the longer
    image side) overlaps the region's box.

    Args:
        fixations: the scanpath, original pixels.
        width, height: image size in original pixels.
        chest_box: (x1, y1, x2, y2) in pixels that the regions are fractions of; None = the whole image.
        radius_fraction: foveal radius as a fraction of ``max(width, height)``.

    Returns:
        ``{"visited": [...], "missed": [...]}``: visited regions in the order they were first reached
        (ties in vocabulary order), missed regions in vocabulary order.
    """
    if not (width > 0 and height > 0):
        raise ValueError(f"image width and height must be > 0, got {width} x {height}")
    if radius_fraction < 0:
        raise ValueError(f"radius_fraction must be >= 0, got {radius_fraction}")
    if chest_box is not None:
        if len(chest_box) != 4 or not (chest_box[2] > chest_box[0] and chest_box[3] > chest_box[1]):
            raise ValueError(f"chest_box must be (x1, y1, x2, y2) with x1 < x2 and y1 < y2, got {chest_box!r}")
    radius = radius_fraction * max(width, height)
    boxes = np.array([region_box_pixels(name, width, height, chest_box) for name in REGION_NAMES])  # (R, 4)
    first_visit = np.full(len(REGION_NAMES), np.inf)
    if fixations:
        pts = np.array([[f.x, f.y] for f in fixations], dtype=np.float64)  # (N, 2)
        dx = np.maximum(np.maximum(boxes[None, :, 0] - pts[:, None, 0], pts[:, None, 0] - boxes[None, :, 2]), 0.0)
        dy = np.maximum(np.maximum(boxes[None, :, 1] - pts[:, None, 1], pts[:, None, 1] - boxes[None, :, 3]), 0.0)
        hit = dx**2 + dy**2 <= radius**2  # (N, R)
        seen = hit.any(0)
        first_visit[seen] = hit[:, seen].argmax(0)
    order = sorted(np.flatnonzero(np.isfinite(first_visit)), key=lambda r: (first_visit[r], r))
    return {"visited": [REGION_NAMES[r] for r in order],
            "missed": [name for r, name in enumerate(REGION_NAMES) if not np.isfinite(first_visit[r])]}
