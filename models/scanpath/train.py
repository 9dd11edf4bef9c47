"""Train the scanpath network on cases: every reader's scanpath of an image is a separate target.

Data path: ``case.image.path`` -> :func:`models.preprocess.prepare_image` (letterbox to ``size``) ->
``(1, S, S)``; each reader's fixations (``case.fixations`` and every ``case.readers`` entry) are clipped to the
image, mapped through the same letterbox, divided by ``size`` (normalised model coordinates) and truncated
to ``slots``; durations become log-seconds (floored at 10 ms: some trackers report zero).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from models.checkpoint import save_checkpoint
from models.distributed import all_reduce_mean, cleanup, init_distributed, make_sampler, unwrap_model, wrap_model
from models.train_result import TrainResult
from models.gaze import clip_fixations
from models.imaging import Letterbox, read_image
from models.preprocess import prepare_image
from models.runtime import seed_everything
from models.scanpath.config import ScanpathConfig, ScanpathTrainConfig
from models.scanpath.losses import scanpath_loss
from models.scanpath.network import ScanpathNet
from models.scanpath.paths import reader_paths
from models.schema import Case, Fixation
from models.training import LoopConfig, fit, loader_options

MIN_DURATION_S = 0.01


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


def usable_cases(cases: Sequence[Case], what: str, where: str) -> list[Case]:
    """The cases that have an image file and fixations; a clear error when there are none."""
    gazed = [c for c in cases if reader_paths(c)]
    usable = [c for c in gazed if c.image.path and Path(c.image.path).is_file()]
    if not usable and what == "training":
        raise ValueError(f"{where}: none of the {len(gazed)} {what} cases with fixations has an image file "
                         f"(REFLACX and EGD-CXR ship gaze only: pass --images <MIMIC-CXR or MIMIC-CXR-JPG root>)")
    return usable


def train_scanpath(train_cases: Sequence[Case], out_path: str | Path, cfg: ScanpathConfig | None = None,
                   tcfg: ScanpathTrainConfig | None = None, *, val_cases: Sequence[Case] = (),
                   dataset_info: dict | None = None, log: Callable[[str], None] | None = print) -> dict:
    """Fit a :class:`ScanpathNet` and save a ``scanpath`` checkpoint (atomic; rank 0 under torchrun).

    Args:
        train_cases, val_cases: cases with images and human fixations (original pixels).
        out_path: checkpoint file.
        cfg: network configuration (``text_dim`` is set from ``tcfg.text``).
        tcfg: optimisation (AdamW with a one-cycle schedule, in :func:`models.training.fit`); batches are
            images, each bringing all its readers' paths.
        dataset_info: ``{"name", "synthetic"}``, stored in the checkpoint's info.

    Returns:
        The checkpoint's metrics (``train_loss``, ``val_loss`` ...) and ``history``.
    """
    cfg, tcfg = cfg or ScanpathConfig(), tcfg or ScanpathTrainConfig()
    if tcfg.text:
        from models.text_encoder import EMBEDDING_DIM

        cfg.text_dim = EMBEDDING_DIM
    ctx = init_distributed(tcfg.device)
    say = log if (log is not None and ctx.is_main) else (lambda message: None)
    seed_everything(tcfg.seed + ctx.rank)
    t0 = time.time()
    train_ds = ScanpathDataset(train_cases, cfg.size, cfg.slots, text_embeddings=report_embeddings(train_cases) if tcfg.text else None,
                               augment=True)
    val_ds = None
    if val_cases:
        val_ds = ScanpathDataset(val_cases, cfg.size, cfg.slots,
                                 text_embeddings=report_embeddings(val_cases) if tcfg.text else None)
    sampler = make_sampler(train_ds, ctx, shuffle=True, seed=tcfg.seed)
    loader = DataLoader(train_ds, batch_size=tcfg.batch_size, shuffle=sampler is None, sampler=sampler, drop_last=False,
                        **loader_options(ctx.device, tcfg.workers))

    torch.manual_seed(tcfg.seed)  # identical initial weights on every rank
    from models.classifier.backbones import training_weights

    state, _, norm = training_weights(tcfg.weights, cfg.backbone, cfg.input_norm)  # the file decides the scaling
    cfg = replace(cfg, input_norm=norm)
    model = ScanpathNet(cfg)
    if state is not None:
        model.encoder.cnn.body.load_state_dict(state, strict=True)
    model = model.to(ctx.device)
    torch.manual_seed(tcfg.seed + ctx.rank)
    net = wrap_model(model, ctx)
    parallel = cfg.decoding == "parallel"
    say(f"scanpath: {len(train_cases)} images, {train_ds.n_paths} reader paths, {cfg.slots} slots, {cfg.size}px, "
        f"{cfg.decoding}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, device {ctx.device}")

    def step(batch):
        losses, n = _loss_of(net, batch, ctx.device, tcfg.l1_weight, parallel)
        return losses["loss"], {k: float(v.detach()) for k, v in losses.items()}, n

    def validate() -> dict:
        return {"val_loss": all_reduce_mean(evaluate_loss(model, val_ds, ctx.device, tcfg.batch_size, tcfg.l1_weight), ctx)}

    loop = LoopConfig(epochs=tcfg.epochs, lr=tcfg.lr, weight_decay=tcfg.weight_decay, warmup=tcfg.warmup,
                      grad_clip=tcfg.grad_clip, amp=tcfg.amp, validate_every=5)
    history = fit(list(model.parameters()), loader, step, loop, ctx, modules=[net], sampler=sampler,
                  validate=validate if val_ds is not None else None, log=say, name="scanpath")
    val_losses = [h["val_loss"] for h in history if "val_loss" in h]
    metrics = {"train_loss": history[-1].get("loss", float("nan")), "epochs": len(history), "n_images": len(train_cases),
               "n_paths": train_ds.n_paths, "seconds": time.time() - t0, "world_size": ctx.world_size,
               **({"val_loss": val_losses[-1]} if val_losses else {})}
    if ctx.is_main:
        info = dataset_info or {}
        save_checkpoint(out_path, "scanpath", config={"model": cfg.to_dict(), "train": asdict(tcfg)},
                        state={"model": unwrap_model(net).state_dict()},
                        info={"synthetic": bool(info.get("synthetic", False)), "dataset": info.get("name"),
                              "history": history}, metrics=metrics)
        say(f"saved {out_path} ({metrics['seconds']:.0f} s)")
    cleanup(ctx)
    return {**metrics, "history": history}


def train(source, out: Path, config: dict, log: Callable[[str], None] | None = print) -> TrainResult:
    """The scanpath family's trainer (:mod:`models.families`): the cases of ``source`` that have an image and
    human fixations; ``config`` holds the ``model`` and ``train`` sections."""
    tcfg = config["train"]
    train_cases = usable_cases(source.split("train"), "training", source.name)
    val_cases = usable_cases(source.split("val"), "validation", source.name)
    if tcfg.max_images:
        train_cases = train_cases[: tcfg.max_images]
        val_cases = val_cases[: max(1, tcfg.max_images // 5)]
    if source.synthetic and log is not None and os.environ.get("RANK", "0") == "0":
        log(f"training on SYNTHETIC data ({source.name})")
    summary = train_scanpath(train_cases, out, config["model"], tcfg, val_cases=val_cases,
                             dataset_info={"name": source.name, "synthetic": source.synthetic}, log=log)
    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return TrainResult(Path(out), metrics, "val_loss", {"synthetic": source.synthetic, "dataset": source.name})


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
