"""The annotation loop over one MRML scene: connect, next sample, run the pipeline, edit, save, train.

Everything the GazeLabel widget does is a method here, so it runs (and is tested) headless on an MRML
scene without Qt. The scene is the single source of truth for the case being edited: the session keeps
only the server connection, the current image id and the playback cursor.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import numpy as np

from . import question as vqa
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


DEFAULT_SCREEN = "1920x1080 px, 527x296 mm, 650 mm"


def parse_screen(text: str):
    """The screen geometry setting, ``"1920x1080 px, 527x296 mm, 650 mm"`` -> ``((1920, 1080), (527.0, 296.0),
    650.0)`` (pixels, visible size in mm, eye-to-screen distance in mm); ValueError naming the part."""
    from .screen import parse_size

    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3 or not parts[0].endswith("px") or not parts[1].endswith("mm") or not parts[2].endswith("mm"):
        raise ValueError(f"screen: expected 'WxH px, WxH mm, D mm' (e.g. {DEFAULT_SCREEN!r}), got {text!r}")
    w, h = parse_size(parts[0][:-2].strip(), "screen pixels")
    mm = parse_size(parts[1][:-2].strip(), "screen size in mm", integer=False)
    try:
        distance = float(parts[2][:-2].strip())
    except ValueError:
        distance = -1.0
    if not distance > 0:
        raise ValueError(f"screen: the viewing distance must be a number of mm > 0, got {parts[2]!r}")
    return (int(w), int(h)), (float(mm[0]), float(mm[1])), distance


def reading_record(reading) -> dict:
    """What a label keeps of a recorded reading beside its fixations (``extra["gaze_capture"][<annotator>]``):
    source, settings, counts, rate, latency, and the raw samples and view states as a sidecar (gzip JSON,
    base64) that ``capture.Reading.from_sidecar`` reads back."""
    import base64

    return {
        "source": reading.source,
        "settings": reading.settings,
        "samples": reading.n_samples,
        "dropped": dict(reading.dropped),
        "sampling_rate_hz": reading.sampling_rate_hz,
        "latency_ms": dict(reading.latency_ms),
        "disconnects": reading.disconnects,
        "views": len(reading.views),
        "sidecar": {"encoding": "gzip+base64", "data": base64.b64encode(reading.sidecar_bytes()).decode("ascii")},
    }


def sidecar_of(record: dict):
    """The ``capture.Reading`` inside a label's gaze-capture record (see :func:`reading_record`)."""
    import base64

    from .capture import Reading

    sidecar = (record or {}).get("sidecar") or {}
    if sidecar.get("encoding") != "gzip+base64":
        raise ValueError(f"gaze_capture.sidecar.encoding: expected 'gzip+base64', got {sidecar.get('encoding')!r}")
    return Reading.from_sidecar(base64.b64decode(sidecar.get("data") or ""))


