"""Train the gaze-guided classifier on a CaseSource (single process or under torchrun).

The training split trains, the validation split chooses the per-finding decision thresholds (F1-optimal,
stored in the checkpoint), the test split is never touched here. Checkpoints are written by rank 0 only,
atomically, with ``kind="classifier"``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from models.checkpoint import save_checkpoint
from models.classifier.config import ClassifierConfig, LossConfig, TrainConfig
from models.classifier.losses import ClassifierLoss
from models.classifier.network import GazeAttentionNet
from models.datasets.base import CaseSource, DatasetError
from models.datasets.torch_data import CaseDataset, collate
from models.distributed import DistContext, barrier, cleanup, init_distributed, make_sampler, unwrap_model, wrap_model
from models.train_result import TrainResult
from models.metrics.classification import choose_thresholds, macro_auc, macro_f1
from models.runtime import seed_everything
from models.training import LoopConfig, fit, loader_options
from models.vocab import FINDINGS


def usable_cases(cases, split: str, source_name: str) -> list:
    """Cases with pixels and at least one label; DatasetError if none remain."""
    keep = [c for c in cases if c.image.path and c.findings]
    if not keep:
        raise DatasetError(f"{source_name}: the {split!r} split has no cases with an image and labels "
                           f"({len(cases)} cases listed)")
    return keep


def report_embeddings(cases, device) -> dict[str, torch.Tensor]:
    """case id -> frozen MiniLM embedding ``(384,)`` for cases with a report text (computed once)."""
    from models.text_encoder import encode_texts

    with_report = [c for c in cases if c.report is not None and c.report.text.strip()]
    if not with_report:
        return {}
    emb = encode_texts([c.report.text for c in with_report]).cpu()
    return {c.id: e for c, e in zip(with_report, emb)}


def _text_batch(batch: dict, table: dict[str, torch.Tensor], dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [table.get(i) for i in batch["id"]]
    has = torch.tensor([r is not None for r in rows], dtype=torch.float32, device=device)
    emb = torch.stack([r if r is not None else torch.zeros(dim) for r in rows]).to(device)
    return emb, has


def predict_cases(model, cases, size: int, device, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Run ``model`` (eval mode) over cases: ``probs``, ``labels`` (-1 = uncertain), ``mask``, ``attention``
    grid maps ``(N, C, h, w)``, ``prior`` ``(N, h, w)``, ``gaze`` ``(N, S, S)``, ``has_gaze``, ``boxes``, ``n_boxes``, ``fixations``,
    ``n_fixations``, ``ids``."""
    ds = CaseDataset(cases, size, cache=False, uncertain_as=-1.0)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)
    keys = ("labels", "label_mask", "has_gaze", "boxes", "n_boxes", "fixations", "n_fixations")
    acc: dict[str, list] = {k: [] for k in ("probs", "attention", "prior", "gaze", "ids", *keys)}
    model.eval()
    with torch.no_grad():
        for batch in loader:
            out = model(batch["image"].to(device))
            acc["probs"].append(torch.sigmoid(out.logits).cpu().numpy())
            acc["attention"].append(out.attention.cpu().numpy())
            acc["prior"].append(out.prior.cpu().numpy())
            acc["gaze"].append(batch["gaze"][:, 0].numpy())
            acc["ids"].extend(batch["id"])
            for k in keys:
                acc[k].append(batch[k].numpy())
    out = {k: (np.concatenate(v) if k != "ids" else np.array(v)) for k, v in acc.items()}
    out["mask"] = out.pop("label_mask")
    return out


