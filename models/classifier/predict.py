"""Inference API of the gaze-guided classifier: one image in, scores + heatmaps + boxes out.

    predictor = ClassifierPredictor.from_checkpoint("model.pt")
    result = predictor(read_image("cxr.dcm"), mc_samples=0)
    result.scores["Cardiomegaly"], result.heatmap("Cardiomegaly"), result.boxes, result.to_case(...)

Everything a user sees is in ORIGINAL image pixels; ``attention`` keeps the model-space maps for callers
that work on the letterboxed input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.classifier.boxes import attention_boxes
from models.decision import NEGATIVE, DecisionRule
from models.imaging import Letterbox, LoadedImage
from models.schema import Case, ImageRef, Prediction, Source
from models.vocab import FINDING_INDEX, FINDINGS, canonical_finding

# Findings that have no place on the image get no heatmap share and no box.
NON_SPATIAL = ("No Finding",)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of Bernoulli probabilities (0 = certain, 1 = p of 0.5)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


@dataclass
class ClassifierResult:
    """One image's prediction.

    Attributes:
        scores: finding -> probability, over ``FINDINGS``.
        attention: ``(14, S, S)`` model-space attention maps in [0, 1] (each divided by its maximum).
        letterbox: maps model pixels to original pixels.
        thresholds: finding -> positive threshold (chosen on the validation split at training time).
        boxes: one box per finding the decision rule calls positive or uncertain (original pixels, region,
            score).
        uncertainty: mean binary entropy over findings in bits, [0, 1]; with MC dropout the entropy of the
            mean MC probability (predictive entropy).
        prior: ``(S, S)`` model-space shared attention prior in [0, 1] (where the model looks overall; the map
            trained towards radiologist gaze), or None.
        model: a short description of the model (for ``Case.source.model``).
        synthetic: the model was trained on synthetic data.
    """

    scores: dict[str, float]
    attention: np.ndarray
    letterbox: Letterbox
    thresholds: dict[str, float]
    boxes: list = field(default_factory=list)
    uncertainty: float = 0.0
    prior: np.ndarray | None = None
    model: str = "gazelabel-classifier"
    synthetic: bool = False

    @property
    def rule(self) -> DecisionRule:
        """The decision rule of these scores (:mod:`models.decision`), from the validated thresholds."""
        return DecisionRule.from_thresholds(self.thresholds)

    @property
    def findings(self) -> dict[str, int]:
        """finding -> 1 (positive) / -1 (uncertain) / 0 (negative) by :attr:`rule`."""
        return self.rule.decide(self.scores)

    def heatmap(self, finding: str | None = None) -> np.ndarray:
        """``(H, W)`` map in original pixels, [0, 1].

        ``finding=None``: the score-weighted mean of the spatial findings' maps ("No Finding" excluded).
        Raises ValueError for an unknown finding name."""
        if finding is None:
            names = [f for f in FINDINGS if f not in NON_SPATIAL]
            w = np.array([self.scores[f] for f in names])
            w = w / w.sum() if w.sum() > 0 else np.full(len(names), 1.0 / len(names))
            model_map = np.tensordot(w, self.attention[[FINDING_INDEX[f] for f in names]], axes=1)
        else:
            try:
                name = canonical_finding(finding)
            except KeyError as e:
                raise ValueError(e.args[0]) from None
            model_map = self.attention[FINDING_INDEX[name]]
        out = self.letterbox.unapply(model_map.astype(np.float32))
        peak = out.max()
        return out / peak if peak > 0 else out

    def to_case(self, case_id: str, image_ref: ImageRef | str | None = None) -> Case:
        """A Case with scores, thresholded findings and boxes (original pixels)."""
        if isinstance(image_ref, (str, Path)) or image_ref is None:
            image_ref = ImageRef(str(image_ref or ""), self.letterbox.width, self.letterbox.height, synthetic=self.synthetic)
        return Case(
            id=case_id,
            image=image_ref,
            findings=self.findings,
            scores={f: float(np.clip(s, 0.0, 1.0)) for f, s in self.scores.items()},
            boxes=list(self.boxes),
            source=Source(model=self.model),
            prediction=Prediction(models={"classifier": self.model}, synthetic=self.synthetic,
                                  uncertainty=self.uncertainty, decision=self.rule.to_dict()),
        )


class ClassifierPredictor:
    """A loaded classifier; call it on a :class:`~models.imaging.LoadedImage`."""

    def __init__(self, model, thresholds, *, device="cpu", box_threshold: float = 0.5,
                 name: str = "gazelabel-classifier", synthetic: bool = False):
        import torch

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.size = int(model.config.size)
        t = np.asarray(thresholds, dtype=np.float64)
        if t.shape != (len(FINDINGS),):
            raise ValueError(f"thresholds must have {len(FINDINGS)} values, got shape {t.shape}")
        self.thresholds = t
        self.box_threshold = box_threshold
        self.name = name
        self.synthetic = synthetic
        self.info: dict = {"synthetic": synthetic}  # checkpoint facts: synthetic, dataset, metrics, stamp

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs) -> "ClassifierPredictor":
        """Load a ``kind="classifier"`` checkpoint (CheckpointError names the file on any problem)."""
        from models.checkpoint import CheckpointError, config_of, load_checkpoint
        from models.classifier.config import ClassifierConfig
        from models.classifier.network import GazeAttentionNet
        from models.runtime import resolve_device

        ckpt = load_checkpoint(path, "classifier")
        config = config_of(ClassifierConfig, ckpt["config"].get("model"), path, "model")
        try:
            model = GazeAttentionNet(config)
            model.load_state_dict(ckpt["state"]["model"])
        except (KeyError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"{path}: classifier weights do not match the network ({type(e).__name__}: {e})") from None
        thresholds = ckpt["state"].get("thresholds")
        thresholds = [0.5] * len(FINDINGS) if thresholds is None else [float(t) for t in thresholds]
        name = f"gazelabel-classifier:{Path(path).name}"
        info = {"synthetic": bool(ckpt["info"].get("synthetic", False)), "dataset": ckpt["info"].get("dataset"),
                "metrics": ckpt["metrics"]}
        predictor = cls(model, thresholds, device=resolve_device(device), name=name, synthetic=info["synthetic"], **kwargs)
        predictor.info = info
        return predictor

    def predict_tensor(self, images, *, mc_samples: int = 0) -> dict:
        """Batch inference on model-space tensors.

        Args:
            images: ``(B, 1, S, S)`` in [0, 1] (S = the model's size).
            mc_samples: > 0 averages that many dropout-on passes.

        Returns:
            ``probs`` ``(B, C)``, ``attention`` ``(B, C, h, w)`` grid maps (sum 1 each), ``prior`` ``(B, h, w)``,
            ``uncertainty`` ``(B,)``
            and, with MC, ``mc_probs`` ``(mc_samples, B, C)``; numpy arrays.
        """
        import torch

        if mc_samples < 0:
            raise ValueError(f"mc_samples must be >= 0, got {mc_samples}")
        images = images.to(self.device, torch.float32)
        if images.ndim != 4 or images.shape[1] != 1 or images.shape[-1] != self.size or images.shape[-2] != self.size:
            raise ValueError(f"expected images of shape (B, 1, {self.size}, {self.size}), got {tuple(images.shape)}")
        with torch.no_grad():
            out = self.model(images)
            probs = torch.sigmoid(out.logits).cpu().numpy()
            result = {"attention": out.attention.cpu().numpy(), "prior": out.prior.cpu().numpy()}
            if mc_samples > 0:
                mc = np.stack([torch.sigmoid(self.model(images, mc_dropout=True).logits).cpu().numpy() for _ in range(mc_samples)])
                probs = mc.mean(0)
                result["mc_probs"] = mc
        result["probs"] = probs
        result["uncertainty"] = binary_entropy(probs).mean(-1)
        return result

    def __call__(self, image: LoadedImage, *, mc_samples: int = 0) -> ClassifierResult:
        """Predict one radiograph; ValueError for a non-2D image."""
        import torch

        from models.classifier.network import attention_to_model_space
        from models.preprocess import prepare_image

        array = np.asarray(image.array if isinstance(image, LoadedImage) else image)
        if array.ndim != 2:
            raise ValueError(f"expected a 2D (H, W) radiograph, got an array of shape {array.shape}")
        tensor, lb = prepare_image(array.astype(np.float32), self.size)
        pred = self.predict_tensor(tensor[None], mc_samples=mc_samples)
        maps = attention_to_model_space(torch.from_numpy(pred["attention"]), self.size)[0].numpy()
        prior = attention_to_model_space(torch.from_numpy(pred["prior"])[:, None], self.size)[0, 0].numpy()
        scores = {f: float(pred["probs"][0, i]) for i, f in enumerate(FINDINGS)}
        thresholds = {f: float(self.thresholds[i]) for i, f in enumerate(FINDINGS)}
        decisions = DecisionRule.from_thresholds(thresholds).decide(scores)
        present = {f: s for f, s in scores.items() if decisions[f] != NEGATIVE and f not in NON_SPATIAL}
        boxes = attention_boxes(maps, lb, present, FINDING_INDEX, self.box_threshold)
        return ClassifierResult(scores, maps, lb, thresholds, boxes, float(pred["uncertainty"][0]), prior,
                                self.name, self.synthetic)


__all__ = ["ClassifierPredictor", "ClassifierResult", "binary_entropy", "NON_SPATIAL"]
