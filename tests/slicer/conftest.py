"""Fixtures for the Slicer extension's logic, run headless on the slicer-core wheel (MRML, no Qt).

``GazeLabelLib`` is imported from ``slicer_extension/GazeLabel`` the way Slicer imports it (the module
folder on ``sys.path``); it never imports ``models``, while the tests use ``models`` to check its output.
``start_server`` is the live-server fixture of ``tests/integration/conftest.py``, shared from there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

# Offscreen OpenGL through Mesa EGL; must be set before VTK creates a render window.
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = ROOT / "slicer_extension" / "GazeLabel"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

# Lab Streaming Layer on loopback only, for every test that streams gaze: liblsl reads its configuration once,
# when pylsl first loads, so it is set here, before any test can import pylsl (nothing leaves 127.0.0.1).
if "pylsl" not in sys.modules and "LSLAPICFG" not in os.environ:
    import tempfile

    from GazeLabelLib.simulated_tracker import loopback_lsl

    LSL_CONFIG = loopback_lsl(tempfile.mkdtemp(prefix="gazelabel-tests-lsl-"))

# slicer-core's ``slicer/__init__`` imports every module of every ``slicer`` folder on sys.path, and pytest puts
# ``tests/`` there, so this folder's test modules are imported while ``slicer`` loads. Loading it here, first,
# keeps a test module that imports GazeLabelLib.headless from meeting a half-imported headless module.
import slicer  # noqa: E402,F401


def _integration_conftest():
    """``tests/integration/conftest.py`` under its own module name (conftests are not importable by name)."""
    name = "gazelabel_integration_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "integration" / "conftest.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up there
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


start_server = _integration_conftest().start_server  # a real server per test, on a copy of the tiny store


@pytest.fixture(scope="session")
def offscreen_missing():
    """None when Mesa's EGL and software rasteriser are installed, else why offscreen rendering cannot run."""
    import ctypes.util
    import glob

    missing = [pkg for pkg, present in (
        ("libegl1 libegl-mesa0", ctypes.util.find_library("EGL_mesa")),
        ("libgl1-mesa-dri", glob.glob("/usr/lib/*/dri/swrast_dri.so") + glob.glob("/usr/lib/dri/swrast_dri.so")),
    ) if not present]
    return f"offscreen rendering needs Mesa EGL: apt-get install {' '.join(missing)}" if missing else None


@pytest.fixture
def offscreen_gl(offscreen_missing):
    """Skip (naming the Debian packages) when offscreen rendering cannot run."""
    if offscreen_missing:
        pytest.skip(offscreen_missing)


@pytest.fixture
def headless():
    """A fresh MRML scene with the application and markups logics, as Slicer sets them up."""
    from GazeLabelLib.headless import new_scene

    h = new_scene()
    yield h
    h.scene.Clear(1)


@pytest.fixture(scope="session")
def phantom_case(phantom_store):
    """``(case dict, PNG bytes)`` of one SYNTHETIC phantom case that has boxes, fixations and a report."""
    for record in sorted((phantom_store / "cases").glob("*.json")):
        case = json.loads(record.read_text())
        if case.get("boxes") and case.get("fixations") and case.get("report"):
            return case, (phantom_store / f"{case['id']}.png").read_bytes()
    raise AssertionError(f"{phantom_store}: no phantom case with boxes, fixations and a report")


@pytest.fixture
def loaded(headless, phantom_case):
    """``headless`` showing the phantom case (image volume + case nodes), as after "Run"."""
    from GazeLabelLib import scene_io
    from GazeLabelLib.image_io import decode_image

    case, png = phantom_case
    decoded = decode_image(png, f"{case['id']}.png")
    scene_io.image_volume(headless.scene, decoded.array, case["image"].get("spacing_mm"))
    scene_io.case_to_scene(headless.scene, case)
    return headless


