"""Draw CheXpert findings into the phantom's layers, each with its characteristic appearance and a box.

Every drawer edits :class:`~models.datasets.phantom.radiograph.Layers` in place and returns
:class:`Drawn` records: the finding, its CheXpert value, a ground-truth box in original pixels clipped to
a named region of ``models.vocab`` (plus :data:`REGION_MARGIN`), and the details the report needs
(side, size in mm, device type). Geometry changes (a big heart, a wide mediastinum, volume loss) happen
before the normal anatomy is rendered, in :func:`apply_geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.datasets.phantom.anatomy import Anatomy, Canvas
from models.datasets.phantom.plan import BOTH, LEFT, RIGHT, Planned
from models.datasets.phantom.radiograph import Layers
from models.vocab import region_box_pixels

# A box may stick out of its region by this fraction of the chest box (findings do not respect boxes).
REGION_MARGIN = 0.05
SIDE_WORD = {RIGHT: "right", LEFT: "left"}


@dataclass
class Drawn:
    """A drawn finding: box (x1, y1, x2, y2) in original pixels inside ``region`` (plus the margin)."""

    name: str
    value: int
    box: tuple[float, float, float, float]
    region: str
    details: dict = field(default_factory=dict)


def region_limits(a: Anatomy, region: str, margin: float = REGION_MARGIN) -> tuple[float, float, float, float]:
    """A region's pixel box widened by ``margin`` of the chest box, clipped to the image."""
    cb = a.chest_box_pixels()
    x1, y1, x2, y2 = region_box_pixels(region, a.size, a.size, chest_box=cb)
    mx, my = margin * (cb[2] - cb[0]), margin * (cb[3] - cb[1])
    return max(0.0, x1 - mx), max(0.0, y1 - my), min(float(a.size), x2 + mx), min(float(a.size), y2 + my)


def _box(mask: np.ndarray, a: Anatomy, region: str, threshold: float = 0.3):
    """Bounding box of ``mask > threshold * max`` in pixels, clipped to the region's limits; None if empty."""
    if mask.max() <= 0:
        return None
    ys, xs = np.nonzero(mask > threshold * mask.max())
    if len(xs) == 0:
        return None
    lx1, ly1, lx2, ly2 = region_limits(a, region)
    x1, y1 = max(float(xs.min()), lx1), max(float(ys.min()), ly1)
    x2, y2 = min(float(xs.max() + 1), lx2), min(float(ys.max() + 1), ly2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return (round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1))


def _sides(p: Planned) -> tuple[int, ...]:
    return (RIGHT, LEFT) if p.side == BOTH else (p.side,)


def _mirror(u: float, side: int) -> float:
    """Write shapes for the right lung (small u) and mirror them for the left."""
    return u if side == RIGHT else 1 - u


# ----------------------------------------------------------------------------------- geometry changes
def apply_geometry(a: Anatomy, plan: dict[str, Planned], rng: np.random.Generator) -> None:
    """Findings that change the normal anatomy: heart size, mediastinal width, volume loss."""
    p = plan.get("Cardiomegaly")
    if p is not None:
        ctr = 0.50 + 0.025 * rng.random() if p.value == -1 else 0.52 + 0.13 * p.severity
        width = ctr * a.thorax_width
        a.heart_right_u = 0.5 - width * rng.uniform(0.30, 0.36)
        a.heart_left_u = a.heart_right_u + width
        a.heart_top_v -= 0.03 * p.severity
    p = plan.get("Enlarged Cardiomediastinum")
    if p is not None:
        a.extra["mediastinum_widen"] = 1.25 if p.value == -1 else 1.45 + 0.45 * p.severity
    p = plan.get("Atelectasis")
    if p is not None:  # volume loss: the hemidiaphragm on that side rises
        lift = 0.015 + 0.03 * p.severity
        dome = list(a.dome_v)
        dome[p.side] -= lift
        a.dome_v = tuple(dome)
        cp = list(a.cp_v)
        cp[p.side] -= lift * 0.5
        a.cp_v = tuple(cp)


# ----------------------------------------------------------------------------------- drawers
def _binary_lung(layers: Layers, side: int) -> np.ndarray:
    return layers.lungs[side] > 0.5


