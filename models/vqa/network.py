"""VQANet: question + frozen-classifier image features + gaze tokens -> answer, region set, kind, grounding.

Why a *frozen trained classifier* as the image backbone (not its architecture trained jointly): the classifier is
trained on every finding label of every image with the gaze loss, while QA supervision is a few questions per
image; freezing keeps that finding knowledge (a jointly trained copy forgets it within a few hundred QA steps on
the phantom), lets training cache the backbone outputs once (minutes on two CPU cores instead of hours), and
makes the "rule over the pipeline's Case" baseline a fair comparison (same image evidence). Its weights are
copied into the VQA checkpoint, so retraining ``classifier.pt`` later does not change a trained VQA model.

Tokens (all ``d_model`` wide) and one pre-norm transformer over them:

- question ``(B, 1)``: the frozen MiniLM sentence embedding, projected;
- slots ``(B, 3)``: MiniLM embeddings of the findings / regions the question names, plus slot kind and position;
- coverage ``(B, 1)``: the gaze summary over the 17 regions (visited, share of reading time);
- findings ``(B, 14)``: the classifier's attention-pooled feature, logit, where its attention map sits (centre
  and spread) and a learned embedding per finding;
- gaze ``(B, K)``: fixations ``(x, y, duration, order)``, Fourier features of (x, y) in the grid's frame;
- visual ``(B, h/p * w/p)``: the feature grid average-pooled by ``pool``, with Fourier position features.

The question token's output feeds three heads: answer logits over :data:`models.vqa.questions.ANSWERS`, region
logits (multi-label, "which regions were not inspected") and, from the question embedding alone, the question
kind. The grounding map is a softmax over the full ``(h, w)`` grid: a bilinear score between the question
state and each projected grid cell, plus question-weighted log attention maps of the classifier's 14 findings
and the log fixation density (the gaze prior; zero without gaze).

``inputs="no_gaze"`` masks the gaze tokens and zeroes coverage and density; ``"question_only"`` also masks every
image token and zeroes the image terms of the grounding map. Both are trained the same way (the baselines).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vocab import FINDINGS, REGION_NAMES
from models.vqa.config import VQAConfig
from models.vqa.questions import ANSWERS, KINDS, MAX_SLOTS

GAZE_SIGMA_CELLS = 1.5  # the fixation density's Gaussian, in grid cells


class VQAOutput(NamedTuple):
    """answer ``(B, A)`` logits over ANSWERS; regions ``(B, R)`` logits (sigmoid = "not inspected");
    kind ``(B, T)`` logits over KINDS; grounding ``(B, h, w)`` logits (softmax over the grid)."""

    answer: torch.Tensor
    regions: torch.Tensor
    kind: torch.Tensor
    grounding: torch.Tensor


def fourier(xy: torch.Tensor, frequencies: int) -> torch.Tensor:
    """``(..., 2)`` positions in [0, 1] -> ``(..., 4 * frequencies)`` sin/cos features."""
    scales = (2.0 ** torch.arange(frequencies, device=xy.device, dtype=xy.dtype)) * math.pi
    angles = xy[..., None] * scales  # (..., 2, F)
    return torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)


def cell_centres(h: int, w: int, device=None) -> torch.Tensor:
    """``(h * w, 2)`` grid cell centres (x, y) as fractions of the model input, row-major."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1).reshape(-1, 2)


