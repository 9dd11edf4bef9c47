"""models.screen: screen pixels <-> image pixels (round trips at several zooms, pads, screens), the letterbox
and pad constructors, pixels per degree against a hand computation, and the messages of bad rectangles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.screen import ViewGeometry, check_rect, parse_rect, parse_size, px_per_degree

SCREENS = [(1920, 1080), (2560, 1440), (1280, 1024), (3840, 2160)]
IMAGES = [(2544, 3056), (3056, 2544), (512, 512), (800, 600)]


def _visible_rects(w: int, h: int) -> list[tuple[float, float, float, float]]:
    """Zoom/pan states: whole image, 2x zoom on a corner, 4.3x off-centre, zoomed out past the edges."""
    return [(0, 0, w, h), (0, 0, w / 2, h / 2), (w * 0.31, h * 0.47, w * 0.31 + w / 4.3, h * 0.47 + h / 4.3),
            (-w * 0.25, -h * 0.1, w * 1.25, h * 1.1)]


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("image", IMAGES)
def test_round_trip_within_half_a_pixel_at_every_zoom(screen, image):
    rng = np.random.default_rng(0)
    for visible in _visible_rects(*image):
        for view in (ViewGeometry.letterbox(image, screen, visible),
                     ViewGeometry(image, (13.0, 7.5, screen[0] - 101.0, screen[1] - 3.0), visible)):
            sx = rng.uniform(-50, screen[0] + 50, 500)
            sy = rng.uniform(-50, screen[1] + 50, 500)
            ix, iy = view.screen_to_image(sx, sy)
            bx, by = view.image_to_screen(ix, iy)
            # required: within 0.5 px; the map is affine, so it is exact up to float error
            assert np.abs(bx - sx).max() < 1e-6 and np.abs(by - sy).max() < 1e-6
            # and the other way: image -> screen -> image
            px, py = rng.uniform(0, image[0], 200), rng.uniform(0, image[1], 200)
            qx, qy = view.screen_to_image(*view.image_to_screen(px, py))
            assert np.abs(qx - px).max() < 1e-6 and np.abs(qy - py).max() < 1e-6


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (12, 8, 400, 396), (28, 28, 560, 559)])
def test_round_trip_with_pads(screen, pads):
    top, bottom, left, right = pads
    view = ViewGeometry.from_pads((2544, 3056), screen, top, bottom, left, right)
    assert view.screen_rect == (left, top, screen[0] - right, screen[1] - bottom)
    xs = np.linspace(0, 2544, 37)
    ys = np.linspace(0, 3056, 37)
    sx, sy = view.image_to_screen(xs, ys)
    bx, by = view.screen_to_image(sx, sy)
    assert np.abs(bx - xs).max() < 1e-6 and np.abs(by - ys).max() < 1e-6
    # the image's corners land on the pads' inner edges
    assert view.image_to_screen(0, 0) == pytest.approx((left, top))
    assert view.image_to_screen(2544, 3056) == pytest.approx((screen[0] - right, screen[1] - bottom))


def test_letterbox_fits_centres_and_keeps_the_aspect():
    view = ViewGeometry.letterbox((2544, 3056), (1920, 1080))  # portrait CXR: pillarboxed
    x0, y0, x1, y1 = view.screen_rect
    assert (y0, y1) == pytest.approx((0, 1080))
    assert (x1 - x0) == pytest.approx(2544 * 1080 / 3056)
    assert x0 == pytest.approx(1920 - x1)  # centred
    sx, sy = view.scale_xy
    assert sx == pytest.approx(sy) == pytest.approx(3056 / 1080)
    assert view.image_px_per_screen_px == pytest.approx(3056 / 1080)
    wide = ViewGeometry.letterbox((4000, 1000), (1920, 1080))  # letterboxed top and bottom
    assert wide.screen_rect == pytest.approx((0, 540 - 240, 1920, 540 + 240))
    # the centre of the screen is the centre of the image
    assert view.screen_to_image(960, 540) == pytest.approx((1272, 1528))


def test_pixel_convention_centres_and_edges():
    """Pixel i covers [i, i + 1): at 1:1 a screen pixel's centre is the image pixel's centre; edges exclusive."""
    view = ViewGeometry((100, 50), (10, 20, 110, 70))
    assert view.screen_to_image(10.5, 20.5) == (0.5, 0.5)
    assert view.image_to_screen(99.5, 49.5) == (109.5, 69.5)
    assert view.contains_screen(10, 20) and not view.contains_screen(110, 40) and not view.contains_screen(50, 70)
    assert view.contains_image(0, 0) and not view.contains_image(100, 10) and not view.contains_image(float("nan"), 1)
    mask = view.on_image(np.array([9.9, 10.0, 109.99, 110.0]), np.full(4, 30.0))
    assert mask.tolist() == [False, True, True, False]


def test_a_visible_rect_past_the_image_shows_background():
    view = ViewGeometry((100, 100), (0, 0, 200, 200), visible=(-50, -50, 150, 150))  # zoomed out, centred
    assert view.contains_screen(10, 10) and not view.on_image(10, 10)  # screen rect, but background
    assert view.on_image(100, 100) and view.screen_to_image(100, 100) == (50.0, 50.0)


def test_zoom_changes_image_px_per_screen_px():
    full = ViewGeometry((1000, 1000), (0, 0, 500, 500))
    zoomed = ViewGeometry((1000, 1000), (0, 0, 500, 500), visible=(250, 250, 500, 500))
    assert full.image_px_per_screen_px == pytest.approx(2.0)
    assert zoomed.image_px_per_screen_px == pytest.approx(0.5)
    assert zoomed.screen_to_image(0, 0) == (250.0, 250.0)
    assert zoomed.image_px_per_degree(40.0) == pytest.approx(20.0)


def test_scalars_and_arrays():
    view = ViewGeometry.letterbox((800, 600), (1920, 1080))
    x, y = view.screen_to_image(960.0, 540.0)
    assert isinstance(x, float) and isinstance(y, float)
    ax, ay = view.screen_to_image(np.full((3, 2), 960.0), np.full((3, 2), 540.0))
    assert ax.shape == (3, 2) and np.allclose(ax, 400) and np.allclose(ay, 300)
    assert isinstance(view.contains_screen(1.0, 1.0), bool)


def test_px_per_degree_matches_a_hand_computation():
    # 24" 16:9 (527 mm across 1920 px) at 650 mm: 1 deg spans 2 * 650 * tan(0.5 deg) = 11.34493 mm;
    # 1920 / 527 = 3.643264 px/mm, so 41.33257 px per degree.
    assert px_per_degree(1920, 527, 650) == pytest.approx(41.33257, abs=1e-4)
    assert px_per_degree(1920, 527, 650) == pytest.approx(2 * 650 * math.tan(math.radians(0.5)) * 1920 / 527)
    # the small-angle estimate (d * pi / 180 mm per degree) is close but not what is computed
    assert 0 < abs(px_per_degree(1920, 527, 650) - 650 * math.pi / 180 * 1920 / 527) < 2e-3
    # image px per degree = screen px per degree x image px per screen px
    view = ViewGeometry.letterbox((2544, 3056), (1920, 1080))
    assert view.image_px_per_degree(px_per_degree(1920, 527, 650)) == pytest.approx(41.33257 * 3056 / 1080, rel=1e-5)


@pytest.mark.parametrize("kwargs, field", [
    ({"screen_px_w": 0, "screen_mm_w": 527, "distance_mm": 650}, "screen_px_w"),
    ({"screen_px_w": 1920, "screen_mm_w": -1, "distance_mm": 650}, "screen_mm_w"),
    ({"screen_px_w": 1920, "screen_mm_w": 527, "distance_mm": float("nan")}, "distance_mm"),
])
def test_px_per_degree_refuses_non_positive_values(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        px_per_degree(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"screen_rect": (10, 0, 5, 100)}, "screen_rect: x1 must be > x0, got 10,0,5,100"),
    ({"screen_rect": (0, 50, 100, 50)}, "screen_rect: y1 must be > y0, got 0,50,100,50"),
    ({"screen_rect": (0, 0, 100)}, "screen_rect: expected 4 numbers x0,y0,x1,y1"),
    ({"screen_rect": (0, 0, float("inf"), 10)}, "screen_rect: all of x0,y0,x1,y1 must be finite"),
    ({"screen_rect": (0, 0, 10, 10), "visible": (5, 0, 5, 10)}, "visible: xmax must be > xmin, got 5,0,5,10"),
    ({"screen_rect": (0, 0, 10, 10), "image_size": (0, 10)}, "image_size: width and height must be > 0"),
    ({"screen_rect": (0, 0, 10, 10), "image_size": (10.5, 10)}, "image_size: expected (width, height) in whole pixels"),
])
def test_bad_rectangles_name_the_field(kwargs, message):
    args = {"image_size": (100, 100), **kwargs}
    with pytest.raises(ValueError) as e:
        ViewGeometry(**args)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_bad_pads_and_parsed_options():
    with pytest.raises(ValueError, match=r"^left \+ right pads \(1000 \+ 920\) leave no room"):
        ViewGeometry.from_pads((100, 100), (1920, 1080), 0, 0, 1000, 920)
    with pytest.raises(ValueError, match="^top pad: must be a finite number >= 0"):
        ViewGeometry.from_pads((100, 100), (1920, 1080), -1, 0, 0, 0)
    assert parse_rect("560,240,1360,840", "--image-rect") == (560, 240, 1360, 840)
    with pytest.raises(ValueError, match=r"^--image-rect: x1 must be > x0, got 10,0,5,100"):
        parse_rect("10,0,5,100", "--image-rect")
    with pytest.raises(ValueError, match="^--image-rect: expected X0,Y0,X1,Y1"):
        parse_rect("a,b,c,d", "--image-rect")
    assert parse_size("1920x1080", "--screen") == (1920, 1080)
    assert parse_size("527x296.5", "--screen-mm", integer=False) == (527.0, 296.5)
    for bad in ("1920", "0x1080", "1920.5x1080", "axb"):
        with pytest.raises(ValueError, match="^--screen: "):
            parse_size(bad, "--screen")
    assert check_rect([1, 2, 3, 4], "r") == (1.0, 2.0, 3.0, 4.0)


def test_matches_the_mapping_that_produced_egd_cxr():
    """EGD-CXR's own mapping (map_eye_gaze_from_screen_to_image_coordinates.py L80-118 at 82f2427):
    ``X_ORIGINAL = int(W / (1920 - left - right) * (FPOGX * 1920 - left))``; ViewGeometry.from_pads gives the
    same pixel before the truncation, for every on-image row of the EGD-CXR fixture (hand-written with
    assumed image sizes; FPOGX/FPOGY rounded to 5 decimals, so within one pixel)."""
    import csv
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "egd_cxr"
    master = {r["dicom_id"]: r for r in csv.DictReader(open(fixture / "master_sheet.csv", newline=""))}
    sizes = {"e1a2b3c4-d5e6f7a8-b9c0d1e2-f3a4b5c6-d7e8f9a0": (2544, 3056),
             "e2b3c4d5-e6f7a8b9-c0d1e2f3-a4b5c6d7-e8f9a0b1": (2556, 3240),
             "e3c4d5e6-f7a8b9c0-d1e2f3a4-b5c6d7e8-f9a0b1c2": (2800, 1324)}
    checked = 0
    for row in csv.DictReader(open(fixture / "fixations.csv", newline="")):
        m = master.get(row["DICOM_ID"])
        try:
            x_orig, y_orig = float(row["X_ORIGINAL"]), float(row["Y_ORIGINAL"])
        except ValueError:
            continue
        if m is None or x_orig < 0 or y_orig < 0:
            continue
        pads = [float(m[f"image_{side}_pad"]) for side in ("top", "bottom", "left", "right")]
        view = ViewGeometry.from_pads(sizes[row["DICOM_ID"]], (1920, 1080), *pads)
        x, y = view.screen_to_image(float(row["FPOGX"]) * 1920, float(row["FPOGY"]) * 1080)
        assert abs(x - x_orig) < 1.0 and abs(y - y_orig) < 1.0, (row["DICOM_ID"], x, y, x_orig, y_orig)
        checked += 1
    assert checked == 9
