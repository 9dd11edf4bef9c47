"""Active learning by model uncertainty: annotate next the unlabelled image the classifier is least sure of.

Uncertainty = predictive entropy over the 14 findings (mean binary entropy of the mean MC-dropout
probability, bits in [0, 1]) from ``ClassifierPredictor(image, mc_samples=K)``. Scores are stored in the
image info (``gazelabel_uncertainty``: value, mc_samples, model stamp, ts) by the ``uncertainty`` scoring
method and by this strategy, and reused while the classifier file is unchanged.
"""

from __future__ import annotations

import random
import time

from monailabel.interfaces.tasks.strategy import Strategy

from models.imaging import read_image

from ...parsing import parse_int
from ..configs.models import ModelCache, stamp_text

INFO_KEY = "gazelabel_uncertainty"


def stored_uncertainty(datastore, image_id: str, model: str, mc_samples: int) -> float | None:
    """The stored score of an image if it was computed by this model with as many MC samples."""
    info = datastore.get_image_info(image_id).get(INFO_KEY) or {}
    if info.get("model") == model and info.get("mc_samples") == mc_samples:
        return float(info["value"])
    return None


def score_image(models: ModelCache, datastore, image_id: str, mc_samples: int) -> float:
    """Compute an image's uncertainty and store it in the datastore's image info."""
    predictor = models.predictor("classifier")
    result = predictor(read_image(datastore.get_image_uri(image_id)), mc_samples=mc_samples)
    value = float(result.uncertainty)
    datastore.update_image_info(image_id, {INFO_KEY: {
        "value": value, "mc_samples": mc_samples, "model": stamp_text(models.served(("classifier",))[0]),
        "ts": int(time.time()),
        # the (mean MC) probabilities, findings in sorted name order: what the diverse strategy compares
        "probs": [round(float(result.scores[f]), 6) for f in sorted(result.scores)],
    }})
    return value


def stored_probs(datastore, image_id: str, model: str) -> list[float] | None:
    """The stored finding probabilities of an image, if scored by this model."""
    info = datastore.get_image_info(image_id).get(INFO_KEY) or {}
    probs = info.get("probs")
    return probs if info.get("model") == model and isinstance(probs, list) else None


def strategy_params(request: dict) -> tuple[int, int, int]:
    """``(mc_samples, max_compute, seed)`` of an uncertainty-based strategy request (RequestError names a bad one)."""
    return (parse_int(request.get("mc_samples", 8), "mc_samples", 0, 50),
            parse_int(request.get("max_compute", 32), "max_compute", 1, 10_000),
            parse_int(request.get("seed", 0), "seed", 0, 2**31 - 1))


class UncertaintyStrategy(Strategy):
    """Request params: ``mc_samples`` (default 8) and ``max_compute`` (default 32): at most that many
    unscored images are scored per call (a seeded random subset), the rest use stored scores."""

    def __init__(self, models: ModelCache):
        super().__init__("Highest MC-dropout entropy over the 14 findings (classifier)")
        self.models = models

    def __call__(self, request, datastore):
        mc_samples, max_compute, seed = strategy_params(request)
        images = sorted(datastore.get_unlabeled_images())
        if not images:
            return None
        self.models.predictor("classifier")  # CheckpointError (503) before any model runs
        model = stamp_text(self.models.served(("classifier",))[0])
        scores = {i: stored_uncertainty(datastore, i, model, mc_samples) for i in images}
        todo = [i for i, s in scores.items() if s is None]
        if len(todo) > max_compute:
            todo = sorted(random.Random(seed).sample(todo, max_compute))
        for image_id in todo:
            scores[image_id] = score_image(self.models, datastore, image_id, mc_samples)
        scored = {i: s for i, s in scores.items() if s is not None}
        best = max(scored, key=lambda i: (scored[i], i))
        return {"id": best, "uncertainty": scored[best], "scored": len(scored), "computed": len(todo)}
