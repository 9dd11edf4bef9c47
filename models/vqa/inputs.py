"""Image, gaze and question -> the VQA network's inputs; shared by training and prediction.

- Image: the frozen classifier (:class:`~models.classifier.network.GazeAttentionNet`) run on the letterboxed
  image gives the feature grid ``(D, h, w)``, each finding's attention-pooled feature ``(14, D)``, its logit
  ``(14,)`` and its attention map ``(14, h, w)`` (:func:`backbone_outputs`).
- Gaze: fixations (original pixels, seconds) -> ``(K, 4)`` tokens ``[x, y, duration, order]`` with x, y in
  model-input fractions (the grid's frame), plus a ``(2R,)`` region summary: for each of the 17 regions
  whether a fixation's foveal disc reached it (the pipeline's coverage) and the share of the reading's time
  spent there (:func:`gaze_arrays`).
- Question: the frozen MiniLM embedding of the whole question ``(384,)`` plus up to three slot embeddings
  (the findings and regions it names, :func:`models.vqa.questions.find_mentions`), with their kinds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from models.imaging import Letterbox
from models.scanpath.coverage import DEFAULT_RADIUS_FRACTION
from models.schema import Fixation
from models.vocab import REGION_NAMES, region_box_pixels
from models.vqa.questions import MAX_SLOTS, Mention, find_mentions

SLOT_KINDS = {"finding": 1, "region": 2}  # 0 = no slot
N_REGIONS = len(REGION_NAMES)


def backbone_outputs(net, images):
    """The frozen classifier's intermediate outputs for ``images`` ``(B, 1, S, S)`` in [0, 1].

    The same computation as :meth:`GazeAttentionNet.forward` (eval mode, no dropout), keeping what it
    discards: ``feats`` ``(B, D, h, w)``, ``pooled`` ``(B, C, D)``, ``logits`` ``(B, C)``, ``attention``
    ``(B, C, h, w)`` (each map sums to 1)."""
    import torch

    feats = net.encoder(images)
    b, d, h, w = feats.shape
    log_prior = net.prior_logits(feats).flatten(2).log_softmax(-1)
    att = (net.attention_logits(feats).flatten(2) + log_prior).softmax(-1)  # (B, C, h*w)
    pooled = torch.einsum("bcn,bdn->bcd", att, feats.flatten(2))
    logits = (pooled * net.class_weight).sum(-1) + net.class_bias
    return {"feats": feats, "pooled": pooled, "logits": logits, "attention": att.view(b, -1, h, w)}


def gaze_arrays(fixations: Sequence[Fixation], letterbox: Letterbox, max_fixations: int,
                radius_fraction: float = DEFAULT_RADIUS_FRACTION) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(tokens (K, 4) float32, mask (K,) bool, coverage (2R,) float32)`` for one scanpath (see module doc).

    ``K = max_fixations``; fixations past it are dropped, padding rows are zero with mask False."""
    tokens = np.zeros((max_fixations, 4), np.float32)
    mask = np.zeros(max_fixations, bool)
    cover = np.zeros(2 * N_REGIONS, np.float32)
    fix = list(fixations)[:max_fixations]
    if not fix:
        return tokens, mask, cover
    pts = np.array([[f.x, f.y] for f in fix], np.float64)
    dur = np.array([max(float(f.duration), 0.0) for f in fix], np.float64)
    model = letterbox.to_model(pts) / letterbox.size
    n = len(fix)
    tokens[:n, :2] = model.clip(0, 1)
    tokens[:n, 2] = dur.clip(0, 2.0)
    tokens[:n, 3] = np.arange(n) / max_fixations
    mask[:n] = True
    w, h = letterbox.width, letterbox.height
    radius = radius_fraction * max(w, h)
    boxes = np.array([region_box_pixels(r, w, h) for r in REGION_NAMES])  # (R, 4)
    dx = np.maximum(np.maximum(boxes[None, :, 0] - pts[:, None, 0], pts[:, None, 0] - boxes[None, :, 2]), 0.0)
    dy = np.maximum(np.maximum(boxes[None, :, 1] - pts[:, None, 1], pts[:, None, 1] - boxes[None, :, 3]), 0.0)
    hit = dx**2 + dy**2 <= radius**2  # (N, R), the coverage definition
    cover[:N_REGIONS] = hit.any(0)
    total = dur.sum()
    if total > 0:
        cover[N_REGIONS:] = (hit * dur[:, None]).sum(0) / total
    return tokens, mask, cover


def slot_arrays(mentions: Sequence[Mention], surface_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(surface ids (MAX_SLOTS,) int64, kinds (MAX_SLOTS,) int64)`` of the first mentions; 0 = empty
    (surface id 0 is unused padding)."""
    ids = np.zeros(MAX_SLOTS, np.int64)
    kinds = np.zeros(MAX_SLOTS, np.int64)
    for i, m in enumerate(list(mentions)[:MAX_SLOTS]):
        ids[i] = surface_index[m.surface]
        kinds[i] = SLOT_KINDS[m.kind]
    return ids, kinds


def question_slots(question: str, surface_index: dict[str, int]) -> tuple[list[Mention], np.ndarray, np.ndarray]:
    mentions = find_mentions(question)
    ids, kinds = slot_arrays(mentions, surface_index)
    return mentions, ids, kinds


__all__ = ["N_REGIONS", "SLOT_KINDS", "backbone_outputs", "gaze_arrays", "question_slots", "slot_arrays"]
