"""Data-parallel training helpers around ``torch.distributed`` for every GazeLabel trainer.

Launch with ``torchrun --nproc_per_node N -m models.cli train ...``: torchrun sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and picks the ``nccl``
backend on GPUs and ``gloo`` on CPU. Without those variables everything degrades to a single process, so
the same trainer code runs both ways.

Typical use::

    ctx = init_distributed("auto")
    sampler = make_sampler(dataset, ctx, shuffle=True, seed=seed)
    model = wrap_model(model.to(ctx.device), ctx)
    for epoch in ...:
        set_epoch(sampler, epoch)
        ...
        loss = all_reduce_mean(loss_sum, ctx)      # same value on every rank
    if ctx.is_main: save_checkpoint(...)          # rank 0 only
    cleanup(ctx)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job. ``world_size == 1`` means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: Any = "cpu"  # torch.device
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device: str = "auto", timeout_s: float = 300.0) -> DistContext:
    """Join the torchrun process group if there is one; otherwise return a single-process context.

    Args:
        device: "auto", "cpu" or "cuda"; with CUDA each rank takes GPU ``LOCAL_RANK``.
        timeout_s: collective timeout (a crashed peer fails the job instead of hanging it).
    """
    import datetime

    import torch
    import torch.distributed as dist

    from models.runtime import resolve_device

    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(dev)
    if world_size <= 1:
        return DistContext(0, 1, 0, dev, None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(rank, world_size, local_rank, dev, backend)


def cleanup(ctx: DistContext) -> None:
    """Leave the process group (call once at the end of training, on every rank)."""
    import torch.distributed as dist

    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    import torch.distributed as dist

    if ctx.distributed:
        dist.barrier()


def make_sampler(dataset, ctx: DistContext, *, shuffle: bool, seed: int = 0, drop_last: bool = False):
    """A ``DistributedSampler`` giving each rank its shard, or None for one process (then let the
    DataLoader shuffle). Call :func:`set_epoch` every epoch so shards reshuffle."""
    if not ctx.distributed:
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle,
                              seed=seed, drop_last=drop_last)


def set_epoch(sampler, epoch: int) -> None:
    if sampler is not None and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def wrap_model(model, ctx: DistContext, *, find_unused_parameters: bool = True):
    """``DistributedDataParallel`` around ``model`` (already on ``ctx.device``), or the model itself.

    ``find_unused_parameters`` defaults to True because optional heads (e.g. a contrastive projection on a
    batch without reports) may not receive gradients every step."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if getattr(ctx.device, "type", "cpu") == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unwrap_model(model):
    """The module inside DDP (what to save)."""
    return getattr(model, "module", model)


def all_reduce_sum(value, ctx: DistContext):
    """Sum a float or tensor over ranks; returns the same type (tensor on its own device)."""
    import torch
    import torch.distributed as dist

    is_tensor = isinstance(value, torch.Tensor)
    t = value.detach().clone() if is_tensor else torch.tensor(float(value), dtype=torch.float64)
    if ctx.distributed:
        if ctx.backend == "nccl":
            t = t.to(ctx.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t if is_tensor else float(t.item())


def all_reduce_mean(value, ctx: DistContext):
    """Mean of a float or tensor over ranks (equal weight per rank)."""
    total = all_reduce_sum(value, ctx)
    return total / ctx.world_size


def reduce_metrics(sums: dict[str, float], count: float, ctx: DistContext) -> dict[str, float]:
    """Per-sample means over all ranks from each rank's metric sums and sample count (exact weighting)."""
    import torch
    import torch.distributed as dist

    keys = sorted(sums)
    t = torch.tensor([float(sums[k]) for k in keys] + [float(count)], dtype=torch.float64)
    if ctx.distributed:
        if ctx.backend == "nccl":
            t = t.to(ctx.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t = t.cpu()
    n = max(float(t[-1]), 1e-12)
    return {k: float(t[i]) / n for i, k in enumerate(keys)}


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` for one process."""
    import torch.distributed as dist

    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def main_print(ctx: DistContext, *args, **kwargs) -> None:
    """``print`` on rank 0 only, so logs are not duplicated N times."""
    if ctx.is_main:
        print(*args, **kwargs)


__all__ = [
    "DistContext",
    "init_distributed",
    "cleanup",
    "barrier",
    "make_sampler",
    "set_epoch",
    "wrap_model",
    "unwrap_model",
    "all_reduce_sum",
    "all_reduce_mean",
    "reduce_metrics",
    "gather_objects",
    "main_print",
]