def validation_thresholds(pred: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """F1-optimal thresholds on validation predictions (uncertain labels excluded) and val metrics."""
    labels, mask = pred["labels"], pred["mask"] * (pred["labels"] >= 0)
    thresholds = choose_thresholds(labels.clip(0, 1), pred["probs"], mask)
    metrics = {
        "val_macro_auc": macro_auc(labels.clip(0, 1), pred["probs"], mask),
        "val_macro_f1": macro_f1(labels.clip(0, 1), pred["probs"], thresholds, mask),
        "val_cases": int(len(labels)),
    }
    return thresholds, metrics


def train_classifier(source: CaseSource, out: str | Path, *, model_config: ClassifierConfig | None = None,
                     loss_config: LossConfig | None = None, train_config: TrainConfig | None = None,
                     progress: bool = True, log: Callable[[str], None] | None = print,
                     ctx: DistContext | None = None) -> dict:
    """Train, choose thresholds on validation, save ``out`` (rank 0). Returns a summary dict (the
    checkpoint's metrics plus ``history``).

    Works unchanged under ``torchrun``: each rank trains on its shard (DistributedSampler), gradients are
    averaged by DDP, logged losses are all-reduced, and only rank 0 writes the checkpoint."""
    mcfg, lcfg, tcfg = model_config or ClassifierConfig(), loss_config or LossConfig(), train_config or TrainConfig()
    own_ctx = ctx is None
    ctx = ctx or init_distributed(tcfg.device)
    say = log if (log is not None and ctx.is_main) else (lambda message: None)
    try:
        seed_everything(tcfg.seed)
        train_cases = usable_cases(source.split("train"), "train", source.name)
        if tcfg.max_images:
            train_cases = train_cases[: tcfg.max_images]
        val_cases = [c for c in source.split("val") if c.image.path and c.findings]
        if lcfg.contrastive_weight > 0 and mcfg.embed_dim <= 0:
            raise ValueError("contrastive_weight > 0 needs embed_dim > 0")

        dataset = CaseDataset(train_cases, mcfg.size, augment=tcfg.augment, uncertain_as=-1.0)
        sampler = make_sampler(dataset, ctx, shuffle=True, seed=tcfg.seed)
        generator = torch.Generator().manual_seed(tcfg.seed)
        loader = torch.utils.data.DataLoader(dataset, batch_size=tcfg.batch_size, shuffle=sampler is None,
                                             sampler=sampler, collate_fn=collate, generator=generator,
                                             drop_last=len(dataset) > tcfg.batch_size * ctx.world_size,
                                             **loader_options(ctx.device, tcfg.workers))
        text_table = report_embeddings(train_cases, ctx.device) if lcfg.contrastive_weight > 0 else {}

        from models.classifier.backbones import training_weights

        state, fmt, norm = training_weights(tcfg.weights, mcfg.backbone, mcfg.input_norm)  # before the network:
        mcfg = replace(mcfg, input_norm=norm)  # the file decides the input scaling
        model = GazeAttentionNet(mcfg)
        if state is not None:
            model.encoder.body.load_state_dict(state, strict=True)
            say(f"backbone weights: {tcfg.weights} ({fmt} layout, {len(state)} tensors, input scaling {mcfg.input_norm})")
        model = model.to(ctx.device)
        if ctx.device.type == "cuda":  # convolutions in NHWC: faster cuDNN kernels under bf16 autocast
            model = model.to(memory_format=torch.channels_last)
        net = wrap_model(model, ctx)
        criterion = ClassifierLoss(lcfg)
        say(f"training on {len(train_cases)} cases ({source.name}{', SYNTHETIC' if source.synthetic else ''}), "
            f"{len(val_cases)} validation, {ctx.world_size} process(es) on {ctx.device}")
        seen = {"steps": 0}

        def step(batch):
            batch = {k: v.to(ctx.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            output = net(batch["image"])
            text_emb = None
            if lcfg.contrastive_weight > 0:
                raw, batch["has_report"] = _text_batch(batch, text_table, mcfg.text_dim, ctx.device)
                text_emb = model.embed_text(raw)
            epoch = seen["steps"] / max(1, len(loader))
            seen["steps"] += 1
            loss, parts = criterion(output, batch, epoch, text_emb, getattr(model, "logit_scale", None))
            return loss, {k: float(v) for k, v in parts.items()}, len(batch["id"])

        loop = LoopConfig(epochs=tcfg.epochs, lr=tcfg.lr, weight_decay=tcfg.weight_decay, warmup=tcfg.warmup,
                          grad_clip=tcfg.grad_clip, amp=tcfg.amp)
        start = time.time()
        history = fit(list(model.parameters()), loader, step, loop, ctx, modules=[net], sampler=sampler,
                      log=say, name="classifier", progress=progress)

        model.eval()
        thresholds, val_metrics = np.full(len(FINDINGS), 0.5), {"val_cases": 0}
        if val_cases:
            thresholds, val_metrics = validation_thresholds(predict_cases(model, val_cases, mcfg.size, ctx.device))
        else:
            say("warning: no validation split; decision thresholds stay at 0.5")
        metrics = {**{k: v for k, v in history[-1].items() if k != "epoch"}, **val_metrics,
                   "train_cases": len(train_cases), "seconds": time.time() - start, "world_size": ctx.world_size}
        if ctx.is_main:
            save_checkpoint(
                out, "classifier",
                config={"model": mcfg.to_dict(), "loss": lcfg.to_dict(), "train": asdict(tcfg)},
                state={"model": {k: v.detach().cpu() for k, v in unwrap_model(net).state_dict().items()},
                       "thresholds": torch.tensor([float(t) for t in thresholds], dtype=torch.float64)},
                info={"synthetic": bool(source.synthetic), "dataset": source.name, "findings": list(FINDINGS),
                      "history": history},
                metrics=metrics,
            )
            say(f"saved {out}" + (f" (val macro AUC {val_metrics['val_macro_auc']:.3f})" if val_cases else ""))
        barrier(ctx)
        return {**metrics, "history": history, "synthetic": bool(source.synthetic), "dataset": source.name}
    finally:
        if own_ctx:
            cleanup(ctx)


def train(source: CaseSource, out: Path, config: dict, log: Callable[[str], None] | None = print) -> TrainResult:
    """The classifier family's trainer (:mod:`models.families`): ``config`` holds its ``model``, ``loss`` and
    ``train`` sections."""
    summary = train_classifier(source, out, model_config=config["model"], loss_config=config["loss"],
                               train_config=config["train"], progress=False, log=log)
    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return TrainResult(Path(out), metrics, "val_macro_auc", {"synthetic": summary["synthetic"], "dataset": summary["dataset"]})


__all__ = ["train", "train_classifier", "predict_cases", "validation_thresholds", "usable_cases"]
