"""Screen pixels <-> original image pixels for an image shown on a display (the one place this mapping lives).

An eye tracker reports where on the *screen* the reader looked; GazeLabel stores gaze in *original image
pixels*. Between the two sits how the viewer drew the image:

- the **visible rectangle** ``visible = (xmin, ymin, xmax, ymax)`` in image pixels: the part of the image the
  viewer shows. It is the whole image ``(0, 0, W, H)`` until the user zooms or pans; it may reach past the
  image (zoomed out, panned beyond an edge), where the viewer draws background;
- the **screen rectangle** ``screen_rect = (x0, y0, x1, y1)`` in screen pixels: where that visible part is
  drawn. EGD-CXR letterboxes the whole image into a 1920x1080 screen with top/bottom/left/right pads
  (:meth:`ViewGeometry.from_pads`); a plain aspect-preserving centred fit is :meth:`ViewGeometry.letterbox`.

The map is affine per axis (a scale and an offset; x and y scales may differ), so it inverts exactly and a
round trip is limited only by float error. The same :class:`ViewGeometry` serves recordings made elsewhere
(``gazelabel gaze import``) and, later, the live capture in the Slicer extension, which builds one per
render from the slice view's camera.

Pixel convention (both spaces, both directions): coordinates are **continuous**, x = column to the right,
y = row downwards, origin at the top-left *corner*; pixel ``i`` covers ``[i, i + 1)`` and its centre is
``i + 0.5``. So the image spans ``[0, W) x [0, H)``, a rectangle's right/bottom edges are exclusive, and a
tracker's fraction-of-screen ``f`` is the screen coordinate ``f * screen_width``. This is the convention of
:mod:`models.schema` (fixations) as well. Trackers that report integer pixel *indices* meaning a pixel's
centre are half a pixel off under it, well below their accuracy.

Units: image px per screen px (:attr:`ViewGeometry.image_px_per_screen_px`) and degrees of visual angle
(:func:`px_per_degree`), which turn fixation-detection thresholds in degrees into pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

Rect = tuple[float, float, float, float]


def _fmt(values: Sequence[Any]) -> str:
    return ",".join(f"{float(v):g}" if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) else repr(v)
                    for v in values)


def check_rect(rect: Any, field: str, *, names: tuple[str, str, str, str] = ("x0", "y0", "x1", "y1"),
               units: str = "screen pixels") -> Rect:
    """``rect`` as four finite floats with ``x1 > x0`` and ``y1 > y0``; ValueError naming ``field`` otherwise.

    Args:
        rect: 4 numbers (left, top, right, bottom).
        field: what the caller calls it (``"screen_rect"``, ``"--image-rect"``), used in the message.
        names: the four coordinate names used in the message.
        units: the units, used in the message.
    """
    try:
        values = tuple(float(v) for v in rect)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: expected 4 numbers {','.join(names)} in {units}, got {rect!r}") from None
    if len(values) != 4:
        raise ValueError(f"{field}: expected 4 numbers {','.join(names)} in {units}, got {len(values)} ({_fmt(values)})")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{field}: all of {','.join(names)} must be finite numbers, got {_fmt(values)}")
    a, b, c, d = names
    if values[2] <= values[0]:
        raise ValueError(f"{field}: {c} must be > {a}, got {_fmt(values)} (give {','.join(names)} in {units}: "
                         f"left, top, right, bottom)")
    if values[3] <= values[1]:
        raise ValueError(f"{field}: {d} must be > {b}, got {_fmt(values)} (give {','.join(names)} in {units}: "
                         f"left, top, right, bottom; y grows downwards)")
    return values


def parse_rect(text: str, field: str, **kwargs) -> Rect:
    """``"X0,Y0,X1,Y1"`` (commas or spaces) -> a checked rectangle (see :func:`check_rect`)."""
    parts = [p for p in str(text).replace(",", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"{field}: expected X0,Y0,X1,Y1 (4 numbers), got {text!r}") from None
    return check_rect(values, field, **kwargs)


def parse_size(text: str, field: str, *, integer: bool = True) -> tuple[float, float]:
    """``"WxH"`` (e.g. ``1920x1080``) -> ``(W, H)``, both > 0; ValueError naming ``field`` otherwise."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        w, h = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"{field}: expected WIDTHxHEIGHT such as 1920x1080, got {text!r}") from None
    if not (math.isfinite(w) and math.isfinite(h)) or w <= 0 or h <= 0:
        raise ValueError(f"{field}: width and height must be > 0, got {text!r}")
    if integer:
        if w != int(w) or h != int(h):
            raise ValueError(f"{field}: expected whole pixels such as 1920x1080, got {text!r}")
        return int(w), int(h)
    return w, h


