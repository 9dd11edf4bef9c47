"""Live gaze capture (GazeLabelLib.capture) on SYNTHETIC scanpaths with known fixations.

The sources are exercised for real over 127.0.0.1 only: LSL with a loopback-only ``lsl_api.cfg`` (written
here and set through ``LSLAPICFG`` before pylsl loads) and an in-process outlet; Gazepoint with a fake Open
Gaze API server thread. While the gaze plays, the test pans and zooms the slice view of a headless MRML
scene and records each view change in the timeline at its time; the recovered fixations must land on the
image pixels the reader looked at (within 1 screen pixel, i.e. 1 image pixel at 1:1 zoom, and 30 ms).

The expected screen position of an image point is computed here from the slice node's XYToRAS and the
volume's IJKToRAS (the way ``headless.SliceScreenshot.pixel_of`` finds points in a rendered view), not
with ``view_geometry_from_slice``, so the mapping is checked against the scene rather than against itself.
"""

from __future__ import annotations

import gzip
import json
import math
import socket
import sys
import threading
import time
import uuid

import numpy as np
import pytest

from GazeLabelLib import capture, scene_io
from GazeLabelLib.capture import (GazepointSource, GazeRecorder, LslSource, MouseSource, Reading, ViewError,
                                  ViewTimeline, parse_gazepoint_record, view_geometry_from_slice)
from GazeLabelLib.headless import SliceScreenshot
from GazeLabelLib.screen import ViewGeometry
from GazeLabelLib.simulated_tracker import LSL_LOOPBACK_CFG

LSL_CFG = LSL_LOOPBACK_CFG  # loopback only: nothing leaves 127.0.0.1
SCREEN_PX, SCREEN_MM, DISTANCE_MM = (1920, 1080), (527.0, 296.0), 650.0
VIEW_RECT = (200.0, 100.0, 1000.0, 700.0)  # the slice view on the screen: 800 x 600 px
IMAGE_HW, SPACING = (600, 800), 0.2  # an 800 x 600 image that fits the view at exactly 1:1
# The reading: (view state, position as a fraction of the view, duration s) per fixation, SYNTHETIC.
STATES = [
    {"zoom": 1.0, "pan": (0.0, 0.0)},
    {"zoom": 2.0, "pan": (0.0, 0.0)},
    {"zoom": 2.0, "pan": (15.0, -10.0)},
    {"zoom": 2.0, "pan": (15.0, -10.0), "window": 0.5},  # window/level only: same geometry
    {"zoom": 0.8, "pan": (0.0, 0.0)},
    {"zoom": 1.0, "pan": (-20.0, 12.0)},
]
FIXATIONS = [(0, (0.30, 0.35), 0.25), (0, (0.70, 0.60), 0.40), (1, (0.25, 0.70), 0.15), (2, (0.65, 0.30), 0.60),
             (3, (0.30, 0.55), 0.30), (4, (0.75, 0.72), 0.20), (5, (0.35, 0.40), 0.45)]
GLANCE = (120.0, 400.0)  # a look at the side panel (left of the view) between fixations 0 and 1
SACCADE_S, NOISE_PX = 0.035, 0.2
TIME_TOL_S = 0.030
ACCURACY: dict[str, dict] = {}


