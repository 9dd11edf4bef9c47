"""The learning-rate schedule every family trains with: PyTorch's one-cycle, safe for any number of steps.

``OneCycleLR`` divides by the length of its warm-up phase, ``pct_start * total_steps - 1`` steps, which is
zero when ``pct_start * total_steps == 1`` (10 steps at ``pct_start=0.1``: a ``ZeroDivisionError`` in the
middle of a run). :func:`one_cycle` keeps both phases at least 1.5 steps long, and uses a constant rate for
runs too short to have two phases.
"""

from __future__ import annotations


def one_cycle(optimizer, max_lr: float, total_steps: int, pct_start: float = 0.1):
    """A ``OneCycleLR`` over ``total_steps`` (>= 1) whose warm-up fraction is nudged off the degenerate
    values; a constant ``max_lr`` for fewer than 4 steps."""
    import torch

    total_steps = max(1, int(total_steps))
    if total_steps < 4:
        for group in optimizer.param_groups:
            group["lr"] = max_lr
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    low, high = 1.5 / total_steps, 1.0 - 1.5 / total_steps
    pct = min(max(pct_start, low), high)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct)
