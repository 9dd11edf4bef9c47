"""Inference: an image (and optionally its report) -> scanpaths in original pixels and seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.preprocess import prepare_image
from models.imaging import Letterbox, LoadedImage
from models.schema import Fixation
from models.scanpath.network import ScanpathNet


def to_fixations(path: np.ndarray, lb: Letterbox) -> list[Fixation]:
    """``(n, 3)`` normalised model x, y and duration (s) -> Fixations in original pixels, clamped to the
    image, with cumulative start times ``t`` (the first fixation starts at 0)."""
    xy = lb.to_original(path[:, :2] * lb.size)
    xy[:, 0] = xy[:, 0].clip(0, lb.width)
    xy[:, 1] = xy[:, 1].clip(0, lb.height)
    durations = path[:, 2].astype(np.float64)
    starts = np.concatenate([[0.0], np.cumsum(durations[:-1])])
    return [Fixation(float(x), float(y), float(t), float(d)) for (x, y), t, d in zip(xy, starts, durations)]


class ScanpathPredictor:
    """Loaded scanpath model; call it on a :class:`~models.imaging.LoadedImage`.

    Example::

        predictor = ScanpathPredictor.from_checkpoint("models/scanpath.pt")
        mean_path = predictor(image)[0]
        samples = predictor(image, n_samples=5, seed=0)
    """

    def __init__(self, model: ScanpathNet, device: str | torch.device = "cpu", info: dict | None = None):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.cfg = model.cfg
        self.info = info or {}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "ScanpathPredictor":
        """Load a ``scanpath`` checkpoint; :class:`~models.checkpoint.CheckpointError` names a bad file."""
        from models.checkpoint import CheckpointError, config_of, load_checkpoint
        from models.runtime import resolve_device
        from models.scanpath.config import ScanpathConfig

        ckpt = load_checkpoint(path, "scanpath")
        config = config_of(ScanpathConfig, ckpt["config"].get("model"), path, "model")
        try:
            model = ScanpathNet(config)
            model.load_state_dict(ckpt["state"]["model"])
        except (TypeError, ValueError, RuntimeError, KeyError) as e:
            raise CheckpointError(f"{path}: scanpath checkpoint does not match the network ({type(e).__name__}: {e})") from None
        info = {"synthetic": bool(ckpt["info"].get("synthetic", False)), "dataset": ckpt["info"].get("dataset"),
                "metrics": ckpt["metrics"]}
        return cls(model, resolve_device(device), info)

    @property
    def uses_text(self) -> bool:
        return bool(self.cfg.text_dim)

    def _text(self, report_text: str | None) -> torch.Tensor | None:
        if not self.uses_text:
            return None
        from models.text_encoder import encode_texts

        if not report_text or not report_text.strip():
            # Training gave cases without a report a zero vector; do the same here.
            return torch.zeros((1, self.cfg.text_dim), device=self.device)
        return encode_texts([report_text], device=str(self.device)).to(self.device)

    @torch.no_grad()
    def __call__(self, image: LoadedImage, *, n_samples: int = 1, report_text: str | None = None, seed: int | None = None,
                 temperature: float = 1.0, include_mean: bool = True) -> list[list[Fixation]]:
        """Predict scanpaths for one image.

        Args:
            image: the radiograph (any size; letterboxed to the model's input).
            n_samples: number of paths. With ``include_mean`` (default) the first is the deterministic mean
                path and the rest are samples; without it all are samples.
            report_text: the report, for models trained with ``--text`` (ignored otherwise).
            seed: makes samples reproducible.
            temperature: scales the positional sampling noise (< 1 = more typical paths; durations are always
                drawn at their full predicted spread; 0 = every path is the mean path).
            include_mean: put the mean path first.

        Returns:
            ``n_samples`` lists of :class:`Fixation` in original pixels, ``t`` cumulative seconds.
        """
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        return self.predict_batch([image], n_samples=n_samples, report_texts=[report_text], seed=seed,
                                  temperature=temperature, include_mean=include_mean)[0]

    @torch.no_grad()
    def predict_batch(self, images: list[LoadedImage], *, n_samples: int = 1, report_texts: list[str | None] | None = None,
                      seed: int | None = None, temperature: float = 1.0, include_mean: bool = True) -> list[list[list[Fixation]]]:
        """:meth:`__call__` for several images at once: one list of paths per image."""
        if not images:
            return []
        prepared = [prepare_image(im.array, self.cfg.size) for im in images]
        batch = torch.stack([p[0] for p in prepared]).to(self.device)
        text = None
        if self.uses_text:
            texts = report_texts or [None] * len(images)
            text = torch.cat([self._text(t) for t in texts])
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        out: list[list[list[Fixation]]] = [[] for _ in images]
        n_mean = 1 if include_mean or temperature == 0 else 0
        if n_mean:
            paths, lengths = self.model.generate(batch, n_samples=1, temperature=0.0, text=text)
            copies = n_samples if temperature == 0 else 1
            for i, (_, lb) in enumerate(prepared):
                mean = paths[i, 0, : int(lengths[i, 0])].cpu().numpy()
                out[i] += [to_fixations(mean, lb) for _ in range(copies)]
        if temperature > 0 and n_samples > n_mean:
            paths, lengths = self.model.generate(batch, n_samples=n_samples - n_mean, temperature=temperature, text=text,
                                                 generator=generator)
            for i, (_, lb) in enumerate(prepared):
                out[i] += [to_fixations(paths[i, s, : int(lengths[i, s])].cpu().numpy(), lb) for s in range(n_samples - n_mean)]
        return out