# ---------------------------------------------------------------------------------------------- the view
class SliceView:
    """A headless Red slice view showing an image volume; states set zoom (x fit), pan (mm) and window."""

    def __init__(self, headless):
        import slicer

        self.scene = headless.scene
        self.volume = scene_io.image_volume(self.scene, np.linspace(0, 1, IMAGE_HW[0] * IMAGE_HW[1]).reshape(IMAGE_HW),
                                            (SPACING, SPACING))
        self.logic = slicer.vtkMRMLSliceLogic()
        self.logic.SetMRMLApplicationLogic(headless.app_logic)
        self.logic.SetMRMLScene(self.scene)
        self.node = self.logic.AddSliceNode("Red")
        self.node.SetOrientation("Axial")
        self.logic.GetSliceCompositeNode().SetBackgroundVolumeID(self.volume.GetID())
        w, h = int(VIEW_RECT[2] - VIEW_RECT[0]), int(VIEW_RECT[3] - VIEW_RECT[1])
        self.logic.ResizeSliceNode(w, h)
        self.logic.FitSliceToBackground()
        self.fit_fov = tuple(self.node.GetFieldOfView())
        m = self.node.GetSliceToRAS()
        self.fit_center = (m.GetElement(0, 3), m.GetElement(1, 3))
        self.size = (w, h)

    def set(self, state: dict) -> None:
        """Zoom and pan the view (as Slicer's interactor does: field of view and SliceToRAS translation)."""
        zoom, (px, py) = state["zoom"], state["pan"]
        self.node.SetFieldOfView(self.fit_fov[0] / zoom, self.fit_fov[1] / zoom, self.fit_fov[2])
        m = self.node.GetSliceToRAS()
        m.SetElement(0, 3, self.fit_center[0] + px)
        m.SetElement(1, 3, self.fit_center[1] + py)
        self.node.UpdateMatrices()
        display = self.volume.GetDisplayNode()
        window = state.get("window", 1.0)
        display.SetWindowLevel(window, 0.5)

    def xy_to_ras(self) -> np.ndarray:
        m = self.node.GetXYToRAS()
        return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])

    # What the scene says, independently of view_geometry_from_slice:
    def screen_of(self, image_xy) -> tuple[float, float]:
        """Continuous screen position where the image point is drawn (view pixel index = XY, y bottom-up)."""
        ras = scene_io.pixels_to_ras(self.volume, [image_xy])[0]
        xv, yv, _, _ = np.linalg.solve(self.xy_to_ras(), np.array([*ras, 1.0]))
        return VIEW_RECT[0] + xv + 0.5, VIEW_RECT[1] + (self.size[1] - 0.5 - yv)

    def image_of(self, sx: float, sy: float) -> tuple[float, float]:
        xv, yv = sx - VIEW_RECT[0] - 0.5, self.size[1] - 0.5 - (sy - VIEW_RECT[1])
        ras = (self.xy_to_ras() @ np.array([xv, yv, 0.0, 1.0]))[:3]
        return tuple(scene_io.ras_to_pixels(self.volume, [ras])[0])

    def image_px_per_screen_px(self) -> float:
        return self.node.GetFieldOfView()[1] / SPACING / self.size[1]

    def record(self, timeline: ViewTimeline, t: float | None) -> int:
        return timeline.record_slice_view(self.node, self.volume, VIEW_RECT, 1.0, t=t)


@pytest.fixture
def view(headless):
    return SliceView(headless)


# ---------------------------------------------------------------------------------------------- scanpath
def min_jerk(f: np.ndarray) -> np.ndarray:
    return 10 * f**3 - 15 * f**4 + 6 * f**5


def scanpath(view: SliceView, rate: float, t_start: float, fixations=FIXATIONS, seed: int = 0, glance: bool = True,
             blink: bool = True, off_screen: bool = True):
    """SYNTHETIC gaze: fixations joined by 35 ms minimum-jerk saccades, uniform noise <= 0.2 screen px.

    Returns ``(samples (N, 4) t, sx, sy, valid; truth [(t, duration, x, y, image px per screen px)];
    view changes [(t, state)]; expected drop counts)``. A view change happens mid-saccade; the view is set
    on ``view`` while generating (and left at the last state), so each fixation's screen position is where
    its image point was drawn then.
    """
    rng = np.random.default_rng(seed)
    dt = 1.0 / rate
    plan = []  # (kind, start, end, from_xy, to_xy)
    truth, changes = [], []
    t, prev_xy, prev_state = t_start, None, None
    targets = []
    for k, (state_index, (fx, fy), duration) in enumerate(fixations):
        state = STATES[state_index]
        view.set(state)
        image_xy = view.image_of(VIEW_RECT[0] + fx * view.size[0], VIEW_RECT[1] + fy * view.size[1])
        screen_xy = view.screen_of(image_xy)
        targets.append((state_index, image_xy, screen_xy, duration, view.image_px_per_screen_px()))
    for k, (state_index, image_xy, screen_xy, duration, scale) in enumerate(targets):
        if prev_xy is not None:
            if glance and k == 1:
                plan.append(("saccade", t, t + SACCADE_S, prev_xy, GLANCE))
                t += SACCADE_S
                plan.append(("glance", t, t + 0.12, GLANCE, GLANCE))
                t += 0.12
                prev_xy = GLANCE
            kind = "blink_saccade" if (blink and k == 5) else "offscreen_saccade" if (off_screen and k == 6) else "saccade"
            plan.append((kind, t, t + SACCADE_S, prev_xy, screen_xy))
            if state_index != prev_state:
                changes.append((t + SACCADE_S / 2, STATES[state_index]))
            t += SACCADE_S
        plan.append(("fixation", t, t + duration, screen_xy, screen_xy))
        truth.append({"t": t, "duration": duration, "x": image_xy[0], "y": image_xy[1], "scale": scale})
        t += duration
        prev_xy, prev_state = screen_xy, state_index
    times = t_start + np.arange(int(math.floor((t - t_start) * rate))) * dt
    rows = []
    for ts in times:
        kind, a, b, p, q = next(seg for seg in plan if seg[1] <= ts < seg[2] or seg is plan[-1])
        f = min(max((ts - a) / (b - a), 0.0), 1.0)
        s = min_jerk(np.array(f))
        x, y = p[0] + s * (q[0] - p[0]), p[1] + s * (q[1] - p[1])
        valid = True
        if kind == "blink_saccade" and 0.3 <= f < 0.7:
            x, y, valid = math.nan, math.nan, False
        if kind == "offscreen_saccade" and 0.3 <= f < 0.7:
            x, y = -40.0, 500.0
        rows.append((ts, x + rng.uniform(-NOISE_PX, NOISE_PX), y + rng.uniform(-NOISE_PX, NOISE_PX), valid))
    samples = np.array(rows)
    for item in truth:  # onset and duration as the sample grid has them
        inside = samples[(samples[:, 0] >= item["t"] - 1e-9) & (samples[:, 0] < item["t"] + item["duration"] - 1e-9), 0]
        item["t"], item["duration"] = float(inside[0]), len(inside) / rate
    return samples, truth, changes


