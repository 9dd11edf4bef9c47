"""What the web annotator does, without the web: the Slicer module's :class:`AnnotationSession` plus the little
view state a page needs (which overlays are on, which scanpath is shown, the playback cursor, the highlighted
report sentence), and the rows the page's panels show.

Everything that touches the case goes through ``GazeLabelLib``: the session (server, next sample, pipeline,
edits, save, training) and ``scene_io`` (the case in the scene, boxes, labels, highlights). This module adds
no mapping of its own; the page (:mod:`web_annotator.app`) only turns its rows into widgets. It runs headless
on a plain MRML scene (``tests/slicer/test_web_controller.py``) and inside trame-slicer's scene.

Hooks kept here rather than in ``session.py`` (noted for the session's owner):

- showing another sampled scanpath (``case.prediction.scanpath_samples``) in place of the case's fixations,
  restored before saving, like ``AnnotationSession.show_reader`` does for recorded readers;
- removing a box (``scene_io.remove_box``) and highlighting a sentence's evidence (``scene_io.highlight``).
"""

from __future__ import annotations

from dataclasses import dataclass

from GazeLabelLib import question as vqa
from GazeLabelLib import scene_io
from GazeLabelLib.client import ServerError
from GazeLabelLib.headless import HEATMAP_OPACITY
from GazeLabelLib.session import AnnotationSession
from GazeLabelLib.vocab import FINDINGS

# Node roles of each overlay the page switches on and off.
OVERLAY_ROLES = {
    "fixations": ("fixations", "scanpath", "durations"),
    "boxes": ("box", "box_labels"),
    "samples": ("scanpath_samples",),
}
VALUE_NAMES = {1: "present", 0: "absent", -1: "uncertain", None: "not mentioned"}


@dataclass
class Overlays:
    heatmap: bool = True
    fixations: bool = True
    boxes: bool = True
    samples: bool = False  # the other sampled scanpaths, faint
    heatmap_opacity: float = HEATMAP_OPACITY
    heat_stretch: bool = False  # colours over the heatmap's [min, max] instead of above its baseline


