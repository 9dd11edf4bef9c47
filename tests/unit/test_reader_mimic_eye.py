"""MIMIC-Eye reader on the hand-written fixture in the builder's real layout: ``REFLACX/main_data/<id>/``,
``REFLACX/gaze_data/<id>/gaze.csv``, one ``REFLACX/metadata.csv`` for all phases (labels as floats, blank where a
phase did not ask), ``EyeGaze/{master_sheet,fixations,eye_gaze,bounding_boxes}.csv``, ``CXR-JPG/`` tables and
``CXR-DICOM/s<study>.txt``; every table with a leading pandas index column; REFLACX + EGD-CXR overlap."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.datasets.base import DatasetError
from models.datasets.mimic_eye import read_mimic_eye

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mimic_eye"
M1 = "a1b2c3d4-e5f6a7b8-c9d0e1f2-a3b4c5d6-e7f8a9b0"  # REFLACX reading (+ a discarded one) and EGD-CXR reading
M2 = "b2c3d4e5-f6a7b8c9-d0e1f2a3-b4c5d6e7-f8a9b0c1"  # EGD-CXR only


@pytest.fixture(scope="module")
def source():
    return read_mimic_eye(FIXTURE)


def test_cases_splits_and_views(source):
    assert [c.id for c in source.cases] == [M1, M2]
    assert source.splits == {"train": [M1], "val": [], "test": [M2]}  # official MIMIC-CXR split files
    assert source.by_id()[M1].image.view == "AP" and source.by_id()[M2].image.view == "PA"


def test_reflacx_reading_parsed_by_reflacx_rules(source):
    case = source.by_id()[M1]
    assert case.source.dataset == "mimic-eye" and case.source.ref == "P209R358761"
    assert [(f.x, f.y, f.t) for f in case.fixations] == [(1300.0, 1400.0, 0.31), (1810.0, 2490.0, 0.66), (1280.0, 2010.0, 1.08)]
    # Phase-2 labels in a table that also has phase-1 columns (empty cells = not asked).
    assert case.findings["Cardiomegaly"] == 1 and case.findings["Edema"] == 1 and case.findings["Lung Opacity"] == 1
    assert "Pleural Effusion" not in case.findings and "Wide mediastinum" not in case.extra["other_labels"]
    assert [(b.finding, b.xyxy) for b in case.boxes] == [("Pleural Other", (1600.0, 2200.0, 2450.0, 2900.0))]
    assert case.report.findings.startswith("Enlarged cardiac silhouette")


def test_overlapping_egd_reading_becomes_a_reader(source):
    case = source.by_id()[M1]
    assert list(case.readers) == ["egd-cxr"]
    assert [(f.x, f.y) for f in case.readers["egd-cxr"]] == [(1200.0, 1500.0), (1900.0, 2500.0)]
    assert case.extra["egd"]["egd_class"] == "CHF"
    assert case.extra["egd"]["findings"] == {"Cardiomegaly": 1, "Edema": 1}


def test_mimic_cxr_report_and_labels_kept_in_extra(source):
    case = source.by_id()[M1]
    assert "Moderate cardiomegaly" in case.extra["mimic_cxr_report"]
    assert case.extra["mimic_cxr_chexpert"] == {"Cardiomegaly": 1, "Edema": 1, "Pneumothorax": 0, "Pleural Effusion": 1, "Support Devices": 1}


def test_egd_case_with_size_from_cxr_meta_and_bad_rows(source):
    case = source.by_id()[M2]
    assert (case.image.width, case.image.height) == (3056, 2544)  # Columns x Rows
    assert [(f.x, f.y) for f in case.fixations] == [(2200.0, 1300.0), (900.0, 1700.0)]
    fix = str(FIXTURE / "patient_17462352" / "EyeGaze" / "fixations.csv")
    assert f"{fix}:4: column 'X_ORIGINAL': expected a number, got ''; row skipped" in source.warnings
    assert f"{fix} [{M2}]: dropped 1 of 3 fixations outside the 3056x2544 image" in source.warnings
    assert case.report.findings.startswith("patchy right lower lobe")
    assert case.findings == {"Lung Opacity": 1, "Pneumonia": 1}


def test_images_found_in_patient_folder(tmp_path):
    root = tmp_path / "mimic-eye"
    shutil.copytree(FIXTURE, root)
    jpg = root / "patient_17462352" / "CXR-JPG" / "s53254222" / f"{M2}.jpg"
    jpg.parent.mkdir(parents=True)
    jpg.write_bytes(b"\xff\xd8")
    src = read_mimic_eye(root)
    assert src.by_id()[M2].image.path == str(jpg.resolve())
    assert src.by_id()[M1].image.path == ""


def test_not_a_mimic_eye_folder(tmp_path):
    with pytest.raises(DatasetError, match="no patient_<subject_id>/ folders"):
        read_mimic_eye(tmp_path)


def test_real_layout_main_data_gaze_data_and_discarded_reading(source):
    case = source.by_id()[M1]
    patient = FIXTURE / "patient_16004941" / "REFLACX"
    assert case.extra["gaze_csv"] == str((patient / "gaze_data" / "P209R358761" / "gaze.csv").resolve())
    assert case.extra["fixation_px_per_deg"][0] == [59.0, 59.0]
    # P209R901122 is discarded: its main_data folder holds only the chest box and the ellipses.
    assert sorted(p.name for p in (patient / "main_data" / "P209R901122").iterdir()) == [
        "anomaly_location_ellipses.csv", "chest_bounding_box.csv"]
    assert "P209R901122" not in case.readers
    assert source.dropped["readings REFLACX discarded (eye_tracking_data_discarded; no gaze or dictation)"] == 1


def test_egd_times_are_the_per_image_clock(source):
    fix = source.by_id()[M2].fixations
    assert [round(f.t, 3) for f in fix] == [0.35, 1.55] and [f.duration for f in fix] == [0.25, 0.35]