def expected_drops(view: SliceView, samples: np.ndarray, changes, first_state) -> dict:
    """Drop counts computed here from the scene (not by the recorder's code)."""
    counts = {"invalid": 0, "off_screen": 0, "off_image": 0}
    states = [(-math.inf, first_state)] + list(changes)
    which = np.searchsorted([t for t, _ in states], samples[:, 0], side="right") - 1
    for k, (_, state) in enumerate(states):
        view.set(state)
        for ts, x, y, valid in samples[which == k]:
            if not valid or not np.isfinite([x, y]).all():
                counts["invalid"] += 1
            elif not (0 <= x < SCREEN_PX[0] and 0 <= y < SCREEN_PX[1]):
                counts["off_screen"] += 1
            else:
                ix, iy = view.image_of(x, y)
                in_view = VIEW_RECT[0] <= x < VIEW_RECT[2] and VIEW_RECT[1] <= y < VIEW_RECT[3]
                if not (in_view and 0 <= ix < IMAGE_HW[1] and 0 <= iy < IMAGE_HW[0]):
                    counts["off_image"] += 1
    return counts


def check_fixations(reading: Reading, truth: list[dict], t0: float, label: str) -> dict:
    """Each true fixation found once: within 1 screen px (in image px: x its zoom) and 30 ms; nothing else."""
    found = reading.fixations
    assert len(found) == len(truth), f"{label}: {len(found)} fixations found, {len(truth)} true: {found}"
    worst_px, worst_ms = 0.0, 0.0
    for k, (f, want) in enumerate(zip(found, truth)):
        err_px = math.hypot(f["x"] - want["x"], f["y"] - want["y"])
        assert err_px <= 1.0 * want["scale"], f"{label} fixation {k}: {err_px:.3f} px off ({f} vs {want})"
        onset = abs(f["t"] - (want["t"] - t0))
        end = abs(f["t"] + f["duration"] - (want["t"] - t0 + want["duration"]))
        assert onset <= TIME_TOL_S and abs(f["duration"] - want["duration"]) <= TIME_TOL_S, (
            f"{label} fixation {k}: onset {onset * 1000:.1f} ms, duration {f['duration']:.3f} vs {want['duration']:.3f} s")
        worst_px = max(worst_px, err_px / want["scale"])
        worst_ms = max(worst_ms, onset * 1000, end * 1000, abs(f["duration"] - want["duration"]) * 1000)
    ACCURACY[label] = {"max_error_screen_px": round(worst_px, 4), "max_time_error_ms": round(worst_ms, 2),
                       "fixations": len(found), "latency_ms": reading.latency_ms, "dropped": reading.dropped}
    print(f"ACCURACY {label}: {json.dumps(ACCURACY[label])}")
    return ACCURACY[label]


def check_case(reading: Reading) -> None:
    """The fixations go into a Case's readers[...] as they are: the schema accepts them."""
    from models.schema import Case

    case = Case.from_dict({"id": "capture-test", "image": {"width": IMAGE_HW[1], "height": IMAGE_HW[0], "synthetic": True},
                           "readers": {"annotator-1": reading.reader_fixations()}})
    assert len(case.readers["annotator-1"]) == len(reading.fixations)


# ---------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("zoom, pan", [(1.0, (0.0, 0.0)), (2.0, (0.0, 0.0)), (2.0, (15.0, -10.0)), (0.8, (0.0, 0.0)),
                                       (3.3, (-31.0, 7.5)), (0.45, (40.0, 25.0))])
