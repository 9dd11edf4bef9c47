"""Train the scanpath network on cases: every reader's scanpath of an image is a separate target.

Data path: ``case.image.path`` -> :func:`models.datasets.torch_data.prepare_image` (letterbox to ``size``) ->
``(1, S, S)``; each reader's fixations (``case.fixations`` and every ``case.readers`` entry) are clipped to the
image, mapped through the same letterbox, divided by ``size`` (normalised model coordinates) and truncated
to ``slots``; durations become log-seconds (floored at 10 ms: some trackers report zero).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from models.datasets.torch_data import prepare_image
from models.gaze import clip_fixations
from models.imaging import Letterbox, read_image
from models.optim import one_cycle
from models.scanpath.losses import scanpath_loss
from models.scanpath.network import ScanpathConfig, ScanpathNet
from models.schema import Case, Fixation

CHECKPOINT_KIND = "scanpath"
MIN_DURATION_S = 0.01
PRIMARY_READER = "reader_1"


def reader_paths(case: Case) -> dict[str, list[Fixation]]:
    """Every human scanpath of a case: ``case.fixations`` (as ``reader_1``) then ``case.readers``; empty
    paths are left out."""
    paths = {PRIMARY_READER: case.fixations} if case.fixations else {}
    paths.update({name: fx for name, fx in case.readers.items() if fx and name not in paths})
    return paths


def image_size_of(case: Case) -> tuple[int, int]:
    """``(width, height)`` in original pixels: from the case record, else read from its image file."""
    if case.image.width > 0 and case.image.height > 0:
        return case.image.width, case.image.height
    if not case.image.path:
        raise ValueError(f"case {case.id}: image size unknown and no image file to read it from")
    height, width = read_image(case.image.path).array.shape
    return width, height


def encode_path(path: Sequence[Fixation], lb: Letterbox, slots: int) -> tuple[np.ndarray, int]:
    """Original-pixel fixations -> ``(slots, 3)`` float32 (x/size, y/size, log-duration) and the length."""
    path = clip_fixations(path, lb.width, lb.height, drop=True)[:slots]
    out = np.zeros((slots, 3), dtype=np.float32)
    out[:, 2] = math.log(0.3)
    if path:
        xy = lb.to_model(np.array([[f.x, f.y] for f in path])) / lb.size
        out[: len(path), :2] = xy
        out[: len(path), 2] = np.log(np.maximum([f.duration for f in path], MIN_DURATION_S))
    return out, len(path)


class ScanpathDataset(Dataset):
    """One item per image with all its readers' scanpaths as targets.

    Item keys: ``image`` (1, S, S) float; ``targets`` (R, K, 3) x, y in 0..1 model coordinates and
    log-duration, one row per reader (R = ``max_readers``, missing readers padded); ``lengths`` (R,) long,
    0 for padding rows; ``text`` (text_dim,) when ``text_embeddings`` are given.

    Args:
        cases: cases with readable images; readers with no fixation inside the image are skipped, and so
            are images left without any reader.
        size, slots: model input side and number of fixation slots.
        text_embeddings: ``(len(cases), text_dim)`` report embeddings (frozen encoder), or None.
        augment: small random intensity jitter (geometry untouched so gaze stays aligned).
    """

    def __init__(self, cases: Sequence[Case], size: int, slots: int, *, text_embeddings: torch.Tensor | None = None,
                 augment: bool = False):
        self.items: list[tuple[torch.Tensor, np.ndarray, np.ndarray, int]] = []
        self.text = text_embeddings
        self.augment = augment
        encoded = []
        for ci, case in enumerate(cases):
            image, lb = prepare_image(read_image(case.image.path).array, size)
            rows = [encode_path(path, lb, slots) for path in reader_paths(case).values()]
            rows = [r for r in rows if r[1]]
            if rows:
                encoded.append((image, rows, ci))
        if not encoded:
            raise ValueError("no case has a scanpath with fixations inside its image; nothing to train on")
        self.max_readers = max(len(rows) for _, rows, _ in encoded)
        for image, rows, ci in encoded:
            targets = np.zeros((self.max_readers, slots, 3), dtype=np.float32)
            targets[:, :, 2] = math.log(0.3)
            lengths = np.zeros(self.max_readers, dtype=np.int64)
            for r, (t, n) in enumerate(rows):
                targets[r], lengths[r] = t, n
            self.items.append((image, targets, lengths, ci))
        self.n_paths = int(sum((it[2] > 0).sum() for it in self.items))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        image, targets, lengths, ci = self.items[i]
        if self.augment:
            image = (image * torch.empty(1).uniform_(0.85, 1.15) + torch.empty(1).uniform_(-0.05, 0.05)).clamp(0, 1)
        item = {"image": image, "targets": torch.from_numpy(targets), "lengths": torch.from_numpy(lengths)}
        if self.text is not None:
            item["text"] = self.text[ci]
        return item


def report_embeddings(cases: Sequence[Case], device: str = "cpu") -> torch.Tensor:
    """``(N, 384)`` frozen MiniLM embeddings of the cases' report text (zeros for cases without a report)."""
    from models.text_encoder import EMBEDDING_DIM, encode_texts

    texts = [case.report.text if case.report else "" for case in cases]
    emb = torch.zeros((len(cases), EMBEDDING_DIM))
    have = [i for i, t in enumerate(texts) if t.strip()]
    if have:
        emb[have] = encode_texts([texts[i] for i in have], device=device).cpu()
    return emb


@dataclass
class TrainResult:
    checkpoint: Path
    epochs: int
    n_images: int
    n_paths: int
    final_loss: float
    val_loss: float | None
    seconds: float


