"""Boxes from attention maps: threshold a finding's map, keep its largest blob, box it, map it back.

The attention map is a model-space ``(S, S)`` array (letterboxed input pixels); the box is returned in
ORIGINAL image pixels through the same :class:`~models.imaging.Letterbox`, with the anatomical region at its
centre (``models.vocab.region_at``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from models.imaging import Letterbox
from models.schema import Box
from models.vocab import region_at


def largest_component_box(attention: np.ndarray, threshold: float = 0.5) -> tuple[float, float, float, float] | None:
    """``(x1, y1, x2, y2)`` (model pixels) around the largest connected area where ``attention >=
    threshold * max``; None for an all-zero map. ``attention`` must be a 2D array."""
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"attention must be a 2D (S, S) map, got shape {a.shape}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    peak = a.max()
    if not np.isfinite(peak) or peak <= 0:
        return None
    labels, n = ndimage.label(a >= threshold * peak)
    sizes = np.bincount(labels.ravel())[1:]
    rows, cols = np.nonzero(labels == int(np.argmax(sizes)) + 1)
    return float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)


def attention_boxes(attention: np.ndarray, letterbox: Letterbox, findings: dict[str, float],
                    finding_index: dict[str, int], threshold: float = 0.5) -> list[Box]:
    """One box per finding in ``findings`` (name -> score), from its map in ``attention`` ``(C, S, S)``.

    Boxes that fall entirely in the letterbox padding (empty after mapping back) are dropped."""
    out = []
    for name, score in findings.items():
        xyxy = largest_component_box(attention[finding_index[name]], threshold)
        if xyxy is None:
            continue
        x1, y1, x2, y2 = letterbox.boxes_to_original(np.array([xyxy]))[0]
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            continue
        region = region_at((x1 + x2) / 2, (y1 + y2) / 2, letterbox.width, letterbox.height, finding=name)
        out.append(Box(name, float(x1), float(y1), float(x2), float(y2), region, float(score)))
    return out


__all__ = ["largest_component_box", "attention_boxes"]