def test_view_geometry_agrees_with_the_scene(view, zoom, pan):
    """The image pixel under a view pixel is the one the slice node's XYToRAS and the volume say, both ways."""
    view.set({"zoom": zoom, "pan": pan})
    geometry = view_geometry_from_slice(view.node, view.volume, VIEW_RECT)
    assert geometry.image_size == (IMAGE_HW[1], IMAGE_HW[0])
    assert geometry.screen_rect == VIEW_RECT
    assert geometry.image_px_per_screen_px == pytest.approx(1.0 / zoom, rel=1e-9)
    rng = np.random.default_rng(int(zoom * 10))
    w, h = view.size
    shot = SliceScreenshot(None, (w, h), view.xy_to_ras())
    # View pixel -> image pixel: the centre of view pixel (col, row) against the scene's resampling.
    cols, rows = rng.integers(0, w, 200), rng.integers(0, h, 200)
    ix, iy = geometry.screen_to_image(VIEW_RECT[0] + cols + 0.5, VIEW_RECT[1] + rows + 0.5)
    for c, r, x, y in zip(cols, rows, ix, iy):
        ras = (view.xy_to_ras() @ np.array([c, h - 1 - r, 0.0, 1.0]))[:3]  # what the reslice samples there
        sx, sy = scene_io.ras_to_pixels(view.volume, [ras])[0]
        assert (x, y) == pytest.approx((sx, sy), abs=1e-6)
    # Image pixel -> view pixel: where pixel_of finds an image point in the picture.
    pts = np.column_stack([rng.uniform(0, IMAGE_HW[1], 200), rng.uniform(0, IMAGE_HW[0], 200)])
    gx, gy = geometry.image_to_screen(pts[:, 0], pts[:, 1])
    for p, x, y in zip(pts, gx, gy):
        col, row = int(math.floor(x - VIEW_RECT[0])), int(math.floor(y - VIEW_RECT[1]))
        if 0 <= col < w and 0 <= row < h:
            assert shot.pixel_of(scene_io.pixels_to_ras(view.volume, [p])[0]) == (col, row)
        assert (x, y) == pytest.approx(view.screen_of(p), abs=1e-6)


def test_view_geometry_device_pixel_ratio_and_refusals(view):
    import vtk

    half = tuple(v / 2 for v in VIEW_RECT)  # logical pixels on a 2x display
    assert view_geometry_from_slice(view.node, view.volume, half, 2.0) == view_geometry_from_slice(view.node, view.volume, VIEW_RECT)
    with pytest.raises(ViewError, match="view_rect_on_screen.*devicePixelRatio"):
        view_geometry_from_slice(view.node, view.volume, half)
    with pytest.raises(ViewError, match="device_pixel_ratio"):
        view_geometry_from_slice(view.node, view.volume, VIEW_RECT, 0)
    rotation = vtk.vtkTransform()
    rotation.RotateZ(30)
    m = view.node.GetSliceToRAS()
    rotated = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(rotation.GetMatrix(), m, rotated)
    m.DeepCopy(rotated)
    view.node.UpdateMatrices()
    with pytest.raises(ViewError, match="rotated"):
        view_geometry_from_slice(view.node, view.volume, VIEW_RECT)
    timeline = ViewTimeline(clock=lambda: 1.0)
    index = view.record(timeline, None)
    assert timeline.states[index].geometry is None and "rotated" in timeline.states[index].extra["unmapped"]
    view.node.SetOrientation("Sagittal")
    with pytest.raises(ViewError):
        view_geometry_from_slice(view.node, view.volume, VIEW_RECT)


def test_timeline_observes_pan_zoom_and_window_level(view):
    now = [10.0]
    timeline = ViewTimeline(clock=lambda: now[0])
    stop = timeline.observe_slice_view(view.node, view.volume, lambda: VIEW_RECT)
    assert len(timeline) == 1 and timeline.states[0].t == 10.0
    now[0] = 11.0
    view.set({"zoom": 2.0, "pan": (5.0, 0.0)})  # zoom, pan and (unchanged) window: one or more events
    assert timeline.states[-1].t == 11.0 and timeline.states[-1].geometry.image_px_per_screen_px == pytest.approx(0.5)
    n = len(timeline)
    now[0] = 12.0
    view.volume.GetDisplayNode().SetWindowLevel(0.25, 0.4)
    assert len(timeline) == n + 1 and timeline.states[-1].extra == {"window": 0.25, "level": 0.4}
    assert timeline.states[-1].geometry == timeline.states[-2].geometry
    timeline.update()
    assert len(timeline) == n + 1  # nothing changed: nothing recorded
    assert list(timeline.index_at([0.0, 10.5, 11.0, 11.5, 99.0])) == [0, 0, n - 1, n - 1, n]
    stop()
    now[0] = 13.0
    view.set({"zoom": 1.0, "pan": (0.0, 0.0)})
    assert len(timeline) == n + 1


