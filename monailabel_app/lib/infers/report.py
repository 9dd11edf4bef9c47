"""``report``: a structured report whose sentences link to findings, boxes, regions and fixations.

The report is conditioned on gaze. ``gaze="auto"`` (default) uses the radiologist's recorded fixations when
the datastore has them for this image (annotator label, else dataset record) and the predicted scanpath
otherwise; ``"recorded"`` insists on recorded gaze, ``"predicted"`` always predicts, ``"none"`` uses none.
``case.extra.gaze_source`` says which was used. The heatmap is the classifier's attention.
"""

from __future__ import annotations

from models.scanpath.coverage import coverage

from ...parsing import RequestError
from .base import GazeInferTask, InferType, choice_param
from .classifier import load_classifier
from .scanpath import load_scanpath

GAZE_CHOICES = ("auto", "recorded", "predicted", "none")
REPORT_MODES = ("gaze2report", "prompt", "template")


def load_report(models_dir):
    from models.report.generate import ReportGenerator

    from ..configs.models import model_path

    return ReportGenerator.from_checkpoint(model_path(models_dir, "report"), device="cpu")


class ReportInferTask(GazeInferTask):
    """Params: ``report_mode`` (gaze2report | prompt | template) and ``gaze`` (auto | recorded | predicted | none)."""

    families = ("classifier", "scanpath", "report")

    def __init__(self, models, record):
        super().__init__(models, record, type=InferType.OTHERS,
                         description="Gaze-conditioned report with evidence links (sentences -> findings, boxes, fixations)",
                         config={"report_mode": "gaze2report", "gaze": "auto"})

    def _fixations(self, image, image_id, gaze):
        if gaze == "none":
            return [], "none"
        if gaze != "predicted":
            record = self.record(image_id)
            if record is not None and record.fixations:
                return list(record.fixations), "recorded"
            if gaze == "recorded":
                raise RequestError(f"params.gaze=recorded: the datastore has no recorded fixations for {image_id!r}")
        scanpath = self.models.get("scanpath", ("scanpath",), load_scanpath)
        return scanpath(image)[0], "predicted"

    def predict(self, image, image_id, request):
        mode = choice_param(request, "report_mode", "gaze2report", REPORT_MODES)
        gaze = choice_param(request, "gaze", "auto", GAZE_CHOICES)
        classifier = self.models.get("classifier", ("classifier",), load_classifier)
        generator = self.models.get("report", ("report",), load_report)
        findings = classifier(image)
        fixations, gaze_source = self._fixations(image, image_id, gaze)
        case = findings.to_case(image_id)
        case.fixations = fixations
        case.report = generator(image, findings, fixations, mode=mode)
        if fixations:
            case.coverage = coverage(fixations, image.width, image.height)
        case.extra["gaze_source"] = gaze_source
        # Who wrote the sentences: the LM, or the template after the labeler refused the LM's.
        case.extra["report_writer"] = generator.writer_summary()
        synthetic = findings.synthetic or bool(generator.info.get("synthetic"))
        return case, findings.heatmap(), synthetic
