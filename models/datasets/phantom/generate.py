"""Generate SYNTHETIC phantom cases and write them as a CaseStore.

Everything is seeded per image (``seed``, index), so the same seed gives byte-identical PNGs and case
files, and image ``k`` does not depend on how many images are generated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from models.datasets.base import DatasetError
from models.datasets.phantom.anatomy import Canvas, sample_anatomy
from models.datasets.phantom.findings import Drawn, apply_geometry, draw_findings
from models.datasets.phantom.plan import BOTH, OPACITY_CHILDREN, Planned, chexpert_values, sample_plan
from models.datasets.phantom.radiograph import compose, render_normal
from models.datasets.phantom.reader import simulate_readers
from models.datasets.phantom.reports import write_report
from models.datasets.store import CaseStore
from models.schema import Box, Case, Evidence, ImageRef, Report, Source
from models.vocab import REGION_NAMES, canonical_finding, regions_at

DATASET_NAME = "gazelabel-phantom (SYNTHETIC)"
SPLIT_NAMES = ("train", "val", "test")
# Findings the phantom can draw (everything but "No Finding", which is the absence of the others).
DRAWABLE = ("Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity", "Edema", "Consolidation",
            "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices")
# Spurious marker: present with this chance when the finding is positive / negative (train and val);
# in test it is present half of the time whatever the label (the shortcut test set).
MARKER_IF_POSITIVE, MARKER_IF_NEGATIVE, MARKER_TEST = 0.9, 0.1, 0.5


def case_id(index: int) -> str:
    return f"phantom_{index:06d}"


def split_of(seed: int, index: int, fractions=(0.7, 0.1, 0.2)) -> str:
    u = np.random.default_rng([int(seed), int(index), 98]).random()
    edges = np.cumsum(fractions)
    return SPLIT_NAMES[int(np.searchsorted(edges, u, side="right").clip(0, 2))]


def draw_marker(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Burn a bright framed "L" token into the top-right corner (the spurious shortcut)."""
    size = img.shape[0]
    side = int(size * rng.uniform(0.045, 0.06))
    x0 = int(size * rng.uniform(0.86, 0.9))
    y0 = int(size * rng.uniform(0.015, 0.04))
    layer = Image.new("F", (img.shape[1], img.shape[0]), 0.0)
    d = ImageDraw.Draw(layer)
    w = max(1, side // 8)
    d.rectangle([x0, y0, x0 + side, y0 + side], outline=1.0, width=w)
    d.line([(x0 + side * 0.35, y0 + side * 0.2), (x0 + side * 0.35, y0 + side * 0.8), (x0 + side * 0.72, y0 + side * 0.8)], fill=1.0, width=w + 1)
    mark = np.asarray(layer, dtype=np.float32)
    return np.maximum(img, 0.97 * mark)


def _opacity_copies(drawn: list[Drawn], values: dict[str, int]) -> list[Drawn]:
    """"Lung Opacity" boxes for every drawn opacity child (CheXpert's hierarchy), one per location."""
    seen, out = set(), []
    for d in drawn:
        if d.name in OPACITY_CHILDREN and d.name != "Lung Opacity" and d.box not in seen:
            seen.add(d.box)
            out.append(Drawn("Lung Opacity", values["Lung Opacity"], d.box, d.region, dict(d.details)))
    return out


def forced_plan(forced: dict[str, int], rng: np.random.Generator) -> dict[str, Planned]:
    """A plan with exactly the given findings (value 1 or -1), random side and severity."""
    plan = {}
    for name, value in forced.items():
        name = canonical_finding(name)
        if name not in DRAWABLE:
            raise ValueError(f"forced: {name!r} cannot be drawn; choose from {', '.join(DRAWABLE)}")
        if value not in (1, -1):
            raise ValueError(f"forced[{name!r}]: expected 1 or -1, got {value!r}")
        side = BOTH if name in ("Cardiomegaly", "Enlarged Cardiomediastinum", "Edema", "Support Devices") else int(rng.integers(0, 2))
        severity = rng.uniform(0.15, 0.35) if value == -1 else rng.uniform(0.5, 1.0)
        plan[name] = Planned(name, value, side, float(severity))
    if "Pneumonia" in plan and "Consolidation" not in plan:
        plan["Consolidation"] = Planned("Consolidation", plan["Pneumonia"].value, plan["Pneumonia"].side, plan["Pneumonia"].severity)
    return plan


def generate_case(seed: int, index: int, *, size: int = 512, readers: int = 3, split: str = "train",
                  spurious_marker: str | None = None, forced: dict[str, int] | None = None) -> tuple[Case, np.ndarray]:
    """One phantom image and its case record (image path not yet set).

    Args:
        forced: draw exactly these findings (name -> 1 or -1) instead of sampling a clinical scenario.

    Returns:
        (case, image) with image ``(size, size)`` float32 in [0, 1], bone bright.
    """
    # Independent streams, so forcing a finding leaves the anatomy, texture and noise of the image unchanged.
    plan_rng, anatomy_rng, texture_rng, finding_rng, noise_rng, text_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), int(index)]).spawn(6))
    plan = sample_plan(plan_rng) if forced is None else forced_plan(forced, plan_rng)
    anatomy = sample_anatomy(anatomy_rng, size)
    apply_geometry(anatomy, plan, finding_rng)
    canvas = Canvas(anatomy)
    layers = render_normal(canvas, anatomy, texture_rng)
    drawn = draw_findings(canvas, anatomy, layers, plan, finding_rng)
    # A planned finding that could not be placed is not in the image, so it is not in the labels either.
    drawn_names = {d.name for d in drawn}
    plan = {k: p for k, p in plan.items() if k in drawn_names}
    values = chexpert_values(plan)
    image = compose(layers, anatomy, canvas, noise_rng)

    extra: dict = {"chest_box": [round(float(b), 1) for b in anatomy.chest_box_pixels()], "ctr": round(anatomy.ctr, 3)}
    if spurious_marker:
        mrng = np.random.default_rng([int(seed), int(index), 99])
        positive = values[spurious_marker] != 0
        p = MARKER_TEST if split == "test" else (MARKER_IF_POSITIVE if positive else MARKER_IF_NEGATIVE)
        present = bool(mrng.random() < p)
        if present:
            image = draw_marker(image, mrng)
        extra["marker"] = present
        extra["marker_finding"] = spurious_marker

    all_drawn = drawn + _opacity_copies(drawn, values)
    boxes = [Box(d.name, *d.box, region=d.region) for d in all_drawn]
    findings_st, impression_st = write_report(values, drawn, text_rng)

    view = "AP" if any(d.name == "Support Devices" and d.details.get("device") != "pacemaker" for d in drawn) else "PA"
    case = Case(
        id=case_id(index),
        image=ImageRef("", size, size, (anatomy.spacing_mm, anatomy.spacing_mm), view, True),
        findings=values,
        boxes=boxes,
        report=Report(" ".join(s.text for s in findings_st), " ".join(s.text for s in impression_st)),
        source=Source("phantom", f"seed={seed};index={index}", None),
        extra=extra,
    )
    readings = simulate_readers(case, readers, seed=seed)
    case.fixations = readings.pop("reader_1")
    case.readers = readings
    case.report.evidence = _evidence(case, findings_st)
    visited = {r for f in case.fixations for r in regions_at(f.x, f.y, size, size, chest_box=anatomy.chest_box_pixels())}
    case.coverage = {"visited": [r for r in REGION_NAMES if r in visited], "missed": [r for r in REGION_NAMES if r not in visited]}
    return case, image


