"""The annotator's view, rendered offscreen by Slicer's own slice logic and displayable managers (Mesa EGL),
then checked pixel by pixel: a radiograph, heat over the model's focus, numbered fixations and boxes where
the scene puts them, and the picture follows the scene's state."""

from __future__ import annotations

import numpy as np
import pytest
import slicer
from PIL import Image


def neighbourhood(png: np.ndarray, xy: tuple[int, int], radius: int) -> np.ndarray:
    """``(N, 3)`` float RGB pixels of the square of ``radius`` around ``(column, row)``."""
    x, y = xy
    return png[max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1, :3].reshape(-1, 3).astype(float)


def is_fixation_blue(p: np.ndarray) -> np.ndarray:
    return (p[:, 2] > 200) & (p[:, 0] < 90) & (p[:, 1] > 140)


def is_box_green(p: np.ndarray) -> np.ndarray:
    return (p[:, 1] > 200) & (p[:, 0] < 120) & (p[:, 2] < 120)


def centre_blob(width: int, height: int, box: dict) -> np.ndarray:
    """A model-like heatmap: one Gaussian on the box centre, ``(H, W)``."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    cx, cy = (box["x1"] + box["x2"]) / 2, (box["y1"] + box["y2"]) / 2
    sigma = 0.25 * max(box["x2"] - box["x1"], box["y2"] - box["y1"])
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)).astype(np.float32)


def quiet_pixel(case: dict, heat: np.ndarray) -> tuple[float, float]:
    """A pixel centre with no overlay near it: far from fixations, outside boxes, no heat, not under the
    corner caption (bottom-left)."""
    h, w = heat.shape
    fix = np.array([[f["x"], f["y"]] for f in case["fixations"]] or [[-1e9, -1e9]])
    for y in np.linspace(0.05 * h, 0.95 * h, 19):
        for x in np.linspace(0.95 * w, 0.05 * w, 19):
            if x < 0.45 * w and y > 0.85 * h:
                continue
            if np.hypot(*(fix - [x, y]).T).min() < 0.08 * w or heat[int(y), int(x)] > 0.05 * heat.max():
                continue
            if any(b["x1"] - 10 <= x <= b["x2"] + 10 and b["y1"] - 10 <= y <= b["y2"] + 10 for b in case["boxes"]):
                continue
            return int(x) + 0.5, int(y) + 0.5
    raise AssertionError("no pixel free of overlays to compare with the radiograph")


def check_screenshot(shot, scene, case: dict) -> np.ndarray:
    """Asserts what a person must see; returns the RGB array. Shared with the live-server test."""
    from GazeLabelLib import scene_io

    png = np.asarray(Image.open(shot.path).convert("RGB"))
    assert png.shape[:2] == (shot.size[1], shot.size[0])
    grey = png.mean(axis=2)
    assert grey.std() > 25, "blank or flat screenshot"
    volume = scene_io.require_role(scene, "image")

    # The radiograph: where nothing is drawn the view shows the image's own grey (within the 8-bit mapping).
    image = slicer.util.arrayFromVolume(volume)[0]
    heat = scene_io.find_role(scene, "heatmap")
    heat = slicer.util.arrayFromVolume(heat)[0] if heat is not None else np.zeros_like(image)
    probe = quiet_pixel(case, heat)
    col, row = shot.pixel_of(scene_io.pixels_to_ras(volume, [probe])[0])
    assert abs(float(png[row, col].mean()) - 255 * float(image[int(probe[1]), int(probe[0])])) < 20

    fixations = case["fixations"]
    ras = scene_io.pixels_to_ras(volume, [[f["x"], f["y"]] for f in fixations])
    seen = [is_fixation_blue(neighbourhood(png, shot.pixel_of(p), 6)).any() for p in ras]
    assert np.mean(seen) > 0.9, f"fixation glyphs missing at {np.flatnonzero(~np.array(seen))[:10]}"

    for box in case["boxes"]:
        # A quarter along the top edge: on the outline, away from the corner and midpoint handles.
        x, y = box["x1"] + 0.25 * (box["x2"] - box["x1"]), box["y1"]
        xy = shot.pixel_of(scene_io.pixels_to_ras(volume, [[x, y]])[0])
        assert is_box_green(neighbourhood(png, xy, 2)).any(), f"{box['finding']} box outline not at {xy}"
    return png


def test_screenshot_shows_the_scene(loaded, phantom_case, tmp_path):
    from GazeLabelLib import scene_io
    from GazeLabelLib.headless import render_slice_view

    case, _ = phantom_case
    scene = loaded.scene
    box = case["boxes"][0]
    heat = centre_blob(case["image"]["width"], case["image"]["height"], box)
    scene_io.heatmap_volume(scene, heat)

    shot = render_slice_view(loaded, tmp_path / "annotator_view.png", size=(640, 640))
    png = check_screenshot(shot, scene, case)

    # Heat: at the blob's peak the view is red-yellow, on the plain radiograph it is grey.
    volume = scene_io.require_role(scene, "image")
    peak = shot.pixel_of(scene_io.pixels_to_ras(volume, [[(box["x1"] + box["x2"]) / 2, (box["y1"] + box["y2"]) / 2]])[0])
    warm = neighbourhood(png, peak, 15)
    assert np.mean(warm[:, 0] - warm[:, 2] > 40) > 0.5, "no heatmap colour at the heat peak"

    # The picture follows the scene: move the box and render again.
    roi = scene_io.nodes_with_role(scene, "box")[0]
    moved = {**box, "x1": 20.0, "y1": 400.0, "x2": 120.0, "y2": 480.0}
    scene_io.set_box_pixels(volume, roi, (moved["x1"], moved["y1"], moved["x2"], moved["y2"]))
    shot2 = render_slice_view(loaded, tmp_path / "annotator_view_moved.png", size=(640, 640))
    png2 = np.asarray(Image.open(shot2.path).convert("RGB"))
    x, y = moved["x1"] + 0.25 * (moved["x2"] - moved["x1"]), moved["y1"]
    assert is_box_green(neighbourhood(png2, shot2.pixel_of(scene_io.pixels_to_ras(volume, [[x, y]])[0]), 2)).any()
    old = shot.pixel_of(scene_io.pixels_to_ras(volume, [[box["x1"] + 0.25 * (box["x2"] - box["x1"]), box["y1"]]])[0])
    assert not is_box_green(neighbourhood(png2, old, 1)).all()


def test_playback_hides_fixations_not_yet_played(loaded, tmp_path):
    from GazeLabelLib import scene_io
    from GazeLabelLib.headless import render_slice_view
    from GazeLabelLib.session import AnnotationSession

    session = AnnotationSession(loaded.scene)
    playback = session.playback(speed=2.0)
    first = playback.step()
    assert (first.label, first.index) == ("1", 0)
    assert first.wait_ms == max(80, round(1000 * first.duration / 2.0))
    second = playback.step()
    session.show_playback(playback)
    points = scene_io.find_role(loaded.scene, "fixations")
    shown = [bool(points.GetNthControlPointVisibility(i)) for i in range(points.GetNumberOfControlPoints())]
    assert shown[:2] == [True, True] and not any(shown[2:])
    assert playback.back().index == first.index
    last = playback.seek(len(playback) - 1)
    assert playback.step() is None and playback.finished and last.label == str(len(playback))
    with pytest.raises(IndexError, match="does not exist"):
        playback.seek(len(playback))
    with pytest.raises(ValueError, match="speed must be > 0"):
        session.playback(speed=0)
    assert second.t >= first.t + first.duration - 1e-6  # reading order: the second starts after the first