def _size(size: Any, field: str) -> tuple[int, int]:
    try:
        w, h = size
        if isinstance(w, bool) or isinstance(h, bool) or float(w) != int(w) or float(h) != int(h):
            raise ValueError
        w, h = int(w), int(h)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{field}: expected (width, height) in whole pixels, got {size!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{field}: width and height must be > 0, got {w}x{h}")
    return w, h


@dataclass(frozen=True)
class ViewGeometry:
    """How an image was drawn on a screen; maps gaze between screen and original image pixels.

    Attributes:
        image_size: ``(W, H)`` of the original image in pixels.
        screen_rect: ``(x0, y0, x1, y1)`` screen pixels where the visible part is drawn (right/bottom
            exclusive). It may reach past the screen (an image zoomed beyond the viewport).
        visible: ``(xmin, ymin, xmax, ymax)`` image pixels shown in ``screen_rect``; None = the whole image
            ``(0, 0, W, H)``.

    Raises (on construction):
        ValueError: a size or rectangle is malformed; the message names the field and how to fix it.
    """

    image_size: tuple[int, int]
    screen_rect: Rect
    visible: Rect | None = None

    def __post_init__(self) -> None:
        size = _size(self.image_size, "image_size")
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "screen_rect", check_rect(self.screen_rect, "screen_rect"))
        visible = (0.0, 0.0, float(size[0]), float(size[1])) if self.visible is None else self.visible
        object.__setattr__(self, "visible", check_rect(visible, "visible", names=("xmin", "ymin", "xmax", "ymax"),
                                                       units="image pixels"))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def letterbox(cls, image_size: tuple[int, int], screen_size: tuple[int, int],
                  visible: Rect | None = None) -> "ViewGeometry":
        """The whole image (or ``visible``) fitted into the screen, aspect preserved and centred.

        Continuous coordinates, not rounded to whole pixels: a viewer that rounds its rectangle is within half
        a screen pixel of this; pass its exact rectangle when it is known.
        """
        sw, sh = _size(screen_size, "screen_size")
        w, h = _size(image_size, "image_size")
        vx0, vy0, vx1, vy1 = (0.0, 0.0, float(w), float(h)) if visible is None else check_rect(
            visible, "visible", names=("xmin", "ymin", "xmax", "ymax"), units="image pixels")
        vw, vh = vx1 - vx0, vy1 - vy0
        scale = min(sw / vw, sh / vh)  # screen px per image px
        dw, dh = vw * scale, vh * scale
        x0, y0 = (sw - dw) / 2.0, (sh - dh) / 2.0
        return cls((w, h), (x0, y0, x0 + dw, y0 + dh), visible)

    @classmethod
    def from_pads(cls, image_size: tuple[int, int], screen_size: tuple[int, int], top: float, bottom: float,
                  left: float, right: float) -> "ViewGeometry":
        """The whole image stretched into the screen less its pads (EGD-CXR's ``image_*_pad`` columns, screen px).

        The screen rectangle is ``(left, top, screen_w - right, screen_h - bottom)``; the aspect is whatever
        the pads leave (EGD-CXR's preserve it to within rounding).
        """
        sw, sh = _size(screen_size, "screen_size")
        pads = {"top": top, "bottom": bottom, "left": left, "right": right}
        for name, value in pads.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} pad: expected a number of screen pixels, got {value!r}") from None
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} pad: must be a finite number >= 0 screen pixels, got {value!r}")
        if left + right >= sw:
            raise ValueError(f"left + right pads ({left:g} + {right:g}) leave no room in a {sw} px wide screen; "
                             f"pads are screen pixels between the screen edge and the image")
        if top + bottom >= sh:
            raise ValueError(f"top + bottom pads ({top:g} + {bottom:g}) leave no room in a {sh} px high screen; "
                             f"pads are screen pixels between the screen edge and the image")
        return cls(image_size, (float(left), float(top), float(sw - right), float(sh - bottom)))

    # ------------------------------------------------------------------ scale
    @property
    def scale_xy(self) -> tuple[float, float]:
        """Image pixels per screen pixel along x and along y."""
        x0, y0, x1, y1 = self.screen_rect
        vx0, vy0, vx1, vy1 = self.visible
        return (vx1 - vx0) / (x1 - x0), (vy1 - vy0) / (y1 - y0)

    @property
    def image_px_per_screen_px(self) -> float:
        """Image pixels per screen pixel (geometric mean of x and y; they are equal when the aspect is kept)."""
        sx, sy = self.scale_xy
        return math.sqrt(sx * sy)

    def image_px_per_degree(self, screen_px_per_degree: float) -> float:
        """Image pixels per degree of visual angle, from the screen's pixels per degree (:func:`px_per_degree`)."""
        return float(screen_px_per_degree) * self.image_px_per_screen_px

    # ------------------------------------------------------------------ mapping
    def screen_to_image(self, x, y):
        """Screen pixels -> image pixels. Scalars give floats; arrays (any matching shapes) give float64 arrays."""
        x0, y0, _, _ = self.screen_rect
        vx0, vy0, _, _ = self.visible
        sx, sy = self.scale_xy
        return _out(vx0 + (np.asarray(x, np.float64) - x0) * sx, x), _out(vy0 + (np.asarray(y, np.float64) - y0) * sy, y)

    def image_to_screen(self, x, y):
        """Image pixels -> screen pixels, the exact inverse of :meth:`screen_to_image`."""
        x0, y0, _, _ = self.screen_rect
        vx0, vy0, _, _ = self.visible
        sx, sy = self.scale_xy
        return _out(x0 + (np.asarray(x, np.float64) - vx0) / sx, x), _out(y0 + (np.asarray(y, np.float64) - vy0) / sy, y)

    def contains_screen(self, x, y):
        """True where a screen point lies in the screen rectangle ``[x0, x1) x [y0, y1)`` (NaN: False)."""
        x0, y0, x1, y1 = self.screen_rect
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        inside = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
        return bool(inside) if inside.ndim == 0 else inside

    def contains_image(self, x, y):
        """True where an image point lies on the image ``[0, W) x [0, H)`` (NaN: False)."""
        w, h = self.image_size
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        return bool(inside) if inside.ndim == 0 else inside

    def on_image(self, x, y):
        """True where a screen point shows an image pixel: inside the screen rectangle *and* on the image
        (a visible rectangle reaching past the image shows background there)."""
        ix, iy = self.screen_to_image(x, y)
        inside = np.asarray(self.contains_screen(x, y)) & np.asarray(self.contains_image(ix, iy))
        return bool(inside) if inside.ndim == 0 else inside

    def to_dict(self) -> dict:
        """Plain JSON for provenance: ``{"image_size", "screen_rect", "visible", "image_px_per_screen_px"}``."""
        return {"image_size": list(self.image_size), "screen_rect": [round(v, 4) for v in self.screen_rect],
                "visible": [round(v, 4) for v in self.visible],
                "image_px_per_screen_px": round(self.image_px_per_screen_px, 6)}


def _out(value: np.ndarray, like):
    """A float for scalar input, else the array."""
    return float(value) if np.ndim(like) == 0 and np.ndim(value) == 0 else value


def px_per_degree(screen_px_w: float, screen_mm_w: float, distance_mm: float) -> float:
    """Screen pixels per degree of visual angle at the screen centre.

    One degree centred on the line of sight spans ``2 * d * tan(0.5 deg)`` mm on a flat screen at distance
    ``d`` (exact, no small-angle approximation); pixels per mm are ``screen_px_w / screen_mm_w``.

    Args:
        screen_px_w: screen width in pixels (e.g. 1920).
        screen_mm_w: visible screen width in mm (e.g. 527 for a 24" 16:9 panel).
        distance_mm: eye-to-screen distance in mm (e.g. 650).

    Raises:
        ValueError: a value is not a finite number > 0 (names it).
    """
    for name, value in (("screen_px_w", screen_px_w), ("screen_mm_w", screen_mm_w), ("distance_mm", distance_mm)):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number > 0, got {value!r}") from None
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    mm_per_degree = 2.0 * float(distance_mm) * math.tan(math.radians(0.5))
    return mm_per_degree * float(screen_px_w) / float(screen_mm_w)