def _evidence(case: Case, statements) -> list[Evidence]:
    """Link each positive or hedged FINDINGS sentence to its box and the reader-1 fixations on it."""
    out = []
    for i, s in enumerate(statements):
        if s.drawn is None or not s.value:
            continue
        box_index = s.drawn  # drawn records come first in case.boxes, in the same order
        b = case.boxes[box_index]
        pad = 0.02 * case.image.width
        fix = [j for j, f in enumerate(case.fixations) if b.x1 - pad <= f.x <= b.x2 + pad and b.y1 - pad <= f.y <= b.y2 + pad]
        out.append(Evidence(i, s.finding, b.region, box_index, fix))
    return out


def _check_arguments(n, size, readers, spurious_marker, splits) -> str | None:
    if int(n) < 1:
        raise ValueError(f"n: need at least 1 image, got {n}")
    if int(size) < 128 or int(size) > 4096:
        raise ValueError(f"size: expected 128..4096 pixels, got {size}")
    if int(readers) < 1:
        raise ValueError(f"readers: need at least 1 simulated reader, got {readers}")
    if len(splits) != 3 or any(s < 0 for s in splits) or abs(sum(splits) - 1.0) > 1e-6:
        raise ValueError(f"splits: expected three non-negative fractions (train, val, test) summing to 1, got {splits}")
    if spurious_marker is None:
        return None
    try:
        name = canonical_finding(spurious_marker)
    except KeyError as e:
        raise ValueError(f"spurious_marker: {e.args[0]}") from None
    if name == "No Finding":
        raise ValueError("spurious_marker: pick a finding, not 'No Finding'")
    return name


