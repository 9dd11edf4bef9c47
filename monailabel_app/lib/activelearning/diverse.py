"""Active learning by uncertainty and diversity: the uncertain image least like those already labelled.

Uncertainty alone keeps picking near-duplicates (images the classifier is unsure of for the same reason);
this strategy weighs each candidate's MC-dropout entropy by how far its predicted finding profile lies from
the nearest labelled image's: ``score = uncertainty * (distance / max distance)``, distance the Euclidean
distance between the 14 stored probabilities (:func:`..uncertainty.score_image` keeps them beside the
entropy). With nothing labelled yet it is the uncertainty strategy. Request params as for ``uncertainty``
(``mc_samples``, ``max_compute``, ``seed``); labelled images are scored too (within ``max_compute``) so
their profiles are known.
"""

from __future__ import annotations

import random

import numpy as np
from monailabel.interfaces.tasks.strategy import Strategy

from ..configs.models import ModelCache, stamp_text
from .uncertainty import score_image, strategy_params, stored_probs, stored_uncertainty


class DiverseUncertaintyStrategy(Strategy):
    def __init__(self, models: ModelCache):
        super().__init__("MC-dropout entropy weighted by distance from the labelled images' predicted findings")
        self.models = models

    def __call__(self, request, datastore):
        mc_samples, max_compute, seed = strategy_params(request)
        unlabelled = sorted(datastore.get_unlabeled_images())
        if not unlabelled:
            return None
        labelled = sorted(set(datastore.list_images()) - set(unlabelled))
        self.models.predictor("classifier")
        model = stamp_text(self.models.served(("classifier",))[0])
        index = getattr(datastore, "index", None)
        if index is not None:  # an indexed datastore: every image's info in one query, not one per image
            datastore = _InfoSnapshot(datastore, index.infos())
        todo = [i for i in unlabelled + labelled
                if stored_uncertainty(datastore, i, model, mc_samples) is None or stored_probs(datastore, i, model) is None]
        if len(todo) > max_compute:
            todo = sorted(random.Random(seed).sample(todo, max_compute))
        for image_id in todo:
            score_image(self.models, datastore, image_id, mc_samples)  # the snapshot takes the new score too
        unc = {i: stored_uncertainty(datastore, i, model, mc_samples) for i in unlabelled}
        unc = {i: u for i, u in unc.items() if u is not None}
        profiles = {i: stored_probs(datastore, i, model) for i in unlabelled + labelled}
        known = np.array([profiles[i] for i in labelled if profiles[i] is not None], dtype=np.float64)
        if not known.size:
            best = max(unc, key=lambda i: (unc[i], i))
            return {"id": best, "uncertainty": unc[best], "distance": None, "scored": len(unc), "computed": len(todo)}
        dist = {i: float(np.linalg.norm(known - np.asarray(profiles[i]), axis=1).min()) for i in unc if profiles[i] is not None}
        top = max(dist.values()) or 1.0
        score = {i: unc[i] * dist[i] / top for i in dist}
        best = max(score, key=lambda i: (score[i], i))
        return {"id": best, "uncertainty": unc[best], "distance": dist[best], "score": score[best], "scored": len(unc),
                "computed": len(todo)}


class _InfoSnapshot:
    """The datastore with its image infos read once; info updates go through and into the snapshot."""

    def __init__(self, datastore, infos: dict):
        self._datastore, self._infos = datastore, infos

    def get_image_info(self, image_id: str) -> dict:
        return self._infos.get(image_id, {})

    def update_image_info(self, image_id: str, info: dict) -> None:
        self._datastore.update_image_info(image_id, info)
        self._infos[image_id] = {**self._infos.get(image_id, {}), **info}

    def __getattr__(self, name: str):
        return getattr(self._datastore, name)