def _loss_of(model, batch: dict, device, l1_weight: float, parallel: bool) -> tuple[dict, int]:
    """Loss of a batch of images, every real reader row a target; returns the losses and the row count."""
    image = batch["image"].to(device)
    b, r, k, _ = batch["targets"].shape
    lengths = batch["lengths"].reshape(-1)
    keep = torch.nonzero(lengths > 0).squeeze(1)
    targets = batch["targets"].reshape(b * r, k, 3)[keep].to(device)
    image_index = (keep // r).to(device)
    text = batch["text"].to(device) if "text" in batch else None
    out = model(image, targets, text, image_index)
    losses = scanpath_loss(out, targets, lengths[keep].to(device), l1_weight=l1_weight, stop_all_slots=parallel)
    return losses, len(keep)


def train_scanpath(train_cases: Sequence[Case], out_path: str | Path, *, cfg: ScanpathConfig | None = None,
                   val_cases: Sequence[Case] = (), epochs: int = 30, batch_size: int = 8, lr: float = 1e-3,
                   weight_decay: float = 1e-4, l1_weight: float = 0.0, seed: int = 0, device: str = "auto",
                   text: bool = False, dataset_info: dict | None = None,
                   log: Callable[[str], None] = print) -> TrainResult:
    """Fit a :class:`ScanpathNet` and save a ``scanpath`` checkpoint (atomic; rank 0 under torchrun).

    Args:
        train_cases, val_cases: cases with images and human fixations (original pixels).
        out_path: checkpoint file.
        cfg: network configuration (``text_dim`` is set from ``text``).
        epochs, lr, weight_decay: AdamW with a one-cycle schedule.
        batch_size: images per step (each brings all its readers' paths).
        l1_weight: extra L1 on the x, y means (0 = pure Gaussian NLL).
        text: condition on the report through the frozen MiniLM encoder.
        dataset_info: stored in the checkpoint (dataset name, synthetic flag ...).
    """
    from models.distributed import (all_reduce_mean, cleanup, init_distributed, make_sampler, reduce_metrics, set_epoch,
                                    unwrap_model, wrap_model)
    from models.runtime import save_checkpoint, seed_everything

    cfg = cfg or ScanpathConfig()
    if text:
        from models.text_encoder import EMBEDDING_DIM

        cfg.text_dim = EMBEDDING_DIM
    ctx = init_distributed(device)
    seed_everything(seed + ctx.rank)
    t0 = time.time()
    train_text = report_embeddings(train_cases) if text else None
    train_ds = ScanpathDataset(train_cases, cfg.size, cfg.slots, text_embeddings=train_text, augment=True)
    val_ds = None
    if val_cases:
        val_ds = ScanpathDataset(val_cases, cfg.size, cfg.slots, text_embeddings=report_embeddings(val_cases) if text else None)
    sampler = make_sampler(train_ds, ctx, shuffle=True, seed=seed)
    loader = DataLoader(train_ds, batch_size=batch_size, shuffle=sampler is None, sampler=sampler, drop_last=False)

    torch.manual_seed(seed)  # identical initial weights on every rank
    model = ScanpathNet(cfg).to(ctx.device)
    torch.manual_seed(seed + ctx.rank)
    net = wrap_model(model, ctx)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * len(loader))
    sched = one_cycle(opt, lr, steps, pct_start=0.1)
    parallel = cfg.decoding == "parallel"
    if ctx.is_main:
        log(f"scanpath: {len(train_cases)} images, {train_ds.n_paths} reader paths, {cfg.slots} slots, {cfg.size}px, "
            f"{cfg.decoding}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, device {ctx.device}")

    train_loss = float("nan")
    val_loss = None
    for epoch in range(epochs):
        set_epoch(sampler, epoch)
        net.train()
        sums, count = {}, 0
        for batch in loader:
            losses, n = _loss_of(net, batch, ctx.device, l1_weight, parallel)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach()) * n
            count += n
        metrics = reduce_metrics(sums, count, ctx)
        train_loss = metrics["loss"]
        msg = f"epoch {epoch + 1}/{epochs} loss {train_loss:.3f} (xy {metrics['nll_xy']:.3f} dur {metrics['nll_duration']:.3f} stop {metrics['stop']:.3f})"
        if val_ds is not None and (epoch == epochs - 1 or (epoch + 1) % 5 == 0):
            val_loss = all_reduce_mean(evaluate_loss(model, val_ds, ctx.device, batch_size, l1_weight), ctx)
            msg += f" val {val_loss:.3f}"
        if ctx.is_main:
            log(msg)

    result = TrainResult(Path(out_path), epochs, len(train_ds), train_ds.n_paths, train_loss, val_loss, time.time() - t0)
    if ctx.is_main:
        save_checkpoint(out_path, CHECKPOINT_KIND, cfg.to_dict(), unwrap_model(net).state_dict(),
                        dataset=dataset_info or {}, training={"epochs": epochs, "batch_size": batch_size, "lr": lr,
                                                             "l1_weight": l1_weight, "seed": seed, "text": text,
                                                             "n_images": len(train_cases), "n_paths": train_ds.n_paths,
                                                             "final_loss": train_loss, "val_loss": val_loss,
                                                             "seconds": result.seconds})
        log(f"saved {out_path} ({result.seconds:.0f} s)")
    cleanup(ctx)
    return result


@torch.no_grad()
def evaluate_loss(model: ScanpathNet, dataset: ScanpathDataset, device, batch_size: int = 32, l1_weight: float = 0.0) -> float:
    """Mean loss over a dataset in eval mode (teacher forcing)."""
    model.eval()
    total, count = 0.0, 0
    for batch in DataLoader(dataset, batch_size=batch_size):
        losses, n = _loss_of(model, batch, device, l1_weight, model.cfg.decoding == "parallel")
        total += float(losses["loss"]) * n
        count += n
    model.train()
    return total / max(count, 1)
