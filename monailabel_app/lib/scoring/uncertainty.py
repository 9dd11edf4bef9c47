"""Scoring method ``uncertainty``: store every image's MC-dropout entropy in the datastore (see
:mod:`monailabel_app.lib.activelearning.uncertainty`). Images already scored by the current classifier
with the same ``mc_samples`` are skipped; ``POST /scoring/uncertainty`` runs it."""

from __future__ import annotations

from monailabel.interfaces.tasks.scoring import ScoringMethod

from ..activelearning.uncertainty import score_image, stored_uncertainty
from ...parsing import parse_int
from ..configs.models import ModelCache, stamp_text


class UncertaintyScoring(ScoringMethod):
    def __init__(self, models: ModelCache):
        super().__init__("Store each image's MC-dropout entropy (classifier) for active learning")
        self.models = models

    def __call__(self, request, datastore):
        mc_samples = parse_int(request.get("mc_samples", 8), "mc_samples", 0, 50)
        if self.models.stamp("classifier") is None:
            return {"scored": 0, "skipped": 0, "detail": "no classifier model yet"}
        self.models.predictor("classifier")
        model = stamp_text(self.models.served(("classifier",))[0])
        images = datastore.list_images()
        index = getattr(datastore, "index", None)
        if index is not None:  # an indexed datastore: which images are scored is one query
            done = index.scored_ids(model, mc_samples)
        else:
            done = {i for i in images if stored_uncertainty(datastore, i, model, mc_samples) is not None}
        scored = skipped = 0
        for image_id in images:
            if image_id in done:
                skipped += 1
                continue
            score_image(self.models, datastore, image_id, mc_samples)
            scored += 1
        return {"scored": scored, "skipped": skipped, "model": model, "mc_samples": mc_samples}
