"""EGD-CXR (PhysioNet ``egd-cxr`` 1.0.0): one radiologist's gaze and dictation on 1,083 MIMIC-CXR images.

Layout read here::

    <root>/master_sheet.csv                      one row per image (quoted multi-line indications)
    <root>/fixations.csv                         one row per fixation (the fixation's last sample)
    <root>/bounding_boxes.csv                    anatomical boxes (optional)
    <root>/audio_segmentation_transcripts/<dicom_id>/transcript.json   dictation (optional)

Mapping to a :class:`~models.schema.Case` (one case per ``dicom_id``, id = dicom_id):

- Fixations: ``X_ORIGINAL``/``Y_ORIGINAL`` are original image pixels; ``t = FPOGS`` and ``duration = FPOGD``
  (seconds). Following the code that produced the files (cxr-eye-gaze/eye-gaze-dataset, cited by path and
  line at commit 82f2427; the published column list says less):

  * ``FPOGS`` and ``Time (in secs)`` are on the same per-image clock (the row is the fixation's last sample,
    ``Time = FPOGS + FPOGD``), so ``t`` lines up with the transcript's phrase times as it is.
  * Off-image samples: ``DataPostProcessing/map_eye_gaze_from_screen_to_image_coordinates.py`` L107-118 sets -1 *before* scaling
    to image pixels (``int(image_px / screen_px * -1)``), so they are -1, -2 or -3 depending on the image's
    scale, never only -1; and a point is on the image only strictly inside the padded rectangle (L107), so
    every negative X/Y_ORIGINAL is off the image (the producing heatmap code keeps positive values only,
    ``create_heatmap_images_and_or_videos.py`` L285). They are dropped and counted.
  * Calibration screens: every 20th image was preceded by a white dot on a blank 1920x1080 screen saved as
    the image name minus its last 5 characters (``DataPreparation/image_preparation.py`` L247-250); the mapping code treats an
    id with no image as that blank screen with zero pads (L98-101), so its X/Y_ORIGINAL are *screen* pixels,
    and ``Validation/validation.py`` L189-193 recognises calibration rows as those whose ``DICOM_ID`` is not in
    ``master_sheet.csv``. They are never joined to an image (an earlier version of this reader prefix-matched
    them as "truncated ids" and merged about 54 calibration readings into real ones as fixations near the
    screen centre); each is dropped and counted, and ``calibration`` of :func:`read_fixations` keeps their
    last samples (the dot at the screen centre) for accuracy checks as ``validation.py`` does.
- Findings: the ``<name>__chx`` columns (CheXpert labeler on the MIMIC-CXR report: 1, 0, -1, blank = not
  mentioned). ``Normal``/``CHF``/``pneumonia`` -> ``extra["egd_class"]``; the radiologist's own finding columns
  -> ``extra["radiologist_findings"]``; indication, demographics and screen pads -> ``extra``.
- ``bounding_boxes.csv`` holds anatomy, not findings: ``extra["anatomy_boxes"]`` = ``[{"name", "x1", "y1",
  "x2", "y2"}]``. ``transcript.json`` -> ``report.findings`` (full_text) and ``extra["phrase_timestamps"]``
  ``[[phrase, begin_s, end_s], ...]``.
- Image: ``path`` (or the dicom_id) resolved under ``images=``; the size comes from the file header, so
  without images the size is unknown (0) and only the negative (off-image) points can be dropped.
- Splits: EGD-CXR has none; a deterministic 7:1:2 hash of ``patient_id`` keeps each patient in one split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from models.datasets.base import CaseSource, DatasetError, count_drop, hash_split
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
CALIBRATION_SUFFIX = 5  # a calibration screen is saved as the next image's name minus its last 5 characters
CALIBRATION_SCREEN = (1920, 1080)  # the EGD-CXR monitor, screen pixels


def calibration_owner(raw: str, master_ids) -> str | None:
    """The master id whose calibration screen ``raw`` names (its id minus the last 5 characters), or None."""
    if len(raw) < 8:  # short junk ids are not a 36-character MIMIC dicom_id minus 5
        return None
    hits = [m for m in master_ids if len(m) == len(raw) + CALIBRATION_SUFFIX and m.startswith(raw)]
    return hits[0] if len(hits) == 1 else None


def read_fixations(path: Path, master_ids, warnings: list[str], dropped: dict[str, int] | None = None,
                   calibration: list[dict] | None = None) -> dict[str, list[Fixation]]:
    """dicom_id -> fixations (per-image clock, original px, off-image points dropped), time order.

    Rows whose ``DICOM_ID`` is not a master id are calibration screens (see module docstring) or unknown ids;
    both are dropped and counted in ``dropped``. ``calibration`` (a list, optional) receives one
    ``{"id", "before", "x", "y", "fpogx", "fpogy"}`` per calibration reading: its last sample, in screen pixels.
    """
    table = read_table(path, FIXATION_COLUMNS, what="EGD-CXR fixations")
    ids = set(master_ids)
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    off_image = calibration_rows = unknown_rows = 0
    calibration_runs: list[dict] = []
    unknown: dict[str, int] = {}
    previous = None
    for row in table:
        raw = row.text("DICOM_ID")
        if raw not in ids:
            owner = calibration_owner(raw, ids)
            if owner is None:
                unknown_rows += 1
                unknown[raw] = unknown.get(raw, 0) + 1
            else:
                calibration_rows += 1
                if raw != previous:  # a new calibration reading (validation.py counts runs the same way)
                    calibration_runs.append({"id": raw, "before": owner})
                calibration_runs[-1].update(x=row.optional_number("X_ORIGINAL"), y=row.optional_number("Y_ORIGINAL"),
                                            fpogx=row.optional_number("FPOGX"), fpogy=row.optional_number("FPOGY"))
            previous = raw
            continue
        previous = raw
        try:
            start = row.number("FPOGS")
            duration = row.number("FPOGD")
            if duration < 0:
                raise RowError(f"negative duration FPOGD = {duration}")
            x, y = row.number("X_ORIGINAL"), row.number("Y_ORIGINAL")
        except RowError as e:
            warnings.append(row_warning(row, str(e)))
            count_drop(dropped, "malformed fixation rows")
            continue
        if x < 0 or y < 0:
            off_image += 1
            continue
        rows.setdefault(raw, []).append((x, y, start, duration))
    if calibration_runs:
        count_drop(dropped, "EGD-CXR calibration screens (DICOM_ID = next image's id minus 5 characters)", len(calibration_runs))
        warnings.append(f"{path}: {calibration_rows} rows of {len(calibration_runs)} calibration screens "
                        "(DICOM_ID not in master_sheet.csv, screen pixels) left out")
    if unknown:
        count_drop(dropped, "fixation rows of a DICOM_ID in no master_sheet.csv row", unknown_rows)
        listed = ", ".join(repr(k) for k in list(unknown)[:3]) + (" ..." if len(unknown) > 3 else "")
        warnings.append(f"{path}: {unknown_rows} rows of {len(unknown)} DICOM_IDs that are neither in master_sheet.csv "
                        f"nor a calibration screen ({listed}) left out")
    if off_image:
        count_drop(dropped, "fixations off the image (X/Y_ORIGINAL < 0)", off_image)
        warnings.append(f"{path}: dropped {off_image} of {len(table)} fixations off the image (X_ORIGINAL/Y_ORIGINAL < 0)")
    if calibration is not None:
        calibration.extend(calibration_runs)
    out = {}
    for dicom_id, items in rows.items():
        fixations = sorted((Fixation(x, y, s, d) for (x, y, s, d) in items), key=lambda f: f.t)
        shift_times(fixations)
        out[dicom_id] = fixations
    return out


def drop_outside(fixations: list[Fixation], width: int, height: int, where: str, warnings: list[str],
                 dropped: dict[str, int] | None = None) -> list[Fixation]:
    if not (width and height):
        return fixations
    kept = [f for f in fixations if 0 <= f.x <= width and 0 <= f.y <= height]
    if len(kept) < len(fixations):
        count_drop(dropped, "fixations outside the image size", len(fixations) - len(kept))
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
    dropped: dict[str, int] | None = None,
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
            fixations=drop_outside(fixations.get(dicom_id, []), size[0], size[1], f"{fixations_path} [{dicom_id}]", warnings, dropped),
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
    dropped: dict[str, int] = {}
    master = read_master(root / "master_sheet.csv", warnings)
    fixations = read_fixations(root / "fixations.csv", master, warnings, dropped)
    box_path = root / "bounding_boxes.csv"
    if box_path.is_file():
        anatomy = read_anatomy_boxes(box_path, warnings)
    else:
        anatomy = {}
        warnings.append(f"{box_path}: no such file (cases kept without anatomy boxes)")
    resolver = ImageResolver(images)
    cases, splits = build_cases(
        master, fixations, anatomy, root / TRANSCRIPTS, lambda d, row: resolver.resolve(row.text("path"), d), warnings,
        fixations_path=root / "fixations.csv", dropped=dropped,
    )
    missing = resolver.warning(len(cases))
    if missing:
        warnings.append(missing)
    return CaseSource(NAME, cases, splits, False, warnings, dropped)
