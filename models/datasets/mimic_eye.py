"""MIMIC-Eye (PhysioNet): REFLACX and EGD-CXR regrouped per patient, with the MIMIC-CXR images beside them.

Layout read here (the builder writes every table with a leading unnamed pandas index column, which
:func:`models.datasets.tables.read_table` drops)::

    <root>/spreadsheets/cxr_meta.csv                         optional: dicom_id, study_id, ViewPosition, Rows, Columns ...
    <root>/patient_<subject_id>/CXR-JPG/s<study_id>/<dicom_id>.jpg
    <root>/patient_<subject_id>/CXR-JPG/{cxr_meta,cxr_split,cxr_chexpert}.csv      (each optional)
    <root>/patient_<subject_id>/CXR-DICOM/s<study_id>/<dicom_id>.dcm, s<study_id>.txt (MIMIC-CXR report)
    <root>/patient_<subject_id>/REFLACX/metadata.csv         REFLACX metadata rows of this patient (all phases)
    <root>/patient_<subject_id>/REFLACX/<reading id>/...     the REFLACX main_data folder (+ gaze.csv if present)
    <root>/patient_<subject_id>/EyeGaze/{master_sheet,fixations,bounding_boxes}.csv
    <root>/patient_<subject_id>/EyeGaze/audio_segmentation_transcripts/<dicom_id>/transcript.json

The REFLACX and EGD-CXR parsers do all the parsing (same rules, see :mod:`models.datasets.reflacx` and
:mod:`models.datasets.egd_cxr`). Differences:

- Image: ``CXR-JPG/*/<dicom_id>.jpg``, else ``CXR-DICOM/*/<dicom_id>.dcm``, else ``images=`` as for REFLACX;
  size from ``cxr_meta`` ``Columns``/``Rows`` for EGD-CXR cases (REFLACX rows carry their own size) and view
  from ``ViewPosition``.
- An image read in both REFLACX and EGD-CXR is one case: the REFLACX reading is primary and the EGD-CXR
  fixations are ``case.readers["egd-cxr"]`` (its other fields in ``extra["egd"]``).
- ``extra["mimic_cxr_report"]`` holds the MIMIC-CXR report text and ``extra["mimic_cxr_chexpert"]`` its
  CheXpert labels when the patient folder has them; ``case.findings`` stays the gaze dataset's own labels.
- Splits: the official MIMIC-CXR split (``cxr_split.csv`` or the REFLACX metadata), patient-level; a patient
  with neither gets a 7:1:2 hash of its subject id.
"""

from __future__ import annotations

from pathlib import Path

from models.datasets import egd_cxr, reflacx
from models.datasets.base import CaseSource, DatasetError, hash_split
from models.datasets.image_paths import ImageResolver
from models.datasets.tables import Row, read_table
from models.schema import Case
from models.vocab import FINDINGS

NAME = "mimic-eye"
META_COLUMNS = ("dicom_id",)


def patient_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("patient_"))


def read_cxr_meta(root: Path, patients: list[Path], warnings: list[str]) -> dict[str, Row]:
    """dicom_id -> cxr_meta row, from ``spreadsheets/cxr_meta.csv`` and any per-patient copies."""
    paths = [root / "spreadsheets" / "cxr_meta.csv"] + [p / "CXR-JPG" / "cxr_meta.csv" for p in patients]
    meta: dict[str, Row] = {}
    for path in paths:
        if path.is_file():
            for row in read_table(path, META_COLUMNS, what="MIMIC-Eye cxr_meta"):
                meta.setdefault(row.text("dicom_id"), row)
    return meta


def _size(row: Row | None) -> tuple[int, int] | None:
    if row is None:
        return None
    w, h = row.optional_number("Columns"), row.optional_number("Rows")
    return (int(w), int(h)) if w and h and w > 0 and h > 0 else None


def _patient_image(patient: Path, dicom_id: str) -> str:
    for sub, suffix in (("CXR-JPG", ".jpg"), ("CXR-DICOM", ".dcm")):
        hits = sorted((patient / sub).glob(f"*/{dicom_id}{suffix}"))
        if hits:
            return str(hits[0].resolve())
    return ""