# ---------------------------------------------------------------------------------------------- LSL
@pytest.fixture(scope="module")
def pylsl(tmp_path_factory):
    """pylsl on a loopback-only configuration: nothing leaves 127.0.0.1.

    liblsl reads its configuration once, when it loads; if another test (or the conftest) loaded pylsl
    first, the configuration it loaded must be a loopback one too, or these tests do not run."""
    if "pylsl" in sys.modules:
        import os
        from pathlib import Path

        loaded = Path(os.environ.get("LSLAPICFG", ""))
        text = loaded.read_text() if loaded.is_file() else ""
        if not all(line in text for line in ("ResolveScope = machine", "KnownPeers = {127.0.0.1}", "ListenAddress = 127.0.0.1")):
            pytest.skip(f"pylsl was loaded before a loopback configuration was set (LSLAPICFG={str(loaded)!r})")
    folder = tmp_path_factory.mktemp("lsl")
    (folder / "lsl_api.cfg").write_text(LSL_CFG)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSLAPICFG", str(folder / "lsl_api.cfg"))
        mp.chdir(folder)
        module = pytest.importorskip("pylsl", reason="pip install pylsl==1.18.6")
        name = f"gazelabel-probe-{uuid.uuid4().hex[:8]}"
        outlet = module.StreamOutlet(module.StreamInfo(name, "Probe", 1, 10, "float32", name))
        found = module.resolve_byprop("name", name, minimum=1, timeout=5.0)
        assert found and found[0].name() == name, "LSL loopback: the probe stream did not resolve on 127.0.0.1"
        del outlet
        yield module


def gaze_outlet(pylsl, name: str, rate: float):
    info = pylsl.StreamInfo(name, "Gaze", 2, rate, "float32", f"{name}-{uuid.uuid4().hex[:6]}")
    info.set_channel_labels(["x", "y"])
    info.set_channel_units(["pixels", "pixels"])
    return pylsl.StreamOutlet(info)


def play(pylsl, outlet, samples: np.ndarray, recorder: GazeRecorder, view: SliceView, timeline: ViewTimeline, changes):
    """Push samples in real time (each once its timestamp has passed) while pumping the recorder every 5 ms;
    set each view change on the slice node and record it in the timeline at its time before any later sample
    goes out."""
    changes = list(changes)
    i = 0
    while i < len(samples):
        now = pylsl.local_clock()
        while changes and changes[0][0] <= now:
            t_change, state = changes.pop(0)
            view.set(state)
            view.record(timeline, t_change)
        j = int(np.searchsorted(samples[:, 0], now, side="right"))
        if j > i:
            xy = np.where(samples[i:j, 3:4] > 0, samples[i:j, 1:3], np.nan).astype(np.float32)
            outlet.push_chunk(xy, timestamp=[float(v) for v in samples[i:j, 0]])
            i = j
        recorder.pump()
        time.sleep(0.004)


def finish(recorder: GazeRecorder, seconds: float = 0.15) -> Reading:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        recorder.pump()
        time.sleep(0.01)
    return recorder.stop()


@pytest.mark.parametrize("rate", [120, 600, 1200])
def test_lsl_live_capture_recovers_the_fixations(pylsl, view, rate):
    name = f"gazelabel-test-{rate}-{uuid.uuid4().hex[:6]}"
    outlet = gaze_outlet(pylsl, name, rate)
    view.set(STATES[0])
    timeline = ViewTimeline()
    view.record(timeline, None)  # the view at the start (no clock yet: in force from the start)
    source = LslSource(stream_name=name)
    recorder = GazeRecorder(source, timeline, screen_px=SCREEN_PX, screen_mm=SCREEN_MM, distance_mm=DISTANCE_MM)
    recorder.start()
    t0 = recorder.t0
    samples, truth, changes = scanpath(view, rate, pylsl.local_clock() + 0.05, seed=rate)
    view.set(STATES[0])
    expected = expected_drops(view, samples, changes, STATES[0])
    view.set(STATES[0])
    assert recorder.live.recording and recorder.live.connected
    play(pylsl, outlet, samples, recorder, view, timeline, changes)
    live = recorder.live
    assert live.samples_per_s > 0.5 * rate, str(live)
    reading = finish(recorder)
    assert reading.n_samples == len(samples) and reading.dropped["gap"] == 0
    for key, count in expected.items():
        assert reading.dropped[key] == count, (key, reading.dropped, expected)
    assert expected["invalid"] > 0 and expected["off_screen"] > 0 and expected["off_image"] > 0
    assert reading.sampling_rate_hz == pytest.approx(rate, rel=1e-3)
    assert len({v.geometry for v in reading.views}) == 5  # 6 states, one of them window/level only
    assert reading.latency_ms["n"] == len(samples) and reading.latency_ms["median"] < 250
    check_fixations(reading, truth, t0, f"LSL {rate} Hz")
    check_case(reading)


