"""The one training loop every model family runs: optimiser, schedule, clipping, AMP, DDP, progress.

A family brings its model(s), a data loader and a *step function* ``step(batch) -> (loss, parts)`` that
computes the loss of one batch (``parts``: named float terms to log, weighted by the batch size). The loop
does the rest the same way for all of them:

- AdamW over the given parameters with :func:`models.optim.one_cycle` (``warmup`` is its warm-up fraction);
- gradient-norm clipping at ``grad_clip``;
- bf16 autocast on CUDA when ``amp`` (a no-op on CPU);
- under ``torchrun``: the caller wraps its modules with :func:`models.distributed.wrap_model` and builds its
  loader with :func:`models.distributed.make_sampler`; the loop sets the sampler's epoch and averages the
  logged terms over ranks, so every rank logs and returns the same history;
- progress as one ``log`` line per epoch (rank 0), optional tqdm bars;
- an optional ``validate()`` after each epoch (or only the last ones: ``validate_every``) whose numbers join
  the epoch's history entry.

Checkpoints are the family's business (rank 0 writes one after :func:`fit` returns).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence


@dataclass
class LoopConfig:
    """How one stage trains. Families keep their own defaults (documented in their configs)."""

    epochs: int
    lr: float
    weight_decay: float = 1e-4
    warmup: float = 0.1  # fraction of the steps spent warming up (one-cycle pct_start)
    grad_clip: float = 1.0
    max_steps: int | None = None  # stop after this many optimiser steps (tests, smoke runs)
    amp: bool = True  # bf16 autocast on CUDA
    validate_every: int = 1  # run validate() every N epochs and after the last


def loader_options(device, workers: int = 0) -> dict:
    """DataLoader keywords of a training loader: ``workers`` decoding processes, kept alive between epochs
    (each keeps its own in-memory cache of letterboxed images, so a 2-3k px DICOM is decoded once per
    worker, not once per epoch), and pinned host memory when the batches go to a CUDA device."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    options = {"num_workers": workers, "pin_memory": getattr(device, "type", str(device)) == "cuda"}
    if workers > 0:
        options["persistent_workers"] = True
    return options


def autocast(device, enabled: bool = True):
    """bf16 autocast on CUDA devices; a null context elsewhere."""
    import torch

    if enabled and getattr(device, "type", str(device)) == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit(params: Sequence, loader: Iterable, step: Callable, cfg: LoopConfig, ctx, *, modules: Sequence = (),
        steps_per_epoch: int | None = None, sampler=None, validate: Callable[[], dict] | None = None,
        log: Callable[[str], None] | None = print, name: str = "train", progress: bool = False) -> list[dict]:
    """Train for ``cfg.epochs`` epochs; returns one history dict per epoch (mean of each logged term,
    ``epoch``, ``seconds`` and the validation numbers).

    Args:
        params: the trainable parameters (the optimiser's).
        loader: an iterable of batches, re-iterated each epoch (a DataLoader, or a callable that returns a
            fresh iterator when called with the epoch).
        step: ``step(batch) -> (loss tensor, {"term": float, ...}, n)``; ``n`` is the batch's weight.
        modules: put in train mode each epoch (validate() may switch them to eval; they are switched back).
        steps_per_epoch: the loader's length when it has none.
        ctx: the :class:`~models.distributed.DistContext`.
    """
    import torch

    from models.distributed import reduce_metrics, set_epoch
    from models.optim import one_cycle

    params = [p for p in params if p.requires_grad]
    per_epoch = steps_per_epoch if steps_per_epoch is not None else len(loader)
    total = max(1, cfg.epochs * per_epoch)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = one_cycle(optimiser, cfg.lr, total, pct_start=cfg.warmup)
    history, done, t0 = [], 0, time.time()
    for epoch in range(cfg.epochs):
        set_epoch(sampler, epoch)
        for module in modules:
            module.train()
        sums, count = {}, 0.0
        batches = loader(epoch) if callable(loader) else loader
        if progress and ctx.is_main:
            from tqdm.auto import tqdm

            batches = tqdm(batches, total=per_epoch, desc=f"{name} {epoch + 1}/{cfg.epochs}", leave=False)
        for batch in batches:
            if done >= total:
                break
            with autocast(ctx.device, cfg.amp):
                loss, parts, n = step(batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimiser.step()
            schedule.step()
            done += 1
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + float(value) * n
            count += n
        entry = reduce_metrics(sums, count, ctx)  # every rank calls it (a collective under torchrun)
        entry["epoch"] = epoch + 1
        last = epoch == cfg.epochs - 1 or done >= total
        if validate is not None and (last or (epoch + 1) % max(cfg.validate_every, 1) == 0):
            entry.update(validate())
        entry["seconds"] = time.time() - t0
        history.append(entry)
        if log is not None and ctx.is_main:
            terms = " ".join(f"{k} {v:.3f}" for k, v in entry.items() if k not in ("epoch", "seconds")
                             and isinstance(v, float) and math.isfinite(v))
            log(f"[{name}] epoch {epoch + 1}/{cfg.epochs} {terms} {entry['seconds']:.0f}s")
        if done >= total:
            break
    return history


__all__ = ["LoopConfig", "autocast", "fit", "loader_options"]
