"""DICOM SR (TID 1500) -> Case: the inverse of :mod:`models.dicom_sr.writer`.

The document is read by its structure and codes, not by trusting its producer: boxes are closed axis-aligned
POLYLINE regions with a known finding type, fixations POINT regions with start/duration measurements,
findings qualitative evaluations of known finding codes. A TID 1500 report written by another tool is read as
far as it uses these codes (what is skipped is counted in ``Case.extra["dicom_sr"]``).

Refused with :class:`SRError` (a ``CaseError``, so a 4xx or one CLI line) and a message naming the problem: a
file that is not an SR, another template than TID 1500, no referenced image, a region whose source image is
not the referenced one, a by-reference link to a content item that does not exist.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from models.dicom_sr import codes as C
from models.dicom_sr.writer import concept, evidence_images, tracking_identifier
from models.imaging import dicom_spacing
from models.schema import Box, Case, CaseError, Evidence, Fixation, ImageRef, Prediction, Report, Source

SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
}
IMAGING_MEASUREMENTS = ("126010", "DCM")
TRACKING_ID, TRACKING_UID = ("112039", "DCM"), ("112040", "DCM")
OBSERVER_TYPE, LOGIN_NAME, PERSON_NAME = ("121005", "DCM"), ("128774", "DCM"), ("121008", "DCM")
DEVICE_NAME, DEVICE_MODEL = ("121013", "DCM"), ("121015", "DCM")
PIXEL_ROWS, PIXEL_COLUMNS = ("110910", "DCM"), ("110911", "DCM")
H_SPACING, V_SPACING = ("111026", "DCM"), ("111066", "DCM")
IMAGE_LIBRARY = ("111028", "DCM")


class SRError(CaseError):
    """An SR that GazeLabel cannot read as a Case; the message says why."""


def _code(item: Dataset) -> tuple[str, str] | None:
    seq = getattr(item, "ConceptCodeSequence", None)
    return (str(seq[0].CodeValue), str(seq[0].CodingSchemeDesignator)) if seq else None


def _num(item: Dataset) -> float | None:
    seq = getattr(item, "MeasuredValueSequence", None)
    if not seq:
        return None
    value = float(seq[0].NumericValue)
    return value if math.isfinite(value) else None


def _children(item: Dataset) -> list[Dataset]:
    return list(getattr(item, "ContentSequence", []) or [])


def _site(item: Dataset) -> str | None:
    """A finding-site CODE item (location + optional laterality modifier) -> region name, or None."""
    laterality = next((_code(c) for c in _children(item) if concept(c) == C.LATERALITY.key), None)
    return C.REGION_BY_CODE.get((_code(item), laterality))


def _observer(group: Dataset) -> str | None:
    """The login name (else the person name) of a HAS OBS CONTEXT person observer in ``group``."""
    login = name = None
    for c in _children(group):
        if getattr(c, "RelationshipType", "") != "HAS OBS CONTEXT":
            continue
        if concept(c) == LOGIN_NAME:
            login = str(c.TextValue)
        elif concept(c) == PERSON_NAME:
            name = str(c.PersonName).rstrip("^")
    return login or name


def _scoord(group: Dataset, sop_uids: set[str], where: str) -> tuple[str, np.ndarray] | None:
    for c in _children(group):
        if getattr(c, "ValueType", "") != "SCOORD":
            continue
        refs = [r for r in _children(c) if getattr(r, "ValueType", "") == "IMAGE"]
        uids = {str(s.ReferencedSOPInstanceUID) for r in refs for s in getattr(r, "ReferencedSOPSequence", [])}
        if not uids:
            raise SRError(f"{where}: the image region names no source image (SELECTED FROM IMAGE is missing)")
        if not uids <= sop_uids:
            raise SRError(f"{where}: the image region is on image {sorted(uids)[0]} which the SR does not reference "
                          "as evidence")
        data = np.asarray(c.GraphicData, dtype=np.float64).reshape(-1, 2)
        return str(c.GraphicType), data
    return None


def _box_from_polyline(points: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x1, y1, x2, y2) of a closed axis-aligned rectangle, else None."""
    if len(points) != 5 or not np.array_equal(points[0], points[-1]):
        return None
    xs, ys = np.unique(points[:4, 0]), np.unique(points[:4, 1])
    if len(xs) != 2 or len(ys) != 2:
        return None
    return float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1])