def draw_cardiomegaly(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    box = _box(L.heart, a, "heart", 0.5)
    return [Drawn(p.name, p.value, box, "heart", {"ctr": round(a.ctr, 2)})] if box else []


def draw_enlarged_cardiomediastinum(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    upper = L.mediastinum * (c.v < a.heart_top_v)
    box = _box(upper, a, "mediastinum", 0.5)
    return [Drawn(p.name, p.value, box, "mediastinum")] if box else []


def _point_in_lung(c: Canvas, a: Anatomy, L: Layers, region: str, side: int, rng, inset: float = 0.2):
    """A random (u, v) inside the region's inner part and inside the lung; the region centre if none found."""
    x1, y1, x2, y2 = region_box_pixels(region, a.size, a.size, chest_box=a.chest_box_pixels())
    lung = _binary_lung(L, side)
    for _ in range(30):
        x = rng.uniform(x1 + inset * (x2 - x1), x2 - inset * (x2 - x1))
        y = rng.uniform(y1 + inset * (y2 - y1), y2 - inset * (y2 - y1))
        if lung[min(int(y), a.size - 1), min(int(x), a.size - 1)]:
            break
    cb = a.chest_box_pixels()
    return (x - cb[0]) / (cb[2] - cb[0]), (y - cb[1]) / (cb[3] - cb[1])


def draw_lung_lesion(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    side = p.side
    region = f"{SIDE_WORD[side]} {rng.choice(['upper', 'mid'])} zone"
    u, v = _point_in_lung(c, a, L, region, side, rng, inset=0.25)
    diameter_mm = 8 + 37 * p.severity * rng.uniform(0.6, 1.0)
    r = diameter_mm / 2 / a.spacing_mm / c.px
    blob = c.ellipse(u, v, r, r * rng.uniform(0.85, 1.15), soft=0.35)
    for _ in range(int(rng.integers(1, 4))):  # lobulation
        ang = rng.uniform(0, 2 * np.pi)
        blob = np.maximum(blob, c.ellipse(u + 0.6 * r * np.cos(ang), v + 0.6 * r * np.sin(ang), r * 0.55, r * 0.55, soft=0.4))
    contrast = (0.07 + 0.16 * p.severity) * rng.uniform(0.8, 1.2)
    L.density += contrast * blob
    box = _box(blob, a, region, 0.3)
    return [Drawn(p.name, p.value, box, region, {"side": SIDE_WORD[side], "size_mm": int(round(diameter_mm))})] if box else []


def _patch(c: Canvas, a: Anatomy, L: Layers, u: float, v: float, extent: float, side: int, rng) -> np.ndarray:
    """An irregular airspace opacity: a cluster of blurred blobs confined to one lung."""
    patch = np.zeros((c.size, c.size), np.float32)
    for _ in range(int(rng.integers(6, 12))):
        du, dv = rng.normal(0, extent * 0.35, 2)
        ru = extent * rng.uniform(0.25, 0.5)
        patch = np.maximum(patch, c.ellipse(u + du, v + dv * 0.8, ru, ru * rng.uniform(0.6, 1.0), soft=0.8))
    patch = c.blur(patch, extent * 0.08)
    return patch * L.lungs[side]


def draw_airspace(c: Canvas, a: Anatomy, L: Layers, specs: list[Planned], rng) -> list[Drawn]:
    """Consolidation and/or pneumonia share one patchy opacity with air bronchograms."""
    main = specs[0]
    side = main.side
    choices = ["lower"] if side == LEFT else ["lower", "lower", "mid"]
    region = f"{SIDE_WORD[side]} {rng.choice(choices)} zone"
    u, v = _point_in_lung(c, a, L, region, side, rng, inset=0.3)
    severity = max(s.severity for s in specs if s.name == "Consolidation") if any(s.name == "Consolidation" for s in specs) else main.severity
    extent = 0.07 + 0.09 * severity
    patch = _patch(c, a, L, u, v, extent, side, rng)
    L.density += (0.14 + 0.22 * severity) * rng.uniform(0.85, 1.15) * patch
    # Air bronchograms: dark branching tubes visible only inside the dense part.
    segs, widths = [], []
    for _ in range(int(rng.integers(2, 5))):
        ang = rng.uniform(0, 2 * np.pi)
        pts = [(u, v)]
        for _k in range(4):
            ang += rng.normal(0, 0.3)
            pts.append((pts[-1][0] + 0.25 * extent * np.cos(ang), pts[-1][1] + 0.25 * extent * np.sin(ang)))
        segs.append(pts)
        widths.append(0.006)
    bronchi = c.blur(c.lines(segs, widths), 0.002)
    L.lucency += 0.08 * bronchi * np.clip(patch * 2 - 0.6, 0, 1)
    box = _box(patch, a, region, 0.3)
    details = {"side": SIDE_WORD[side], "zone": region}
    return [Drawn(s.name, s.value, box, region, details) for s in specs] if box else []


def draw_lung_opacity(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    """Ill-defined hazy opacity, no bronchograms (opacity "not otherwise specified")."""
    side = p.side
    region = f"{SIDE_WORD[side]} {rng.choice(['mid', 'lower'])} zone"
    u, v = _point_in_lung(c, a, L, region, side, rng, inset=0.3)
    extent = 0.08 + 0.08 * p.severity
    haze = c.blur(c.ellipse(u, v, extent, extent * 0.8, soft=1.0), extent * 0.2) * L.lungs[side]
    L.density += (0.08 + 0.12 * p.severity) * haze
    box = _box(haze, a, region, 0.35)
    return [Drawn(p.name, p.value, box, region, {"side": SIDE_WORD[side], "zone": region})] if box else []


def draw_edema(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    """Bilateral perihilar (bat-wing) haze plus Kerley B lines at the lateral bases."""
    out = []
    level = 0.05 + 0.15 * p.severity
    for side in (RIGHT, LEFT):
        hu = _mirror(0.36, side)
        haze = c.ellipse(hu, 0.47, 0.17, 0.2, soft=1.6) * L.lungs[side]
        haze = c.blur(haze, 0.02)
        L.density += level * rng.uniform(0.85, 1.15) * haze
        lines = []
        lat = a.lateral_u[side]
        for _ in range(int(rng.integers(4, 9))):
            vv = rng.uniform(0.62, 0.80)
            uu = lat + (0.005 if side == RIGHT else -0.005)
            length = rng.uniform(0.015, 0.03) * (1 if side == RIGHT else -1)
            lines.append([(uu, vv), (uu + length, vv)])
        kerley = c.lines(lines, [0.004] * len(lines)) * L.lungs[side]
        L.density += (0.05 + 0.07 * p.severity) * c.blur(kerley, 0.0015)
        region = f"{SIDE_WORD[side]} mid zone"
        box = _box(haze, a, region, 0.4)
        if box:
            out.append(Drawn(p.name, p.value, box, region, {"side": "bilateral"}))
    # Vascular indistinctness: markings blur into the haze.
    L.vessels = c.blur(L.vessels, 0.002 + 0.004 * p.severity)
    return out


def draw_atelectasis(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    """A plate-like linear density at a lung base (the hemidiaphragm was already raised for volume loss)."""
    side = p.side
    region = f"{SIDE_WORD[side]} lower zone"
    v0 = a.dome_v[side] - rng.uniform(0.05, 0.09)
    u0, u1 = (0.12, 0.36) if side == RIGHT else (0.9, 0.7)  # the left base is partly hidden by the heart
    tilt = rng.uniform(-0.03, 0.02)
    band = c.lines([[(u0, v0 + tilt), ((u0 + u1) / 2, v0 + tilt / 2 + 0.005), (u1, v0)]], [0.012 + 0.016 * p.severity])
    band = c.blur(band, 0.004) * L.lungs[side]
    L.density += (0.18 + 0.16 * p.severity) * band
    box = _box(band, a, region, 0.25)
    return [Drawn(p.name, p.value, box, region, {"side": SIDE_WORD[side]})] if box else []


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Move a binary mask by (dx, dy) pixels (positive = right, down), filling with False."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def _away_from_wall(lung: np.ndarray, side: int, depth_px: float, down: float) -> np.ndarray:
    """The lung pulled ``depth_px`` away from the lateral chest wall (and ``down`` x that from the apex)."""
    dx = int(round(depth_px)) * (1 if side == RIGHT else -1)  # towards the midline
    return lung & _shift(lung, dx, int(round(depth_px * down)))


def draw_pneumothorax(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    """Apical-lateral lucent rim without lung markings, bounded by a thin visceral pleural line."""
    side = p.side
    depth_px = (0.025 + 0.06 * p.severity) * c.px
    v_end = a.apex_v[side] + rng.uniform(0.25, 0.35)
    lung = _binary_lung(L, side)
    collapsed = _away_from_wall(lung, side, depth_px, 1.0)
    taper = np.clip((v_end - c.v) / 0.06, 0, 1)
    rim = (lung & ~collapsed).astype(np.float32) * taper
    rim_soft = c.blur(rim, 0.002)
    L.vessels = L.vessels * (1 - rim_soft)
    L.lucency += (0.05 + 0.05 * p.severity) * rim_soft
    edge = collapsed & ~_away_from_wall(collapsed, side, 1.5, 1.0)  # the collapsed lung's outer margin
    line = edge.astype(np.float32) * taper
    line = line * (c.blur(rim, 0.004) > 0.05)  # only where it faces the air, not along the mediastinum
    L.density += 0.16 * c.blur(line, 0.001)
    region = f"{SIDE_WORD[side]} upper zone"
    box = _box(rim_soft + line, a, region, 0.3)
    return [Drawn(p.name, p.value, box, region, {"side": SIDE_WORD[side], "size": "large" if p.severity > 0.6 else "small"})] if box else []


def draw_pleural_effusion(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    """Dependent fluid blunting the costophrenic angle, with a meniscus climbing the lateral wall."""
    out = []
    for side in _sides(p):
        lung = L.lungs[side]
        # Small to moderate: the meniscus stays within the costophrenic region so the box holds all the fluid.
        depth = min(0.04 + 0.1 * p.severity * rng.uniform(0.8, 1.2), a.cp_v[side] - 0.75)
        level = a.cp_v[side] - depth
        lateral = np.abs(c.u - a.lateral_u[side])  # distance from the lateral chest wall
        top = level + 0.05 * np.clip(lateral / 0.25, 0, 1) ** 0.5 - 0.025  # meniscus: higher laterally
        fluid = np.clip((c.v - top) / 0.025, 0, 1) * lung
        fluid = c.blur(fluid, 0.004)
        L.density += (0.28 + 0.12 * p.severity) * fluid
        region = f"{SIDE_WORD[side]} costophrenic angle"
        box = _box(fluid, a, region, 0.35)
        if box:
            size = "small" if depth < 0.08 else "moderate"
            out.append(Drawn(p.name, p.value, box, region, {"side": SIDE_WORD[side], "size": size, "bilateral": p.side == BOTH}))
    return out


def draw_pleural_other(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    """Smooth pleural thickening along the lateral chest wall of the mid zone."""
    side = p.side
    thick_px = (0.008 + 0.012 * p.severity) * c.px
    lung = _binary_lung(L, side)
    band = lung & ~_away_from_wall(lung, side, thick_px, 0.0) & (c.v > 0.36) & (c.v < 0.62)
    band = c.blur(band.astype(np.float32), 0.002)
    L.density += (0.2 + 0.1 * p.severity) * band
    region = f"{SIDE_WORD[side]} mid zone"
    box = _box(band, a, region, 0.3)
    return [Drawn(p.name, p.value, box, region, {"side": SIDE_WORD[side]})] if box else []


def draw_fracture(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    """Cortical break with a small step-off in the lateral arc of a posterior rib."""
    side = p.side
    k = int(rng.integers(3, 9))
    path = np.array(L.ribs_posterior[side * 10 + k])
    s = int(rng.integers(13, 20))
    (u0, v0), (u1, v1) = path[s], path[s + 1]
    d = np.array([u1 - u0, v1 - v0])
    d /= np.linalg.norm(d)
    n = np.array([-d[1], d[0]])
    half = 0.018
    gap = c.lines([[(u0 - n[0] * half, v0 - n[1] * half), (u0 + n[0] * half, v0 + n[1] * half)]], [0.004 + 0.006 * p.severity])
    rib_here = c.ellipse(u0, v0, 0.03, 0.03, soft=0.3)
    L.bones -= 0.12 * c.blur(gap, 0.001) * rib_here
    # Step-off: the distal fragment's cortex is displaced across the rib axis.
    step = 0.004 * p.severity
    frag = [(u0 + d[0] * 0.004 + n[0] * (0.011 + step), v0 + d[1] * 0.004 + n[1] * (0.011 + step)),
            (u0 + d[0] * 0.03 + n[0] * (0.011 + step), v0 + d[1] * 0.03 + n[1] * (0.011 + step))]
    L.bones += 0.06 * c.blur(c.lines([frag], [0.004]), 0.001)
    region = "bones and soft tissues"
    x, y = a.to_pixels(u0, v0)
    r = 0.035 * c.px
    box = (round(float(x - r), 1), round(float(y - r), 1), round(float(x + r), 1), round(float(y + r), 1))
    return [Drawn(p.name, p.value, box, region, {"side": SIDE_WORD[side], "rib": k + 1})]


def draw_support_devices(c: Canvas, a: Anatomy, L: Layers, p: Planned, rng) -> list[Drawn]:
    """One to three of: endotracheal tube, nasogastric tube, central venous catheter, pacemaker."""
    kinds = ["endotracheal tube", "nasogastric tube", "central venous catheter", "pacemaker"]
    chosen = list(rng.choice(kinds, size=int(rng.integers(1, 4)), replace=False, p=[0.35, 0.25, 0.25, 0.15]))
    out = []
    for kind in chosen:
        if kind == "endotracheal tube":
            tip = rng.uniform(0.17, 0.24)
            walls = [[(0.5 + o, -0.05), (0.5 + o, tip)] for o in (-0.008, 0.008)]
            layer = c.lines(walls, [0.004, 0.004]) + 0.5 * c.lines([[(0.5, -0.05), (0.5, tip)]], [0.012])
            L.density += 0.16 * c.blur(layer, 0.001)
            out.append(Drawn(p.name, p.value, _box(layer, a, "trachea", 0.3), "trachea", {"device": kind, "tip_cm": round((0.30 - tip) * 35, 1)}))
        elif kind == "nasogastric tube":
            pts = [(0.51, -0.05), (0.52, 0.3), (0.54, 0.6), (0.58, 0.78), (a.dome_u[1] - 0.04, a.dome_v[1] + 0.09)]
            layer = c.lines([pts], [0.006])
            L.density += 0.16 * c.blur(layer, 0.001)
            out.append(Drawn(p.name, p.value, _box(layer * (c.v < 0.5), a, "mediastinum", 0.3), "mediastinum", {"device": kind}))
        elif kind == "central venous catheter":
            entry = (0.14, 0.1) if rng.random() < 0.7 else (0.86, 0.1)
            tip_v = rng.uniform(0.34, 0.42)
            pts = [entry, ((entry[0] + 0.45) / 2, 0.14), (0.45, 0.2), (0.46, tip_v)]
            layer = c.lines([pts], [0.005])
            L.density += 0.18 * c.blur(layer, 0.001)
            out.append(Drawn(p.name, p.value, _box(layer * (np.abs(c.u - 0.5) < 0.1), a, "mediastinum", 0.3), "mediastinum",
                             {"device": kind, "side": "right" if entry[0] < 0.5 else "left"}))
        else:
            gu, gv = rng.uniform(0.76, 0.84), rng.uniform(0.10, 0.16)
            gen = c.ellipse(gu, gv, 0.045, 0.032, soft=0.1)
            leads = [[(gu - 0.03, gv + 0.01), (0.6, 0.18), (0.47, 0.3), (0.45, 0.5), (0.48, 0.62), (0.58, a.heart_bottom_v - 0.05)],
                     [(gu - 0.03, gv + 0.02), (0.6, 0.2), (0.48, 0.32), (0.46, 0.52)]]
            L.density += 0.45 * gen + 0.2 * c.blur(c.lines(leads, [0.005, 0.005]), 0.001)
            out.append(Drawn(p.name, p.value, _box(gen, a, "bones and soft tissues", 0.3), "bones and soft tissues", {"device": kind}))
    return [d for d in out if d.box is not None]


DRAWERS = {
    "Cardiomegaly": draw_cardiomegaly,
    "Enlarged Cardiomediastinum": draw_enlarged_cardiomediastinum,
    "Lung Lesion": draw_lung_lesion,
    "Lung Opacity": draw_lung_opacity,
    "Edema": draw_edema,
    "Atelectasis": draw_atelectasis,
    "Pneumothorax": draw_pneumothorax,
    "Pleural Effusion": draw_pleural_effusion,
    "Pleural Other": draw_pleural_other,
    "Fracture": draw_fracture,
    "Support Devices": draw_support_devices,
}
# Drawing order: fluid and opacities before devices so lines stay visible on top.
ORDER = ("Cardiomegaly", "Enlarged Cardiomediastinum", "Pleural Effusion", "Pleural Other", "Edema", "Consolidation",
         "Lung Opacity", "Lung Lesion", "Atelectasis", "Pneumothorax", "Fracture", "Support Devices")


def draw_findings(c: Canvas, a: Anatomy, L: Layers, plan: dict[str, Planned], rng: np.random.Generator) -> list[Drawn]:
    """Draw every planned finding; returns their records (Lung Opacity boxes for opacity children included)."""
    drawn: list[Drawn] = []
    for name in ORDER:
        if name == "Consolidation":
            specs = [plan[n] for n in ("Consolidation", "Pneumonia") if n in plan]
            if specs:
                drawn += draw_airspace(c, a, L, specs, rng)
        elif name in plan:
            drawn += DRAWERS[name](c, a, L, plan[name], rng)
    return drawn
