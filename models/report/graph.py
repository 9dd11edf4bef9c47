"""A relational graph network in plain torch over image-patch nodes and fixation nodes.

Nodes (per image): ``P = G*G`` patches of the encoder's feature grid, then up to ``F`` fixations.
Edge types (dense adjacency ``(B, R, N, N)``, ``N = P + F``, row = receiver):
    0 patch grid: 4-neighbours on the G x G grid;
    1 scanpath forward: fixation i -> i+1 (time order);
    2 scanpath backward: fixation i+1 -> i;
    3 fixation <-> nearby patch: patches whose centre lies within ``radius`` (model px) of the fixation,
      both directions.
Dense adjacency is fine at this size (N <= 64 + 64 nodes) and keeps the code free of scatter ops.
"""

from __future__ import annotations

import torch
from torch import nn

EDGE_TYPES = ("patch_grid", "scanpath_forward", "scanpath_backward", "fixation_patch")


def patch_centres(grid: int, size: int) -> torch.Tensor:
    """``(G*G, 2)`` centres (x, y) of the grid cells in model pixels, row-major."""
    step = size / grid
    c = (torch.arange(grid, dtype=torch.float32) + 0.5) * step
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def build_adjacency(fix_xy: torch.Tensor, fix_mask: torch.Tensor, grid: int, size: int, radius: float) -> torch.Tensor:
    """Adjacency ``(B, 4, N, N)`` for fixations ``fix_xy`` ``(B, F, 2)`` (model px) with validity
    ``fix_mask`` ``(B, F)`` (bool); see the module docstring for the edge types."""
    b, f, _ = fix_xy.shape
    p = grid * grid
    n = p + f
    dev = fix_xy.device
    adj = torch.zeros(b, len(EDGE_TYPES), n, n, device=dev)
    # 0: grid neighbours (same for every image).
    idx = torch.arange(p, device=dev).reshape(grid, grid)
    for a, c in ((idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])):
        adj[:, 0, a.reshape(-1), c.reshape(-1)] = 1.0
        adj[:, 0, c.reshape(-1), a.reshape(-1)] = 1.0
    if f == 0:
        return adj
    valid = fix_mask.float()
    # 1/2: temporal chain between consecutive valid fixations.
    if f > 1:
        link = valid[:, :-1] * valid[:, 1:]  # (B, F-1)
        src = torch.arange(f - 1, device=dev) + p
        dst = src + 1
        adj[:, 1, dst, src] = link
        adj[:, 2, src, dst] = link
    # 3: fixation <-> patches within radius.
    centres = patch_centres(grid, size).to(dev)  # (P, 2)
    near = (torch.cdist(fix_xy.float(), centres[None].expand(b, -1, -1)) <= radius).float()  # (B, F, P)
    near = near * valid[:, :, None]
    adj[:, 3, p:, :p] = near
    adj[:, 3, :p, p:] = near.transpose(1, 2)
    return adj


class RelationalGraphLayer(nn.Module):
    """``h_i <- h_i + MLP([h_i, sum_r mean_{j in N_r(i)} W_r h_j])`` with LayerNorm; one weight per edge type."""

    def __init__(self, dim: int, n_relations: int = len(EDGE_TYPES), dropout: float = 0.1):
        super().__init__()
        self.relations = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(n_relations))
        self.update = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """``h`` ``(B, N, D)``, ``adj`` ``(B, R, N, N)`` -> ``(B, N, D)``."""
        deg = adj.sum(-1, keepdim=True).clamp(min=1.0)  # mean aggregation per relation
        msg = sum(torch.bmm(adj[:, r] / deg[:, r], w(h)) for r, w in enumerate(self.relations))
        return self.norm(h + self.update(torch.cat([h, msg], dim=-1)))


class GazeGraph(nn.Module):
    """A stack of :class:`RelationalGraphLayer`; node features in, node features out."""

    def __init__(self, dim: int, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.layers = nn.ModuleList(RelationalGraphLayer(dim, dropout=dropout) for _ in range(layers))

    def forward(self, h: torch.Tensor, adj: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """``h`` ``(B, N, D)``, ``adj`` ``(B, R, N, N)``, ``node_mask`` ``(B, N)`` bool -> ``(B, N, D)``
        (absent nodes are zeroed after every layer so they never send messages)."""
        m = node_mask[..., None].float()
        h = h * m
        for layer in self.layers:
            h = layer(h, adj) * m
        return h