def _position(root: Dataset, identifier: list[int]) -> Dataset | None:
    """The content item at a Referenced Content Item Identifier (1-based path from the root)."""
    if not identifier or identifier[0] != 1:
        return None
    item = root
    for k in identifier[1:]:
        children = _children(item)
        if not 1 <= k <= len(children):
            return None
        item = children[k - 1]
    return item


def sr_to_case(sr: Dataset, *, case_id: str | None = None) -> Case:
    """Read a GazeLabel (or compatible TID 1500) SR as a Case; raises :class:`SRError` when it cannot."""
    sop_class = str(getattr(sr, "SOPClassUID", ""))
    if sop_class not in SR_CLASSES:
        raise SRError(f"not a structured report GazeLabel reads (SOP class {sop_class or 'missing'}); expected "
                      f"one of: {', '.join(SR_CLASSES.values())}")
    templates = [str(t.TemplateIdentifier) for t in getattr(sr, "ContentTemplateSequence", [])]
    if templates != ["1500"]:
        found = f"TID {templates[0]}" if templates else "no template identifier"
        raise SRError(f"the SR follows {found}, not TID 1500 (Measurement Report); GazeLabel reads measurement "
                      "reports only")
    images = evidence_images(sr)
    if not images:
        raise SRError("the SR references no image (Current Requested Procedure Evidence Sequence is empty); a "
                      "label must name the radiograph it describes")
    sop_uids = {sop for _, _, sop in images}
    root = sr
    skipped: dict[str, int] = {}
    extra_record: dict[str, Any] = {}

    def skip(what: str) -> None:
        skipped[what] = skipped.get(what, 0) + 1

    # ---- the document's observer
    top = _children(root)
    observer_type = next((_code(c) for c in top if concept(c) == OBSERVER_TYPE), None)
    is_device = observer_type == ("121007", "DCM")

    # ---- image library: the source image's size and spacing
    width = height = 0
    spacing = None
    for library in (c for c in top if concept(c) == IMAGE_LIBRARY):
        for group in _children(library):
            for entry in _children(group):
                refs = {str(s.ReferencedSOPInstanceUID) for s in getattr(entry, "ReferencedSOPSequence", [])}
                if not refs & sop_uids:
                    continue
                values = {concept(d): d for d in _children(entry)}
                if PIXEL_ROWS in values and PIXEL_COLUMNS in values:
                    height, width = int(_num(values[PIXEL_ROWS]) or 0), int(_num(values[PIXEL_COLUMNS]) or 0)
                if H_SPACING in values and V_SPACING in values:
                    spacing = (_num(values[V_SPACING]), _num(values[H_SPACING]))

    # ---- measurement groups
    findings: dict[str, int] = {}
    scores: dict[str, float] = {}
    boxes: list[Box] = []
    fixations: list[Fixation] = []
    readers: dict[str, list[Fixation]] = {}
    coverage: dict[str, list[str]] = {}
    uncertainty = None
    group_index: dict[int, tuple[str, int]] = {}  # id(group) -> ("box" | "fixation", index)
    for container in (c for c in top if concept(c) == IMAGING_MEASUREMENTS):
        for g, group in enumerate(_children(container)):
            where = f"measurement group {g + 1} ({tracking_identifier(group) or 'no tracking identifier'})"
            children = _children(group)
            finding_type = next((_code(c) for c in children if concept(c) == C.FINDING.key), None)
            probability = next((_num(c) for c in children if concept(c) == C.PROBABILITY.key), None)
            sites = [_site(c) for c in children if concept(c) == C.FINDING_SITE.key]
            region = _scoord(group, sop_uids, where)
            ident = tracking_identifier(group) or ""
            if region is not None and region[0] == "POINT":
                x, y = region[1][0]
                numbers = {concept(c): _num(c) for c in children if getattr(c, "ValueType", "") == "NUM"}
                fixation = Fixation(float(x), float(y), numbers.get(C.START_TIME.key) or 0.0,
                                    numbers.get(C.DURATION.key) or 0.0)
                reader = _observer(group)
                if reader is None:
                    group_index[id(group)] = ("fixation", len(fixations))
                    fixations.append(fixation)
                else:
                    readers.setdefault(reader, []).append(fixation)
            elif region is not None and region[0] == "POLYLINE":
                xyxy = _box_from_polyline(region[1])
                name = C.FINDING_BY_CODE.get(finding_type)
                if xyxy is None or name is None:
                    skip("regions that are not a box of a known finding")
                    continue
                group_index[id(group)] = ("box", len(boxes))
                boxes.append(Box(name, *xyxy, region=sites[0] if sites else None, score=probability))
            elif region is not None:
                skip(f"{region[0]} regions")
            elif finding_type == C.COVERAGE.key:
                key = ident[len("coverage "):] if ident.startswith("coverage ") else "visited"
                coverage[key] = [s for s in sites if s is not None]
            elif finding_type in C.FINDING_BY_CODE:
                name = C.FINDING_BY_CODE[finding_type]
                for c in children:
                    if concept(c) == C.FINDING_CODES[name].key and _code(c) in C.PRESENCE_BY_CODE:
                        findings[name] = C.PRESENCE_BY_CODE[_code(c)]
                if probability is not None:
                    scores[name] = probability
            elif ident == "uncertainty":
                uncertainty = next((_num(c) for c in children if concept(c) == C.UNCERTAINTY.key), None)
            else:
                skip("measurement groups of unknown kind")

    # ---- the GazeLabel record: id, tag, image facts, source, report and evidence
    record = next((c for c in top if concept(c) == C.QUALITATIVE_EVALUATIONS.key), None)
    texts: dict[tuple[str, str], str] = {}
    models: dict[str, str] = {}
    synthetic = synthetic_models = False
    evidence_items: list[Dataset] = []
    for item in _children(record) if record is not None else []:
        key = concept(item)
        if key == C.FINDING.key and getattr(item, "ValueType", "") == "TEXT":
            evidence_items.append(item)
        elif key == C.MODEL_STAMP.key:
            family, _, stamp = str(item.TextValue).partition("=")
            models[family] = stamp
        elif key == C.SYNTHETIC_IMAGE.key:
            synthetic = _code(item) == C.YES.key
        elif key == C.SYNTHETIC_MODELS.key:
            synthetic_models = _code(item) == C.YES.key
        elif getattr(item, "ValueType", "") == "TEXT" and key is not None:
            texts[key] = str(item.TextValue)
    report = None
    if C.FINDINGS_TEXT.key in texts or C.IMPRESSION_TEXT.key in texts:
        report = Report(texts.get(C.FINDINGS_TEXT.key, ""), texts.get(C.IMPRESSION_TEXT.key, ""))
        for k, item in enumerate(evidence_items):
            props = _children(item)
            index = next((_num(c) for c in props if concept(c) == C.SENTENCE_INDEX.key), None)
            finding = C.FINDING_BY_CODE.get(next((_code(c) for c in props if concept(c) == C.FINDING.key), None))
            region_items = [c for c in props if concept(c) == C.FINDING_SITE.key]
            evidence = Evidence(sentence=int(index) if index is not None else k, finding=finding,
                                region=_site(region_items[0]) if region_items else None)
            for link in props:
                if getattr(link, "RelationshipType", "") != "INFERRED FROM" or "ReferencedContentItemIdentifier" not in link:
                    continue
                value = link.ReferencedContentItemIdentifier
                path = [int(v) for v in value] if isinstance(value, (list, tuple, MultiValue)) else [int(value)]
                target = _position(root, path)
                if target is None:
                    raise SRError(f"report evidence {k}: links to content item {'.'.join(map(str, path))}, which "
                                  "does not exist in the SR")
                kind = group_index.get(id(target))
                if kind is None:
                    skip("evidence links to items that are not a box or a fixation")
                elif kind[0] == "box":
                    evidence.box = kind[1]
                else:
                    evidence.fixations.append(kind[1])
            report.evidence.append(evidence)
    elif evidence_items:
        skip("evidence items without a report text")

    series_uid = images[0][1]
    case = Case(
        id=case_id or texts.get(C.CASE_ID.key) or series_uid,
        image=ImageRef(path="", width=width, height=height,
                       spacing_mm=spacing if spacing and all(spacing) else None,
                       view=texts.get(C.IMAGE_VIEW.key), synthetic=synthetic),
        findings=findings, scores=scores, boxes=boxes, fixations=fixations, readers=readers, report=report,
        coverage=coverage,
        source=Source(texts.get(C.SOURCE_DATASET.key), texts.get(C.SOURCE_REF.key), texts.get(C.SOURCE_MODEL.key)),
    )
    if is_device:
        case.prediction = Prediction(models=models, synthetic=synthetic_models, uncertainty=uncertainty)
    if skipped:
        extra_record["skipped"] = skipped
    if extra_record:
        case.extra["dicom_sr"] = extra_record
    try:
        return Case.from_dict(case.to_dict())
    except CaseError as e:
        raise SRError(f"the SR does not make a valid Case: {e}") from None


