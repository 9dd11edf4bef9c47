"""The GazeLabel infer tasks: each one a parameter parser over :meth:`models.pipeline.Pipeline.run`.

A task is a preset of :data:`models.pipeline.TASKS` (which families run, the option defaults); every task
takes the same params (form field ``params``, JSON), so the server and ``gazelabel predict --task NAME``
give the same answer for the same request:

``n_samples`` (1-16 scanpaths), ``seed``, ``temperature`` (0-4, default 0.3), ``mc_samples`` (0-50,
classifier and vqa MC dropout), ``report_mode`` (auto | gaze2report | prompt | template | none), ``gaze`` (auto |
recorded | predicted | none: recorded = the radiologist's fixations the datastore has for the image),
``finding`` (the heatmap of one finding; default the score-weighted mean) and ``question`` (the ``vqa`` task's
question, required there: 1-300 characters; the answer, confidence, evidence box and fixations are in
``case.prediction.answer``).

The JSON result of every task::

    {"case": <models.schema Case dict: findings, scores, boxes, fixations, report with evidence,
              prediction (models, synthetic, uncertainty, scanpath samples, report writer ...)>,
     "synthetic": true if the image or a model's training data is synthetic,
     "models": {"classifier": "<checkpoint stamp>", ...},   # changes when training publishes a model
     "heatmap": {"height", "width", "max", "layout"},         # only when the label image was asked for
     "seconds": wall time of the task}

With ``output=image|all`` the label image is the heatmap as NIfTI (``.nii.gz``): float32 ``(W, H, 1)``
where voxel ``[x, y, 0]`` is the heatmap at column x, row y of the original image, affine
``diag(-col_mm, -row_mm, 1)`` (Slicer shows it the way a radiograph is read).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from models.imaging import read_image
from models.recorded_gaze import recorded_readers
from models.pipeline import GAZE_CHOICES, REPORT_MODES, RunError, RunOptions, Task
from models.report.config import MAX_INFERENCE_SAMPLES
from models.schema import MAX_QUESTION_CHARS, Case
from models.vocab import FINDINGS, canonical_finding

from ...parsing import RequestError, parse_bool, parse_choice, parse_float, parse_int
from ..configs.models import ModelCache, stamp_text
from ..datastores.uploads import check_radiograph

IMAGE_SUFFIXES = (".nii.gz", ".png", ".dcm", ".jpg", ".jpeg", ".nii")
HEATMAP_LAYOUT = "NIfTI float32 (W, H, 1), voxel [x, y, 0] = column x, row y; affine diag(-col_mm, -row_mm, 1)"


def image_id_of(path: str) -> str:
    """The datastore id of an image file (its name without the image suffix)."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def write_heatmap(heatmap: np.ndarray, spacing_mm: tuple[float, float] | None) -> str:
    """Write an ``(H, W)`` heatmap as a temporary ``.nii.gz`` label image (layout in the module docstring)."""
    import nibabel as nib

    row_mm, col_mm = spacing_mm or (1.0, 1.0)
    volume = np.ascontiguousarray(np.asarray(heatmap, dtype=np.float32).T[:, :, None])
    path = tempfile.NamedTemporaryFile(suffix=".nii.gz", delete=False).name
    nib.save(nib.Nifti1Image(volume, np.diag([-col_mm, -row_mm, 1.0, 1.0])), path)
    return path