def test_lsl_outlet_that_disappears_and_comes_back(pylsl, view):
    rate = 600
    name = f"gazelabel-drop-{uuid.uuid4().hex[:6]}"
    outlet = gaze_outlet(pylsl, name, rate)
    view.set(STATES[0])
    timeline = ViewTimeline()
    recorder = GazeRecorder(LslSource(stream_name=name), timeline, screen_px=SCREEN_PX, screen_mm=SCREEN_MM,
                            distance_mm=DISTANCE_MM, reconnect_interval_s=0.1)
    view.record(timeline, None)
    recorder.start()
    t0 = recorder.t0
    part_a, part_b = FIXATIONS[:3], FIXATIONS[3:]
    samples_a, truth_a, changes_a = scanpath(view, rate, pylsl.local_clock() + 0.05, part_a, seed=1, glance=False)
    view.set(STATES[0])
    play(pylsl, outlet, samples_a, recorder, view, timeline, changes_a)
    for _ in range(10):
        recorder.pump()
        time.sleep(0.01)
    del outlet  # the tracker's streamer quits
    deadline = time.monotonic() + 5.0
    while recorder.live.connected and time.monotonic() < deadline:
        recorder.pump()
        time.sleep(0.01)
    assert not recorder.live.connected and recorder.disconnects == 1
    outlet = gaze_outlet(pylsl, name, rate)  # ... and starts again: a new stream of the same name
    deadline = time.monotonic() + 10.0
    while not recorder.live.connected and time.monotonic() < deadline:
        recorder.pump()
        time.sleep(0.02)
    assert recorder.live.connected, "the recorder did not reconnect to the recreated outlet"
    outlet.wait_for_consumers(2.0)
    samples_b, truth_b, changes_b = scanpath(view, rate, pylsl.local_clock() + 0.1, part_b, seed=2, glance=False,
                                             blink=False, off_screen=False)
    view.set(STATES[part_a[-1][0]])
    changes_b = [(samples_b[0, 0] - 0.01, STATES[part_b[0][0]])] + changes_b
    play(pylsl, outlet, samples_b, recorder, view, timeline, changes_b)
    reading = finish(recorder, 0.3)
    assert reading.disconnects == 1 and [e["event"] for e in reading.events] == ["disconnect", "reconnect"]
    assert reading.n_samples == len(samples_a) + len(samples_b)
    outage = samples_b[0, 0] - samples_a[-1, 0]
    assert reading.dropped["gap"] == pytest.approx(outage * rate - 1, abs=2)
    check_fixations(reading, truth_a + truth_b, t0, "LSL 600 Hz, outlet lost and recreated")


def test_lsl_source_without_a_stream_says_what_to_start(pylsl):
    source = LslSource(stream_name=f"nobody-{uuid.uuid4().hex[:6]}", open_timeout_s=0.3)
    with pytest.raises(capture.SourceError, match="no LSL stream with name .* start the tracker"):
        source.open()


def test_lsl_fractions_detected_from_labels(pylsl):
    name = f"gazelabel-frac-{uuid.uuid4().hex[:6]}"
    info = pylsl.StreamInfo(name, "Gaze", 3, 120, "float32", name)
    info.set_channel_labels(["BPOGV", "BPOGX", "BPOGY"])
    outlet = pylsl.StreamOutlet(info)
    source = LslSource(stream_name=name, screen_px=SCREEN_PX)
    source.open()
    now = pylsl.local_clock()
    outlet.push_chunk(np.array([[1, 0.5, 0.25], [0, 0.5, 0.25], [1, 0.1, 0.9]], np.float32), timestamp=[now - 0.02, now - 0.01, now])
    samples = []
    deadline = time.monotonic() + 3.0
    while len(samples) < 3 and time.monotonic() < deadline:
        samples += source.poll()
        time.sleep(0.01)
    assert source.units == "fractions" and len(samples) == 3
    assert (samples[0].x, samples[0].y, samples[0].valid) == pytest.approx((960.0, 270.0, True))
    assert not samples[1].valid and samples[2].x == pytest.approx(192.0, abs=1e-3)
    assert samples[0].t == pytest.approx(now - 0.02, abs=1e-3)
    source.close()