class WebAnnotator:
    """One annotator's page over ``scene`` (trame-slicer's ``SlicerApp().scene``, or a headless one)."""

    def __init__(self, scene, session: AnnotationSession | None = None):
        self.scene = scene
        self.session = session or AnnotationSession(scene)
        self.overlays = Overlays()
        self.path_shown = "case"  # "case", "sample:<k>" or "reader:<annotator>"
        self.highlighted: int | None = None  # report sentence whose evidence is highlighted
        self.playback = None
        self.window_level = (1.0, 0.5)  # the radiograph is float in [0, 1]
        # The box whose drag handles are shown (None: none). Handles are costly to draw (12 boxes' handles took
        # 300 ms of a 340 ms frame on 2 busy cores, 46 ms without), so one box at a time is editable.
        self.editable_box: int | None = None
        self._case_fixations: list[dict] | None = None  # the case's own, while a sample is shown

    # ------------------------------------------------------------------ state
    @property
    def connected(self) -> bool:
        return self.session.client is not None

    @property
    def has_case(self) -> bool:
        return scene_io.find_role(self.scene, "case") is not None

    @property
    def image_id(self) -> str | None:
        return self.session.image_id

    # ------------------------------------------------------------------ the loop
    def connect(self, url: str, mode: str = "none", *, token: str | None = None, username: str | None = None,
                password: str | None = None) -> dict:
        """Connect with ``mode`` none / token / basic; ServerError or ValueError with the reason."""
        if mode not in ("none", "token", "basic"):
            raise ValueError(f"auth: none, token or basic, not {mode!r}")
        return self.session.connect(url, token=token if mode == "token" else None,
                                    username=username if mode == "basic" else None,
                                    password=password if mode == "basic" else None)

    def next_case(self, strategy: str, params: dict | None = None) -> str | None:
        """The next image of ``strategy`` in the scene (no case yet); None when none is left."""
        self._forget_view_state()
        return self.session.next_sample(strategy, params)

    def run(self, model: str = "pipeline", params: dict | None = None) -> dict:
        """Run ``model`` on the loaded image and show its case with the current overlays."""
        self._forget_view_state()
        case = self.session.run_pipeline(model, params)
        self.apply_display()
        return case

    @property
    def can_ask(self) -> bool:
        """The server has a ``vqa`` task and an image is loaded."""
        return self.connected and self.session.image_id is not None and "vqa" in self.session.models

    def ask(self, question: str, params: dict | None = None) -> str:
        """Ask the server's ``vqa`` task about the loaded image; the evidence box and fixations are highlighted
        beside the case (``GazeLabelLib.question``), the returned line says the answer or why it cannot."""
        return vqa.answer_text(self.session.ask(question, params))

    def _forget_view_state(self) -> None:
        self.path_shown, self.highlighted, self.playback, self._case_fixations = "case", None, None, None
        self.editable_box = None

    def save(self, tag: str = "final") -> dict:
        """Save the case as edited (the case's own fixations, whatever path is on screen)."""
        self.show_path("case")
        return self.session.save_label(tag)

    def start_training(self, model: str, params: dict | None = None) -> dict:
        return self.session.start_training(model, params)

    def training(self) -> dict:
        """``{"status", "running", "details": last lines}`` of the latest training task."""
        status = self.session.training_status()
        return {"status": status.status, "running": status.running, "details": [str(d) for d in status.details[-4:]]}

    # ------------------------------------------------------------------ display
    def apply_display(self) -> None:
        """Overlay visibility and the window/level, after every new case or scene change."""
        for overlay, roles in OVERLAY_ROLES.items():
            shown = getattr(self.overlays, overlay)
            for role in roles:
                for node in scene_io.nodes_with_role(self.scene, role):
                    display = node.GetDisplayNode()
                    if display is not None:
                        display.SetVisibility(shown)
        if scene_io.find_role(self.scene, "heatmap") is not None:
            scene_io.set_heatmap_range(self.scene, stretch=self.overlays.heat_stretch)
        for i, roi in enumerate(scene_io.nodes_with_role(self.scene, "box")):
            roi.GetDisplayNode().SetHandlesInteractive(i == self.editable_box)
        image = scene_io.find_role(self.scene, "image")
        if image is not None and image.GetDisplayNode() is not None:
            window, level = self.window_level
            image.GetDisplayNode().AutoWindowLevelOff()
            image.GetDisplayNode().SetWindowLevel(window, level)

    @property
    def heatmap_opacity(self) -> float:
        """The foreground (heatmap) layer's opacity in the slice view: 0 while the heatmap is switched off."""
        return self.overlays.heatmap_opacity if self.overlays.heatmap else 0.0

    def set_overlay(self, overlay: str, shown: bool) -> None:
        if overlay not in ("heatmap", "heat_stretch", *OVERLAY_ROLES):
            raise ValueError(f"overlay: heatmap, heat_stretch, {', '.join(OVERLAY_ROLES)}; not {overlay!r}")
        setattr(self.overlays, overlay, bool(shown))
        if overlay == "samples":
            self._draw_samples()
        self.apply_display()

    def set_window_level(self, window: float, level: float) -> None:
        if not window > 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.window_level = (float(window), float(level))
        self.apply_display()

    # ------------------------------------------------------------------ scanpaths
    def samples(self) -> list[list[dict]]:
        """The prediction's sampled scanpaths (the first is usually the case's fixations)."""
        if not self.has_case:
            return []
        prediction = scene_io.scene_to_case(self.scene).get("prediction") or {}
        return [list(p) for p in prediction.get("scanpath_samples") or []]

    def path_choices(self) -> list[dict]:
        """``[{"title", "value"}]``: the case's fixations, each sampled scanpath, each recorded reader."""
        if not self.has_case:
            return []
        source = (scene_io.scene_to_case(self.scene).get("prediction") or {}).get("gaze_source") or "case"
        out = [{"title": f"Case fixations ({source})", "value": "case"}]
        out += [{"title": f"Scanpath sample {k + 1} ({len(p)} fixations)", "value": f"sample:{k}"}
                for k, p in enumerate(self.samples())]
        out += [{"title": f"Reader {r}", "value": f"reader:{r}"} for r in self.session.readers()]
        return out

    def show_path(self, choice: str) -> list[dict]:
        """Show the case's fixations, a sampled scanpath or a recorded reader's fixations as the numbered,
        played-back path; returns the fixations shown. The case keeps its own fixations."""
        if not self.has_case:
            return []
        if self._case_fixations is not None:  # a sample is on screen: put the case's fixations back
            scene_io.set_fixations(self.scene, self._case_fixations)
            self._case_fixations = None
        if self.session.shown_reader is not None:
            self.session.show_reader(None)
        shown = scene_io.fixations_from_scene(self.scene)
        kind, _, name = choice.partition(":")
        if kind == "sample":
            paths = self.samples()
            k = int(name)
            if not 0 <= k < len(paths):
                raise ValueError(f"scanpath sample {k + 1} does not exist ({len(paths)} sampled)")
            self._case_fixations = shown
            scene_io.set_fixations(self.scene, paths[k])
            shown = paths[k]
        elif kind == "reader":
            shown = self.session.show_reader(name)
        elif choice != "case":
            raise ValueError(f"path: case, sample:<k> or reader:<name>, not {choice!r}")
        self.path_shown, self.playback, self.highlighted = choice, None, None
        scene_io.layout_labels(self.scene)
        self._draw_samples()
        self.apply_display()
        return shown

    def _draw_samples(self) -> None:
        """The sampled scanpaths other than the one shown, faint, while the samples overlay is on."""
        if not self.has_case:
            return
        paths = self.samples() if self.overlays.samples else []
        shown = int(self.path_shown.partition(":")[2]) if self.path_shown.startswith("sample:") else 0
        scene_io.show_scanpath_samples(self.scene, [p for k, p in enumerate(paths) if k != shown])

    # ------------------------------------------------------------------ playback
    def play_step(self, speed: float = 1.0, back: bool = False):
        """Show one more (or one fewer) fixation; the frame shown (None once past the end), whose
        ``wait_ms`` says how long to wait before the next step."""
        if self.playback is None:
            self.playback = self.session.playback(speed=speed)
        self.playback.speed = speed
        frame = self.playback.back() if back else self.playback.step()
        self.session.show_playback(self.playback)
        return frame

    def play_reset(self) -> None:
        """All fixations again (playback off)."""
        if self.playback is not None:
            self.playback.reset()
            self.session.show_playback(self.playback)
        self.playback = None

    # ------------------------------------------------------------------ edits
    def set_finding(self, finding: str, value: int | None) -> None:
        self.session.set_finding(finding, value)

    def add_box(self, finding: str, xyxy=None):
        """A new box for ``finding`` (default: a quarter-size box in the centre), with its drag handles on."""
        roi = self.session.add_box(finding, xyxy)
        self.editable_box = len(scene_io.nodes_with_role(self.scene, "box")) - 1
        self.apply_display()
        return roi

    def set_editable_box(self, index: int | None) -> None:
        """Show the drag handles of box ``index`` (scene order) only; None: of no box."""
        if index is not None and not 0 <= index < len(scene_io.nodes_with_role(self.scene, "box")):
            raise ValueError(f"box {index + 1} does not exist")
        self.editable_box = index
        self.apply_display()

    def remove_box(self, index: int) -> None:
        rois = scene_io.nodes_with_role(self.scene, "box")
        if not 0 <= index < len(rois):
            raise ValueError(f"box {index + 1} does not exist ({len(rois)} boxes)")
        self.highlighted = None
        scene_io.highlight(self.scene)
        scene_io.remove_box(self.scene, rois[index])
        if self.editable_box is not None:
            self.editable_box = None if self.editable_box == index else self.editable_box - (self.editable_box > index)

    def set_report_text(self, text: str) -> None:
        if text != self.session.report_text():
            self.session.set_report_text(text)
            self.highlighted = None
            scene_io.highlight(self.scene)

    def highlight_sentence(self, index: int | None) -> dict:
        """Highlight the box and fixations behind report sentence ``index`` (None: clear); returns what is
        highlighted ``{"boxes": [...], "fixations": [...]}`` (box indices in scene order, 0-based fixations)."""
        if index is None or not self.has_case:
            self.highlighted = None
            if self.has_case:
                scene_io.highlight(self.scene)
            return {"boxes": [], "fixations": []}
        rows = self.report_rows()
        if not 0 <= index < len(rows):
            raise ValueError(f"sentence {index + 1} does not exist ({len(rows)} sentences)")
        if self.path_shown != "case":
            self.show_path("case")  # evidence indices count the case's fixations
        self.play_reset()
        self.highlighted = index
        boxes, fixations = rows[index]["boxes"], rows[index]["fixations"]
        scene_io.highlight(self.scene, boxes, fixations)
        if boxes:  # the evidence box is the one to correct
            self.set_editable_box(boxes[0])
        return {"boxes": boxes, "fixations": fixations}

    # ------------------------------------------------------------------ rows for the page
    def findings_rows(self) -> list[dict]:
        """One row per CheXpert finding: name, decision (1/0/-1/None), its word, the model's score."""
        if not self.has_case:
            return []
        return [{**row, "word": VALUE_NAMES[row["value"]],
                 "score_text": "" if row["score"] is None else f"{row['score']:.2f}"}
                for row in self.session.findings_table()]

    def box_rows(self) -> list[dict]:
        """The boxes in scene order: index, finding, score, pixels ``(x1, y1, x2, y2)``."""
        if not self.has_case:
            return []
        volume = scene_io.require_role(self.scene, "image")
        out = []
        for i, roi in enumerate(scene_io.nodes_with_role(self.scene, "box")):
            x1, y1, x2, y2 = scene_io.box_pixels(volume, roi)
            out.append({"index": i, "finding": roi.GetName(), "label": scene_io.box_label_text(roi),
                        "xyxy": [round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)],
                        "editable": i == self.editable_box})
        return out

    def report_rows(self) -> list[dict]:
        """The report's sentences with their evidence: ``{"index", "text", "findings", "regions", "boxes",
        "fixations"}`` (boxes in scene order, fixations 0-based in the case's order). An edited report has
        no links (its sentences are no longer the ones the evidence points at)."""
        if not self.has_case:
            return []
        case = scene_io.scene_to_case(self.scene)
        report = case.get("report") or {}
        links: dict[int, list[dict]] = {}
        for e in report.get("evidence") or []:
            links.setdefault(int(e.get("sentence", 0)), []).append(e)
        rows = []
        for i, text in enumerate(scene_io.report_sentences(report)):
            evidence = links.get(i, [])
            rows.append({
                "index": i, "text": text,
                "findings": sorted({e["finding"] for e in evidence if e.get("finding")}),
                "regions": sorted({e["region"] for e in evidence if e.get("region")}),
                "boxes": sorted({int(e["box"]) for e in evidence if e.get("box") is not None}),
                "fixations": sorted({int(f) for e in evidence for f in e.get("fixations") or []}),
            })
        return rows

    def case_view(self) -> dict:
        """What the page's view shows, in image pixels: the image size, boxes, fixations shown (for the
        page's lists and for tests that look for them on screen)."""
        if not self.has_case:
            return {}
        case = scene_io.scene_to_case(self.scene)
        image = case.get("image") or {}
        return {"id": case["id"], "width": image.get("width"), "height": image.get("height"),
                "synthetic": bool(image.get("synthetic")) or bool((case.get("prediction") or {}).get("synthetic")),
                "boxes": [{k: b[k] for k in ("finding", "x1", "y1", "x2", "y2")} for b in case["boxes"]],
                "fixations": [{k: round(f[k], 2) for k in ("x", "y", "duration")} for f in scene_io.fixations_from_scene(self.scene)],
                "path": self.path_shown}

    def case_title(self) -> str:
        if self.image_id is None:
            return "No image"
        if not self.has_case:
            return self.image_id
        return self.image_id + scene_io.synthetic_suffix(scene_io.scene_to_case(self.scene))


__all__ = ["WebAnnotator", "Overlays", "ServerError", "FINDINGS", "OVERLAY_ROLES"]