def question_param(request: dict, required: bool) -> str | None:
    """The request's ``question``: text of 1..MAX_QUESTION_CHARS characters (RequestError names it otherwise);
    None when absent and not ``required``."""
    question = request.get("question")
    if question is None or (isinstance(question, str) and not question.strip() and not required):
        if required:
            raise RequestError("params.question: this task answers a question; send params {\"question\": "
                               "\"Is there a pleural effusion?\"} (1-300 characters)")
        return None
    if not isinstance(question, str):
        raise RequestError(f"params.question: expected text, got {type(question).__name__}")
    if not question.strip():
        raise RequestError("params.question: the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise RequestError(f"params.question: {len(question)} characters; at most {MAX_QUESTION_CHARS} are accepted")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in question):
        raise RequestError("params.question: control characters are not accepted")
    return question


def run_options(request: dict, defaults: RunOptions, needs_question: bool = False) -> RunOptions:
    """The pipeline options of a request's params, each checked (RequestError names the param)."""
    finding = request.get("finding") or None
    if finding is not None:
        try:
            finding = canonical_finding(finding if isinstance(finding, str) else "")
        except KeyError as e:
            raise RequestError(f"params.finding: {e.args[0]}") from None
    return RunOptions(
        n_samples=int_param(request, "n_samples", defaults.n_samples, 1, 16),
        seed=int_param(request, "seed", defaults.seed, 0, 2**31 - 1),
        temperature=float_param(request, "temperature", defaults.temperature, 0.0, 4.0),
        mc_samples=int_param(request, "mc_samples", defaults.mc_samples, 0, 50),
        report_mode=choice_param(request, "report_mode", defaults.report_mode, REPORT_MODES),
        report_samples=int_param(request, "report_samples", defaults.report_samples, 0, MAX_INFERENCE_SAMPLES),
        gaze=choice_param(request, "gaze", defaults.gaze, GAZE_CHOICES),
        finding=finding,
        question=question_param(request, needs_question),
    )


class GazeInferTask(InferTask):
    """One preset of :data:`models.pipeline.TASKS` served as a MONAI Label infer task.

    Args:
        task: the preset (families and option defaults).
        models: the app's :class:`ModelCache` (models reload when training publishes new files).
        record: ``image_id -> Case | None``, the stored record or label of a datastore image (recorded
            gaze, synthetic flag); None for uploaded files. Read, never changed: the app shares one parsed
            Case between requests until its files change.
    """

    def __init__(self, task: Task, models: ModelCache, record: Callable[[str], Case | None],
                 store_prediction: Callable[[str, Case, np.ndarray | None], dict] | None = None):
        kind = InferType.CLASSIFICATION if task.families == ("classifier",) else InferType.OTHERS
        super().__init__(type=kind, labels=list(FINDINGS), dimension=2, description=task.description,
                         config={**{k: v for k, v in asdict(task.defaults).items() if v is not None},
                                 # declared (so the params check accepts it) with an empty default: required
                                 **({"question": ""} if task.needs_question else {}),
                                 "store_in_pacs": False})
        self.task = task
        self.models = models
        self.record = record
        self.store_prediction = store_prediction
        # The task cannot run without its first family (the report and pipeline tasks need the classifier), the
        # vqa task without its vqa model.
        self.required = task.required_families

    def is_valid(self) -> bool:
        return self.models.available(self.required)

    def __call__(self, request: dict):
        start = time.perf_counter()
        path = str(request["image"])
        image_id = image_id_of(path)
        options = run_options(request, self.task.defaults, self.task.needs_question)
        store = parse_bool(request.get("store_in_pacs", False), "params.store_in_pacs")
        if store and self.store_prediction is None:
            raise RequestError("params.store_in_pacs: this server's datastore is not a PACS; start it with --studies "
                               "http://<pacs>/dicom-web to store predictions as DICOM SR")
        image = check_radiograph(read_image(path))
        record = self.record(image_id)
        pipeline = self.models.pipeline(self.task.families, required=self.required)
        readers = recorded_readers(record) if record is not None else {}
        recorded = list(next(iter(readers.values()))) if readers else None  # a person's gaze, never a saved prediction
        try:
            result = pipeline.run(image, case_id=image_id, families=self.task.families, options=options,
                                  recorded_gaze=recorded)
        except RunError as e:  # options the models cannot honour (gaze=recorded without gaze ...)
            raise RequestError(f"params.{e}") from None
        case = result.case
        case.image.path = Path(path).name
        case.image.synthetic = bool(case.image.synthetic or (record is not None and record.image.synthetic))
        served = self.models.served(self.task.families)
        output = {
            "case": case.to_dict(),
            "synthetic": bool(case.image.synthetic or (case.prediction and case.prediction.synthetic)),
            "models": {f: stamp_text(s) for f, s in zip(self.task.families, served) if s is not None},
        }
        label_file = None
        if request.get("heatmap"):
            label_file = write_heatmap(result.heatmap, image.spacing_mm)
            output["heatmap"] = {"height": image.height, "width": image.width,
                                 "max": float(np.max(result.heatmap, initial=0.0)), "layout": HEATMAP_LAYOUT}
        if store:
            output["pacs"] = self.store_prediction(image_id, case, result.heatmap)
        output["seconds"] = time.perf_counter() - start
        return label_file, output


def int_param(request: dict, key: str, default: int, low: int, high: int) -> int:
    """An integer request parameter in ``[low, high]``; RequestError (HTTP 400) names it otherwise."""
    return parse_int(request.get(key, default), f"params.{key}", low, high)


def float_param(request: dict, key: str, default: float, low: float, high: float) -> float:
    """A number request parameter in ``[low, high]``; RequestError (HTTP 400) names it otherwise."""
    return parse_float(request.get(key, default), f"params.{key}", low, high)


def choice_param(request: dict, key: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``; RequestError (HTTP 400) names the parameter and the choices otherwise."""
    return parse_choice(request.get(key, default), f"params.{key}", choices)


__all__ = ["GazeInferTask", "HEATMAP_LAYOUT", "choice_param", "float_param", "image_id_of", "int_param", "question_param",
           "run_options", "write_heatmap"]