# ---------------------------------------------------------------------------------------------- Gazepoint
class FakeGazepoint(threading.Thread):
    """A fake Gazepoint Control on 127.0.0.1: waits for the ENABLE_SEND_* commands, ACKs them, then sends
    the REC lines of one part per connection (closing the connection after each part but the last)."""

    def __init__(self, parts: list[list[bytes]]):
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10.0)
        self.port = self.server.getsockname()[1]
        self.parts = parts
        self.commands: list[str] = []
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            for k, lines in enumerate(self.parts):
                conn, _ = self.server.accept()
                with conn:
                    conn.settimeout(5.0)
                    got = b""
                    while got.count(b"\r\n") < 3:
                        chunk = conn.recv(4096)
                        if not chunk:
                            raise ConnectionError("client closed before enabling data")
                        got += chunk
                    for line in got.decode().split("\r\n"):
                        if line:
                            self.commands.append(line)
                            cmd = parse_gazepoint_record(line.replace("<SET", "<REC", 1))
                            conn.sendall(f'<ACK ID="{cmd["ID"]}" STATE="1" />\r\n'.encode())
                    blob = b"".join(lines)
                    cut = len(blob) // 3 + 7  # mid-line: the client must buffer partial lines
                    conn.sendall(blob[:cut])
                    time.sleep(0.02)
                    conn.sendall(blob[cut:])
                    if k == len(self.parts) - 1:
                        self.finished.wait(10.0)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            self.server.close()


def rec_lines(samples: np.ndarray, t_offset: float) -> list[bytes]:
    lines = []
    for t, x, y, valid in samples:
        if valid:
            fx, fy = x / SCREEN_PX[0], y / SCREEN_PX[1]
            lines.append(f'<REC TIME="{t - t_offset:.5f}" BPOGX="{fx:.7f}" BPOGY="{fy:.7f}" BPOGV="1" />\r\n'.encode())
        else:
            lines.append(f'<REC TIME="{t - t_offset:.5f}" BPOGX="0.0000000" BPOGY="0.0000000" BPOGV="0" />\r\n'.encode())
    return lines


def test_gazepoint_capture_with_a_dropped_connection(view):
    rate = 150  # Gazepoint GP3 HD
    t_start = 12.5  # Gazepoint TIME: seconds since the server started
    part_a, part_b = FIXATIONS[:4], FIXATIONS[4:]
    samples_a, truth_a, changes_a = scanpath(view, rate, t_start, part_a, seed=3, blink=False, off_screen=False)
    start_b = samples_a[-1, 0] + 0.4  # 0.4 s lost while the connection is down
    samples_b, truth_b, changes_b = scanpath(view, rate, start_b, part_b, seed=4, glance=False, blink=False,
                                             off_screen=False)
    mid_saccade = int(np.searchsorted(samples_b[:, 0], truth_b[0]["t"] + truth_b[0]["duration"] + SACCADE_S / 2))
    samples_b[mid_saccade, 1:4] = (np.nan, np.nan, 0.0)  # one invalid sample (BPOGV="0"), in a saccade
    changes = changes_a + [(start_b - 0.01, STATES[part_b[0][0]])] + changes_b
    lines_a = rec_lines(samples_a, 0.0)
    lines_a.insert(5, b'<REC TIME="oops" BPOGX="0.1" BPOGY="0.1" BPOGV="1" />\r\n')  # malformed: skipped, counted
    lines_a.insert(9, b'<CAL ID="CALIB_RESULT" />\r\n')  # other records: ignored
    server = FakeGazepoint([lines_a, rec_lines(samples_b, 0.0)])
    server.start()

    timeline = ViewTimeline()
    view.set(STATES[0])
    view.record(timeline, None)  # before any sample: in force from the start
    for t_change, state in changes:  # the view changes, stamped on the tracker's TIME
        view.set(state)
        view.record(timeline, t_change)
    source = GazepointSource("127.0.0.1", server.port)
    recorder = GazeRecorder(source, timeline, screen_px=SCREEN_PX, screen_mm=SCREEN_MM, distance_mm=DISTANCE_MM,
                            reconnect_interval_s=0.05)
    recorder.start()
    assert recorder.live.connected
    deadline = time.monotonic() + 15.0
    while recorder.live.samples < len(samples_a) + len(samples_b) and time.monotonic() < deadline:
        recorder.pump()
        time.sleep(0.005)
    server.finished.set()
    reading = recorder.stop()
    server.join(5.0)
    assert server.error is None, server.error
    assert server.commands == list(capture.GAZEPOINT_COMMANDS) * 2  # sent again on reconnecting
    assert reading.disconnects == 1 and [e["event"] for e in reading.events] == ["disconnect", "reconnect"]
    assert source.malformed == 1
    assert reading.n_samples == len(samples_a) + len(samples_b)
    assert reading.dropped["invalid"] == 1
    assert reading.dropped["gap"] == pytest.approx(0.4 * rate - 1, abs=1)
    assert reading.t0 == pytest.approx(t_start)
    check_fixations(reading, truth_a + truth_b, t_start, "Gazepoint 150 Hz, connection dropped")
    check_case(reading)


