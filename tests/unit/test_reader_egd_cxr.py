"""EGD-CXR reader on the hand-written fixture shaped like the published files: all 37 Gazepoint columns,
``Time = FPOGS + FPOGD`` on the per-image clock, a calibration screen saved as the next image's id minus its
last 5 characters (screen pixels), off-image points of -1, -2 and -3 (the -1 scaled by the image size), a
multi-line indication and a few malformed rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models.datasets.base import DatasetError
from models.datasets.egd_cxr import calibration_owner, read_egd_cxr, read_fixations

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "egd_cxr"
E1 = "e1a2b3c4-d5e6f7a8-b9c0d1e2-f3a4b5c6-d7e8f9a0"
E2 = "e2b3c4d5-e6f7a8b9-c0d1e2f3-a4b5c6d7-e8f9a0b1"  # the 20th image: a calibration screen comes before it
E3 = "e3c4d5e6-f7a8b9c0-d1e2f3a4-b5c6d7e8-f9a0b1c2"


@pytest.fixture(scope="module")
def source():
    return read_egd_cxr(FIXTURE)


def test_cases_and_patient_splits(source):
    assert [c.id for c in source.cases] == [E1, E2, E3]
    assert sorted(i for ids in source.splits.values() for i in ids) == sorted([E1, E2, E3])


def test_multiline_indication_parsed_with_real_csv(source):
    case = source.by_id()[E1]
    assert case.extra["cxr_exam_indication"] == "___F with CHF and  shortness of breath// ?Pulmonary edema\n\nEval for effusion"
    assert case.extra["egd_class"] == "CHF"
    assert case.extra["radiologist_findings"] == {
        "enlarged_cardiac_silhouette": 1.0, "pleural_effusion_or_thickening": 1.0, "pulmonary_edema__hazy_opacity": 1.0,
    }


def test_chx_columns_become_findings(source):
    assert source.by_id()[E1].findings == {"Cardiomegaly": 1, "Edema": 1, "Pleural Effusion": -1}
    assert source.by_id()[E2].findings == {"No Finding": 1, "Support Devices": 0}
    # "yes" is not a CheXpert value: warned (with the master sheet line, after a 3-line record) and left out.
    assert source.by_id()[E3].findings == {"Consolidation": 1, "Lung Opacity": 1}
    assert any("master_sheet.csv:6: column 'pneumonia__chx'" in w for w in source.warnings)


def test_fixations_keep_the_per_image_clock_and_drop_off_image_rows(source):
    fix = source.by_id()[E1].fixations
    assert [(f.x, f.y) for f in fix] == [(1250.0, 1570.0), (640.0, 950.0), (1960.0, 2150.0)]
    np.testing.assert_allclose([f.t for f in fix], [0.12389, 0.45210, 1.15031])  # FPOGS as it is
    np.testing.assert_allclose([f.duration for f in fix], [0.28761, 0.36133, 0.44524])
    path = str(FIXTURE / "fixations.csv")
    assert f"{path}:6: negative duration FPOGD = -0.05; row skipped" in source.warnings
    assert f"{path}:7: column 'X_ORIGINAL': expected a number, got 'abc'; row skipped" in source.warnings
    # -2 (E1), -3 (E2) and a -1 y only (E3): every negative value is off the image, whatever the scale.
    assert f"{path}: dropped 3 of 15 fixations off the image (X_ORIGINAL/Y_ORIGINAL < 0)" in source.warnings
    assert source.dropped["fixations off the image (X/Y_ORIGINAL < 0)"] == 3
    assert source.dropped["malformed fixation rows"] == 2
    assert [(f.x, f.y) for f in source.by_id()[E3].fixations] == [(1420.0, 610.0), (880.0, 1010.0)]


def test_calibration_screen_is_never_joined_to_an_image(source):
    fix = source.by_id()[E2].fixations
    assert [(f.x, f.y) for f in fix] == [(1530.0, 1240.0), (560.0, 820.0), (2310.0, 1740.0)]  # no (958, 545)
    assert source.dropped["EGD-CXR calibration screens (DICOM_ID = next image's id minus 5 characters)"] == 1
    assert any("2 rows of 1 calibration screens" in w for w in source.warnings)
    calibration: list[dict] = []
    read_fixations(FIXTURE / "fixations.csv", [E1, E2, E3], [], calibration=calibration)
    assert calibration == [{"id": E2[:-5], "before": E2, "x": 962.0, "y": 538.0, "fpogx": 0.50104, "fpogy": 0.49815}]


def test_calibration_owner_needs_exactly_the_five_missing_characters():
    ids = [E1, E2, E3]
    assert calibration_owner(E2[:-5], ids) == E2
    assert calibration_owner(E2[:-4], ids) is None and calibration_owner(E2[:-6], ids) is None
    assert calibration_owner("", ids) is None and calibration_owner("e2b3", ids) is None


def test_unknown_ids_are_counted_not_joined(tmp_path):
    root = tmp_path / "egd"
    shutil.copytree(FIXTURE, root)
    lines = (root / "fixations.csv").read_text().splitlines()
    lines.append(lines[1].replace(E1, "ffffffff-0000-1111-2222-333333333333"))
    lines.append(lines[2].replace(E1, E1[:20]))  # a prefix, but not the calibration shape
    (root / "fixations.csv").write_text("\n".join(lines) + "\n")
    src = read_egd_cxr(root)
    assert len(src.by_id()[E1].fixations) == 3
    assert src.dropped["fixation rows of a DICOM_ID in no master_sheet.csv row"] == 2
    assert any("neither in master_sheet.csv nor a calibration screen" in w for w in src.warnings)


def test_anatomy_boxes_and_transcripts(source):
    e1 = source.by_id()[E1]
    assert e1.boxes == []  # anatomy is not a finding
    assert [b["name"] for b in e1.extra["anatomy_boxes"]] == ["cardiac silhouette", "right costophrenic angle"]
    assert any("bounding_boxes.csv:4: needs x1 < x2" in w for w in source.warnings)
    assert e1.report.findings.startswith("the heart is enlarged")
    assert e1.extra["phrase_timestamps"][1] == ["possible small right pleural effusion", 6.1, 8.3]
    assert source.by_id()[E3].report is None
    assert any("transcript.json: malformed transcript" in w for w in source.warnings)


def test_image_size_from_header_drops_points_outside(tmp_path):
    from PIL import Image

    images = tmp_path / "flat"
    images.mkdir()
    Image.new("L", (1900, 2200)).save(images / f"{E1}.png")  # smaller than the gaze extent on purpose
    src = read_egd_cxr(FIXTURE, images=images)
    e1 = src.by_id()[E1]
    assert e1.image.path == str((images / f"{E1}.png").resolve())
    assert (e1.image.width, e1.image.height) == (1900, 2200)
    assert [(f.x, f.y) for f in e1.fixations] == [(1250.0, 1570.0), (640.0, 950.0)]
    assert any(w.endswith(f"[{E1}]: dropped 1 of 3 fixations outside the 1900x2200 image") for w in src.warnings)
    assert any("2 of 3 images not found" in w for w in src.warnings)
    assert src.by_id()[E3].image.width == 0  # unknown without the image


def test_missing_required_file_or_column(tmp_path):
    root = tmp_path / "egd"
    shutil.copytree(FIXTURE, root)
    text = (root / "fixations.csv").read_text()
    (root / "fixations.csv").write_text(text.replace("FPOGD", "FPOG_D", 1))
    with pytest.raises(DatasetError, match=r"fixations.csv: missing column\(s\) FPOGD"):
        read_egd_cxr(root)
    (root / "fixations.csv").unlink()
    with pytest.raises(DatasetError, match=r"fixations.csv: no such file"):
        read_egd_cxr(root)
