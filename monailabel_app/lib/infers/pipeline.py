"""``pipeline``: classifier, scanpath and report in one call (``models.pipeline.Pipeline``).

Needs the classifier; a missing scanpath or report model is skipped the way ``Pipeline`` does (template
report). The task reloads when any of the three model files is published.
"""

from __future__ import annotations

from models.pipeline import REPORT_MODES as PIPELINE_REPORT_MODES

from .base import GazeInferTask, InferType, int_param


def load_pipeline(models_dir):
    from models.pipeline import Pipeline

    return Pipeline.from_dir(models_dir, device="cpu")


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
        mode = request.get("report_mode", "auto")
        if mode not in PIPELINE_REPORT_MODES:
            raise ValueError(f"params.report_mode: must be one of {', '.join(PIPELINE_REPORT_MODES)}, got {mode!r}")
        options = {"n_samples": int_param(request, "n_samples", 1, 1, 16), "seed": int_param(request, "seed", 0, 0, 2**31 - 1),
                   "mc_samples": int_param(request, "mc_samples", 0, 0, 50)}
        pipeline = self.models.get("pipeline", self.families, load_pipeline, required=self.required)
        result = pipeline.run(image, case_id=image_id, report_mode=mode, **options)
        return result.case, result.heatmap, pipeline.trained_on_synthetic
