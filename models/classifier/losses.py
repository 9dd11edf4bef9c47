"""Training losses of the gaze-guided classifier.

- :func:`masked_bce`: multi-label BCE over labelled entries only (CheXpert "not mentioned" is masked out);
  uncertain labels (-1) follow a policy: "positive" (U-Ones), "negative" (U-Zeros) or "ignore".
- :class:`GazeAttentionLoss`: attention vs radiologist gaze, four terms (each weight configurable, each 0 when
  the maps are equal): MSE of the densities, KL(gaze || attention), 1 - Pearson CC, and the squared distance
  between the centres of mass. Cases without gaze contribute nothing.
- :func:`info_nce`: symmetric image-report InfoNCE over the cases that have a report.
- :func:`box_attention_loss`: 1 - attention mass inside each ground-truth box of that box's finding.
- :class:`ClassifierLoss`: the weighted sum, with an optional linear curriculum on the gaze weight.

Attention maps here are feature-grid probability maps ``(B, C, h, w)`` that sum to 1 (the network's
softmax); the gaze heatmap ``(B, 1, S, S)`` is pooled to the same grid and normalised to sum 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from models.classifier.config import UNCERTAIN_POLICIES, LossConfig

EPS = 1e-8


# ------------------------------------------------------------------------------------------ labels
def resolve_uncertain(labels: torch.Tensor, mask: torch.Tensor, policy: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Map uncertain targets (value -1, as produced by ``CaseDataset(uncertain_as=-1)``) by ``policy``.

    Returns (targets in {0, 1}, mask) with the same ``(B, C)`` shape."""
    if policy not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain policy must be one of {UNCERTAIN_POLICIES}, got {policy!r}")
    uncertain = labels < 0
    if policy == "ignore":
        return labels.clamp(0, 1), mask * (~uncertain).to(mask.dtype)
    return torch.where(uncertain, torch.full_like(labels, 1.0 if policy == "positive" else 0.0), labels), mask


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy over entries with ``mask == 1``; all ``(B, C)``; 0 if nothing is labelled."""
    if logits.shape != targets.shape or logits.shape != mask.shape:
        raise ValueError(f"logits, targets and mask must share a shape, got {tuple(logits.shape)}, "
                         f"{tuple(targets.shape)}, {tuple(mask.shape)}")
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none", pos_weight=pos_weight)
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


# ------------------------------------------------------------------------------------------ gaze
def gaze_to_grid(gaze: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(B, 1, S, S)`` heatmap -> ``(B, h, w)`` probability map (area pooling, sum 1; zeros stay zeros)."""
    if gaze.ndim != 4 or gaze.shape[1] != 1:
        raise ValueError(f"gaze must be (B, 1, S, S), got shape {tuple(gaze.shape)}")
    pooled = F.adaptive_avg_pool2d(gaze.clamp_min(0), grid)[:, 0]
    return pooled / pooled.flatten(1).sum(-1).clamp_min(EPS)[:, None, None]


GAZE_TARGETS = ("prior", "all", "positive")


def combine_attention(attention: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, mode: str = "all") -> torch.Tensor:
    """A map per case built from the finding maps, to compare with the case's gaze heatmap (the default
    gaze target is the network's shared prior instead, see :class:`LossConfig`).

    ``"all"``: the mean of the 14 finding maps, the model's overall attention. Because the maps are
    non-negative, the mean can only be ~0 where the reader never looked if EVERY map is ~0 there (no finding
    may read from an unlooked-at spot such as a burned-in marker), while each map stays free to specialise
    on part of the looked-at area (a lesion inside the scanned lungs).
    ``"positive"``: the mean of the case's positive findings' maps (all maps when none is positive); this
    forces each positive finding's map to spread over everything the reader looked at.

    Args:
        attention: ``(B, C, h, w)``, each map summing to 1.
        targets, mask: ``(B, C)`` (used by ``"positive"``).
    Returns:
        ``(B, h, w)`` probability map.
    """
    if mode not in GAZE_TARGETS:
        raise ValueError(f"gaze_target must be one of {GAZE_TARGETS}, got {mode!r}")
    if mode == "all":
        return attention.mean(1)
    weights = targets.clamp(0, 1) * mask
    none = weights.sum(-1, keepdim=True) == 0
    weights = torch.where(none, torch.ones_like(weights), weights)
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.einsum("bc,bchw->bhw", weights, attention)