def label_tag(sr: Dataset) -> str | None:
    """The label tag a GazeLabel SR was saved under (``final``, ...), or None."""
    record = next((c for c in _children(sr) if concept(c) == C.QUALITATIVE_EVALUATIONS.key), None)
    for item in _children(record) if record is not None else []:
        if concept(item) == C.LABEL_TAG.key:
            return str(item.TextValue)
    return None


def document_observer(sr: Dataset) -> str | None:
    """The login name (else name) of the SR's person observer; None for a device observer."""
    return _observer(sr)


def as_stored(case: Case, image: Dataset, annotator: str | None = None) -> Case:
    """``case`` exactly as an SR on ``image`` keeps it (what :func:`sr_to_case` returns for it).

    Coordinates become 32-bit floats (SCOORD Graphic Data is FL), numbers decimal strings of 16 characters
    (NUM is DS), size and spacing those of the image; the image path, ``extra`` and, of a prediction, all but
    the models, the uncertainty and the first scanpath are not stored, nor a report without any text; with ``annotator`` (a label) no
    prediction part is stored at all."""
    from pydicom.valuerep import format_number_as_ds

    def f32(v: float) -> float:
        return float(np.float32(v))

    def ds(v: float) -> float:
        return float(format_number_as_ds(float(v)))

    d = case.to_dict()
    rows, columns = int(image.Rows), int(image.Columns)
    spacing = dicom_spacing(image)
    spacing = [ds(spacing[0]), ds(spacing[1])] if spacing is not None else None
    d["image"] = {**d["image"], "path": "", "width": columns, "height": rows, "spacing_mm": spacing}
    d["scores"] = {k: ds(v) for k, v in d["scores"].items()}
    for b in d["boxes"]:
        for k in ("x1", "y1", "x2", "y2"):
            b[k] = f32(b[k])
        if b["score"] is not None:
            b["score"] = ds(b["score"])

    def fix(f: dict) -> dict:
        return {"x": f32(f["x"]), "y": f32(f["y"]), "t": ds(f["t"]), "duration": ds(f["duration"])}

    d["fixations"] = [fix(f) for f in d["fixations"]]
    d["readers"] = {k: [fix(f) for f in v] for k, v in d["readers"].items() if v}
    d["coverage"] = {k: list(v) for k, v in d["coverage"].items()}
    if d["report"] is not None and not (d["report"]["findings"] or d["report"]["impression"]):
        d["report"] = None  # no text to write
    d.pop("extra", None)
    if annotator is not None:
        d.pop("prediction", None)
    if d.get("prediction") is not None:
        p = d["prediction"]
        d["prediction"] = {"models": p["models"], "synthetic": p["synthetic"],
                           "uncertainty": None if p["uncertainty"] is None else ds(p["uncertainty"])}
    return Case.from_dict(d)
