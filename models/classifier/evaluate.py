"""Evaluate a trained classifier on one split: classification, attention-gaze agreement, pointing game.

Every number comes with a bootstrap 95% CI over cases (boxes for the pointing game). Decision thresholds
come from the checkpoint, i.e. from the validation split: the test split is never used to tune anything.
Uncertain labels (-1) are excluded from AUC/F1.

Attention-gaze agreement compares, per case with gaze, the reader's fixation heatmap with (1) the network's
shared attention prior, the map the default gaze loss trains ("attention_gaze"), and (2) the mean of its 14
finding maps ("finding_attention_gaze"), both at model-input resolution. The pointing game checks each
finding's own map against that finding's boxes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.metrics.classification import Interval, bootstrap_ci, macro_auc, macro_f1, mean_ci, roc_auc, f1_score
from models.metrics.saliency import correlation_coefficient, iou_binarised, iou_topk, kl_divergence, nss, pointing_hit
from models.vocab import FINDINGS

TOPK = 0.1  # iou_topk: top 10% of pixels
BINARISE_AT = 0.5  # iou_binarised: pixels above half of each map's peak


def _upsample(maps: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    squeeze = t.ndim == 3
    t = t[:, None] if squeeze else t
    up = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return (up[:, 0] if squeeze else up).numpy()


def agreement_per_case(pred: dict, size: int, which: str = "prior") -> dict[str, np.ndarray]:
    """Per-case CC, KL, top-k IoU, binarised IoU and NSS for cases with gaze; arrays of equal length.

    ``which``: "prior" (the shared attention prior) or "findings" (mean of the 14 finding maps)."""
    if which not in ("prior", "findings"):
        raise ValueError(f"which must be 'prior' or 'findings', got {which!r}")
    gazed = np.flatnonzero(pred["has_gaze"] > 0.5)
    out = {k: [] for k in ("cc", "kl", "iou_topk", "iou_binarised", "nss")}
    if len(gazed) == 0:
        return {k: np.zeros(0) for k in out}
    grid = pred["prior"][gazed] if which == "prior" else pred["attention"][gazed].mean(1)
    maps = _upsample(grid, size)
    for j, i in enumerate(gazed):
        att, gaze = maps[j], pred["gaze"][i]
        out["cc"].append(correlation_coefficient(att, gaze))
        out["kl"].append(kl_divergence(att, gaze))
        out["iou_topk"].append(iou_topk(att, gaze, TOPK))
        out["iou_binarised"].append(iou_binarised(att, gaze, BINARISE_AT))
        out["nss"].append(nss(att, pred["fixations"][i, : int(pred["n_fixations"][i]), :2]))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def pointing_per_box(pred: dict, size: int) -> np.ndarray:
    """1/0 per ground-truth box: does the argmax of that finding's attention fall inside the box?"""
    hits = []
    for i in range(len(pred["probs"])):
        n = int(pred["n_boxes"][i])
        if n == 0:
            continue
        boxes = pred["boxes"][i, :n]
        maps = _upsample(pred["attention"][i][boxes[:, 0].astype(int)], size)
        for b, m in zip(boxes, maps):
            hits.append(pointing_hit(m, b[None, 1:5]))
    return np.asarray(hits, dtype=np.float64)


def _ci(i: Interval) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in i.to_dict().items()}


def classification_report(pred: dict, thresholds: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Per-finding and macro AUC/F1 with bootstrap CIs (uncertain labels excluded)."""
    labels, probs = pred["labels"].clip(0, 1), pred["probs"]
    mask = pred["mask"] * (pred["labels"] >= 0)
    per = {}
    for c, name in enumerate(FINDINGS):
        m = mask[:, c] > 0.5
        y, s = labels[m, c], probs[m, c]
        per[name] = {
            "n": int(m.sum()), "n_positive": int(y.sum()), "threshold": float(thresholds[c]),
            "auc": _ci(bootstrap_ci(roc_auc, y, s, n=n_boot, seed=seed)),
            "f1": _ci(bootstrap_ci(lambda yy, ss, t=thresholds[c]: f1_score(yy, ss >= t), y, s, n=n_boot, seed=seed)),
        }
    return {
        "macro_auc": _ci(bootstrap_ci(macro_auc, labels, probs, mask, n=n_boot, seed=seed)),
        "macro_f1": _ci(bootstrap_ci(lambda y, s, m: macro_f1(y, s, thresholds, m), labels, probs, mask, n=n_boot, seed=seed)),
        "per_finding": per,
    }


def evaluate_predictions(pred: dict, thresholds: np.ndarray, size: int, n_boot: int = 1000, seed: int = 0) -> dict:
    """All metrics from :func:`models.classifier.train.predict_cases` output."""
    agree = agreement_per_case(pred, size, "prior")
    agree_findings = agreement_per_case(pred, size, "findings")
    hits = pointing_per_box(pred, size)
    return {
        "n_cases": int(len(pred["probs"])),
        "classification": classification_report(pred, thresholds, n_boot, seed),
        "attention_gaze": {
            "n_cases": int(len(agree["cc"])),
            "definition": "the network's shared attention prior vs the reader's "
                          f"fixation heatmap, at model resolution; iou_topk = top {int(TOPK * 100)}% pixels, "
                          f"iou_binarised = pixels > {BINARISE_AT} x peak; kl = KL(gaze || attention), lower is better",
            **{k: _ci(mean_ci(v, n=n_boot, seed=seed)) for k, v in agree.items()},
        },
        "finding_attention_gaze": {
            "n_cases": int(len(agree_findings["cc"])),
            "definition": "mean of the 14 finding attention maps vs the reader's fixation heatmap (same metrics)",
            **{k: _ci(mean_ci(v, n=n_boot, seed=seed)) for k, v in agree_findings.items()},
        },
        "pointing_game": {"n_boxes": int(len(hits)), "accuracy": _ci(mean_ci(hits, n=n_boot, seed=seed))},
    }


def evaluate_classifier(model_path: str | Path, source, split: str = "test", *, n_boot: int = 1000, seed: int = 0,
                        device: str = "cpu", batch_size: int = 32) -> dict:
    """Load ``model_path`` and evaluate it on ``source.split(split)``; returns the JSON-ready report."""
    from models.classifier.predict import ClassifierPredictor
    from models.classifier.train import predict_cases, usable_cases

    predictor = ClassifierPredictor.from_checkpoint(model_path, device=device)
    cases = usable_cases(source.split(split), split, source.name)
    pred = predict_cases(predictor.model, cases, predictor.size, predictor.device, batch_size)
    report = evaluate_predictions(pred, predictor.thresholds, predictor.size, n_boot, seed)
    return {
        "synthetic": bool(source.synthetic or predictor.synthetic),
        "dataset": source.name, "split": split, "model": str(model_path),
        "threshold_source": "validation split at training time (stored in the checkpoint)",
        "bootstrap": {"n": n_boot, "seed": seed, "level": 0.95},
        **report,
    }


__all__ = ["evaluate_classifier", "evaluate_predictions", "classification_report", "agreement_per_case", "pointing_per_box"]
