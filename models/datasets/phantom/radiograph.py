"""Turn an :class:`~models.datasets.phantom.anatomy.Anatomy` into density layers and compose the radiograph.

The image is a sum of layers (soft tissue, mediastinum, heart, bones, vessels) minus lung air, then an
exposure curve and quantum noise. Findings (``findings.py``) edit the layers between the two steps: they add
density (opacities, fluid, devices), remove lung markings (pneumothorax) or change the geometry first
(cardiomegaly, volume loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.datasets.phantom.anatomy import (
    Anatomy,
    Canvas,
    body_layer,
    heart_mask,
    lung_masks,
    mediastinum_mask,
    rib_paths,
)


@dataclass
class Layers:
    """Density layers of one image, each ``(H, W)`` float32 (lungs ``(2, H, W)``, soft masks in [0, 1])."""

    body: np.ndarray
    lungs: np.ndarray  # soft air masks, right and left, heart and mediastinum already cut out
    heart: np.ndarray
    mediastinum: np.ndarray
    bones: np.ndarray
    vessels: np.ndarray
    density: np.ndarray  # findings add here (fluid, opacity, devices)
    lucency: np.ndarray  # findings add here (extra air: pneumothorax, bronchograms)
    ribs_posterior: list
    ribs_anterior: list


def vessel_tree(canvas: Canvas, a: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Lung markings: tapering branches from each hilum towards the periphery."""
    segments, widths, values = [], [], []
    for side, sign in ((0, -1), (1, 1)):
        hilum = (0.5 + sign * 0.095, rng.uniform(0.40, 0.45))
        for _ in range(9):
            angle = rng.uniform(-1.25, 1.35)  # radians from horizontal, downward positive
            _branch(hilum, sign, angle, 0.010, 0.11, 0, rng, segments, widths, values)
    layer = canvas.lines(segments, widths, values)
    return canvas.blur(layer, 0.0025)


def _branch(start, sign, angle, width, length, depth, rng, segments, widths, values) -> None:
    steps = 4
    pts = [start]
    u, v = start
    for _ in range(steps):
        angle += rng.normal(0, 0.12)
        u += sign * np.cos(angle) * length / steps
        v += np.sin(angle) * length / steps
        pts.append((u, v))
    segments.append(pts)
    widths.append(width)
    values.append(0.6 + 0.4 * (width / 0.010))
    if depth < 3 and width > 0.003:
        for turn in (-0.45, 0.45):
            if rng.random() < 0.85:
                _branch(pts[-1], sign, angle + turn + rng.normal(0, 0.15), width * 0.7, length * 0.75, depth + 1, rng, segments, widths, values)


