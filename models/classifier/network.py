"""GazeAttentionNet: a small residual CNN with one spatial attention map per finding.

Why this shape: the gaze loss needs spatial maps that *cause* the prediction, not post-hoc saliency.

- A shared attention prior ``s`` (one softmax map over the feature grid) says where the model looks at all;
  it is the map the gaze loss pulls towards the radiologist's fixation heatmap.
- Each finding ``c`` has its own attention ``a_c ∝ s * exp(l_c)``: it can sharpen onto part of the looked-at
  area (a lesion), but reading from a spot the prior ignores (a burned-in marker) has to overcome ``s``.
- Finding ``c``'s logit is read only from ``sum_ij a_c[ij] * F[:, ij]``; there is no global-average branch
  that could bypass the attention.

The encoder is a small ResNet-style stack (3x3 convolutions, batch norm, ReLU) at output stride 8 without
dilation, so each feature cell sees a local neighbourhood (theoretical receptive field 95 px) and attention
can actually exclude a region: 28 x 28 cells at 224 px, 64 x 64 at 512 px. Random init; nothing is
downloaded. Dropout sits on the pooled features so the network can be sampled (MC dropout) at inference.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.classifier.config import ClassifierConfig

OUTPUT_STRIDE = 8


class ClassifierOutput(NamedTuple):
    """What :class:`GazeAttentionNet` returns.

    logits: ``(B, C)`` raw scores (sigmoid -> probability).
    attention: ``(B, C, h, w)`` per-finding spatial softmax over the feature grid (each map sums to 1),
        ``h = w = size / stride`` (8 for our encoder, :data:`~models.classifier.config.BACKBONE_STRIDES`).
    prior: ``(B, h, w)`` shared attention prior (sums to 1), the map the gaze loss supervises.
    image_embedding: ``(B, E)`` L2-normalised image embedding for InfoNCE, or None without the head.
    """

    logits: torch.Tensor
    attention: torch.Tensor
    prior: torch.Tensor
    image_embedding: torch.Tensor | None


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = None
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.skip is None else self.skip(x)), inplace=True)


class Encoder(nn.Module):
    """``(B, 1, S, S)`` image in [0, 1] -> ``(B, 8*width, S/8, S/8)`` features."""

    def __init__(self, width: int):
        super().__init__()
        w = width
        self.stem = nn.Sequential(  # stride 4
            nn.Conv2d(1, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
        )
        self.stages = nn.Sequential(
            BasicBlock(w, 2 * w, stride=2),  # stride 8
            BasicBlock(2 * w, 4 * w),
            BasicBlock(4 * w, 8 * w),
        )
        self.out_channels = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem((x - 0.5) / 0.25))


class GazeAttentionNet(nn.Module):
    """Multi-label classifier with per-finding attention pooling (see module docstring)."""

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config or ClassifierConfig()
        c = self.config.n_findings
        if self.config.backbone == "gazelabel":
            self.encoder = Encoder(self.config.width)
        else:  # a torchvision trunk (models.classifier.backbones); the pooling and heads below are the same
            from models.classifier.backbones import BackboneEncoder

            norm = "imagenet" if self.config.input_norm == "auto" else self.config.input_norm
            self.encoder = BackboneEncoder(self.config.backbone, norm)
        d = self.encoder.out_channels
        self.prior_logits = nn.Conv2d(d, 1, 1)
        self.attention_logits = nn.Conv2d(d, c, 1)
        # One linear classifier per finding over its own pooled feature: weight (C, D), bias (C,).
        self.class_weight = nn.Parameter(torch.randn(c, d) * d**-0.5)
        self.class_bias = nn.Parameter(torch.zeros(c))
        self.image_projection = None
        self.text_projection = None
        if self.config.embed_dim > 0:
            self.image_projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, self.config.embed_dim))
            self.text_projection = nn.Linear(self.config.text_dim, self.config.embed_dim)
            self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), as in CLIP

    def forward(self, image: torch.Tensor, *, mc_dropout: bool = False) -> ClassifierOutput:
        """Args:
            image: ``(B, 1, S, S)`` in [0, 1], S a multiple of the backbone's stride.
            mc_dropout: keep dropout active even in eval mode (Monte-Carlo dropout sampling).
        """
        if image.ndim != 4 or image.shape[1] != 1:
            raise ValueError(f"expected a (B, 1, S, S) image batch, got shape {tuple(image.shape)}")
        stride = self.config.stride
        if image.shape[-1] % stride or image.shape[-2] % stride:
            raise ValueError(f"image sides must be multiples of {stride}, got {tuple(image.shape[-2:])}")
        feats = self.encoder(image)  # (B, D, h, w)
        b, d, h, w = feats.shape
        log_prior = self.prior_logits(feats).flatten(2).log_softmax(-1)  # (B, 1, h*w)
        att = (self.attention_logits(feats).flatten(2) + log_prior).softmax(-1)  # (B, C, h*w), a_c ∝ s exp(l_c)
        pooled = torch.einsum("bcn,bdn->bcd", att, feats.flatten(2))  # (B, C, D)
        pooled = F.dropout(pooled, self.config.dropout, training=self.training or mc_dropout)
        logits = (pooled * self.class_weight).sum(-1) + self.class_bias  # (B, C)
        embedding = None
        if self.image_projection is not None:
            embedding = F.normalize(self.image_projection(feats.mean((2, 3))), dim=-1)
        return ClassifierOutput(logits, att.view(b, -1, h, w), log_prior.exp().view(b, h, w), embedding)

    def embed_text(self, text_embedding: torch.Tensor) -> torch.Tensor:
        """``(B, text_dim)`` frozen sentence embedding -> ``(B, E)`` unit vectors in the shared space."""
        if self.text_projection is None:
            raise ValueError("this classifier was built without a contrastive head (embed_dim=0)")
        return F.normalize(self.text_projection(text_embedding), dim=-1)


def attention_to_model_space(attention: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, C, h, w)`` feature-grid attention -> ``(B, C, size, size)`` maps in [0, 1] (each divided by its
    maximum), bilinear, so they overlay the model input exactly."""
    up = F.interpolate(attention, size=(size, size), mode="bilinear", align_corners=False)
    return up / up.flatten(2).amax(-1).clamp_min(1e-12)[..., None, None]


__all__ = ["ClassifierConfig", "ClassifierOutput", "GazeAttentionNet", "attention_to_model_space", "OUTPUT_STRIDE"]