def generate_store(root: str | Path, n: int, seed: int, *, size: int = 512, readers: int = 3, dicom: bool = False,
                   spurious_marker: str | None = None, splits=(0.7, 0.1, 0.2), progress: bool = True) -> Path:
    """Write ``n`` SYNTHETIC phantom cases into the case store folder ``root``.

    Each case has a ``size`` x ``size`` 16-bit PNG (or 12-bit CR DICOM with ``dicom``), all 14 CheXpert
    values, boxes with region names, a FINDINGS/IMPRESSION report, reader 1's fixations in
    ``case.fixations`` and the other simulated readers in ``case.readers``. ``dataset.json`` records the
    name, ``synthetic: true``, the splits and the generator settings.

    Raises:
        ValueError: bad arguments. DatasetError: ``root`` already holds images.
    """
    from tqdm import tqdm

    marker = _check_arguments(n, size, readers, spurious_marker, splits)
    store = CaseStore(root)
    if store.root.exists() and not store.root.is_dir():
        raise DatasetError(f"{store.root}: exists and is not a folder")
    if store.root.is_dir() and store.ids():
        raise DatasetError(f"{store.root}: already holds {len(store.ids())} images; choose an empty or new folder")
    split_ids: dict[str, list[str]] = {s: [] for s in SPLIT_NAMES}
    for index in tqdm(range(int(n)), desc="phantom (SYNTHETIC)", unit="img", disable=not progress):
        split = split_of(seed, index, splits)
        case, image = generate_case(seed, index, size=size, readers=readers, split=split, spurious_marker=marker)
        if dicom:
            from pydicom.uid import generate_uid

            spacing = case.image.spacing_mm
            uid = lambda kind: generate_uid(entropy_srcs=[f"gazelabel-phantom/{seed}/{index}/{kind}"])  # noqa: E731
            store.add(case, image, fmt="dcm", dicom_kwargs={
                "patient_id": f"PHANTOM{index:06d}", "study_uid": uid("study"), "series_uid": uid("series"),
                "spacing_mm": spacing, "modality": "CR", "view": case.image.view or "PA"})
        else:
            store.add(case, image)
        split_ids[split].append(case.id)
    store.write_manifest(
        name=DATASET_NAME,
        synthetic=True,
        description="SYNTHETIC phantom chest radiographs with simulated radiologist gaze; not real patients.",
        splits=split_ids,
        generator={"seed": int(seed), "n": int(n), "size": int(size), "readers": int(readers), "dicom": bool(dicom),
                   "spurious_marker": marker, "split_fractions": list(splits)},
    )
    return store.root
