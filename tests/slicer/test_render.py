"""The annotator's view, rendered offscreen by Slicer's own slice logic and displayable managers (Mesa EGL),
then checked pixel by pixel: a radiograph, heat over the model's focus, numbered fixations and boxes where
the scene puts them, and the picture follows the scene's state."""

from __future__ import annotations

import numpy as np
import pytest


def centre_blob(width: int, height: int, box: dict) -> np.ndarray:
    """A model-like heatmap: one Gaussian on the box centre, ``(H, W)``."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    cx, cy = (box["x1"] + box["x2"]) / 2, (box["y1"] + box["y2"]) / 2
    sigma = 0.25 * max(box["x2"] - box["x1"], box["y2"] - box["y1"])
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_screenshot_shows_the_scene(loaded, phantom_case, screenshot, tmp_path, offscreen_gl):
    from GazeLabelLib import scene_io
    from GazeLabelLib.headless import render_slice_view

    case, _ = phantom_case
    scene = loaded.scene
    box = case["boxes"][0]
    heat = centre_blob(case["image"]["width"], case["image"]["height"], box)
    scene_io.heatmap_volume(scene, heat)

    shot = render_slice_view(loaded, tmp_path / "annotator_view.png", size=(640, 640))
    png = screenshot.check(shot, scene, case)

    # Heat: at the blob's peak the view is red-yellow, on the plain radiograph it is grey.
    volume = scene_io.require_role(scene, "image")
    peak = shot.pixel_of(scene_io.pixels_to_ras(volume, [[(box["x1"] + box["x2"]) / 2, (box["y1"] + box["y2"]) / 2]])[0])
    warm = screenshot.around(png, peak, 15)
    assert np.mean(warm[:, 0] - warm[:, 2] > 40) > 0.5, "no heatmap colour at the heat peak"

    # The picture follows the scene: move the box and render again.
    roi = scene_io.nodes_with_role(scene, "box")[0]
    moved = {**box, "x1": 20.0, "y1": 400.0, "x2": 120.0, "y2": 480.0}
    scene_io.set_box_pixels(volume, roi, (moved["x1"], moved["y1"], moved["x2"], moved["y2"]))
    shot2 = render_slice_view(loaded, tmp_path / "annotator_view_moved.png", size=(640, 640))
    png2 = screenshot.rgb(shot2)
    x, y = moved["x1"] + 0.25 * (moved["x2"] - moved["x1"]), moved["y1"]
    assert screenshot.box_green(screenshot.around(png2, shot2.pixel_of(scene_io.pixels_to_ras(volume, [[x, y]])[0]), 2)).any()
    old = shot.pixel_of(scene_io.pixels_to_ras(volume, [[box["x1"] + 0.25 * (box["x2"] - box["x1"]), box["y1"]]])[0])
    assert not screenshot.box_green(screenshot.around(png2, old, 1)).any()  # the old outline is gone


def test_playback_shows_only_the_fixations_played(loaded, phantom_case, screenshot, tmp_path, offscreen_gl):
    from GazeLabelLib import scene_io
    from GazeLabelLib.headless import render_slice_view
    from GazeLabelLib.session import AnnotationSession

    case, _ = phantom_case
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
    assert scene_io.find_role(loaded.scene, "scanpath").GetNumberOfControlPoints() == 2
    assert len(scene_io.scene_to_case(loaded.scene)["fixations"]) == len(case["fixations"])  # the case keeps all

    # In the picture: fixations 1 and 2 drawn; the later ones (those well clear of 1 and 2) not.
    volume = scene_io.require_role(loaded.scene, "image")
    shot = render_slice_view(loaded, tmp_path / "playback.png", size=(640, 640))
    png = screenshot.rgb(shot)
    xy = [shot.pixel_of(p) for p in scene_io.pixels_to_ras(volume, [[f["x"], f["y"]] for f in case["fixations"]])]
    assert all(screenshot.fixation_blue(screenshot.around(png, xy[i], 6)).any() for i in (0, 1))
    clear = [i for i in range(2, len(xy)) if min(np.hypot(xy[i][0] - xy[j][0], xy[i][1] - xy[j][1]) for j in (0, 1)) > 40]
    assert clear and not any(screenshot.fixation_blue(screenshot.around(png, xy[i], 2)).any() for i in clear)
    assert playback.back().index == first.index
    last = playback.seek(len(playback) - 1)
    assert playback.step() is None and playback.finished and last.label == str(len(playback))
    with pytest.raises(IndexError, match="does not exist"):
        playback.seek(len(playback))
    with pytest.raises(ValueError, match="speed must be > 0"):
        session.playback(speed=0)
    assert second.t >= first.t + first.duration - 1e-6  # reading order: the second starts after the first
