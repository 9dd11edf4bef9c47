"""Shared vocabulary: CheXpert-14 findings and named anatomical regions of a PA/AP chest radiograph.

Regions are axis-aligned boxes in *fractions of the chest box* (x = column, y = row, 0..1). Without a known
chest box the whole image is used, which is a fair approximation for a well-centred PA film. The patient's
right side is on the image's left (radiological convention), so "right upper zone" has small x.
"""

from __future__ import annotations

from dataclasses import dataclass

FINDINGS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
FINDING_INDEX = {name: i for i, name in enumerate(FINDINGS)}

# CheXpert label values.
POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
LABEL_VALUES = (POSITIVE, NEGATIVE, UNCERTAIN)

_FINDING_ALIASES = {name.lower(): name for name in FINDINGS}
_FINDING_ALIASES.update(
    {
        "enlarged cardiac silhouette": "Cardiomegaly",
        "effusion": "Pleural Effusion",
        "pleural effusion or thickening": "Pleural Effusion",
        "pulmonary edema": "Edema",
        "lung nodule or mass": "Lung Lesion",
        "nodule": "Lung Lesion",
        "mass": "Lung Lesion",
        "opacity": "Lung Opacity",
        "groundglass opacity": "Lung Opacity",
        "acute fracture": "Fracture",
        "pleural abnormality": "Pleural Other",
        "pleural thickening": "Pleural Other",
        "wide mediastinum": "Enlarged Cardiomediastinum",
        "abnormal mediastinal contour": "Enlarged Cardiomediastinum",
        "normal": "No Finding",
    }
)


def canonical_finding(name: str) -> str:
    """Return the CheXpert-14 spelling of ``name`` (case-insensitive, common synonyms).

    Raises:
        KeyError: with the list of known findings when ``name`` is not recognised.
    """
    key = " ".join(str(name).replace("_", " ").split()).lower()
    if key in _FINDING_ALIASES:
        return _FINDING_ALIASES[key]
    raise KeyError(f"unknown finding {name!r}; expected one of: {', '.join(FINDINGS)}")


@dataclass(frozen=True)
class Region:
    """A named anatomical region: box in fractions of the chest box, (x1, y1, x2, y2)."""

    name: str
    box: tuple[float, float, float, float]

    def contains(self, fx: float, fy: float) -> bool:
        x1, y1, x2, y2 = self.box
        return x1 <= fx <= x2 and y1 <= fy <= y2

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0


# 17 regions, ordered roughly as a systematic search visits them. Boxes may overlap (heart vs lower zones);
# `regions_at` returns all matches, `region_at` the most specific (smallest) one.
REGIONS: tuple[Region, ...] = (
    Region("trachea", (0.44, 0.00, 0.56, 0.22)),
    Region("right upper zone", (0.08, 0.08, 0.44, 0.36)),
    Region("left upper zone", (0.56, 0.08, 0.92, 0.36)),
    Region("right hilum", (0.30, 0.30, 0.45, 0.50)),
    Region("left hilum", (0.55, 0.30, 0.70, 0.50)),
    Region("right mid zone", (0.06, 0.36, 0.44, 0.60)),
    Region("left mid zone", (0.56, 0.36, 0.94, 0.60)),
    Region("right lower zone", (0.06, 0.60, 0.44, 0.84)),
    Region("left lower zone", (0.56, 0.60, 0.94, 0.84)),
    Region("mediastinum", (0.40, 0.12, 0.60, 0.50)),
    Region("aortic knob", (0.54, 0.22, 0.64, 0.32)),
    Region("heart", (0.38, 0.48, 0.76, 0.82)),
    Region("right costophrenic angle", (0.04, 0.78, 0.20, 0.94)),
    Region("left costophrenic angle", (0.80, 0.78, 0.96, 0.94)),
    Region("right hemidiaphragm", (0.14, 0.74, 0.44, 0.90)),
    Region("left hemidiaphragm", (0.56, 0.76, 0.86, 0.92)),
    Region("bones and soft tissues", (0.00, 0.00, 1.00, 1.00)),
)
REGION_INDEX = {r.name: i for i, r in enumerate(REGIONS)}
REGION_NAMES = tuple(r.name for r in REGIONS)

# Where each finding usually shows (for the phantom's placement, the report's region words and prompts).
FINDING_REGIONS: dict[str, tuple[str, ...]] = {
    "No Finding": (),
    "Enlarged Cardiomediastinum": ("mediastinum",),
    "Cardiomegaly": ("heart",),
    "Lung Lesion": ("right upper zone", "left upper zone", "right mid zone", "left mid zone"),
    "Lung Opacity": ("right mid zone", "left mid zone", "right lower zone", "left lower zone"),
    "Edema": ("right hilum", "left hilum", "right mid zone", "left mid zone"),
    "Consolidation": ("right lower zone", "left lower zone", "right mid zone"),
    "Pneumonia": ("right lower zone", "left lower zone", "right mid zone", "left mid zone"),
    "Atelectasis": ("right lower zone", "left lower zone"),
    "Pneumothorax": ("right upper zone", "left upper zone"),
    "Pleural Effusion": ("right costophrenic angle", "left costophrenic angle"),
    "Pleural Other": ("right mid zone", "left mid zone"),
    "Fracture": ("bones and soft tissues",),
    "Support Devices": ("trachea", "mediastinum"),
}


def region(name: str) -> Region:
    """Look a region up by name; KeyError lists the known names."""
    try:
        return REGIONS[REGION_INDEX[name]]
    except KeyError:
        raise KeyError(f"unknown region {name!r}; expected one of: {', '.join(REGION_NAMES)}") from None


def _to_fraction(x: float, y: float, width: float, height: float, chest_box=None) -> tuple[float, float]:
    if chest_box is not None:
        x1, y1, x2, y2 = chest_box
        return (x - x1) / max(x2 - x1, 1e-6), (y - y1) / max(y2 - y1, 1e-6)
    return x / max(width, 1e-6), y / max(height, 1e-6)


def regions_at(x: float, y: float, width: float, height: float, chest_box=None) -> list[str]:
    """All region names containing the pixel point (x=col, y=row) of a ``width`` x ``height`` image."""
    fx, fy = _to_fraction(x, y, width, height, chest_box)
    return [r.name for r in REGIONS if r.contains(fx, fy)]


def region_at(x: float, y: float, width: float, height: float, chest_box=None, finding: str | None = None) -> str:
    """The most specific (smallest-area) region containing the point; "bones and soft tissues" otherwise.

    With ``finding``, regions where that finding usually shows (``FINDING_REGIONS``) win over smaller ones,
    so an enlarged heart overlapping the left lower zone is still named "heart"."""
    fx, fy = _to_fraction(x, y, width, height, chest_box)
    hits = [r for r in REGIONS if r.contains(fx, fy)]
    if not hits:
        return "bones and soft tissues"
    preferred = [r for r in hits if r.name in FINDING_REGIONS.get(finding or "", ())]
    hits = preferred or hits
    return min(hits, key=lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1])).name


def region_box_pixels(name: str, width: float, height: float, chest_box=None) -> tuple[float, float, float, float]:
    """A region's box in original-image pixels (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = region(name).box
    if chest_box is not None:
        cx1, cy1, cx2, cy2 = chest_box
        w, h = cx2 - cx1, cy2 - cy1
        return cx1 + x1 * w, cy1 + y1 * h, cx1 + x2 * w, cy1 + y2 * h
    return x1 * width, y1 * height, x2 * width, y2 * height
