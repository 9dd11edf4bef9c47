"""What every GazeLabel infer task shares: read the image, run a model, answer a Case (+ optional heatmap).

The JSON result of every task::

    {"case": <models.schema Case dict: findings, scores, boxes, fixations, report with evidence ...>,
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
from abc import abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from models.imaging import LoadedImage, read_image
from models.schema import Case
from models.vocab import FINDINGS

from ...parsing import parse_choice, parse_float, parse_int
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


class GazeInferTask(InferTask):
    """Base of the GazeLabel tasks: subclasses set ``families`` and implement :meth:`predict`.

    Args:
        models: the app's :class:`ModelCache` (models reload when training publishes new files).
        record: ``image_id -> Case | None``, the stored record or label of a datastore image (recorded
            gaze, synthetic flag); None for uploaded files.
    """

    families: tuple[str, ...] = ()  # model files the task reloads on
    required: tuple[str, ...] | None = None  # of those, the ones it cannot run without (default: all)

    def __init__(self, models: ModelCache, record: Callable[[str], Case | None], *, type: str, description: str,
                 config: dict | None = None):
        super().__init__(type=type, labels=list(FINDINGS), dimension=2, description=description, config=config)
        self.models = models
        self.record = record

    def is_valid(self) -> bool:
        return self.models.available(self.families if self.required is None else self.required)

    @abstractmethod
    def predict(self, image: LoadedImage, image_id: str, request: dict) -> tuple[Case, np.ndarray, bool]:
        """``(case, heatmap (H, W) float32, models_synthetic)`` for one image."""

    def __call__(self, request: dict):
        start = time.perf_counter()
        path = str(request["image"])
        image_id = image_id_of(path)
        image = check_radiograph(read_image(path))
        case, heatmap, models_synthetic = self.predict(image, image_id, request)
        record = self.record(image_id)
        case.id = image_id
        case.image.path = Path(path).name
        case.image.height, case.image.width = image.height, image.width
        case.image.spacing_mm = image.spacing_mm
        case.image.synthetic = bool(case.image.synthetic or (record is not None and record.image.synthetic))
        if models_synthetic:
            case.extra["models_trained_on_synthetic_data"] = True
        result = {
            "case": case.to_dict(),
            "synthetic": bool(case.image.synthetic or models_synthetic),
            "models": {f: stamp_text(s) for f, s in zip(self.families, self.models.served(self.families))},
        }
        label_file = None
        if request.get("heatmap"):
            label_file = write_heatmap(heatmap, image.spacing_mm)
            result["heatmap"] = {"height": image.height, "width": image.width, "max": float(np.max(heatmap, initial=0.0)),
                                 "layout": HEATMAP_LAYOUT}
        result["seconds"] = time.perf_counter() - start
        return label_file, result


def int_param(request: dict, key: str, default: int, low: int, high: int) -> int:
    """An integer request parameter in ``[low, high]``; RequestError (HTTP 400) names it otherwise."""
    return parse_int(request.get(key, default), f"params.{key}", low, high)


def float_param(request: dict, key: str, default: float, low: float, high: float) -> float:
    """A number request parameter in ``[low, high]``; RequestError (HTTP 400) names it otherwise."""
    return parse_float(request.get(key, default), f"params.{key}", low, high)


def choice_param(request: dict, key: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``; RequestError (HTTP 400) names the parameter and the choices otherwise."""
    return parse_choice(request.get(key, default), f"params.{key}", choices)


__all__ = ["GazeInferTask", "InferType", "choice_param", "float_param", "image_id_of", "int_param", "write_heatmap",
           "HEATMAP_LAYOUT"]
