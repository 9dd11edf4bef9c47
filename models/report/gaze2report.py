"""Path (b), Gaze2Report: image + scanpath -> graph-fused tokens -> a prefix in the LM's embedding space.

    image (B, 1, S, S) --CNN--> feature grid (B, D, G, G) --> P = G*G patch nodes
    fixations (B, F, 3) x, y (model px), duration (s)
        --> feature at the fixation (bilinear) + duration MLP + order embedding + position --> F fixation nodes
    nodes --GazeGraph (grid, scanpath chain, fixation-patch edges)--> K learned queries attend over the nodes
        --> Linear --> prefix (B, K, H_lm)

``use_gaze=False`` (the ablation) drops the fixation nodes and edges: the prefix then sees the image only.
An auxiliary 14-way finding head on the pooled nodes (multi-label BCE) speeds up learning from few images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.report.graph import GazeGraph, build_adjacency
from models.vocab import FINDINGS


@dataclass
class PrefixConfig:
    image_size: int = 128
    dim: int = 96  # node width
    grid: int = 8  # feature grid side (image_size / 16)
    prefix_tokens: int = 8
    graph_layers: int = 2
    max_fixations: int = 64
    radius_fraction: float = 0.125  # fixation-patch edge radius, fraction of image_size
    lm_hidden: int = 128
    dropout: float = 0.1
    backbone: str = "gazelabel"  # our small CNN, or a standard backbone (models.classifier.backbones)
    input_norm: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)


class ImageEncoder(nn.Module):
    """Small CNN: ``(B, 1, S, S)`` in [0, 1] -> ``(B, D, S/16, S/16)``."""

    def __init__(self, dim: int):
        super().__init__()
        chans = [1, 24, 48, 72, dim]
        layers = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.GELU(),
                       nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.GELU()]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image * 2.0 - 1.0)


class FixationEmbedding(nn.Module):
    """Fixation node features: grid features pooled at (x, y), plus duration, order and position."""

    def __init__(self, dim: int, max_fixations: int):
        super().__init__()
        self.order = nn.Embedding(max_fixations, dim)
        self.duration = nn.Sequential(nn.Linear(1, dim), nn.GELU(), nn.Linear(dim, dim))
        self.position = nn.Linear(2, dim)
        self.kind = nn.Parameter(torch.zeros(dim))  # tells fixation nodes from patch nodes

    def forward(self, features: torch.Tensor, fixations: torch.Tensor, size: int) -> torch.Tensor:
        """``features`` ``(B, D, G, G)``, ``fixations`` ``(B, F, 3)`` -> ``(B, F, D)``."""
        xy = fixations[..., :2] / size  # [0, 1]
        grid = (xy * 2.0 - 1.0)[:, :, None, :]  # (B, F, 1, 2) for grid_sample, align_corners=False
        pooled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
        pooled = pooled[..., 0].transpose(1, 2)  # (B, F, D)
        order = torch.arange(fixations.shape[1], device=fixations.device).clamp(max=self.order.num_embeddings - 1)
        dur = torch.log1p(fixations[..., 2:3].clamp(min=0.0) * 10.0)
        return pooled + self.order(order)[None] + self.duration(dur) + self.position(xy) + self.kind


class Gaze2ReportPrefix(nn.Module):
    """Everything in path (b) before the LM (see module docstring)."""

    def __init__(self, config: PrefixConfig):
        super().__init__()
        self.config = c = config
        if c.backbone == "gazelabel":
            self.encoder = ImageEncoder(c.dim)
        else:  # a torchvision trunk, then a 1x1 projection to the node width (grids pooled to c.grid below)
            from models.classifier.backbones import BackboneEncoder

            trunk = BackboneEncoder(c.backbone, "imagenet" if c.input_norm == "auto" else c.input_norm)
            self.encoder = nn.Sequential(trunk, nn.Conv2d(trunk.out_channels, c.dim, 1))
        self.patch_pos = nn.Parameter(torch.zeros(c.grid * c.grid, c.dim))
        nn.init.normal_(self.patch_pos, std=0.02)
        self.fixation = FixationEmbedding(c.dim, c.max_fixations)
        self.graph = GazeGraph(c.dim, c.graph_layers, c.dropout)
        self.queries = nn.Parameter(torch.randn(c.prefix_tokens, c.dim) * 0.02)
        self.readout = nn.MultiheadAttention(c.dim, num_heads=4, dropout=c.dropout, batch_first=True)
        self.project = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.lm_hidden))
        self.aux_head = nn.Linear(c.dim, len(FINDINGS))

    def forward(self, image: torch.Tensor, fixations: torch.Tensor, n_fixations: torch.Tensor, *,
                use_gaze: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` ``(B, 1, S, S)``, ``fixations`` ``(B, F, 3)`` (x, y model px; duration s),
        ``n_fixations`` ``(B,)`` -> prefix ``(B, K, H_lm)`` and auxiliary finding logits ``(B, 14)``."""
        c = self.config
        feats = self.encoder(image)
        if feats.shape[-1] != c.grid:
            feats = F.adaptive_avg_pool2d(feats, c.grid)
        b = image.shape[0]
        patches = feats.flatten(2).transpose(1, 2) + self.patch_pos  # (B, P, D)
        if use_gaze and fixations.shape[1] > 0:
            fixations = fixations[:, : c.max_fixations]
            f = fixations.shape[1]
            fix_mask = torch.arange(f, device=image.device)[None] < n_fixations[:, None]
            nodes = torch.cat([patches, self.fixation(feats, fixations, c.image_size)], dim=1)
        else:
            fixations = image.new_zeros(b, 0, 3)
            fix_mask = torch.zeros(b, 0, dtype=torch.bool, device=image.device)
            nodes = patches
        node_mask = torch.cat([torch.ones(b, patches.shape[1], dtype=torch.bool, device=image.device), fix_mask], 1)
        adj = build_adjacency(fixations[..., :2], fix_mask, c.grid, c.image_size, c.radius_fraction * c.image_size)
        h = self.graph(nodes, adj, node_mask)
        q = self.queries[None].expand(b, -1, -1)
        tokens, _ = self.readout(q, h, h, key_padding_mask=~node_mask)
        pooled = (h * node_mask[..., None]).sum(1) / node_mask.sum(1, keepdim=True)
        return self.project(tokens), self.aux_head(pooled)