class Screenshot:
    """Pixel checks on a rendered slice view (``GazeLabelLib.headless.SliceScreenshot``)."""

    @staticmethod
    def rgb(shot) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.open(shot.path).convert("RGB"))

    @staticmethod
    def around(png: np.ndarray, xy: tuple[int, int], radius: int) -> np.ndarray:
        """``(N, 3)`` float RGB pixels of the square of ``radius`` around ``(column, row)``."""
        x, y = xy
        return png[max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1, :3].reshape(-1, 3).astype(float)

    @staticmethod
    def fixation_blue(p: np.ndarray) -> np.ndarray:
        return (p[:, 2] > 200) & (p[:, 0] < 90) & (p[:, 1] > 140)

    @staticmethod
    def box_green(p: np.ndarray) -> np.ndarray:
        return (p[:, 1] > 200) & (p[:, 0] < 120) & (p[:, 2] < 120)

    @staticmethod
    def quiet_pixel(case: dict, heat: np.ndarray) -> tuple[float, float]:
        """A pixel centre with no overlay near it: far from fixations, outside boxes, no heat, not under the
        corner caption (bottom-left)."""
        h, w = heat.shape
        fix = np.array([[f["x"], f["y"]] for f in case["fixations"]] or [[-1e9, -1e9]])
        for y in np.linspace(0.05 * h, 0.95 * h, 19):
            for x in np.linspace(0.95 * w, 0.05 * w, 19):
                if x < 0.45 * w and y > 0.85 * h:
                    continue
                if np.hypot(*(fix - [x, y]).T).min() < 0.08 * w or heat[int(y), int(x)] > heat.min() + 0.05 * max(heat.max(), 1e-6):
                    continue
                if any(b["x1"] - 10 <= x <= b["x2"] + 10 and b["y1"] - 10 <= y <= b["y2"] + 10 for b in case["boxes"]):
                    continue
                return int(x) + 0.5, int(y) + 0.5
        return None

    @classmethod
    def check(cls, shot, scene, case: dict) -> np.ndarray:
        """What a person must see, asserted: not blank; the radiograph's own grey where nothing is drawn;
        a fixation glyph at (nearly) every fixation; each box's outline on its top edge. Returns the RGB."""
        import slicer
        from GazeLabelLib import scene_io

        png = cls.rgb(shot)
        assert png.shape[:2] == (shot.size[1], shot.size[0])
        assert png.mean(axis=2).std() > 25, f"{shot.path}: blank or flat screenshot"
        volume = scene_io.require_role(scene, "image")

        image = slicer.util.arrayFromVolume(volume)[0]
        heat_node = scene_io.find_role(scene, "heatmap")
        heat = slicer.util.arrayFromVolume(heat_node)[0] if heat_node is not None else np.zeros_like(image)
        probe = cls.quiet_pixel(case, heat)
        if probe is not None:  # a busy case may cover the whole film
            col, row = shot.pixel_of(scene_io.pixels_to_ras(volume, [probe])[0])
            shown, expected = float(png[row, col].mean()), 255 * float(image[int(probe[1]), int(probe[0])])
            assert abs(shown - expected) < 20, f"radiograph grey {shown} != {expected} at pixel {probe}"

        fixations = case["fixations"]
        ras = scene_io.pixels_to_ras(volume, [[f["x"], f["y"]] for f in fixations])
        seen = np.array([cls.fixation_blue(cls.around(png, shot.pixel_of(p), 6)).any() for p in ras], dtype=bool)
        assert seen.mean() > 0.9, f"{shot.path}: fixation glyphs missing at fixations {np.flatnonzero(~seen)[:10] + 1}"

        for box in case["boxes"]:
            # A quarter along the top edge: on the outline, away from the corner and midpoint handles.
            x, y = box["x1"] + 0.25 * (box["x2"] - box["x1"]), box["y1"]
            xy = shot.pixel_of(scene_io.pixels_to_ras(volume, [[x, y]])[0])
            assert cls.box_green(cls.around(png, xy, 2)).any(), f"{shot.path}: {box['finding']} box outline not at {xy}"
        return png


@pytest.fixture
def screenshot():
    return Screenshot
