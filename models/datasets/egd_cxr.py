"""EGD-CXR (PhysioNet ``egd-cxr`` 1.0.0): one radiologist's gaze and dictation on 1,083 MIMIC-CXR images.

Layout read here::

    <root>/master_sheet.csv                      one row per image (quoted multi-line indications)
    <root>/fixations.csv                         one row per fixation (the fixation's last sample)
    <root>/bounding_boxes.csv                    anatomical boxes (optional)
    <root>/audio_segmentation_transcripts/<dicom_id>/transcript.json   dictation (optional)

Mapping to a :class:`~models.schema.Case` (one case per ``dicom_id``, id = dicom_id):

- Fixations: ``X_ORIGINAL``/``Y_ORIGINAL`` are original image pixels, ``-1`` = off the image (dropped, one
  counted warning per file); ``duration = FPOGD``; the start is ``FPOGS`` (Gazepoint's clock, seconds) moved
  onto the image-onset clock of ``Time (in secs)`` by the per-image median of ``FPOGS + FPOGD - Time`` (the row
  is the fixation's last sample), so fixation times line up with the transcript's phrase times. Without a
  usable ``Time`` column, times count from the image's first fixation.
- Some ``DICOM_ID`` values in ``fixations.csv`` are truncated (cxr-eye-gaze/eye-gaze-dataset#2): an id that is
  not in ``master_sheet.csv`` is matched to the unique master id it is a prefix of (one warning per such id);
  ids matching none (e.g. the calibration image) or several are skipped with a warning.
- Findings: the ``<name>__chx`` columns (CheXpert labeler on the MIMIC-CXR report: 1, 0, -1, blank = not
  mentioned). ``Normal``/``CHF``/``pneumonia`` -> ``extra["egd_class"]``; the radiologist's own finding columns
  -> ``extra["radiologist_findings"]``; indication, demographics and screen pads -> ``extra``.
- ``bounding_boxes.csv`` holds anatomy, not findings: ``extra["anatomy_boxes"]`` = ``[{"name", "x1", "y1",
  "x2", "y2"}]``. ``transcript.json`` -> ``report.findings`` (full_text) and ``extra["phrase_timestamps"]``
  ``[[phrase, begin_s, end_s], ...]``.
- Image: ``path`` (or the dicom_id) resolved under ``images=``; the size comes from the file header, so
  without images the size is unknown (0) and only the ``-1`` points can be dropped.
- Splits: EGD-CXR has none; a deterministic 7:1:2 hash of ``patient_id`` keeps each patient in one split.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Callable

from models.datasets.base import CaseSource, DatasetError, hash_split
from models.datasets.image_paths import ImageResolver, image_size
from models.datasets.reflacx import shift_times
from models.datasets.tables import Row, RowError, read_table, row_warning
from models.schema import Case, Fixation, ImageRef, Report, Source
from models.vocab import canonical_finding

NAME = "egd-cxr"
MASTER_COLUMNS = ("dicom_id",)
FIXATION_COLUMNS = ("DICOM_ID", "FPOGS", "FPOGD", "X_ORIGINAL", "Y_ORIGINAL")
TIME_COLUMN = "Time (in secs)"
BOX_COLUMNS = ("dicom_id", "bbox_name", "x1", "x2", "y1", "y2")
CHX_SUFFIX = "__chx"
CLASS_COLUMNS = ("Normal", "CHF", "pneumonia")
RADIOLOGIST_COLUMNS = (
    "consolidation", "enlarged_cardiac_silhouette", "linear__patchy_atelectasis", "lobar__segmental_collapse",
    "not_otherwise_specified_opacity___pleural__parenchymal_opacity__", "pleural_effusion_or_thickening",
    "pulmonary_edema__hazy_opacity", "normal_anatomically", "elevated_hemidiaphragm", "hyperaeration",
    "vascular_redistribution",
)
INFO_COLUMNS = (
    "study_id", "patient_id", "stay_id", "gender", "anchor_age", "image_top_pad", "image_bottom_pad",
    "image_left_pad", "image_right_pad", "cxr_exam_indication",
)
TRANSCRIPTS = "audio_segmentation_transcripts"


# ---------------------------------------------------------------------------------------------- master sheet
def read_master(path: Path, warnings: list[str]) -> dict[str, Row]:
    """dicom_id -> master row, in file order (a duplicate id keeps the first row, with a warning)."""
    master: dict[str, Row] = {}
    for row in read_table(path, MASTER_COLUMNS, what="EGD-CXR master sheet"):
        dicom_id = row.text("dicom_id")
        if not dicom_id:
            warnings.append(row_warning(row, "empty 'dicom_id'"))
        elif dicom_id in master:
            warnings.append(row_warning(row, f"duplicate dicom_id {dicom_id!r}"))
        else:
            master[dicom_id] = row
    return master


def findings_from_master(row: Row, warnings: list[str]) -> dict[str, int]:
    """CheXpert findings from the ``__chx`` columns (blank = not mentioned)."""
    findings = {}
    for column, raw in row.values.items():
        if not column.endswith(CHX_SUFFIX) or not raw.strip():
            continue
        try:
            name = canonical_finding(column[: -len(CHX_SUFFIX)])
        except KeyError:
            warnings.append(f"{row.where()}: column {column!r} is not a CheXpert finding; label ignored")
            continue
        value = row.optional_number(column)
        if value not in (1.0, 0.0, -1.0):
            warnings.append(f"{row.where()}: column {column!r}: expected 1, 0, -1 or blank, got {raw.strip()!r}; label ignored")
            continue
        findings[name] = int(value)
    return findings


def master_extra(row: Row) -> dict:
    extra = {c: row.text(c) for c in INFO_COLUMNS if row.text(c)}
    classes = [c for c in CLASS_COLUMNS if row.optional_number(c) == 1.0]
    if classes:
        extra["egd_class"] = classes[0]
    radiologist = {c: row.optional_number(c) for c in RADIOLOGIST_COLUMNS if row.optional_number(c) is not None}
    if radiologist:
        extra["radiologist_findings"] = radiologist
    return extra


# ---------------------------------------------------------------------------------------------- fixations
class DicomIdMatcher:
    """Exact match against the master ids, else the unique master id the (truncated) value is a prefix of."""

    def __init__(self, master_ids, path: Path, warnings: list[str]):
        self.ids = list(master_ids)
        self.exact = set(self.ids)
        self.path, self.warnings = path, warnings
        self.cache: dict[str, str | None] = {}

    def __call__(self, raw: str) -> str | None:
        if raw in self.exact:
            return raw
        if raw not in self.cache:
            hits = [m for m in self.ids if m.startswith(raw)] if raw else []
            if len(hits) == 1:
                self.warnings.append(f"{self.path}: truncated DICOM_ID {raw!r} matched to {hits[0]!r} by prefix")
                self.cache[raw] = hits[0]
            else:
                why = "matches no master_sheet dicom_id" if not hits else f"is a prefix of {len(hits)} master_sheet dicom_ids"
                self.warnings.append(f"{self.path}: DICOM_ID {raw!r} {why}; its fixation rows skipped")
                self.cache[raw] = None
        return self.cache[raw]


def read_fixations(path: Path, master_ids, warnings: list[str]) -> dict[str, list[Fixation]]:
    """dicom_id -> fixations (image-onset clock, original px, off-image ``-1`` points dropped), time order."""
    table = read_table(path, FIXATION_COLUMNS, what="EGD-CXR fixations")
    match = DicomIdMatcher(master_ids, path, warnings)
    has_time = TIME_COLUMN in table.columns
    rows: dict[str, list[tuple[float, float, float, float, float | None]]] = {}
    off_image = 0
    for row in table:
        dicom_id = match(row.text("DICOM_ID"))
        if dicom_id is None:
            continue
        try:
            start = row.number("FPOGS")
            duration = row.number("FPOGD")
            if duration < 0:
                raise RowError(f"negative duration FPOGD = {duration}")
            x, y = row.number("X_ORIGINAL"), row.number("Y_ORIGINAL")
        except RowError as e:
            warnings.append(row_warning(row, str(e)))
            continue
        clock = row.optional_number(TIME_COLUMN) if has_time else None
        if x == -1 or y == -1:
            off_image += 1
            continue
        rows.setdefault(dicom_id, []).append((x, y, start, duration, clock))
    if off_image:
        warnings.append(f"{path}: dropped {off_image} of {len(table)} fixations off the image (X_ORIGINAL/Y_ORIGINAL = -1)")
    out = {}
    for dicom_id, items in rows.items():
        offsets = [s + d - c for (_x, _y, s, d, c) in items if c is not None]
        onset = statistics.median(offsets) if offsets else min(s for (_x, _y, s, _d, _c) in items)
        fixations = sorted((Fixation(x, y, round(s - onset, 6), d) for (x, y, s, d, _c) in items), key=lambda f: f.t)
        shift_times(fixations)
        out[dicom_id] = fixations
    return out


def drop_outside(fixations: list[Fixation], width: int, height: int, where: str, warnings: list[str]) -> list[Fixation]:
    if not (width and height):
        return fixations
    kept = [f for f in fixations if 0 <= f.x <= width and 0 <= f.y <= height]
    if len(kept) < len(fixations):
        warnings.append(f"{where}: dropped {len(fixations) - len(kept)} of {len(fixations)} fixations outside the {width}x{height} image")
    return kept


# ---------------------------------------------------------------------------------------------- boxes, transcripts
def read_anatomy_boxes(path: Path, warnings: list[str]) -> dict[str, list[dict]]:
    boxes: dict[str, list[dict]] = {}
    for row in read_table(path, BOX_COLUMNS, what="EGD-CXR bounding boxes"):
        try:
            x1, x2, y1, y2 = (row.number(c) for c in ("x1", "x2", "y1", "y2"))
            if x2 <= x1 or y2 <= y1:
                raise RowError(f"needs x1 < x2 and y1 < y2, got x1={x1} x2={x2} y1={y1} y2={y2}")
            if not row.text("bbox_name"):
                raise RowError("empty 'bbox_name'")
        except RowError as e:
            warnings.append(row_warning(row, str(e)))
            continue
        boxes.setdefault(row.text("dicom_id"), []).append({"name": row.text("bbox_name"), "x1": x1, "y1": y1, "x2": x2, "y2": y2})
    return boxes


def read_transcript(path: Path, warnings: list[str]) -> tuple[str, list[list]] | None:
    """``(full_text, [[phrase, begin_s, end_s], ...])`` of a ``transcript.json``; None if absent or malformed."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        text = str(data["full_text"]).strip()
        phrases = [[str(p["phrase"]), float(p["begin_time"]), float(p["end_time"])] for p in data.get("time_stamped_text") or []]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        warnings.append(f"{path}: malformed transcript ({type(e).__name__}: {e}); case kept without a report")
        return None
    return text, phrases


