"""The annotation loop over one MRML scene: connect, next sample, run the pipeline, edit, save, train.

Everything the GazeLabel widget does is a method here, so it runs (and is tested) headless on an MRML
scene without Qt. The scene is the single source of truth for the case being edited: the session keeps
only the server connection, the current image id and the playback cursor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import scene_io
from .client import GazeLabelClient, ServerError
from .image_io import decode_image
from .playback import FixationPlayback
from .vocab import FINDINGS

# Keys MONAI Label adds to every inference result; they are not part of a Case.
_SERVER_KEYS = ("label_names", "latencies", "centroids", "file", "label", "model")


@dataclass
class TrainingStatus:
    """The latest training task as the server reports it."""

    status: str  # RUNNING, DONE, ERROR, STOPPED, or NONE when no task ever ran
    details: list
    raw: dict

    @property
    def running(self) -> bool:
        return self.status in ("SUBMITTED", "RUNNING")


def case_from_result(result: dict, image_id: str) -> dict:
    """The Case dict inside an inference result (``{"case": {...}}`` or the case itself at top level)."""
    case = result.get("case") if isinstance(result.get("case"), dict) else result
    case = {k: v for k, v in case.items() if k not in _SERVER_KEYS}
    if not isinstance(case.get("id"), str):
        raise ServerError(f"inference for {image_id}: the result holds no Case (no 'id'); keys: {sorted(result)[:12]}")
    return case


def fixation_density(fixations: list[dict], shape: tuple[int, int], sigma_fraction: float = 16.0 / 224.0) -> np.ndarray:
    """Duration-weighted Gaussian density of ``fixations`` on an ``(H, W)`` grid, peak 1; sigma is
    ``sigma_fraction`` of the longer side (the GazeSearch convention the server's heatmaps use)."""
    h, w = shape
    out = np.zeros((h, w), dtype=np.float32)
    if not fixations:
        return out
    sigma = sigma_fraction * max(h, w)
    ys, xs = np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5
    for f in fixations:
        gx = np.exp(-((xs - f["x"]) ** 2) / (2 * sigma**2))
        gy = np.exp(-((ys - f["y"]) ** 2) / (2 * sigma**2))
        out += max(float(f.get("duration", 0.0)), 1e-3) * np.outer(gy, gx)
    return out / out.max()


class AnnotationSession:
    """One annotator's loop against one server, drawing into ``scene``.

    Args:
        scene: the MRML scene to draw into (``slicer.mrmlScene`` in Slicer, a fresh ``vtkMRMLScene`` headless).
        client: a connected :class:`GazeLabelClient`, or None until :meth:`connect`.
    """

    def __init__(self, scene, client: GazeLabelClient | None = None):
        self.scene = scene
        self.client = client
        self.info: dict = {}
        self.image_id: str | None = None
        self.heatmap_source: str | None = None  # "server" or "fixations"
        self.last_result: dict = {}  # the last inference reply without its case: synthetic, models, heatmap, seconds

    # ------------------------------------------------------------------ server
    def connect(self, server_url: str, *, token: str | None = None, username: str | None = None,
                password: str | None = None, timeout: float = 120.0) -> dict:
        """Connect and read ``/info/``; raises ServerError or ValueError with the reason."""
        client = GazeLabelClient(server_url, token=token, username=username, password=password, timeout=timeout)
        self.info = client.info()
        self.client = client
        return self.info

    def _require_client(self) -> GazeLabelClient:
        if self.client is None:
            raise ServerError("not connected: connect to a GazeLabel server first")
        return self.client

    def _require_image(self) -> str:
        if self.image_id is None:
            raise ServerError("no image loaded: ask for the next sample first")
        return self.image_id

    @property
    def models(self) -> list[str]:
        return sorted((self.info.get("models") or {}).keys())

    @property
    def trainers(self) -> list[str]:
        return sorted((self.info.get("trainers") or {}).keys())

    @property
    def strategies(self) -> list[str]:
        return sorted((self.info.get("strategies") or {}).keys())

    # ------------------------------------------------------------------ the loop
    def next_sample(self, strategy: str = "random", params: dict | None = None) -> str | None:
        """Ask the active-learning ``strategy`` (with its request ``params``) for the next image and load
        it; None when none is left."""
        sample = self._require_client().next_sample(strategy, params)
        image_id = sample.get("id") if isinstance(sample, dict) else None
        if not image_id:
            return None
        self.load_image(image_id)
        return image_id

    def load_image(self, image_id: str) -> None:
        """Download ``image_id`` into the image volume; clears the previous case from the scene."""
        download = self._require_client().download_image(image_id)
        decoded = decode_image(download.data, download.filename or image_id)
        scene_io.clear_case(self.scene)
        heatmap = scene_io.find_role(self.scene, "heatmap")
        if heatmap is not None:
            self.scene.RemoveNode(heatmap)
        scene_io.image_volume(self.scene, decoded.array, decoded.spacing_mm)
        self.reset()
        self.image_id = image_id

    def run_pipeline(self, model: str = "pipeline", params: dict | None = None) -> dict:
        """Run the server's ``model`` task on the current image and show its Case (and heatmap)."""
        image_id = self._require_image()
        reply = self._require_client().infer(model, image_id, params)
        case = case_from_result(reply.result, image_id)
        self.last_result = {k: v for k, v in reply.result.items() if k != "case"}
        volume = scene_io.require_role(self.scene, "image")
        dims = volume.GetImageData().GetDimensions()
        image = dict(case.get("image") or {})
        # The server's case may omit the size or spacing; the loaded image knows them.
        if not image.get("width") or not image.get("height"):
            image["width"], image["height"] = dims[0], dims[1]
        if image.get("spacing_mm"):
            row_mm, col_mm = (float(s) for s in image["spacing_mm"])
            spacing = volume.GetSpacing()
            if not (math.isclose(spacing[0], col_mm) and math.isclose(spacing[1], row_mm)):
                volume.SetSpacing(col_mm, row_mm, 1.0)
        case["image"] = image
        scene_io.case_to_scene(self.scene, case)
        self._show_heatmap(reply.image, case, (dims[1], dims[0]))
        return case

    def _show_heatmap(self, image, case: dict, shape: tuple[int, int]) -> None:
        if image is not None:
            heat = decode_image(image.data, image.filename or "heatmap.nii.gz", window=False).array
            if heat.shape != shape:
                raise ServerError(f"heatmap from the server is {heat.shape[1]}x{heat.shape[0]}, the image {shape[1]}x{shape[0]}")
            self.heatmap_source = "server"
        else:
            heat = fixation_density(case.get("fixations") or [], shape)
            self.heatmap_source = "fixations"
        scene_io.heatmap_volume(self.scene, heat)

    def reset(self) -> None:
        """Forget the current image (the scene was closed); the connection stays."""
        self.image_id = None
        self.heatmap_source = None
        self.last_result = {}

    # ------------------------------------------------------------------ edits
    def findings_table(self) -> list[dict]:
        return scene_io.findings_table(self.scene)

    def set_finding(self, finding: str, value: int | None) -> None:
        scene_io.set_finding(self.scene, finding, value)

    def report_text(self) -> str:
        return scene_io.report_text(self.scene)

    def set_report_text(self, text: str) -> None:
        scene_io.set_report_text(self.scene, text)

    def add_box(self, finding: str, xyxy: tuple[float, float, float, float] | None = None):
        """A new editable box for ``finding``; by default a quarter-size box in the image centre."""
        if finding not in FINDINGS:
            raise ValueError(f"unknown finding {finding!r}")
        volume = scene_io.require_role(self.scene, "image")
        w, h = volume.GetImageData().GetDimensions()[:2]
        x1, y1, x2, y2 = xyxy or (w * 0.375, h * 0.375, w * 0.625, h * 0.625)
        roi = scene_io.add_box(self.scene, {"finding": finding, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
        scene_io.layout_labels(self.scene)
        return roi

    def current_case(self) -> dict:
        """The case as edited in the scene (a Case dict in original pixels)."""
        return scene_io.scene_to_case(self.scene)

    def save_label(self, tag: str = "final") -> dict:
        """Upload the edited case as the image's ``tag`` label."""
        image_id = self._require_image()
        case = self.current_case()
        if case.get("id") != image_id:
            raise ServerError(f"the scene shows case {case.get('id')!r} but the loaded image is {image_id!r}")
        return self._require_client().save_label(image_id, case, tag=tag)

    # ------------------------------------------------------------------ training
    def start_training(self, model: str, params: dict | None = None) -> dict:
        return self._require_client().train_start(model, params)

    def training_status(self) -> TrainingStatus:
        """The latest training task; status NONE when the server has never trained (it answers 404 then)."""
        try:
            raw = self._require_client().train_status()
        except ServerError as e:
            if e.status == 404:
                return TrainingStatus("NONE", [], {})
            raise
        if not isinstance(raw, dict) or not raw:
            return TrainingStatus("NONE", [], raw if isinstance(raw, dict) else {"tasks": raw})
        details = raw.get("details") or []
        return TrainingStatus(str(raw.get("status", "NONE")), details if isinstance(details, list) else [details], raw)

    # ------------------------------------------------------------------ playback
    def playback(self, speed: float = 1.0) -> FixationPlayback:
        """A playback cursor over the fixations now in the scene."""
        return FixationPlayback(scene_io.fixations_from_scene(self.scene), speed=speed)

    def show_playback(self, playback: FixationPlayback) -> None:
        """Show only the fixations played so far, with their path and discs (all when playback is not on)."""
        if scene_io.find_role(self.scene, "fixations") is not None:
            scene_io.show_fixations(self.scene, playback.visible())
