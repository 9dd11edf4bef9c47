"""``pipeline``: classifier, scanpath and report in one call (``models.pipeline.Pipeline``).

Needs the classifier; a missing scanpath or report model is skipped the way ``Pipeline`` does (template
report). The task reloads when any of the three model files is published.
"""

from __future__ import annotations

from models.pipeline import REPORT_MODES as PIPELINE_REPORT_MODES

from .base import GazeInferTask, InferType, choice_param, int_param
from .classifier import load_classifier
from .report import load_report
from .scanpath import load_scanpath

LOADERS = {"classifier": load_classifier, "scanpath": load_scanpath, "report": load_report}


class PipelineInferTask(GazeInferTask):
    """Params: ``n_samples`` (1-16 scanpaths; the first, the mean path, is ``case.fixations``, all are in
    ``case.extra.scanpath_samples``), ``seed``, ``report_mode`` (``models.pipeline.REPORT_MODES``: auto
    | gaze2report | prompt | template | none) and ``mc_samples`` (0-50, classifier MC dropout). The heatmap is the classifier's attention."""

    families = ("classifier", "scanpath", "report")
    required = ("classifier",)

    def __init__(self, models, record):
        super().__init__(models, record, type=InferType.OTHERS,
                         description="Findings, boxes, heatmap, predicted scanpath and report with evidence in one call",
                         config={"n_samples": 1, "seed": 0, "report_mode": "auto", "mc_samples": 0})

    def predict(self, image, image_id, request):
        mode = choice_param(request, "report_mode", "auto", PIPELINE_REPORT_MODES)
        options = {"n_samples": int_param(request, "n_samples", 1, 1, 16), "seed": int_param(request, "seed", 0, 0, 2**31 - 1),
                   "mc_samples": int_param(request, "mc_samples", 0, 0, 50)}
        from models.pipeline import Pipeline

        # Built from the per-family cache, so a model file that fails to load leaves its previous model in use.
        optional = {f: self.models.get(f, (f,), LOADERS[f]) if self.models.available((f,)) else None
                    for f in ("scanpath", "report")}
        pipeline = Pipeline.from_predictors(self.models.get("classifier", ("classifier",), load_classifier), **optional)
        result = pipeline.run(image, case_id=image_id, report_mode=mode, **options)
        return result.case, result.heatmap, pipeline.trained_on_synthetic