# ---------------------------------------------------------------------------------------------- cases
def build_cases(
    master: dict[str, Row],
    fixations: dict[str, list[Fixation]],
    anatomy: dict[str, list[dict]],
    transcripts: Path,
    image_path: Callable[[str, Row], str],
    warnings: list[str],
    *,
    sizes: dict[str, tuple[int, int]] | None = None,
    fixations_path: Path = Path("fixations.csv"),
    dataset: str = NAME,
) -> tuple[list[Case], dict[str, list[str]]]:
    """Cases and patient-level hash splits from parsed EGD-CXR tables (shared with the MIMIC-Eye reader)."""
    cases, splits = [], {"train": [], "val": [], "test": []}
    no_transcript = 0
    for dicom_id, row in master.items():
        path = image_path(dicom_id, row)
        size = (sizes or {}).get(dicom_id) or (image_size(path) if path else None) or (0, 0)
        extra = master_extra(row)
        extra["mimic_image"] = row.text("path")
        extra["anatomy_boxes"] = anatomy.get(dicom_id, [])
        transcript = read_transcript(transcripts / dicom_id / "transcript.json", warnings)
        if transcript is None:
            no_transcript += 1
        else:
            extra["phrase_timestamps"] = transcript[1]
        case = Case(
            id=dicom_id,
            image=ImageRef(path, size[0], size[1]),
            findings=findings_from_master(row, warnings),
            fixations=drop_outside(fixations.get(dicom_id, []), size[0], size[1], f"{fixations_path} [{dicom_id}]", warnings),
            report=Report(findings=transcript[0]) if transcript and transcript[0] else None,
            source=Source(dataset=dataset, ref=dicom_id),
            extra=extra,
        )
        cases.append(case)
        splits[hash_split(row.text("patient_id") or dicom_id)].append(dicom_id)
    if no_transcript:
        warnings.append(f"{transcripts}: {no_transcript} of {len(master)} images have no readable transcript.json")
    return cases, splits


def read_egd_cxr(root: str | Path, *, images: str | Path | None = None) -> CaseSource:
    """Read an EGD-CXR folder (see module docstring) into a :class:`CaseSource`.

    Args:
        root: folder with ``master_sheet.csv`` and ``fixations.csv``.
        images: MIMIC-CXR (or MIMIC-CXR-JPG, or a flat folder of ``<dicom_id>.*``) root.

    Raises:
        DatasetError: a required file or column is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    warnings: list[str] = []
    master = read_master(root / "master_sheet.csv", warnings)
    fixations = read_fixations(root / "fixations.csv", master, warnings)
    box_path = root / "bounding_boxes.csv"
    if box_path.is_file():
        anatomy = read_anatomy_boxes(box_path, warnings)
    else:
        anatomy = {}
        warnings.append(f"{box_path}: no such file (cases kept without anatomy boxes)")
    resolver = ImageResolver(images)
    cases, splits = build_cases(
        master, fixations, anatomy, root / TRANSCRIPTS, lambda d, row: resolver.resolve(row.text("path"), d), warnings,
        fixations_path=root / "fixations.csv",
    )
    missing = resolver.warning(len(cases))
    if missing:
        warnings.append(missing)
    return CaseSource(NAME, cases, splits, False, warnings)