def test_gazepoint_record_parsing_is_strict():
    assert parse_gazepoint_record(b'<REC TIME="1.5" BPOGX="0.25" BPOGY="0.5" BPOGV="1" />\r') == {
        "TIME": "1.5", "BPOGX": "0.25", "BPOGY": "0.5", "BPOGV": "1"}
    for bad in (b'<ACK ID="ENABLE_SEND_DATA" STATE="1" />', b'<REC TIME="1" <x/> />',
                b'<!DOCTYPE x [<!ENTITY a "b">]><REC TIME="&a;" />', b'<REC TIME=1 />', b"garbage"):
        assert parse_gazepoint_record(bad) is None, bad


def test_gazepoint_without_a_server_says_what_to_start():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(capture.SourceError, match="start Gazepoint Control"):
        GazepointSource("127.0.0.1", port, screen_px=SCREEN_PX, connect_timeout_s=0.5).open()


# ---------------------------------------------------------------------------------------------- sidecar, mouse
def synthetic_reading() -> tuple[Reading, GazeRecorder]:
    """A reading from the mouse stand-in on a fake clock: a 300 ms hold, a jump, a 400 ms hold, off-image."""
    clock = [100.0]
    path = [(400.0, 300.0)] * 18 + [(700.0, 500.0)] * 24 + [None] * 3 + [(5.0, 5.0)] * 3
    pos = iter(path)
    source = MouseSource(lambda: next(pos), rate_hz=60, clock=lambda: clock[0])
    geometry = ViewGeometry((800, 600), VIEW_RECT)
    recorder = GazeRecorder(source, lambda: (geometry, {"layout": "red"}), screen_px=SCREEN_PX, screen_mm=SCREEN_MM)
    recorder.start()
    for _ in path:
        clock[0] += 1 / 60
        assert recorder.pump() == 1
        assert recorder.pump() == 0  # polled again at the same time: the pointer was already sampled
    return recorder.stop(), recorder


def test_mouse_source_stands_in_for_a_tracker():
    reading, recorder = synthetic_reading()
    assert reading.n_samples == 48 and reading.sampling_rate_hz == pytest.approx(60.0)
    assert reading.dropped == {"invalid": 3, "off_screen": 0, "off_image": 3, "no_view": 0, "gap": 0}
    assert [round(f["x"]) for f in reading.fixations] == [200, 500] and [round(f["y"]) for f in reading.fixations] == [200, 400]
    assert reading.fixations[0]["duration"] == pytest.approx(0.3, abs=0.035)  # the jump's neighbours are not in it
    assert reading.latency_ms["median"] == 0.0
    assert not recorder.live.recording and "not recording" in str(recorder.live)
    with pytest.raises(ValueError, match="rate_hz"):
        MouseSource(lambda: None, rate_hz=0)


def test_sidecar_round_trip():
    reading, _ = synthetic_reading()
    data = reading.sidecar_bytes()
    assert data[:2] == b"\x1f\x8b" and data == reading.sidecar_bytes()  # gzip, deterministic
    doc = json.loads(gzip.decompress(data))
    assert doc["schema"] == capture.SIDECAR_SCHEMA and set(doc["samples"]) == {"t_us", "x", "y", "status", "view", "latency_ms"}
    back = Reading.from_sidecar(data)
    assert back.fixations == reading.fixations and back.dropped == reading.dropped
    assert back.views == reading.views and back.image_size == (800, 600)
    for key in ("t", "x", "y", "latency_ms"):
        assert np.allclose(back.samples[key], reading.samples[key], atol=0.01, equal_nan=True), key
    for key in ("status", "view", "valid"):
        assert (back.samples[key] == reading.samples[key]).all(), key
    assert back.reader_fixations() == reading.reader_fixations()
    assert Reading.from_sidecar(back.sidecar_bytes()).sidecar_bytes() == back.sidecar_bytes()
    with pytest.raises(ValueError, match="not gzip"):
        Reading.from_sidecar(b"{}")
    with pytest.raises(ValueError, match="schema"):
        Reading.from_sidecar(gzip.compress(b'{"schema": "other"}'))
    broken = dict(doc, samples={**doc["samples"], "x": doc["samples"]["x"][:-1]})
    with pytest.raises(ValueError, match="samples.x"):
        Reading.from_sidecar(gzip.compress(json.dumps(broken).encode()))


def test_recorder_rejects_bad_settings():
    with pytest.raises(ValueError, match="method"):
        GazeRecorder(MouseSource(lambda: None), ViewTimeline(), screen_px=SCREEN_PX, screen_mm=SCREEN_MM, method="hmm")
    with pytest.raises(ValueError, match="screen_mm_w"):
        GazeRecorder(MouseSource(lambda: None), ViewTimeline(), screen_px=SCREEN_PX, screen_mm=(0, 10))
    with pytest.raises(TypeError, match="view"):
        GazeRecorder(MouseSource(lambda: None), "red", screen_px=SCREEN_PX, screen_mm=SCREEN_MM)