def _patient_tables(patient: Path, warnings: list[str]) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Official split per dicom_id and MIMIC-CXR CheXpert labels per study_id of one patient."""
    splits, chexpert = {}, {}
    split_path = patient / "CXR-JPG" / "cxr_split.csv"
    if split_path.is_file():
        for row in read_table(split_path, ("dicom_id", "split"), what="MIMIC-CXR split"):
            splits[row.text("dicom_id")] = reflacx.SPLIT_NAMES.get(row.text("split").lower(), "train")
    chexpert_path = patient / "CXR-JPG" / "cxr_chexpert.csv"
    if chexpert_path.is_file():
        for row in read_table(chexpert_path, ("study_id",), what="MIMIC-CXR CheXpert labels"):
            labels = {f: int(v) for f in FINDINGS if (v := row.optional_number(f)) in (1.0, 0.0, -1.0)}
            chexpert[row.text("study_id")] = labels
    return splits, chexpert


def _mimic_report(patient: Path, study_id: str) -> str | None:
    path = patient / "CXR-DICOM" / f"s{study_id}.txt"
    return path.read_text(encoding="utf-8", errors="replace").strip() if study_id and path.is_file() else None


def _reflacx_readings(patient: Path, warnings: list[str], dropped: dict[str, int]) -> list[reflacx.Reading]:
    ref_dir = patient / "REFLACX"
    if not (ref_dir / "metadata.csv").is_file():
        return []
    readings = []
    rows, label_columns = reflacx.metadata_rows(ref_dir / "metadata.csv", warnings, dropped)
    for row in rows:
        rid = row.text("id")
        folder = ref_dir / "main_data" / rid if (ref_dir / "main_data" / rid).is_dir() else ref_dir / rid
        gaze = ref_dir / "gaze_data" / rid / "gaze.csv"
        if not gaze.is_file() and (folder / "gaze.csv").is_file():
            gaze = folder / "gaze.csv"
        reading = reflacx.read_reading(folder, row, label_columns, warnings, gaze_csv=gaze, dropped=dropped)
        if reading is not None:
            readings.append(reading)
    return readings


def _egd_cases(patient: Path, meta: dict[str, Row], image_for, warnings: list[str], dropped: dict[str, int]) -> list[Case]:
    eye = patient / "EyeGaze"
    if not (eye / "master_sheet.csv").is_file():
        return []
    master = egd_cxr.read_master(eye / "master_sheet.csv", warnings)
    fixations = egd_cxr.read_fixations(eye / "fixations.csv", master, warnings, dropped)
    box_path = eye / "bounding_boxes.csv"
    boxes = egd_cxr.read_anatomy_boxes(box_path, warnings) if box_path.is_file() else {}
    sizes = {d: s for d in master if (s := _size(meta.get(d)))}
    cases, _ = egd_cxr.build_cases(
        master, fixations, boxes, eye / egd_cxr.TRANSCRIPTS, lambda d, row: image_for(patient, d, row.text("path")),
        warnings, sizes=sizes, fixations_path=eye / "fixations.csv", dataset=NAME, dropped=dropped,
    )
    return cases


def read_mimic_eye(root: str | Path, *, images: str | Path | None = None) -> CaseSource:
    """Read a MIMIC-Eye folder (see module docstring) into a :class:`CaseSource`.

    Args:
        root: the folder holding ``patient_<subject_id>/`` folders.
        images: optional MIMIC-CXR root used when a patient folder lacks the image.

    Raises:
        DatasetError: no patient folders, or a required file/column is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    patients = patient_folders(root)
    if not patients:
        raise DatasetError(f"{root}: no patient_<subject_id>/ folders (is this a MIMIC-Eye folder?)")
    warnings: list[str] = []
    dropped: dict[str, int] = {}
    meta = read_cxr_meta(root, patients, warnings)
    resolver = ImageResolver(images)

    def image_for(patient: Path, dicom_id: str, hint: str) -> str:
        return _patient_image(patient, dicom_id) or resolver.resolve(hint, dicom_id)

    readings, patient_of, split_of, chexpert_of, egd_cases = [], {}, {}, {}, []
    for patient in patients:
        splits, chexpert_of[patient] = _patient_tables(patient, warnings)
        split_of.update(splits)
        for reading in _reflacx_readings(patient, warnings, dropped):
            readings.append(reading)
            patient_of[reading.id] = patient
        egd_cases += [(patient, c) for c in _egd_cases(patient, meta, image_for, warnings, dropped)]

    ref_cases, ref_splits = reflacx.cases_from_readings(
        readings, lambda r: image_for(patient_of[r.id], r.dicom_id, r.image), dataset=NAME
    )
    for split, ids in ref_splits.items():
        for case_id in ids:
            split_of.setdefault(case_id, split)
    by_id = {c.id: c for c in ref_cases}
    case_patient = {c.id: patient_of[c.extra["reflacx_id"]] for c in ref_cases}
    # MIMIC-CXR splits are patient-level: an image without a split file entry follows its patient's readings.
    patient_split = {}
    for c in ref_cases:
        patient_split.setdefault(case_patient[c.id], split_of[c.id])
    for patient, c in egd_cases:
        if c.id in by_id:
            primary = by_id[c.id]
            primary.readers["egd-cxr"] = c.fixations
            primary.extra["egd"] = {**c.extra, "findings": c.findings, "report": c.report.findings if c.report else ""}
        else:
            by_id[c.id] = c
            case_patient[c.id] = patient

    cases, splits = list(by_id.values()), {"train": [], "val": [], "test": []}
    for c in cases:
        patient = case_patient[c.id]
        row = meta.get(c.id)
        if row is not None:
            c.image.view = row.text("ViewPosition") or c.image.view
            study = row.text("study_id")
            if study in chexpert_of[patient]:
                c.extra["mimic_cxr_chexpert"] = chexpert_of[patient][study]
            report = _mimic_report(patient, study)
            if report:
                c.extra["mimic_cxr_report"] = report
        subject = patient.name.split("_", 1)[-1]
        c.extra.setdefault("subject_id", subject)
        split = split_of.get(c.id) or patient_split.get(patient) or hash_split(subject)
        splits[split].append(c.id)
    missing = resolver.warning(len(cases))
    if missing:
        warnings.append(missing)
    return CaseSource(NAME, cases, splits, False, warnings, dropped)
