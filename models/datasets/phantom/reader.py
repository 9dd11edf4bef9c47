"""A simulated radiologist: systematic search over named regions, longer dwell and refixations on findings.

Calibrated on real radiologist gaze (``/work/shared/data/gaze_stats.json``, GazeSearch from REFLACX and
EGD-CXR): fixation durations are log-normal (mu_log -1.267, sigma_log 0.512, median 0.283 s) and the median
saccade amplitude is 38.3 px at 224 px (0.171 of the image width). A full reading has about 45 fixations
(EGD-CXR), so one simulated reading has roughly 30-50.

Each reader has a *style* drawn from its seed (search order, dwell scale, spatial scatter, thoroughness,
chance to notice subtle findings); the same reader reads every image in that style, so two readers of one
image agree more than two readings of different images, but not perfectly.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from models.schema import Case, Fixation
from models.vocab import region_box_pixels

DURATION_MU_LOG = -1.266649929608297
DURATION_SIGMA_LOG = 0.512436877899062
MEDIAN_AMPLITUDE_FRACTION = 38.3275357934736 / 224.0
# Dwell on an abnormality is this much longer (reader styles vary around it).
ABNORMAL_DWELL = 1.45
# Shifts normal fixations down so the pooled median (normal + longer abnormal dwell) stays at the real one.
_MU_CORRECTION = -0.075
# Scatter of fixations inside a region, as a fraction of the region's size (sets the small saccades).
WITHIN_REGION_SPREAD = 0.22
# Upper bound on one reading (the torch dataset keeps 64 fixations).
MAX_FIXATIONS = 60

# Lung-by-lung search: central structures, right lung top to bottom, left lung, heart, then bones.
ORDER_LUNG_BY_LUNG = (
    "trachea", "mediastinum", "aortic knob", "right hilum", "left hilum",
    "right upper zone", "right mid zone", "right lower zone", "right costophrenic angle", "right hemidiaphragm",
    "left upper zone", "left mid zone", "left lower zone", "left costophrenic angle", "left hemidiaphragm",
    "heart", "bones and soft tissues",
)
# Side-by-side comparison: zone by zone, right then left.
ORDER_COMPARE_SIDES = (
    "trachea", "mediastinum", "right upper zone", "left upper zone", "right hilum", "left hilum",
    "right mid zone", "left mid zone", "heart", "aortic knob", "right lower zone", "left lower zone",
    "right hemidiaphragm", "right costophrenic angle", "left costophrenic angle", "left hemidiaphragm",
    "bones and soft tissues",
)
# Regions that get more than one look on average (big or clinically busy).
REGION_WEIGHT = {
    "right upper zone": 1.5, "left upper zone": 1.5, "right mid zone": 1.5, "left mid zone": 1.5,
    "right lower zone": 1.4, "left lower zone": 1.4, "heart": 1.3, "mediastinum": 1.0,
    "bones and soft tissues": 2.0, "trachea": 0.7, "aortic knob": 0.6,
}


@dataclass(frozen=True)
class ReaderStyle:
    """How one simulated radiologist reads; drawn from ``seed`` so it is the same person on every image."""

    seed: int
    order: tuple[str, ...]
    swap_probability: float  # chance to swap two neighbouring regions of the order on a given image
    dwell_scale: float  # multiplies every fixation duration
    spatial_noise: float  # extra scatter, fraction of the chest width
    fixations_per_region: float
    abnormal_dwell: float
    detection: float  # chance to notice a subtle (uncertain) finding; obvious ones are always seen
    recheck: float  # chance to come back to a seen abnormality at the end

    @classmethod
    def from_seed(cls, seed: int) -> "ReaderStyle":
        rng = np.random.default_rng([int(seed), 7919])
        order = ORDER_LUNG_BY_LUNG if rng.random() < 0.6 else ORDER_COMPARE_SIDES
        if rng.random() < 0.3:  # reads the patient's left first
            swap = {"right": "left", "left": "right"}
            order = tuple(" ".join(swap.get(w, w) for w in name.split()) for name in order)
        return cls(
            seed=int(seed),
            order=order,
            swap_probability=float(rng.uniform(0.1, 0.3)),
            dwell_scale=float(np.exp(rng.normal(0, 0.08))),
            spatial_noise=float(rng.uniform(0.01, 0.03)),
            fixations_per_region=float(rng.uniform(1.1, 1.6)),
            abnormal_dwell=float(ABNORMAL_DWELL * np.exp(rng.normal(0, 0.1))),
            detection=float(rng.uniform(0.55, 0.9)),
            recheck=float(rng.uniform(0.3, 0.7)),
        )


def _chest_box(case: Case, width: int, height: int):
    box = case.extra.get("chest_box") if case.extra else None
    return tuple(float(b) for b in box) if box else (0.0, 0.0, float(width), float(height))


def simulate_reading(
    case: Case,
    image_size: int | tuple[int, int] | None = None,
    reader_seed: int = 1,
    *,
    rng: np.random.Generator | None = None,
    style: ReaderStyle | None = None,
) -> list[Fixation]:
    """One simulated reading of ``case`` by the reader ``reader_seed``.

    Args:
        case: uses ``case.boxes`` with ``case.findings`` (abnormalities attract gaze), and
            ``case.extra["chest_box"]`` (pixels) when present to place the regions.
        image_size: ``(width, height)`` or one side in pixels; defaults to ``case.image``'s size.
        reader_seed: who reads: the style comes from it (same seed = same reader on every image).
        rng: randomness of this one reading; by default seeded from ``reader_seed`` and ``case.id``.

    Returns:
        Fixations in original pixels with start ``t`` (cumulative seconds, saccade time included) and
        ``duration`` in seconds; 30-50 of them for a typical image.
    """
    if image_size is None:
        width, height = case.image.width, case.image.height
    elif isinstance(image_size, (int, np.integer)):
        width = height = int(image_size)
    else:
        width, height = (int(s) for s in image_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"case {case.id!r}: image size unknown; pass image_size=(width, height)")
    style = style or ReaderStyle.from_seed(reader_seed)
    rng = rng or np.random.default_rng([int(reader_seed), zlib.crc32(case.id.encode())])
    chest = _chest_box(case, width, height)
    chest_w = chest[2] - chest[0]

    abnormal = [b for b in case.boxes if case.findings.get(b.finding, 1) != 0]
    noticed = []
    for b in abnormal:
        subtle = case.findings.get(b.finding) == -1
        if not subtle or rng.random() < style.detection:
            noticed.append(b)
    pending = list(dict.fromkeys((round(b.x1), round(b.y1), round(b.x2), round(b.y2), b.region) for b in noticed))

    order = list(style.order)
    for i in range(len(order) - 1):
        if rng.random() < style.swap_probability:
            order[i], order[i + 1] = order[i + 1], order[i]

    points: list[tuple[float, float, bool]] = []  # x, y, on an abnormality
    points.append((chest[0] + chest_w * rng.normal(0.5, 0.03), chest[1] + (chest[3] - chest[1]) * rng.normal(0.45, 0.03), False))

    def look_at_box(box, n):
        x1, y1, x2, y2, _ = box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        for _k in range(n):
            x = rng.normal(cx, max((x2 - x1) / 5, 2.0))
            y = rng.normal(cy, max((y2 - y1) / 5, 2.0))
            points.append((float(np.clip(x, x1, x2)), float(np.clip(y, y1, y2)), True))

    for name in order:
        x1, y1, x2, y2 = region_box_pixels(name, width, height, chest_box=chest)
        n = rng.poisson(style.fixations_per_region * REGION_WEIGHT.get(name, 1.0) * 0.75) + (1 if rng.random() < 0.8 else 0)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        for _k in range(n):
            if name == "bones and soft tissues":  # ribs and chest wall: the periphery of the chest
                ang = rng.uniform(0, 2 * np.pi)
                x = cx + np.cos(ang) * (x2 - x1) * rng.uniform(0.25, 0.38)
                y = cy + np.sin(ang) * (y2 - y1) * rng.uniform(0.2, 0.36)
            else:
                x = rng.normal(cx, WITHIN_REGION_SPREAD * (x2 - x1) + style.spatial_noise * chest_w)
                y = rng.normal(cy, WITHIN_REGION_SPREAD * (y2 - y1) + style.spatial_noise * chest_w)
            points.append((float(x), float(y), False))
        for box in [b for b in pending if b[4] == name]:
            look_at_box(box, int(rng.integers(2, 5)))
            pending.remove(box)
    for box in pending:  # findings in regions the order did not name
        look_at_box(box, int(rng.integers(2, 5)))
    for b in noticed:
        if rng.random() < style.recheck:
            look_at_box((b.x1, b.y1, b.x2, b.y2, b.region), int(rng.integers(1, 3)))

    if len(points) > MAX_FIXATIONS:  # a very busy image: skip some routine looks, keep those on findings
        routine = [i for i in range(1, len(points)) if not points[i][2]]
        drop = set(rng.choice(routine, size=min(len(routine), len(points) - MAX_FIXATIONS), replace=False).tolist())
        points = [p for i, p in enumerate(points) if i not in drop]
    xy = np.array([(p[0], p[1]) for p in points])
    xy[:, 0] = np.clip(xy[:, 0], 0.5, width - 0.5)
    xy[:, 1] = np.clip(xy[:, 1], 0.5, height - 0.5)
    on_finding = np.array([p[2] for p in points])
    mu = DURATION_MU_LOG + _MU_CORRECTION + np.log(style.dwell_scale)
    durations = np.exp(rng.normal(mu, DURATION_SIGMA_LOG, len(points)))
    durations[on_finding] *= style.abnormal_dwell
    durations = np.clip(durations, 0.06, 3.0)
    amplitudes = np.r_[0.0, np.linalg.norm(np.diff(xy, axis=0), axis=1)]
    saccade_s = np.where(amplitudes > 0, 0.02 + 0.06 * amplitudes / width, 0.0)
    starts = np.cumsum(np.r_[0.0, durations[:-1]]) + np.cumsum(saccade_s)
    return [Fixation(round(float(x), 2), round(float(y), 2), round(float(t), 4), round(float(d), 4))
            for (x, y), t, d in zip(xy, starts, durations)]


def simulate_readers(case: Case, n_readers: int, *, seed: int = 0, image_size=None) -> dict[str, list[Fixation]]:
    """Readings by readers ``reader_1`` ... ``reader_n`` (styles 1..n); ``seed`` varies the readings, not the readers."""
    out = {}
    for k in range(1, n_readers + 1):
        rng = np.random.default_rng([int(seed), k, zlib.crc32(case.id.encode())])
        out[f"reader_{k}"] = simulate_reading(case, image_size, k, rng=rng)
    return out
