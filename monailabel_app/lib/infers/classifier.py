"""``gaze_classifier``: CheXpert-14 scores, thresholded findings, boxes and the attention heatmap."""

from __future__ import annotations

from models.vocab import canonical_finding

from ...parsing import RequestError
from .base import GazeInferTask, InferType, int_param


def load_classifier(models_dir):
    from models.classifier.predict import ClassifierPredictor

    from ..configs.models import model_path

    return ClassifierPredictor.from_checkpoint(model_path(models_dir, "classifier"), device="cpu")


class ClassifierInferTask(GazeInferTask):
    """Params: ``mc_samples`` (0-50, MC-dropout passes; the mean probability and its entropy are returned in
    ``case.extra.uncertainty``) and ``finding`` (heatmap of one finding; default the score-weighted mean)."""

    families = ("classifier",)

    def __init__(self, models, record):
        super().__init__(models, record, type=InferType.CLASSIFICATION,
                         description="Gaze-supervised CheXpert-14 classifier: scores, boxes, attention heatmap",
                         config={"mc_samples": 0, "finding": ""})

    def predict(self, image, image_id, request):
        mc_samples = int_param(request, "mc_samples", 0, 0, 50)
        predictor = self.models.get("classifier", self.families, load_classifier)
        result = predictor(image, mc_samples=mc_samples)
        case = result.to_case(image_id)
        finding = request.get("finding") or None
        if finding is not None:
            try:
                finding = canonical_finding(finding if isinstance(finding, str) else "")
            except KeyError as e:
                raise RequestError(f"params.finding: {e.args[0]}") from None
        return case, result.heatmap(finding), result.synthetic
