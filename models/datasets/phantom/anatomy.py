"""Normal chest anatomy of the SYNTHETIC phantom: a per-image random geometry and its density layers.

All shapes live in *chest-box fractions* (u = column, v = row, 0..1), the frame of ``models.vocab.REGIONS``,
so a region name always points at the anatomy it names. The chest box itself jitters a little inside the
image, which gives every image its own position, size and shape. Intensities follow the file convention:
bright = dense (bone white, lungs dark).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

# Pixel spacing of a 512 px phantom (mm); larger images get proportionally finer spacing.
SPACING_AT_512_MM = 0.7


@dataclass
class Anatomy:
    """Random geometry of one normal chest (chest-box fractions unless stated).

    ``right``/``left`` are the *patient's* sides: the right lung is on the image's left (small u).
    """

    size: int
    chest_box: tuple[float, float, float, float]  # image fractions (x1, y1, x2, y2)
    apex_v: tuple[float, float]  # lung apex height (right, left)
    apex_u: tuple[float, float]
    lateral_u: tuple[float, float]  # widest lateral lung wall
    medial_u: tuple[float, float]  # medial lung border above the heart
    cp_v: tuple[float, float]  # costophrenic angle height
    dome_v: tuple[float, float]  # hemidiaphragm dome height
    dome_u: tuple[float, float]
    heart_right_u: float  # right heart border (image left)
    heart_left_u: float  # left heart border (image right)
    heart_top_v: float
    heart_bottom_v: float
    mediastinum_half_width: float
    aortic_knob: tuple[float, float, float]  # u, v, radius
    rib_start_v: float
    rib_spacing_v: float
    rib_tilt: float
    clavicle_v: float
    body_density: float
    lung_air: float
    gamma: float
    noise_sd: float
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ geometry helpers
    def to_pixels(self, u, v):
        """Chest-box fractions -> image pixels (x, y); arrays or scalars."""
        x1, y1, x2, y2 = self.chest_box
        return (x1 + np.asarray(u) * (x2 - x1)) * self.size, (y1 + np.asarray(v) * (y2 - y1)) * self.size

    def chest_box_pixels(self) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = self.chest_box
        return x1 * self.size, y1 * self.size, x2 * self.size, y2 * self.size

    @property
    def px_per_u(self) -> float:
        return (self.chest_box[2] - self.chest_box[0]) * self.size

    @property
    def spacing_mm(self) -> float:
        return SPACING_AT_512_MM * 512.0 / self.size

    @property
    def thorax_width(self) -> float:
        """Inner thoracic width at the domes (chest-box fraction), the CTR denominator."""
        return self.lateral_u[1] - self.lateral_u[0]

    @property
    def ctr(self) -> float:
        return (self.heart_left_u - self.heart_right_u) / self.thorax_width

    def diaphragm_v(self, side: int, u):
        """Height of hemidiaphragm ``side`` (0 right, 1 left) at column ``u`` (a parabola to the CP angle)."""
        c = (self.cp_v[side] - self.dome_v[side]) / (self.lateral_u[side] - self.dome_u[side]) ** 2
        return self.dome_v[side] + c * (np.asarray(u) - self.dome_u[side]) ** 2


def sample_anatomy(rng: np.random.Generator, size: int) -> Anatomy:
    """Draw one plausible normal chest; every number is a random variation around a textbook PA film."""
    scale = rng.uniform(0.93, 0.99)
    cx = 0.5 + rng.uniform(-0.012, 0.012)
    cy = 0.5 + rng.uniform(-0.01, 0.012)
    half = scale / 2
    chest_box = (cx - half, cy - half * rng.uniform(0.97, 1.02), cx + half, cy + half)
    lat = 0.075 + rng.uniform(-0.015, 0.015)
    dome_r = rng.uniform(0.74, 0.78)
    heart_right = rng.uniform(0.37, 0.40)
    thorax = (1 - lat) - lat
    ctr = rng.uniform(0.39, 0.495)
    return Anatomy(
        size=size,
        chest_box=tuple(float(c) for c in chest_box),
        apex_v=(rng.uniform(0.07, 0.10), rng.uniform(0.07, 0.10)),
        apex_u=(rng.uniform(0.25, 0.29), 1 - rng.uniform(0.25, 0.29)),
        lateral_u=(lat, 1 - lat + rng.uniform(-0.01, 0.01)),
        medial_u=(rng.uniform(0.44, 0.46), 1 - rng.uniform(0.44, 0.46)),
        cp_v=(dome_r + rng.uniform(0.08, 0.11), dome_r + rng.uniform(0.09, 0.12)),
        dome_v=(dome_r, dome_r + rng.uniform(0.01, 0.035)),
        dome_u=(rng.uniform(0.24, 0.30), 1 - rng.uniform(0.24, 0.30)),
        heart_right_u=heart_right,
        heart_left_u=heart_right + ctr * thorax,
        heart_top_v=rng.uniform(0.50, 0.54),
        heart_bottom_v=dome_r + rng.uniform(0.04, 0.07),
        mediastinum_half_width=rng.uniform(0.06, 0.075),
        aortic_knob=(rng.uniform(0.565, 0.58), rng.uniform(0.25, 0.29), rng.uniform(0.03, 0.038)),
        rib_start_v=rng.uniform(0.06, 0.09),
        rib_spacing_v=rng.uniform(0.068, 0.078),
        rib_tilt=rng.uniform(0.08, 0.13),
        clavicle_v=rng.uniform(0.09, 0.13),
        body_density=rng.uniform(0.49, 0.55),
        lung_air=rng.uniform(0.33, 0.41),
        gamma=rng.uniform(0.85, 1.15),
        noise_sd=rng.uniform(0.006, 0.014),
    )


class Canvas:
    """Pixel grids in chest-box fractions plus drawing helpers; every layer is ``(size, size)`` float32."""

    def __init__(self, anatomy: Anatomy):
        self.anatomy = anatomy
        n = anatomy.size
        self.size = n
        x1, y1, x2, y2 = anatomy.chest_box
        centres = (np.arange(n, dtype=np.float32) + 0.5) / n
        self.u = ((centres - x1) / (x2 - x1))[None, :]  # (1, W)
        self.v = ((centres - y1) / (y2 - y1))[:, None]  # (H, 1)
        self.px = anatomy.px_per_u  # pixels per unit u

    def blur(self, layer: np.ndarray, sigma_u: float) -> np.ndarray:
        sigma = max(sigma_u * self.px, 0.3)
        if layer.ndim == 3:  # a stack of layers, blurred in-plane only
            sigma = (0.0, sigma, sigma)
        return gaussian_filter(layer, sigma, mode="nearest", truncate=3.0).astype(np.float32)

    def ellipse(self, cu: float, cv: float, ru: float, rv: float, soft: float = 0.15) -> np.ndarray:
        """Soft-edged filled ellipse, 1 inside; ``soft`` is the edge width as a fraction of the radius."""
        d = np.sqrt(((self.u - cu) / ru) ** 2 + ((self.v - cv) / rv) ** 2)
        return np.clip((1 - d) / max(soft, 1e-3) + 0.5, 0, 1).astype(np.float32)

    def lines(self, polylines, widths, values=None) -> np.ndarray:
        """Draw polylines (lists of (u, v)) with widths in u units; returns a float layer (max of values)."""
        img = Image.new("F", (self.size, self.size), 0.0)
        draw = ImageDraw.Draw(img)
        values = values if values is not None else [1.0] * len(polylines)
        for pts, w, val in zip(polylines, widths, values):
            xs, ys = self.anatomy.to_pixels(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=float(val), width=max(1, int(round(w * self.px))), joint="curve")
        return np.asarray(img, dtype=np.float32).copy()


def lung_masks(canvas: Canvas, a: Anatomy) -> np.ndarray:
    """``(2, H, W)`` binary masks of the right and left lung shapes (before the heart is laid on top)."""
    masks = []
    for side in (0, 1):
        u = canvas.u if side == 0 else 1 - canvas.u
        apex_u = a.apex_u[0] if side == 0 else 1 - a.apex_u[1]
        lat = a.lateral_u[0] if side == 0 else 1 - a.lateral_u[1]
        med = a.medial_u[0] if side == 0 else 1 - a.medial_u[1]
        t = np.clip((canvas.v - a.apex_v[side]) / (a.cp_v[side] - a.apex_v[side]), 0, 1)
        lateral = apex_u - (apex_u - lat) * t**0.32
        medial = apex_u + (med - apex_u) * t**0.4
        dome_u = a.dome_u[0] if side == 0 else 1 - a.dome_u[1]
        c = (a.cp_v[side] - a.dome_v[side]) / (lat - dome_u) ** 2
        diaphragm = a.dome_v[side] + c * (u - dome_u) ** 2
        masks.append((u > lateral) & (u < medial) & (canvas.v > a.apex_v[side]) & (canvas.v < diaphragm))
    return np.stack(masks).astype(np.float32)


def heart_mask(canvas: Canvas, a: Anatomy) -> np.ndarray:
    """Asymmetric soft ellipse: a third of the heart right of the midline, two thirds left."""
    mid = 0.5
    cv = (a.heart_top_v + a.heart_bottom_v) / 2 + 0.02
    rv = (a.heart_bottom_v - a.heart_top_v) / 2 + 0.03
    ru = np.where(canvas.u < mid, mid - a.heart_right_u, a.heart_left_u - mid)
    d = np.sqrt(((canvas.u - mid) / ru) ** 2 + ((canvas.v - cv) / rv) ** 2)
    # Flatten the bottom onto the diaphragm.
    return np.clip((1 - d) / 0.06 + 0.5, 0, 1).astype(np.float32)


def mediastinum_mask(canvas: Canvas, a: Anatomy, widen: float = 1.0) -> np.ndarray:
    """Superior mediastinum (a band around the midline above the heart) with the aortic knob."""
    # A wide mediastinum bulges most at the aortic and hilar level and is normal where it meets the heart.
    widening = 1 + (widen - 1) * np.clip(1 - np.abs(canvas.v - 0.32) / 0.2, 0, 1) ** 0.7
    half = a.mediastinum_half_width * widening * (0.85 + 0.3 * np.clip(canvas.v / max(a.heart_top_v, 1e-3), 0, 1))
    band = np.clip((half - np.abs(canvas.u - 0.5)) / 0.01 + 0.5, 0, 1) * np.clip((a.heart_top_v + 0.12 - canvas.v) / 0.06, 0, 1)
    ku, kv, kr = a.aortic_knob
    knob = canvas.ellipse(0.5 + (ku - 0.5) * widen, kv, kr, kr * 1.4, soft=0.5)
    return np.maximum(band, knob).astype(np.float32)


def body_layer(canvas: Canvas, a: Anatomy) -> np.ndarray:
    """Soft tissue thickness: neck, shoulders, chest wall and abdomen; 0 outside the body."""
    v = canvas.v
    shoulder = np.clip((v + 0.06) / 0.14, 0, 1)
    half_width = 0.13 + (0.54 - 0.13) * (shoulder * shoulder * (3 - 2 * shoulder))
    d = np.abs(canvas.u - 0.5) / half_width
    inside = np.clip((1 - d) / 0.02, 0, 1)
    thickness = np.sqrt(np.clip(1 - d**2, 0, 1)) ** 0.5
    return (inside * (0.55 + 0.45 * thickness)).astype(np.float32)


def rib_paths(a: Anatomy, n_ribs: int = 10) -> tuple[list, list]:
    """Posterior and anterior rib centre lines (chest-box fractions) for both sides."""
    posterior, anterior = [], []
    s = np.linspace(0, 1, 24)
    for side, sign in ((0, -1), (1, 1)):
        lat = abs(a.lateral_u[side] - 0.5)
        for k in range(n_ribs):
            v0 = a.rib_start_v + k * a.rib_spacing_v
            us = 0.5 + sign * (0.04 + s * (lat + 0.02))
            vs = v0 - 0.035 * np.sin(np.pi * s * 0.7) + a.rib_tilt * s**2.2 + 0.004 * k * s
            posterior.append(list(zip(us.tolist(), vs.tolist())))
            # Anterior ribs start at the lateral wall near the posterior rib's end and run down to the sternum.
            v_lateral = v0 - 0.03 + a.rib_tilt
            ua = 0.5 + sign * (lat + 0.01 - s * (lat - 0.13))
            va = v_lateral + 0.02 + 0.13 * s**1.2
            if k < 6:
                anterior.append(list(zip(ua.tolist(), va.tolist())))
    return posterior, anterior