def _centre_of_mass(p: torch.Tensor) -> torch.Tensor:
    """``(B, h, w)`` probability maps -> ``(B, 2)`` (x, y) centre in fractions of the grid."""
    h, w = p.shape[-2:]
    ys = (torch.arange(h, device=p.device, dtype=p.dtype) + 0.5) / h
    xs = (torch.arange(w, device=p.device, dtype=p.dtype) + 0.5) / w
    return torch.stack([(p.sum(-2) * xs).sum(-1), (p.sum(-1) * ys).sum(-1)], dim=-1)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.flatten(1) - a.flatten(1).mean(-1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(EPS)


def gaze_terms(attention: torch.Tensor, gaze: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-case terms between ``(B, h, w)`` attention and gaze probability maps, each ``(B,)`` and >= 0:
    ``mse`` (of densities relative to uniform, i.e. maps x h*w), ``kl`` = KL(gaze || attention) in nats,
    ``cc`` = 1 - Pearson CC, ``com`` = squared distance of the centres of mass (grid fractions)."""
    if attention.shape != gaze.shape:
        raise ValueError(f"attention and gaze grids differ: {tuple(attention.shape)} vs {tuple(gaze.shape)}")
    n = attention.shape[-1] * attention.shape[-2]
    a, g = attention.flatten(1), gaze.flatten(1)
    return {
        "mse": ((a - g) * n).pow(2).mean(-1),
        "kl": (g * (torch.log(g + EPS) - torch.log(a + EPS))).sum(-1),
        "cc": 1.0 - _pearson(a, g),
        "com": (_centre_of_mass(attention) - _centre_of_mass(gaze)).pow(2).sum(-1),
    }


@dataclass
class GazeLossWeights:
    mse: float = 1.0
    kl: float = 1.0
    cc: float = 1.0
    com: float = 1.0


class GazeAttentionLoss(torch.nn.Module):
    """Weighted sum of :func:`gaze_terms`, averaged over cases with ``has_gaze == 1``.

    ``forward(attention (B, h, w), gaze (B, 1, S, S), has_gaze (B,)) -> (loss, parts)``; with no gazed case
    the loss is a zero that keeps the graph (so DDP sees every parameter used)."""

    def __init__(self, weights: GazeLossWeights | None = None):
        super().__init__()
        self.weights = weights or GazeLossWeights()
        if min(asdict(self.weights).values()) < 0:
            raise ValueError(f"gaze loss weights must be >= 0, got {self.weights}")

    def forward(self, attention: torch.Tensor, gaze: torch.Tensor, has_gaze: torch.Tensor):
        if attention.ndim != 3:
            raise ValueError(f"attention must be (B, h, w), got shape {tuple(attention.shape)}")
        target = gaze_to_grid(gaze, tuple(attention.shape[-2:]))
        terms = gaze_terms(attention, target)
        valid = (has_gaze > 0.5).to(attention.dtype)
        n = valid.sum()
        parts, total = {}, attention.sum() * 0.0
        for name, value in terms.items():
            mean = (value * valid).sum() / n.clamp_min(1.0)
            parts[f"gaze_{name}"] = mean.detach()
            total = total + getattr(self.weights, name) * mean
        return total, parts


# ------------------------------------------------------------------------------------------ contrastive
def info_nce(image_emb: torch.Tensor, text_emb: torch.Tensor, valid: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between matching rows of ``(B, E)`` unit embeddings, over rows with ``valid``.

    Fewer than two valid rows give a graph-connected zero (no negatives to contrast with)."""
    keep = valid > 0.5
    if int(keep.sum()) < 2:
        return image_emb.sum() * 0.0 + text_emb.sum() * 0.0 + logit_scale * 0.0
    img, txt = image_emb[keep], text_emb[keep]
    logits = logit_scale.clamp(max=4.6052).exp() * img @ txt.t()  # temperature capped at 1/100
    target = torch.arange(len(img), device=img.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


# ------------------------------------------------------------------------------------------ boxes
def box_masks(boxes: torch.Tensor, n_boxes: torch.Tensor, grid: tuple[int, int], size: int) -> torch.Tensor:
    """Fractional coverage of each feature cell by each box: ``(B, K, h, w)`` in [0, 1].

    Args:
        boxes: ``(B, K, 5)`` finding index, x1, y1, x2, y2 in model pixels; rows ``>= n_boxes`` are padding.
        grid: ``(h, w)`` feature grid; ``size``: model input side (pixels).
    """
    h, w = grid
    x1, y1, x2, y2 = (boxes[..., i] for i in range(1, 5))
    edges_x = torch.arange(w + 1, device=boxes.device, dtype=boxes.dtype) * (size / w)
    edges_y = torch.arange(h + 1, device=boxes.device, dtype=boxes.dtype) * (size / h)
    cover_x = (torch.minimum(edges_x[1:], x2[..., None]) - torch.maximum(edges_x[:-1], x1[..., None])).clamp_min(0) / (size / w)
    cover_y = (torch.minimum(edges_y[1:], y2[..., None]) - torch.maximum(edges_y[:-1], y1[..., None])).clamp_min(0) / (size / h)
    masks = cover_y[..., :, None] * cover_x[..., None, :]  # (B, K, h, w)
    real = torch.arange(boxes.shape[1], device=boxes.device)[None] < n_boxes[:, None]
    return masks * real[..., None, None].to(masks.dtype)


def box_attention_loss(attention: torch.Tensor, boxes: torch.Tensor, n_boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over real boxes of ``1 - (attention mass of the box's finding inside the box)``.

    attention ``(B, C, h, w)`` (maps sum to 1); boxes ``(B, K, 5)``; ``n_boxes`` ``(B,)``. No boxes in the
    batch -> graph-connected zero."""
    b, c, h, w = attention.shape
    if int(n_boxes.sum()) == 0:
        return attention.sum() * 0.0
    masks = box_masks(boxes, n_boxes, (h, w), size)  # (B, K, h, w)
    finding = boxes[..., 0].long().clamp(0, c - 1)  # (B, K)
    att = torch.gather(attention, 1, finding[..., None, None].expand(-1, -1, h, w))  # (B, K, h, w)
    inside = (att * masks).flatten(2).sum(-1)  # (B, K)
    real = (torch.arange(boxes.shape[1], device=boxes.device)[None] < n_boxes[:, None]).to(inside.dtype)
    return ((1.0 - inside) * real).sum() / real.sum()


# ------------------------------------------------------------------------------------------ total
class ClassifierLoss(torch.nn.Module):
    """BCE + gaze + contrastive + box terms. ``forward(output, batch, epoch, text_emb=None) -> (loss, parts)``.

    ``output`` is a :class:`~models.classifier.network.ClassifierOutput`; ``batch`` a collated
    :class:`~models.datasets.torch_data.CaseDataset` batch built with ``uncertain_as=-1``; ``text_emb`` the
    model's projected report embeddings ``(B, E)`` with ``batch["has_report"]`` marking real reports."""

    def __init__(self, config: LossConfig | None = None):
        super().__init__()
        self.config = config or LossConfig()
        cfg = self.config
        if cfg.uncertain not in UNCERTAIN_POLICIES:
            raise ValueError(f"uncertain policy must be one of {UNCERTAIN_POLICIES}, got {cfg.uncertain!r}")
        if cfg.gaze_target not in GAZE_TARGETS:
            raise ValueError(f"gaze_target must be one of {GAZE_TARGETS}, got {cfg.gaze_target!r}")
        for name in ("gaze_weight", "contrastive_weight", "box_weight", "gaze_warmup_epochs"):
            if getattr(cfg, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
        self.gaze = GazeAttentionLoss(GazeLossWeights(cfg.gaze_mse, cfg.gaze_kl, cfg.gaze_cc, cfg.gaze_com))

    def forward(self, output, batch: dict, epoch: float = 0.0, text_emb: torch.Tensor | None = None, logit_scale=None):
        cfg = self.config
        targets, mask = resolve_uncertain(batch["labels"], batch["label_mask"], cfg.uncertain)
        bce = masked_bce(output.logits, targets, mask)
        parts = {"bce": bce.detach()}
        total = bce
        gaze_w = cfg.gaze_weight_at(epoch)
        if gaze_w > 0:
            if cfg.gaze_target == "prior":
                combined = output.prior
            else:
                combined = combine_attention(output.attention, targets, mask, cfg.gaze_target)
            gaze_loss, gaze_parts = self.gaze(combined, batch["gaze"], batch["has_gaze"])
            total = total + gaze_w * gaze_loss
            parts.update(gaze_parts, gaze=gaze_loss.detach())
        if cfg.contrastive_weight > 0:
            if text_emb is None or output.image_embedding is None:
                raise ValueError("contrastive_weight > 0 needs a model with a contrastive head and report embeddings")
            nce = info_nce(output.image_embedding, text_emb, batch["has_report"], logit_scale)
            total = total + cfg.contrastive_weight * nce
            parts["contrastive"] = nce.detach()
        if cfg.box_weight > 0:
            size = batch["image"].shape[-1]
            box = box_attention_loss(output.attention, batch["boxes"], batch["n_boxes"], size)
            total = total + cfg.box_weight * box
            parts["box"] = box.detach()
        parts["total"] = total.detach()
        return total, parts


__all__ = [
    "UNCERTAIN_POLICIES",
    "resolve_uncertain",
    "masked_bce",
    "gaze_to_grid",
    "GAZE_TARGETS",
    "combine_attention",
    "gaze_terms",
    "GazeLossWeights",
    "GazeAttentionLoss",
    "info_nce",
    "box_masks",
    "box_attention_loss",
    "LossConfig",
    "ClassifierLoss",
]
