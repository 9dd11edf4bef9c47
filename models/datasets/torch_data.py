"""Turn Cases into model-ready tensors: the one data path every trainer uses.

Each item is letterboxed to ``size x size``; fixations, boxes and heatmaps are mapped with the same
:class:`~models.imaging.Letterbox`, so model outputs map back to original pixels exactly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from models.gaze import fixation_heatmap
from models.imaging import Letterbox, read_image
from models.preprocess import MAX_BOXES, MAX_FIXATIONS, prepare_image
from models.schema import Case
from models.vocab import FINDING_INDEX, FINDINGS



class CaseDataset(Dataset):
    """Cases -> dict of tensors.

    Item keys (S = ``size``):
        ``image`` (1, S, S) float in [0, 1]; ``labels`` (14,) and ``label_mask`` (14,) over ``FINDINGS``;
        ``gaze`` (1, S, S) fixation heatmap (max-normalised, sigma ``sigma_fraction`` of S) and ``has_gaze`` ();
        ``boxes`` (MAX_BOXES, 5) = finding index, x1, y1, x2, y2 in model pixels, ``n_boxes`` ();
        ``fixations`` (MAX_FIXATIONS, 3) = x, y in model pixels and duration in s, ``n_fixations`` ();
        ``report`` str; ``id`` str; ``letterbox`` tuple (width, height, size, scale, pad_x, pad_y).

    Args:
        cases: cases whose ``image.path`` is readable.
        size: model input side in pixels.
        cache: keep decoded, letterboxed images in memory (small datasets, several epochs).
        augment: small random intensity jitter (geometry untouched so gaze stays aligned).
    """

    def __init__(self, cases: Sequence[Case], size: int = 224, *, sigma_fraction: float = 16 / 224,
                 cache: bool = True, augment: bool = False, uncertain_as: float = 1.0):
        self.cases = list(cases)
        self.size = size
        self.sigma_fraction = sigma_fraction
        self.augment = augment
        self.uncertain_as = uncertain_as
        self._cache: dict[int, tuple[torch.Tensor, Letterbox]] = {} if cache else None

    def __len__(self) -> int:
        return len(self.cases)

    def _image(self, i: int) -> tuple[torch.Tensor, Letterbox]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        case = self.cases[i]
        out = prepare_image(read_image(case.image.path).array, self.size)
        if self._cache is not None:
            self._cache[i] = out
        return out

    def __getitem__(self, i: int) -> dict:
        case = self.cases[i]
        image, lb = self._image(i)
        if self.augment:
            g = torch.empty(1).uniform_(0.85, 1.15)
            b = torch.empty(1).uniform_(-0.05, 0.05)
            image = (image * g + b).clamp(0, 1)
        target, mask = case.label_vector(self.uncertain_as)

        fix = case.fixations[:MAX_FIXATIONS]
        fx = np.zeros((MAX_FIXATIONS, 3), dtype=np.float32)
        if fix:
            xy = lb.to_model(np.array([[f.x, f.y] for f in fix]))
            fx[: len(fix), :2] = xy
            fx[: len(fix), 2] = [f.duration for f in fix]
        gaze = np.zeros((self.size, self.size), dtype=np.float32)
        if fix:
            arr = np.concatenate([fx[: len(fix), :2], np.zeros((len(fix), 1)), fx[: len(fix), 2:3]], axis=1)
            gaze = fixation_heatmap(arr, (self.size, self.size), sigma_px=self.sigma_fraction * self.size)

        bx = np.zeros((MAX_BOXES, 5), dtype=np.float32)
        boxes = case.boxes[:MAX_BOXES]
        if boxes:
            bx[: len(boxes), 0] = [FINDING_INDEX[b.finding] for b in boxes]
            bx[: len(boxes), 1:] = lb.boxes_to_model(np.array([b.xyxy for b in boxes]))

        return {
            "id": case.id,
            "image": image,
            "labels": torch.tensor(target),
            "label_mask": torch.tensor(mask),
            "gaze": torch.from_numpy(gaze)[None],
            "has_gaze": torch.tensor(1.0 if fix else 0.0),
            "boxes": torch.from_numpy(bx),
            "n_boxes": torch.tensor(len(boxes)),
            "fixations": torch.from_numpy(fx),
            "n_fixations": torch.tensor(len(fix)),
            "report": case.report.text if case.report else "",
            "letterbox": (lb.width, lb.height, lb.size, lb.scale, lb.pad_x, lb.pad_y),
        }


def collate(items: list[dict]) -> dict:
    """Stack tensors; keep strings and letterbox tuples as lists."""
    out = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        out[key] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def letterbox_of(t: tuple) -> Letterbox:
    """Rebuild a Letterbox from the tuple stored in a batch."""
    w, h, s, sc, px, py = t
    return Letterbox(int(w), int(h), int(s), float(sc), float(px), float(py))


__all__ = ["CaseDataset", "collate", "prepare_image", "letterbox_of", "FINDINGS", "MAX_BOXES", "MAX_FIXATIONS"]
