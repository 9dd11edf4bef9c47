"""``scanpath``: a predicted radiologist scanpath (ordered fixations with durations) and its heatmap."""

from __future__ import annotations

from dataclasses import asdict

from models.gaze import fixation_heatmap
from models.scanpath.coverage import coverage
from models.schema import Case, ImageRef, Source

from .base import GazeInferTask, InferType, float_param, int_param


def load_scanpath(models_dir):
    from models.scanpath.predict import ScanpathPredictor

    from ..configs.models import model_path

    return ScanpathPredictor.from_checkpoint(model_path(models_dir, "scanpath"), device="cpu")


class ScanpathInferTask(GazeInferTask):
    """Params: ``n_samples`` (1-16): ``case.fixations`` is the mean path and, as in ``models.pipeline``, all
    paths are in ``case.extra.scanpath_samples``; ``seed`` makes the samples reproducible; ``temperature``
    (0-4). ``case.coverage`` lists the regions the mean path visited and missed."""

    families = ("scanpath",)

    def __init__(self, models, record):
        super().__init__(models, record, type=InferType.OTHERS,
                         description="Scanpath predictor: ordered fixations (x, y, duration) with sampling",
                         config={"n_samples": 1, "seed": 0, "temperature": 1.0})

    def predict(self, image, image_id, request):
        n_samples = int_param(request, "n_samples", 1, 1, 16)
        options = {"seed": int_param(request, "seed", 0, 0, 2**31 - 1),
                   "temperature": float_param(request, "temperature", 1.0, 0.0, 4.0)}
        predictor = self.models.get("scanpath", self.families, load_scanpath)
        paths = predictor(image, n_samples=n_samples, **options)
        dataset = predictor.info.get("dataset") or {}
        synthetic = bool(dataset.get("synthetic")) if isinstance(dataset, dict) else False
        case = Case(id=image_id, image=ImageRef(width=image.width, height=image.height), fixations=paths[0],
                    coverage=coverage(paths[0], image.width, image.height), source=Source(model="gazelabel-scanpath"))
        if n_samples > 1:
            case.extra["scanpath_samples"] = [[asdict(f) for f in path] for path in paths]
        heatmap = fixation_heatmap(paths[0], (image.height, image.width), duration_weighted=True, normalize="max")
        return case, heatmap, synthetic
