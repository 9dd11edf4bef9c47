"""Fixtures for the Slicer extension's logic, run headless on the slicer-core wheel (MRML, no Qt).

``GazeLabelLib`` is imported from ``slicer_extension/GazeLabel`` the way Slicer imports it (the module
folder on ``sys.path``); it never imports ``models``, while the tests use ``models`` to check its output.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

# Offscreen OpenGL through Mesa EGL; must be set before VTK creates a render window.
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

MODULE_DIR = Path(__file__).resolve().parents[2] / "slicer_extension" / "GazeLabel"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))


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