def gaze_density(gaze: torch.Tensor, mask: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(B, K, 4)`` gaze tokens -> ``(B, h, w)`` duration-weighted Gaussian density summing to 1 (uniform for
    an empty scanpath)."""
    centres = cell_centres(h, w, gaze.device)  # (N, 2)
    d2 = ((gaze[:, :, None, :2] - centres[None, None]) ** 2).sum(-1)  # (B, K, N)
    sigma = GAZE_SIGMA_CELLS / max(h, w)
    weight = (gaze[..., 2].clamp_min(1e-3) * mask.float())[..., None]
    dens = (weight * torch.exp(-d2 / (2 * sigma**2))).sum(1) + 1e-6  # (B, N)
    return (dens / dens.sum(-1, keepdim=True)).view(-1, h, w)


def attention_position(att: torch.Tensor, frequencies: int) -> torch.Tensor:
    """``(B, C, h, w)`` attention maps (each sums to 1) -> ``(B, C, 4F + 2)``: Fourier features of each map's
    centre of mass and its spread (standard deviation in x and y, grid fractions)."""
    b, c, h, w = att.shape
    centres = cell_centres(h, w, att.device)  # (N, 2)
    p = att.flatten(2)  # (B, C, N)
    mean = p @ centres  # (B, C, 2)
    var = (p @ centres.pow(2)) - mean.pow(2)
    return torch.cat([fourier(mean, frequencies), var.clamp_min(0).sqrt()], -1)


def _mlp(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out))


class VQANet(nn.Module):
    """See the module docstring. ``feature_dim``: the backbone's channels D; ``n_findings``: C (14)."""

    def __init__(self, config: VQAConfig | None = None, feature_dim: int = 128, n_findings: int = len(FINDINGS)):
        super().__init__()
        self.config = cfg = config or VQAConfig()
        d, nf = cfg.d_model, 4 * cfg.frequencies
        self.feature_dim, self.n_findings = feature_dim, n_findings
        self.question = nn.Linear(cfg.text_dim, d)
        self.slot = nn.Linear(cfg.text_dim, d)
        self.slot_kind = nn.Embedding(3, d)
        self.slot_position = nn.Embedding(MAX_SLOTS, d)
        self.coverage = nn.Linear(2 * len(REGION_NAMES), d)
        self.finding_feature = nn.Linear(feature_dim, d)
        self.finding_logit = nn.Linear(1, d)
        self.finding_embedding = nn.Embedding(n_findings, d)
        self.finding_position = nn.Linear(nf + 2, d)  # where each finding's attention sits: centre and spread
        self.gaze = _mlp(nf + 2, d, d, 0.0)
        self.visual = nn.Linear(feature_dim, d)
        self.visual_position = nn.Linear(nf, d)
        self.type_embedding = nn.Embedding(6, d)  # question, slot, coverage, finding, gaze, visual
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff, cfg.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        layer.self_attn.dropout = 0.0  # dropout on the attention weights cost a third of a CPU step; the
        # feed-forward and head dropouts remain (they are what MC dropout samples)
        self.fusion = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.answer_head = _mlp(d, d, len(ANSWERS), cfg.dropout)
        self.region_head = _mlp(d, d, len(REGION_NAMES), cfg.dropout)
        self.kind_head = _mlp(cfg.text_dim, 2 * d, len(KINDS), cfg.dropout)
        self.ground_query = nn.Linear(d, d)
        self.ground_key = nn.Conv2d(feature_dim, d, 1)
        self.ground_position = nn.Linear(nf, d)
        self.ground_mix = nn.Linear(d, n_findings + 1)  # weights of the 14 attention maps and the gaze density

    def forward(self, batch: dict[str, torch.Tensor]) -> VQAOutput:
        """Args (a dict of tensors, B questions):
            feats ``(B, D, h, w)``, pooled ``(B, C, D)``, logits ``(B, C)``, attention ``(B, C, h, w)``: the
                frozen classifier's outputs (:func:`models.vqa.inputs.backbone_outputs`);
            gaze ``(B, K, 4)`` float, gaze_mask ``(B, K)`` bool, coverage ``(B, 2R)``: the scanpath;
            question ``(B, 384)``: MiniLM embedding; slots ``(B, 3, 384)`` and slot_kind ``(B, 3)`` long (0 = none).
        """
        cfg = self.config
        feats, pooled, flogits, att = batch["feats"], batch["pooled"], batch["logits"], batch["attention"]
        gaze, gmask, cover = batch["gaze"], batch["gaze_mask"].bool(), batch["coverage"]
        b, _, h, w = feats.shape
        use_image = cfg.inputs != "question_only"
        use_gaze = cfg.inputs == "all"
        if not use_image:
            feats, pooled, flogits, att = (torch.zeros_like(t) for t in (feats, pooled, flogits, att))
        if not use_gaze:
            gaze, cover = torch.zeros_like(gaze), torch.zeros_like(cover)
            gmask = torch.zeros_like(gmask)
        dev = feats.device
        te = self.type_embedding.weight

        q = self.question(batch["question"])[:, None] + te[0]
        positions = torch.arange(MAX_SLOTS, device=dev)
        s = self.slot(batch["slots"]) + self.slot_kind(batch["slot_kind"]) + self.slot_position(positions)[None] + te[1]
        c = self.coverage(cover)[:, None] + te[2]
        fi = torch.arange(self.n_findings, device=dev)
        f = (self.finding_feature(pooled) + self.finding_logit(flogits[..., None]) + self.finding_embedding(fi)[None]
             + self.finding_position(attention_position(att, cfg.frequencies))) + te[3]
        gpos = torch.cat([fourier(gaze[..., :2], cfg.frequencies), gaze[..., 2:4]], -1)
        g = self.gaze(gpos) + te[4]
        pooled_grid = F.avg_pool2d(feats, cfg.pool, ceil_mode=True) if cfg.pool > 1 else feats
        ph, pw = pooled_grid.shape[-2:]
        v = self.visual(pooled_grid.flatten(2).transpose(1, 2))
        v = v + self.visual_position(fourier(cell_centres(ph, pw, dev), cfg.frequencies))[None] + te[5]
        tokens = torch.cat([q, s, c, f, g, v], 1)
        def flag(n: int, value: bool) -> torch.Tensor:
            return torch.full((b, n), bool(value), dtype=torch.bool, device=dev)

        keep = torch.cat([flag(1, True), batch["slot_kind"] > 0, flag(1, use_gaze), flag(self.n_findings, use_image), gmask,
                          flag(ph * pw, use_image)], 1)
        out = self.norm(self.fusion(tokens, src_key_padding_mask=~keep))
        state = out[:, 0]

        key = self.ground_key(feats).flatten(2).transpose(1, 2)  # (B, h*w, d)
        key = key + self.ground_position(fourier(cell_centres(h, w, dev), cfg.frequencies))[None]
        score = torch.einsum("bd,bnd->bn", self.ground_query(state), key) / math.sqrt(cfg.d_model)
        mix = self.ground_mix(state)  # (B, C + 1)
        log_att = torch.log(att.flatten(2) + 1e-6)  # (B, C, h*w)
        if not use_image:
            log_att = torch.zeros_like(log_att)
        log_gaze = torch.log(gaze_density(gaze, gmask, h, w).flatten(1))  # (B, h*w)
        if not use_gaze:
            log_gaze = torch.zeros_like(log_gaze)
        score = score + torch.einsum("bc,bcn->bn", mix[:, : self.n_findings], log_att) + mix[:, -1:] * log_gaze
        return VQAOutput(self.answer_head(state), self.region_head(state), self.kind_head(batch["question"]),
                         score.view(b, h, w))


__all__ = ["VQANet", "VQAOutput", "attention_position", "cell_centres", "fourier", "gaze_density"]
