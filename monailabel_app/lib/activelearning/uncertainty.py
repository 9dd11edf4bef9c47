"""Active learning by model uncertainty: annotate next the unlabelled image the classifier is least sure of.

Uncertainty = predictive entropy over the 14 findings (mean binary entropy of the mean MC-dropout
probability, bits in [0, 1]) from ``ClassifierPredictor(image, mc_samples=K)``. Scores are stored in the
image info (``gazelabel_uncertainty``: value, mc_samples, model stamp, ts) by the ``uncertainty`` scoring
method, by ``gazelabel predict-store --db`` and by this strategy, and reused while the classifier file is
unchanged.

Over an indexed datastore (:class:`..datastores.database.IndexedCaseDatastore`) the choice is one query
over the ranked scores, whatever the store's size; images not scored yet by the current model (new, or
scored by an older one) are found and scored ``max_compute`` at a time in a background thread after the
answer, so the next call ranks them too. Only when nothing is scored yet does a call score synchronously
first.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time

from monailabel.interfaces.tasks.strategy import Strategy

from models.imaging import read_image

from ...parsing import parse_int
from ..configs.models import ModelCache, stamp_text

INFO_KEY = "gazelabel_uncertainty"
# After a background pass found every unlabelled image scored, the next pass for that model waits this long.
RESCAN_S = 30.0
logger = logging.getLogger(__name__)


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
        self._background: threading.Thread | None = None
        self._background_lock = threading.Lock()
        self._complete: dict[tuple[str, int], float] = {}  # (model, mc_samples) -> when a pass found nothing missing
        self.last_pass: dict | None = None

    def __call__(self, request, datastore):
        mc_samples, max_compute, seed = strategy_params(request)
        if hasattr(datastore, "top_uncertain"):
            return self._indexed(datastore, mc_samples, max_compute)
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

    # ------------------------------------------------------------------ over an indexed datastore
    def _indexed(self, datastore, mc_samples: int, max_compute: int):
        self.models.predictor("classifier")  # CheckpointError (503) before any query
        model = stamp_text(self.models.served(("classifier",))[0])
        top = datastore.top_uncertain(model, mc_samples)
        computed = 0
        if top is None:  # nothing ranked yet: score a first batch now
            todo = datastore.unscored(model, mc_samples, max_compute)
            for image_id in todo:
                score_image(self.models, datastore, image_id, mc_samples)
            computed = len(todo)
            top = datastore.top_uncertain(model, mc_samples)
            if top is None:
                return None
        pending = self._score_in_background(datastore, model, mc_samples, max_compute)
        return {"id": top[0], "uncertainty": top[1], "computed": computed, "scoring_in_background": pending}

    def _score_in_background(self, datastore, model: str, mc_samples: int, max_compute: int) -> bool:
        """Start a background pass that scores up to ``max_compute`` unscored unlabelled images (one pass at a
        time per server); True when a pass is running or was started.

        Finding what is unscored is itself a walk over the unlabelled images (~0.1 s at 10^5), so it runs in
        the pass, not in the request; and after a pass that found nothing missing, no new pass for this model
        starts for :data:`RESCAN_S` seconds (images added meanwhile are scored by the pass after that)."""
        with self._background_lock:
            if self._background is not None and self._background.is_alive():
                return True
            key = (model, mc_samples)
            if time.monotonic() - self._complete.get(key, -RESCAN_S) < RESCAN_S:
                return False

            def run():
                import torch

                # as many torch threads as one request gets (OpenMP settings are per thread)
                torch.set_num_threads(max(1, int(os.environ.get("GAZELABEL_INFER_THREADS", "1"))))
                scored = 0
                try:
                    todo = datastore.unscored(model, mc_samples, max_compute)
                    if not todo:
                        self._complete[key] = time.monotonic()
                    for image_id in todo:
                        if stamp_text(self.models.served(("classifier",))[0]) != model:
                            return  # the classifier changed: these scores would be stale already
                        score_image(self.models, datastore, image_id, mc_samples)
                        scored += 1
                except Exception as e:  # never kill the server over one image
                    logger.warning(f"background uncertainty scoring stopped: {type(e).__name__}: {e}")
                finally:
                    self.last_pass = {"model": model, "mc_samples": mc_samples, "scored": scored}

            self._background = threading.Thread(target=run, name="gazelabel-scoring", daemon=True)
            self._background.start()
            return True

    def wait_background(self, timeout: float | None = None) -> dict | None:
        """Wait for the running background pass (tests, benchmarks); its ``last_pass`` summary, or None."""
        thread = self._background
        if thread is not None:
            thread.join(timeout)
        return self.last_pass