def annotator_id(name: str, salt: str) -> str:
    """``"annotator-<12 hex>"``: a keyed hash of the annotator's name (HMAC-SHA256 with the installation's
    salt), so labels carry a stable pseudonym, never the name."""
    import hashlib
    import hmac

    digest = hmac.new(salt.encode("utf-8"), name.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()
    return f"annotator-{digest[:12]}"


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
        self.annotator_id: str | None = None  # pseudonymous reader key for recorded gaze (see annotator_id())
        # Who asks for the next sample: the server hands the image to this session only (a claim) until it
        # is saved, so two annotators never get the same image at once. The annotator id once one is set.
        self.session_client_id = f"session-{uuid.uuid4().hex[:16]}"
        self.recorder = None  # a capture.GazeRecorder while the annotator's gaze is recorded (opt-in)
        self.readings: dict = {}  # annotator id -> capture.Reading of the current image, saved with the label
        self.shown_reader: str | None = None  # whose recorded fixations the scene shows instead of the case's
        self._case_fixations: list[dict] | None = None
        self.last_answer: dict | None = None  # the last question's answer block (see ask())

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
        params = {"client_id": self.annotator_id or self.session_client_id, **(params or {})}
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
        vqa.clear_evidence(self.scene)
        self.last_answer = None
        heatmap = scene_io.find_role(self.scene, "heatmap")
        if heatmap is not None:
            self.scene.RemoveNode(heatmap)
        scene_io.image_volume(self.scene, decoded.array, decoded.spacing_mm)
        if self.recorder is not None:
            self.stop_gaze()  # a reading belongs to one image
        self.readings, self.shown_reader, self._case_fixations = {}, None, None
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

    def ask(self, question: str, params: dict | None = None, model: str = "vqa") -> dict:
        """Ask the server's ``vqa`` task ``question`` about the current image and highlight the evidence (box and
        fixations) in the scene, beside the case being edited (which stays as it is). Returns the answer block
        (``answer``, ``answerable``, ``reason``, ``confidence``, ``box``, ``fixations`` ...). ValueError for an
        empty or over-long question (nothing is sent), ServerError for what the server refuses."""
        text = vqa.check_question(question)
        image_id = self._require_image()
        reply = self._require_client().infer(model, image_id, {**(params or {}), "question": text}, output="json")
        answer = vqa.answer_of(reply.result)
        fixations = (reply.result.get("case") or {}).get("fixations") or []
        vqa.show_evidence(self.scene, answer, fixations)
        self.last_answer = answer
        return answer

    def show_case(self, case: dict) -> None:
        """Show a Case dict (e.g. a saved label read back) on the loaded image, without running a model."""
        self._require_image()
        if case.get("id") != self.image_id:
            raise ValueError(f"case {case.get('id')!r} is not the loaded image {self.image_id!r}")
        scene_io.case_to_scene(self.scene, case)
        self.shown_reader, self._case_fixations = None, None

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
        """Upload the edited case as the image's ``tag`` label, with every gaze reading recorded on this
        image as one more reader (``readers[<annotator id>]``: fixations in original pixels and seconds) and
        its raw samples and view states as a compressed sidecar (``extra["gaze_capture"][<annotator id>]``).
        With an annotator set, ``params.annotator`` names them to the server (on a PACS: the SR's observer)."""
        image_id = self._require_image()
        if self.recorder is not None:
            self.stop_gaze()
        case = self.current_case()
        if case.get("id") != image_id:
            raise ServerError(f"the scene shows case {case.get('id')!r} but the loaded image is {image_id!r}")
        if self.shown_reader is not None and self._case_fixations is not None:
            case["fixations"] = self._case_fixations  # the scene shows a reader's playback, not the case's gaze
        for annotator, reading in self.readings.items():
            fixations = reading.reader_fixations()
            if not fixations:
                continue
            case.setdefault("readers", {})[annotator] = fixations
            case.setdefault("extra", {}).setdefault("gaze_capture", {})[annotator] = reading_record(reading)
        # The annotator (pseudonymous id) is the person observer of the label's DICOM SR on a PACS server.
        params = {"annotator": self.annotator_id} if self.annotator_id else None
        return self._require_client().save_label(image_id, case, tag=tag, params=params)

    # ------------------------------------------------------------------ gaze capture
    def set_annotator(self, name: str, salt: str) -> str:
        """Use a pseudonymous reader key for ``name``: the same person gets the same key on every label of
        this installation (``salt``: a per-installation secret, e.g. from the extension's settings); the name
        itself is never sent."""
        if not name.strip() or not salt:
            raise ValueError("annotator: a name and the installation's salt are needed for a pseudonymous id")
        self.annotator_id = annotator_id(name, salt)
        return self.annotator_id

    def start_gaze(self, recorder) -> None:
        """Start recording the annotator's gaze on the current image with ``recorder`` (a
        ``capture.GazeRecorder`` over the chosen source). Opt-in: nothing records until this is called, and
        ``gaze_status`` says that it does."""
        self._require_image()
        if self.annotator_id is None:
            raise ValueError("gaze capture: set the annotator first (set_annotator), so the reading has a reader key")
        if self.recorder is not None:
            raise ValueError("gaze capture: already recording; stop it first")
        recorder.start()
        self.recorder = recorder

    def pump_gaze(self) -> None:
        """Map the samples that arrived since the last call (the widget calls this from a timer)."""
        if self.recorder is not None:
            self.recorder.pump()

    def stop_gaze(self):
        """Stop recording; the reading is kept for this image's label (a second reading by the same annotator
        replaces the first) and returned."""
        if self.recorder is None:
            return None
        recorder, self.recorder = self.recorder, None
        reading = recorder.stop()
        self.readings[self.annotator_id] = reading
        return reading

    @property
    def gaze_status(self) -> dict:
        """For the live indicator: recording or not, the source, whether it is connected, samples per second."""
        if self.recorder is None:
            return {"recording": False, "text": "Gaze: not recording"}
        live = self.recorder.live
        return {"recording": True, "connected": live.connected, "samples_per_s": live.samples_per_s,
                "samples": live.samples, "dropped": live.dropped, "source": live.source, "text": str(live)}

    def show_reader(self, reader: str | None) -> list[dict]:
        """Show a recorded reader's fixations in place of the case's (None: back to the case's), so that
        playback replays a recorded reading like a predicted one. Returns the fixations shown."""
        if self._case_fixations is None:
            self._case_fixations = scene_io.fixations_from_scene(self.scene)
        if reader is None:
            fixations, self.shown_reader = self._case_fixations, None
        else:
            readers = dict(scene_io.scene_to_case(self.scene).get("readers") or {})
            readers.update({a: r.reader_fixations() for a, r in self.readings.items()})
            if reader not in readers:
                raise ValueError(f"no recorded reading {reader!r} on this image; readers: {', '.join(readers) or 'none'}")
            fixations, self.shown_reader = readers[reader], reader
        scene_io.set_fixations(self.scene, fixations)
        return fixations

    def readers(self) -> list[str]:
        """The recorded readers of the current image: the case's and this session's readings."""
        names = list((scene_io.scene_to_case(self.scene).get("readers") or {}))
        return names + [a for a in self.readings if a not in names]

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