def render_normal(canvas: Canvas, a: Anatomy, rng: np.random.Generator) -> Layers:
    """All layers of a normal chest for this anatomy."""
    body = body_layer(canvas, a)
    heart = heart_mask(canvas, a)
    mediastinum = mediastinum_mask(canvas, a, widen=float(a.extra.get("mediastinum_widen", 1.0)))
    lungs = lung_masks(canvas, a)
    cut = np.clip(1 - 0.85 * heart - mediastinum, 0, 1)
    lungs = canvas.blur(lungs, 0.004) * cut[None]
    air = lungs.sum(0)

    posterior, anterior = rib_paths(a)
    rib_w = 0.024
    ribs = canvas.lines(posterior, [rib_w] * len(posterior), [0.06] * len(posterior))
    # Cortical margins: brighter upper and lower edges of each posterior rib.
    edges = []
    for path in posterior:
        edges.append([(u, v - rib_w * 0.42) for u, v in path])
        edges.append([(u, v + rib_w * 0.42) for u, v in path])
    ribs = np.maximum(ribs, canvas.lines(edges, [0.0045] * len(edges), [0.10] * len(edges)))
    ribs += canvas.lines(anterior, [0.02] * len(anterior), [0.025] * len(anterior))
    clav_v = a.clavicle_v
    clavicles = [
        [(0.46, clav_v + 0.035), (0.40, clav_v + 0.02), (0.33, clav_v + 0.012), (0.24, clav_v - 0.002), (0.16, clav_v - 0.025), (0.11, clav_v - 0.045)],
        [(0.54, clav_v + 0.035), (0.60, clav_v + 0.02), (0.67, clav_v + 0.012), (0.76, clav_v - 0.002), (0.84, clav_v - 0.025), (0.89, clav_v - 0.045)],
    ]
    ribs = np.maximum(ribs, canvas.lines(clavicles, [0.024, 0.024], [0.10, 0.10]))
    # Bone contrast is lower where thick soft tissue (not lung) surrounds it.
    ribs = canvas.blur(ribs * (body > 0.5), 0.002) * (0.45 + 0.55 * np.clip(air * 1.5, 0, 1))
    spine = np.clip((0.042 - np.abs(canvas.u - 0.5)) / 0.006, 0, 1) * np.ones_like(canvas.v)
    vertebrae = 0.7 + 0.3 * np.cos(np.pi * (canvas.v - a.rib_start_v) / (a.rib_spacing_v * 0.9)) ** 8
    pedicles = sum(canvas.ellipse(0.5 + s * 0.03, 0, 0.008, 1.0, soft=0.6) for s in (-1, 1))  # vertical stripes
    bones = ribs + 0.045 * spine * vertebrae + 0.01 * pedicles * vertebrae

    vessels = vessel_tree(canvas, a, rng) * 0.10
    hila = sum(canvas.ellipse(0.5 + s * 0.1, 0.43, 0.04, 0.06, soft=1.0) for s in (-1, 1))
    texture = canvas.blur(rng.normal(0, 1, (canvas.size, canvas.size)).astype(np.float32), 0.006)
    vessels = vessels + 0.07 * hila + 0.06 * texture / (texture.std() + 1e-6) * 0.3
    if rng.random() < 0.5:  # breast shadows: soft density over both lower zones
        breasts = sum(canvas.ellipse(0.5 + s * rng.uniform(0.24, 0.3), rng.uniform(0.8, 0.88), 0.2, 0.16, soft=0.8) for s in (-1, 1))
        body = body * (1 + rng.uniform(0.06, 0.14) * np.clip(breasts, 0, 1))
    zeros = np.zeros((canvas.size, canvas.size), np.float32)
    return Layers(body, lungs, heart, mediastinum, bones.astype(np.float32), vessels.astype(np.float32),
                  zeros.copy(), zeros.copy(), posterior, anterior)


def airways(canvas: Canvas, a: Anatomy) -> np.ndarray:
    """Trachea and main bronchi: an air column inside the mediastinum."""
    carina = (0.5, 0.3)
    paths = [[(0.5, -0.05), (0.5, 0.15), carina], [carina, (0.45, 0.34), (0.42, 0.38)], [carina, (0.56, 0.34), (0.59, 0.39)]]
    return canvas.blur(canvas.lines(paths, [0.036, 0.02, 0.02]), 0.004)


def compose(layers: Layers, a: Anatomy, canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Sum the layers into a ``(H, W)`` float32 image in [0, 1], bone bright."""
    air = layers.lungs.sum(0)
    inside = layers.body > 0.5
    gastric = canvas.ellipse(a.dome_u[1] - 0.05, a.dome_v[1] + 0.07, 0.07, 0.04, soft=1.2) * inside
    right = canvas.u < 0.5
    below = np.where(right, canvas.v - a.diaphragm_v(0, canvas.u), canvas.v - a.diaphragm_v(1, canvas.u))
    # The heart sits on the diaphragm: fill the cardiophrenic notch between the domes.
    notch = (np.abs(canvas.u - 0.5) < 0.14) & (canvas.v > a.heart_bottom_v - 0.04)
    abdomen = canvas.blur((np.maximum(np.clip(below / 0.02, 0, 1), notch) * inside).astype(np.float32), 0.004)
    # Lungs are darkest at the apices and laterally, greyer at the bases where more tissue overlaps.
    air_depth = a.lung_air * (1.08 - 0.22 * np.clip((canvas.v - 0.1) / 0.8, 0, 1))
    # Heart, mediastinum and the upper abdomen form one continuous water-density shadow.
    central = np.maximum(0.15 * np.maximum(layers.heart, layers.mediastinum), 0.14 * abdomen)
    density = (
        a.body_density * layers.body
        + central
        + layers.bones
        + layers.vessels * air
        + layers.density
        - air_depth * air
        - 0.14 * airways(canvas, a) * layers.mediastinum
        - layers.lucency
        - 0.12 * gastric
    )
    # Low-frequency exposure variation, then the film curve and quantum noise.
    tilt = rng.uniform(-0.04, 0.04) * (canvas.u - 0.5) + rng.uniform(-0.04, 0.04) * (canvas.v - 0.5)
    img = np.clip(density + 0.04 + tilt * (layers.body > 0.1), 0, 1) ** a.gamma
    img = img + rng.normal(0, a.noise_sd, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)
