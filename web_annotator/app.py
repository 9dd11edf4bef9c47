"""The GazeLabel web annotator: trame-slicer's remote slice view of the MRML scene, and the panels of the
annotation loop, over :class:`web_annotator.controller.WebAnnotator` (the Slicer module's session).

    python -m web_annotator --server http://127.0.0.1:8000 --port 8080     # in .venv-web
    gazelabel web --server http://127.0.0.1:8000                            # from the project's .venv

The page: connect (token or basic auth), next sample by active learning (and run the pipeline), the image
with window/level, the heatmap with its opacity, the numbered fixations (disc area = duration) and their path,
the other sampled scanpaths, boxes as ROIs named by finding (drag a handle to edit), the findings checklist
with scores, the draft report whose sentences highlight their box and fixations, fixation playback, add and
remove boxes, save, train and its progress. Keys: N next, R run, S or Ctrl+S save, H heatmap, F fixations,
B boxes, M samples, C heat contrast, P or Space play/pause, ← → one fixation, Esc clear the highlight.

Rendering is offscreen (Mesa EGL: ``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow``); frames go to the page as
JPEG. One page state per process: every browser tab on it shows the same annotator's session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np  # noqa: E402
from trame.app import TrameApp, asynchronous  # noqa: E402
from trame.ui.vuetify3 import VAppLayout  # noqa: E402
from trame.widgets import client, html  # noqa: E402
from trame.widgets import vuetify3 as v3  # noqa: E402
from trame_slicer.core import LayoutManager, SlicerApp  # noqa: E402
from trame_slicer.rca_view import register_rca_factories  # noqa: E402
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition, ViewProps, ViewType  # noqa: E402

import slicer  # noqa: E402
from GazeLabelLib import scene_io  # noqa: E402
from GazeLabelLib.client import ServerError  # noqa: E402
from GazeLabelLib.headless import fit_with_margin, image_px_per_view_px  # noqa: E402
from GazeLabelLib.image_io import ImageDecodeError  # noqa: E402
from GazeLabelLib.vocab import FINDINGS  # noqa: E402

from .controller import WebAnnotator  # noqa: E402
from .options import Credentials  # noqa: E402

log = logging.getLogger("gazelabel.web")
VIEW = "Red"
TRAIN_POLL_S = 2.0
RECONNECT_S = 3.0
USER_ERRORS = (ServerError, ImageDecodeError, scene_io.SceneError, ValueError)
# Keys the page handles (lower case; "ctrl+" when Ctrl or Cmd is held). Typing in a field keeps its keys.
HOTKEYS = {"n": "next", "r": "run", "s": "save", "ctrl+s": "save", "h": "heatmap", "f": "fixations", "b": "boxes",
           "m": "samples", "c": "heat_stretch", "p": "play", " ": "play", "arrowright": "step", "arrowleft": "back",
           "escape": "clear"}
HOTKEY_SCRIPT = """
window.addEventListener('keydown', function (e) {
  var t = e.target, typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable);
  var key = ((e.ctrlKey || e.metaKey) ? 'ctrl+' : '') + (e.key || '').toLowerCase();
  if (typing && key !== 'ctrl+s' && key !== 'escape') return;
  if (%s.indexOf(key) < 0 || !window.trame) return;
  e.preventDefault();
  window.gazelabelKeyAt = performance.now();
  window.trame.trigger('gazelabel_key', [key]);
}, true);
""" % json.dumps(sorted(HOTKEYS))


class GazeLabelWebApp(TrameApp):
    """The page and its handlers. ``options``: the parsed ``gazelabel web`` arguments; ``login``: the
    credentials given on the command line (kept here, never put in the page's state)."""

    def __init__(self, options, login: Credentials, server=None):
        super().__init__(server)
        self.options = options
        self.login = login
        self.slicer = SlicerApp()
        self.scene = self.slicer.scene
        self.annotator = WebAnnotator(self.scene)
        register_rca_factories(self.slicer.view_manager, self.server, slice_view_ui_f=lambda *_: None,
                               rca_encoder=options.encoder)
        self.layout_manager = LayoutManager(self.scene, self.slicer.view_manager, self.server)
        red = ViewLayoutDefinition(singleton_tag=VIEW, view_type=ViewType.SLICE_VIEW,
                                   properties=ViewProps(orientation="Axial", label="R", background_color="black"))
        self.layout_manager.register_layout("gazelabel", Layout(LayoutDirection.Vertical, [red]))
        self.layout_manager.set_layout("gazelabel")
        self._busy = False
        self._play_task = None
        self._train_task = None
        self._view_map_pending = False
        self._observed: list[tuple[object, int]] = []
        self._init_state()
        self._build_ui()
        self._configure_view()
        self.server.controller.on_server_ready.add(self._on_ready)

    # ------------------------------------------------------------------ view
    @property
    def view(self):
        return self.slicer.view_manager.get_view(VIEW)

    @property
    def slice_node(self):
        return self.view.get_view_node()

    def _configure_view(self) -> None:
        view = self.view
        # One image plane: the mouse wheel must not browse off it (Ctrl+wheel and right-drag still zoom).
        style = view._interactor_observer
        style.SetActionEnabled(slicer.vtkMRMLSliceIntersectionWidget.ActionBrowseSlice, False)
        # No multisampling (as Slicer's own slice views): an 8x-multisampled frame cost 5x the film's time on Mesa.
        view.render_window().SetMultiSamples(0)
        self.slice_node.AddObserver("ModifiedEvent", lambda *_: self._schedule_view_map())
        view.set_orientation_marker(slicer.vtkMRMLAbstractViewNode.OrientationMarkerTypeNone)

    def _show_in_view(self, fit: bool = True) -> None:
        """Image in the background, heatmap in the foreground at its opacity, fitted with a margin, labels laid
        out at the view's zoom (what ``GazeLabelLogic.showInViews`` does in Slicer)."""
        view = self.view
        image = scene_io.find_role(self.scene, "image")
        heatmap = scene_io.find_role(self.scene, "heatmap")
        view.set_background_volume_id(image.GetID() if image else None)
        view.set_foreground_volume_id(heatmap.GetID() if heatmap else None)
        view.set_foreground_opacity(self.annotator.heatmap_opacity)
        if fit and image is not None:
            view.fit_view_to_content()
            fit_with_margin(self.slice_node)
        self._relayout_labels()
        self._observe_boxes()
        view.schedule_render()

    def _relayout_labels(self) -> None:
        image = scene_io.find_role(self.scene, "image")
        if image is not None and self.annotator.has_case:
            scene_io.layout_labels(self.scene, image_px_per_view_px(self.slice_node, image))

    def _observe_boxes(self) -> None:
        """A dragged box takes its label along and updates the box list when the drag ends."""
        for node, tag in self._observed:
            node.RemoveObserver(tag)
        self._observed = []
        for roi in scene_io.nodes_with_role(self.scene, "box"):
            tag = roi.AddObserver(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent, self._on_box_dragged)
            self._observed.append((roi, tag))

    def _on_box_dragged(self, *_):
        self._relayout_labels()
        with self.state:
            self._publish_case()
        self.view.schedule_render()

    def view_map(self) -> dict:
        """Image pixel -> view pixel: ``{"size": [w, h], "affine": [[a, b, c], [d, e, f]], "scale"}`` with
        ``column = a x + b y + c`` and ``row = d x + e y + f`` (row 0 at the top of the view, as in the page's
        picture), for image pixel ``(x, y)``; ``scale`` is image pixels per view pixel."""
        image = scene_io.find_role(self.scene, "image")
        if image is None:
            return {}
        m = self.slice_node.GetXYToRAS()
        xy_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
        w, h = (int(v) for v in self.view.render_window().GetSize())
        corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        ras = scene_io.pixels_to_ras(image, corners)
        xy = np.linalg.solve(xy_to_ras, np.column_stack([ras, np.ones(3)]).T).T[:, :2]
        col, row = xy[:, 0], (h - 1) - xy[:, 1]
        affine = [[col[1] - col[0], col[2] - col[0], col[0]], [row[1] - row[0], row[2] - row[0], row[0]]]
        return {"size": [w, h], "affine": [[float(v) for v in r] for r in affine],
                "scale": image_px_per_view_px(self.slice_node, image)}

    def _schedule_view_map(self) -> None:
        if self._view_map_pending:
            return
        self._view_map_pending = True

        async def publish():
            await asyncio.sleep(0.1)
            self._view_map_pending = False
            with self.state:
                self.state.view_map = self.view_map()

        asynchronous.create_task(publish())

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        s = self.state
        s.trame__title = "GazeLabel web annotator"
        s.server_url = self.options.server
        s.auth_mode = self.login.mode
        s.auth_from_cli = self.login.mode != "none"
        s.token = ""
        s.username = self.login.username or ""
        s.password = ""
        s.connected = False
        s.status = "Not connected"
        s.error = ""
        s.error_shown = False
        s.busy = ""
        s.strategies, s.strategy = [], self.options.strategy
        s.models, s.model = [], "pipeline"
        s.trainers, s.trainer = [], ""
        s.train_params = '{"epochs": 1}'
        s.train_status, s.train_details, s.training = "", [], False
        s.auto_run = True
        s.case_title = "No image"
        s.heatmap_source = ""
        s.findings_rows, s.box_rows, s.report_rows = [], [], []
        s.report_text = ""
        s.highlighted = None
        s.new_box_finding = next(f for f in FINDINGS if f != "No Finding")
        s.findings = list(FINDINGS)
        s.path_items, s.path_shown = [], "case"
        o = self.annotator.overlays
        s.show_heatmap, s.show_fixations, s.show_boxes, s.show_samples = o.heatmap, o.fixations, o.boxes, o.samples
        s.show_heat_stretch = o.heat_stretch
        s.heatmap_opacity = o.heatmap_opacity
        s.window, s.level = self.annotator.window_level
        s.playing, s.playback_text, s.speed = False, "", 1.0
        s.case_view, s.view_map = {}, {}
        s.paint = {"serial": 0}
        s.saved = ""
        s.question, s.answer_text, s.can_ask = "", "", False
        s.hotkeys = [{"key": k, "action": a} for k, a in HOTKEYS.items()]

        s.change("show_heatmap", "show_fixations", "show_boxes", "show_samples", "show_heat_stretch",
                 "heatmap_opacity")(self._on_overlays)
        s.change("window", "level")(self._on_window_level)
        s.change("path_shown")(self._on_path)
        s.change("report_text")(self._on_report_text)
        self.server.trigger("gazelabel_key")(self.on_key)

    def _publish_case(self) -> None:
        """Every panel's rows from the scene (call inside ``with self.state``)."""
        a, s = self.annotator, self.state
        s.case_title = a.case_title()
        s.heatmap_source = a.session.heatmap_source or ""
        s.findings_rows = a.findings_rows()
        s.box_rows = a.box_rows()
        s.report_rows = a.report_rows()
        s.report_text = a.session.report_text() if a.has_case else ""
        s.highlighted = a.highlighted
        s.path_items = a.path_choices()
        s.path_shown = a.path_shown
        s.case_view = a.case_view()
        s.view_map = self.view_map()
        s.can_ask = a.can_ask
        if a.session.last_answer is None:  # a new image: its previous answer is gone
            s.answer_text = ""

    def _fail(self, what: str, e: Exception) -> None:
        log.warning("%s failed: %s", what, e)
        with self.state:
            self.state.error = f"{what} failed: {e}"
            self.state.error_shown = True

    async def _action(self, what: str, work, *args):
        """Run ``work`` with the page marked busy (one action at a time); errors become the page's message."""
        if self._busy:
            return None
        self._busy = True
        with self.state:
            self.state.busy = what
            self.state.error_shown = False
        await self.server.network_completion
        try:
            return await work(*args)
        except USER_ERRORS as e:
            self._fail(what, e)
            return None
        finally:
            self._busy = False
            with self.state:
                self.state.busy = ""

    # ------------------------------------------------------------------ connect
    def _on_ready(self, **_):
        if not self.options.no_connect:
            asynchronous.create_task(self._connect_until_up())

    async def _connect_until_up(self):
        """Connect with the command line's login, retrying while the server is not up yet (``make demo``
        starts both at once); a refused login stops the retries."""
        while not self.annotator.connected:
            try:
                self._connect(self.options.server, self.login.mode, self.login.token, self.login.username,
                              self.login.password)
                return
            except ServerError as e:
                if e.status:  # the server answered: wrong login or not a GazeLabel server
                    self._fail("connect", e)
                    return
                with self.state:
                    self.state.status = f"Waiting for the GazeLabel server at {self.options.server} ..."
            except ValueError as e:
                self._fail("connect", e)
                return
            await asyncio.sleep(RECONNECT_S)

    def _connect(self, url, mode, token, username, password) -> None:
        info = self.annotator.connect(url, mode, token=token, username=username, password=password)
        session = self.annotator.session
        with self.state:
            s = self.state
            s.connected = True
            s.password = ""
            s.status = f"Connected to {info.get('name', 'server')} at {session.client.server_url}"
            s.strategies, s.models, s.trainers = session.strategies, session.models, session.trainers
            if s.strategy not in s.strategies:
                s.strategy = "uncertainty" if "uncertainty" in s.strategies else (s.strategies or [""])[0]
            if s.model not in s.models:
                s.model = "pipeline" if "pipeline" in s.models else (s.models or [""])[0]
            s.trainer = "gaze_classifier" if "gaze_classifier" in s.trainers else (s.trainers or [""])[0]

    def on_connect(self):
        s = self.state
        if s.auth_from_cli and s.auth_mode == self.login.mode and s.server_url == self.options.server:
            token, username, password = self.login.token, self.login.username, self.login.password
        else:
            token, username, password = s.token.strip() or None, s.username.strip() or None, s.password or None

        async def work():
            self._connect(s.server_url.strip(), s.auth_mode, token, username, password)

        asynchronous.create_task(self._action("connect", work))

    # ------------------------------------------------------------------ the loop
    def on_next(self):
        asynchronous.create_task(self._action("next sample", self._next))

    async def _next(self):
        self._stop_playback()
        start = time.perf_counter()
        image_id = self.annotator.next_case(self.state.strategy or "random")
        loaded = time.perf_counter()
        if image_id is None:
            with self.state:
                self.state.case_title = f"No image left to annotate ({self.state.strategy})"
            return
        self._show_in_view()
        with self.state:
            self._publish_case()
            self._painted("image", {"next_sample_ms": 1000 * (loaded - start)})
        await self.server.network_completion
        await asyncio.sleep(0)  # let the film go out before the pipeline runs
        if self.state.auto_run:
            await self._run(start)

    def on_run(self):
        asynchronous.create_task(self._action("run the pipeline", self._run))

    async def _run(self, start: float | None = None):
        self._stop_playback()
        t = time.perf_counter()
        self.annotator.run(self.state.model or "pipeline", {"n_samples": int(self.options.samples)})
        ran = time.perf_counter()
        self._show_in_view(fit=False)
        with self.state:
            self._publish_case()
            self._painted("case", {"pipeline_ms": 1000 * (ran - t), "scene_ms": 1000 * (time.perf_counter() - ran),
                                   "since_key_ms": 1000 * (time.perf_counter() - (start or t))})

    def _painted(self, stage: str, timings: dict) -> None:
        """Tell the page which case the next frames show (the first-paint benchmark waits on it)."""
        paint = dict(self.state.paint)
        self.state.paint = {"serial": paint["serial"] + 1, "stage": stage, "image_id": self.annotator.image_id,
                            "server": {k: round(v, 1) for k, v in timings.items()}}

    def on_save(self):
        async def work():
            self._stop_playback()
            self.annotator.save()
            self._show_in_view(fit=False)
            with self.state:
                self._publish_case()
                self.state.saved = f"Saved the label of {self.annotator.image_id} at {time.strftime('%H:%M:%S')}"
                self.state.status = self.state.saved

        if self.annotator.has_case:
            asynchronous.create_task(self._action("save", work))

    def on_ask(self, typed: str | None = None):
        """Ask the question box's text: ``typed`` is the field's value when Enter is pressed (the key can arrive
        before the field's last keystrokes reach the state)."""
        question = typed if isinstance(typed, str) else self.state.question

        async def work():
            text = self.annotator.ask(question)
            with self.state:
                self.state.answer_text = text

        if self.annotator.can_ask:
            asynchronous.create_task(self._action("ask", work))

    def on_train(self):
        async def work():
            try:
                params = json.loads(self.state.train_params or "{}")
            except json.JSONDecodeError as e:
                raise ValueError(f"training options are not JSON: {e}") from None
            if not isinstance(params, dict):
                raise ValueError("training options: a JSON object, e.g. {\"epochs\": 1}")
            self.annotator.start_training(self.state.trainer, params)
            with self.state:
                self.state.train_status, self.state.training = "Training: SUBMITTED", True
            if self._train_task is None or self._train_task.done():
                self._train_task = asynchronous.create_task(self._poll_training())

        asynchronous.create_task(self._action("start training", work))

    async def _poll_training(self):
        while True:
            await asyncio.sleep(TRAIN_POLL_S)
            try:
                status = self.annotator.training()
            except USER_ERRORS as e:
                self._fail("training status", e)
                return
            with self.state:
                self.state.train_status = f"Training: {status['status']}"
                self.state.train_details = status["details"]
                self.state.training = status["running"]
            if not status["running"]:
                return

    # ------------------------------------------------------------------ display
    def _on_overlays(self, show_heatmap, show_fixations, show_boxes, show_samples, show_heat_stretch, heatmap_opacity,
                     **_):
        a = self.annotator
        a.overlays.heatmap_opacity = float(heatmap_opacity)
        for name, shown in (("heatmap", show_heatmap), ("fixations", show_fixations), ("boxes", show_boxes),
                            ("samples", show_samples), ("heat_stretch", show_heat_stretch)):
            if getattr(a.overlays, name) != bool(shown) or name == "heatmap":
                a.set_overlay(name, bool(shown))
        self.view.set_foreground_opacity(a.heatmap_opacity)
        self.view.schedule_render()

    def _on_window_level(self, window, level, **_):
        try:
            self.annotator.set_window_level(float(window), float(level))
        except ValueError as e:
            self._fail("window/level", e)
        self.view.schedule_render()

    def _on_path(self, path_shown, **_):
        if not self.annotator.has_case or path_shown == self.annotator.path_shown:
            return
        self._stop_playback()
        try:
            self.annotator.show_path(path_shown)
        except USER_ERRORS as e:
            self._fail("show the path", e)
        self._relayout_labels()
        self._publish_case()
        self.view.schedule_render()

    def _on_report_text(self, report_text, **_):
        if self.annotator.has_case:
            before = bool(self.state.report_rows and any(r["boxes"] or r["fixations"] for r in self.state.report_rows))
            self.annotator.set_report_text(report_text or "")
            rows = self.annotator.report_rows()
            if before or rows != self.state.report_rows:
                self.state.report_rows = rows
                self.state.highlighted = self.annotator.highlighted
            self.view.schedule_render()

    def on_sentence(self, index):
        if self._busy or not self.annotator.has_case:
            return
        index = None if index is None or index == self.state.highlighted else int(index)
        self._stop_playback()
        try:
            self.annotator.highlight_sentence(index)
        except USER_ERRORS as e:
            self._fail("highlight", e)
        self.state.highlighted = self.annotator.highlighted
        self.state.path_shown = self.annotator.path_shown
        self.state.case_view = self.annotator.case_view()
        self.state.box_rows = self.annotator.box_rows()
        self.view.schedule_render()

    def on_finding(self, finding, value):
        value = None if value is None or value == "" else int(value)
        try:
            self.annotator.set_finding(finding, value)
        except USER_ERRORS as e:
            self._fail("finding decision", e)
        self.state.findings_rows = self.annotator.findings_rows()

    def on_add_box(self):
        if not self.annotator.has_case:
            return
        try:
            self.annotator.add_box(self.state.new_box_finding)
        except USER_ERRORS as e:
            self._fail("add box", e)
        self._relayout_labels()
        self._observe_boxes()
        self._publish_case()
        self.view.schedule_render()

    def on_edit_box(self, index):
        index = None if index is None or index == self.annotator.editable_box else int(index)
        try:
            self.annotator.set_editable_box(index)
        except USER_ERRORS as e:
            self._fail("edit box", e)
        self.state.box_rows = self.annotator.box_rows()
        self.view.schedule_render()

    def on_remove_box(self, index):
        try:
            self.annotator.remove_box(int(index))
        except USER_ERRORS as e:
            self._fail("remove box", e)
        self._relayout_labels()
        self._observe_boxes()
        self._publish_case()
        self.view.schedule_render()

    def on_fit(self):
        if scene_io.find_role(self.scene, "image") is not None:
            self._show_in_view(fit=True)
            self.state.view_map = self.view_map()

    # ------------------------------------------------------------------ playback
    def on_play(self):
        if not self.annotator.has_case:
            return
        if self._play_task is not None and not self._play_task.done():
            self._stop_playback()
            return
        if self.annotator.playback is not None and self.annotator.playback.finished:
            self.annotator.play_reset()
        self._play_task = asynchronous.create_task(self._play())

    async def _play(self):
        with self.state:
            self.state.playing = True
        try:
            while True:
                frame = self.annotator.play_step(float(self.state.speed or 1.0))
                self._show_frame(frame)
                if frame is None:
                    return
                await asyncio.sleep(frame.wait_ms / 1000.0)
        finally:
            with self.state:
                self.state.playing = False

    def _stop_playback(self):
        if self._play_task is not None and not self._play_task.done():
            self._play_task.cancel()
        self._play_task = None
        self.state.playing = False

    def on_step(self, back: bool = False):
        if not self.annotator.has_case:
            return
        self._stop_playback()
        self._show_frame(self.annotator.play_step(float(self.state.speed or 1.0), back=back))

    def _show_frame(self, frame) -> None:
        playback = self.annotator.playback
        with self.state:
            if frame is None:
                self.state.playback_text = "All fixations shown" if playback is None or playback.index < 0 else "Playback ended"
            else:
                self.state.playback_text = (f"Fixation {frame.label} / {len(playback)}: t = {frame.t:.2f} s, "
                                            f"{1000 * frame.duration:.0f} ms")
        self.view.schedule_render()

    # ------------------------------------------------------------------ keys
    def on_key(self, key):
        action = HOTKEYS.get(str(key))
        s = self.state
        if action == "next" and s.connected:
            self.on_next()
        elif action == "run" and s.connected and self.annotator.image_id:
            self.on_run()
        elif action == "save" and s.connected:
            self.on_save()
        elif action in ("heatmap", "fixations", "boxes", "samples", "heat_stretch"):
            s[f"show_{action}"] = not s[f"show_{action}"]
        elif action == "play":
            self.on_play()
        elif action in ("step", "back"):
            self.on_step(back=action == "back")
        elif action == "clear":
            self.on_sentence(None)

    # ------------------------------------------------------------------ page
    def _build_ui(self) -> None:
        with VAppLayout(self.server, full_height=True) as layout:
            self.ui = layout
            client.Script(HOTKEY_SCRIPT)
            client.Style(".gl-sentence{cursor:pointer;border-radius:4px;padding:1px 2px}"
                         ".gl-sentence:hover{background:rgba(255,0,255,.12)}"
                         ".gl-sentence.gl-on{background:rgba(255,51,255,.30)}"
                         ".gl-linked{text-decoration:underline dotted}")
            with v3.VAppBar(density="compact", color="grey-darken-4"):
                v3.VAppBarTitle("GazeLabel web annotator")
                html.Div("{{ case_title }}", classes="text-body-2 mx-4", id="gl-case-title")
                v3.VSpacer()
                v3.VProgressCircular(v_show="busy", indeterminate=True, size=20, width=2, classes="mx-2")
                html.Div("{{ busy }}", classes="text-caption mx-2", id="gl-busy")
                html.Div("{{ status }}", classes="text-caption mx-2", id="gl-status")
            with v3.VNavigationDrawer(location="right", width=440, permanent=True):
                self._panels()
            with v3.VMain():
                with html.Div(style="position:relative;width:100%;height:calc(100vh - 48px);", id="gl-view"):
                    self.layout_manager.initialize_layout_grid(layout)
            with v3.VSnackbar(v_model=("error_shown",), timeout=8000, color="error", location="top"):
                html.Div("{{ error }}", id="gl-error")

    def _panels(self) -> None:
        with v3.VExpansionPanels(multiple=True, model_value=("panels_open", [0, 1, 2, 3, 4, 5, 6, 7]), variant="accordion"):
            with v3.VExpansionPanel(title="Server"):
                with v3.VExpansionPanelText():
                    v3.VTextField(v_model=("server_url",), label="Server", density="compact", hide_details=True)
                    v3.VSelect(v_model=("auth_mode",), items=("['none', 'token', 'basic']",), label="Login",
                               density="compact", hide_details=True, classes="mt-2")
                    v3.VTextField(v_show="auth_mode === 'token' && !auth_from_cli", v_model=("token",), type="password",
                                  label="Bearer token", density="compact", hide_details=True, classes="mt-2")
                    v3.VTextField(v_show="auth_mode === 'basic' && !auth_from_cli", v_model=("username",), label="User",
                                  density="compact", hide_details=True, classes="mt-2")
                    v3.VTextField(v_show="auth_mode === 'basic' && !auth_from_cli", v_model=("password",),
                                  type="password", label="Password", density="compact", hide_details=True, classes="mt-2")
                    html.Div("Login from the command line", v_show="auth_from_cli", classes="text-caption mt-1")
                    v3.VBtn("Connect", click=self.on_connect, size="small", classes="mt-2", id="gl-connect")
            with v3.VExpansionPanel(title="Case"):
                with v3.VExpansionPanelText():
                    with v3.VRow(dense=True):
                        with v3.VCol(cols=6):
                            v3.VSelect(v_model=("strategy",), items=("strategies",), label="Next by", density="compact",
                                       hide_details=True)
                        with v3.VCol(cols=6):
                            v3.VSelect(v_model=("model",), items=("models",), label="Model", density="compact",
                                       hide_details=True)
                    with html.Div(classes="d-flex align-center mt-2"):
                        v3.VBtn("Next (N)", click=self.on_next, disabled=("!connected || !!busy",), size="small",
                                color="primary", id="gl-next")
                        v3.VBtn("Run (R)", click=self.on_run, disabled=("!connected || !!busy || !case_view.id && !paint.image_id",),
                                size="small", classes="ml-2", id="gl-run")
                        v3.VBtn("Save (S)", click=self.on_save, disabled=("!connected || !!busy || !case_view.id",),
                                size="small", color="success", classes="ml-2", id="gl-save")
                        v3.VCheckbox(v_model=("auto_run",), label="run on next", density="compact", hide_details=True,
                                     classes="ml-2")
                    html.Div("{{ saved }}", classes="text-caption", id="gl-saved")
            with v3.VExpansionPanel(title="Display"):
                with v3.VExpansionPanelText():
                    with html.Div(classes="d-flex flex-wrap"):
                        for key, name, letter in (("show_heatmap", "Heatmap", "H"), ("show_fixations", "Fixations", "F"),
                                                  ("show_boxes", "Boxes", "B"), ("show_samples", "Samples", "M"),
                                                  ("show_heat_stretch", "Heat contrast", "C")):
                            v3.VCheckbox(v_model=(key,), label=f"{name} ({letter})", density="compact", hide_details=True)
                    v3.VSlider(v_model=("heatmap_opacity",), min=0, max=1, step=0.05, label="Heat opacity",
                               density="compact", hide_details=True, thumb_label=True)
                    v3.VSlider(v_model=("window",), min=0.05, max=2, step=0.05, label="Window", density="compact",
                               hide_details=True, thumb_label=True)
                    v3.VSlider(v_model=("level",), min=-0.5, max=1.5, step=0.05, label="Level", density="compact",
                               hide_details=True, thumb_label=True)
                    with html.Div(classes="d-flex align-center"):
                        v3.VSelect(v_model=("path_shown",), items=("path_items",), label="Scanpath shown",
                                   density="compact", hide_details=True)
                        v3.VBtn("Fit", click=self.on_fit, size="small", classes="ml-2")
                    with html.Div(classes="d-flex align-center mt-2"):
                        v3.VBtn(v_text="playing ? 'Pause (P)' : 'Play (P)'", click=self.on_play, size="small", id="gl-play")
                        v3.VBtn("\u2190", click=(self.on_step, "[true]"), size="small", classes="ml-1")
                        v3.VBtn("\u2192", click=self.on_step, size="small", classes="ml-1")
                        v3.VSlider(v_model=("speed",), min=0.25, max=4, step=0.25, label="Speed", density="compact",
                                   hide_details=True, classes="ml-2")
                    html.Div("{{ playback_text }}", classes="text-caption", id="gl-playback")
            with v3.VExpansionPanel(title="Findings"):
                with v3.VExpansionPanelText():
                    with html.Div(v_for="row in findings_rows", key="row.finding", classes="d-flex align-center gl-finding"):
                        html.Div("{{ row.finding }}", classes="text-body-2", style="width:150px")
                        html.Div("{{ row.score_text }}", classes="text-caption", style="width:40px")
                        with v3.VBtnToggle(model_value=("row.value",), density="compact", divided=True,
                                           update_modelValue=(self.on_finding, "[row.finding, $event]")):
                            v3.VBtn("yes", value=1, size="x-small")
                            v3.VBtn("?", value=-1, size="x-small")
                            v3.VBtn("no", value=0, size="x-small")
            with v3.VExpansionPanel(title="Boxes"):
                with v3.VExpansionPanelText():
                    with html.Div(v_for="box in box_rows", key="box.index", classes="d-flex align-center gl-box"):
                        html.Div("{{ box.label }}", classes="text-body-2", style="width:170px")
                        html.Div("{{ box.xyxy.join(', ') }}", classes="text-caption", style="width:150px")
                        v3.VBtn("edit", click=(self.on_edit_box, "[box.index]"), size="x-small",
                                variant=("box.editable ? 'tonal' : 'text'",), classes="gl-edit")
                        v3.VBtn("remove", click=(self.on_remove_box, "[box.index]"), size="x-small", variant="text",
                                classes="gl-remove")
                    with html.Div(classes="d-flex align-center mt-2"):
                        v3.VSelect(v_model=("new_box_finding",), items=("findings",), label="New box for",
                                   density="compact", hide_details=True)
                        v3.VBtn("Add box", click=self.on_add_box, disabled=("!case_view.id",), size="small",
                                classes="ml-2", id="gl-add-box")
                    html.Div("Edit shows a box's handles: drag them in the view to move or resize it (a new box, or a "
                             "clicked sentence's box, has them).", classes="text-caption mt-1")
            with v3.VExpansionPanel(title="Report"):
                with v3.VExpansionPanelText():
                    with html.Div(id="gl-report"):
                        html.Span("{{ s.text }} ", v_for="s in report_rows", key="s.index",
                                  classes=("['gl-sentence', s.boxes.length || s.fixations.length ? 'gl-linked' : '', "
                                           "highlighted === s.index ? 'gl-on' : '']",),
                                  title=("s.findings.concat(s.regions).join(', ') + ' — ' + s.boxes.length + ' box(es), ' + "
                                         "s.fixations.length + ' fixation(s)'",),
                                  click=(self.on_sentence, "[s.index]"))
                    v3.VTextarea(v_model=("report_text",), label="Edit the report", rows=4, auto_grow=True,
                                 density="compact", hide_details=True, classes="mt-2", debounce=400)
            with v3.VExpansionPanel(title="Ask the model"):
                with v3.VExpansionPanelText():
                    # Enter in the field asks (the key event bubbles from the input to this row).
                    with html.Div(classes="d-flex align-center", keydown_enter=(self.on_ask, "[$event.target.value]"),
                                  __events=[("keydown_enter", "keydown.enter")]):
                        v3.VTextField(v_model=("question",), label="Question about this image", density="compact",
                                      hide_details=True, counter=300, maxlength=300, id="gl-question",
                                      placeholder="e.g. Which side is the pleural effusion on?")
                        v3.VBtn("Ask", click=self.on_ask, disabled=("!can_ask || !!busy",), size="small",
                                classes="ml-2", id="gl-ask")
                    html.Div("{{ answer_text }}", classes="text-body-2 mt-1", id="gl-answer")
                    html.Div("The evidence box and fixations are drawn in magenta; the case is unchanged.",
                             classes="text-caption")
            with v3.VExpansionPanel(title="Training"):
                with v3.VExpansionPanelText():
                    with html.Div(classes="d-flex align-center"):
                        v3.VSelect(v_model=("trainer",), items=("trainers",), label="Train", density="compact",
                                   hide_details=True)
                        v3.VTextField(v_model=("train_params",), label="Options (JSON)", density="compact",
                                      hide_details=True, classes="ml-2")
                    v3.VBtn("Start training", click=self.on_train, disabled=("!connected || training",),
                            size="small", classes="mt-2", id="gl-train")
                    v3.VProgressLinear(v_show="training", indeterminate=True, classes="mt-1")
                    html.Div("{{ train_status }}", classes="text-body-2", id="gl-train-status")
                    html.Div("{{ line }}", v_for="line in train_details", classes="text-caption",
                             style="font-family:monospace;word-break:break-all")
            with v3.VExpansionPanel(title="Keys"):
                with v3.VExpansionPanelText():
                    html.Div("N next · R run · S / Ctrl+S save · H heatmap · F fixations · B boxes · M samples · C heat contrast · "
                             "P / Space play · ← → one fixation · Esc clear the highlight", classes="text-caption")


def main(argv: list[str] | None = None) -> int:
    """``python -m web_annotator``: parse, check, serve until Ctrl-C."""
    import argparse

    from . import options as opts

    parser = argparse.ArgumentParser(prog="gazelabel web", description=opts.HELP)
    opts.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        opts.check(args)
        login = opts.credentials(args)
        _check_port(args.host, args.port)
    except ValueError as e:
        print(f"gazelabel web: error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="[gazelabel web] %(levelname)s %(message)s")
    sys.argv = sys.argv[:1]  # trame parses sys.argv for its own options; ours are taken
    app = GazeLabelWebApp(args, login)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"GazeLabel web annotator at http://{host}:{args.port}/ (server {args.server}); Ctrl-C stops it.", flush=True)
    app.server.start(port=args.port, host=args.host, open_browser=False, show_connection_info=False, timeout=0,
                     disable_logging=True)
    return 0


def _check_port(host: str, port: int) -> None:
    import errno
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ValueError(f"--port {port}: already in use on {host}; choose another with --port") from None
            raise ValueError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None
