"""Image -> model input, the one step training and inference share (so it lives below both).

Each radiograph is letterboxed to ``size x size`` (:class:`~models.imaging.Letterbox`); points, boxes and
maps go through the same letterbox, so model outputs map back to original pixels exactly.
"""

from __future__ import annotations

import numpy as np

from models.imaging import Letterbox

MAX_BOXES = 16
MAX_FIXATIONS = 64


def prepare_image(array: np.ndarray, size: int):
    """``(H, W)`` [0, 1] -> ``(1, size, size)`` float tensor and the letterbox that produced it."""
    import torch

    if array.ndim != 2:
        raise ValueError(f"expected a 2D (H, W) image, got shape {tuple(array.shape)}")
    lb = Letterbox.fit(array.shape[1], array.shape[0], size)
    return torch.from_numpy(lb.apply(array))[None], lb
