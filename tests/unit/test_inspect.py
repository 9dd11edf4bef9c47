"""`gazelabel inspect` on an image, case JSONs (valid and not) and the dataset fixtures, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.cli import main
from models.schema import Box, Case, Fixation, ImageRef, Report, save_case

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["inspect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_real_dicom(capsys, real_cr_path):
    code, out, _ = run_cli(capsys, str(real_cr_path), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["kind"] == "image" and summary["format"] == "dicom"
    assert summary["photometric"] == "MONOCHROME1"
    assert summary["size"] == "1841 x 1955 px (W x H)" and summary["spacing"] == "unknown"  # this CR has no PixelSpacing
    assert "-bit stored" in summary["stored values"] and summary["loaded values"].startswith("0.000..1.000")


def test_png_table(capsys, tmp_path):
    from PIL import Image

    path = tmp_path / "x.png"
    Image.new("L", (40, 30), color=7).save(path)
    code, out, _ = run_cli(capsys, str(path))
    assert code == 0
    assert "40 x 30 px (W x H)" in out and "7..7 (mode L, uint8)" in out and "spacing" in out


def test_case_json(capsys, tmp_path):
    case = Case(
        id="c1",
        image=ImageRef("img.png", 100, 80, synthetic=True),
        findings={"Cardiomegaly": 1, "Edema": 0, "Pleural Effusion": -1},
        boxes=[Box("Cardiomegaly", 10, 10, 50, 40)],
        fixations=[Fixation(20, 20, 0.0, 0.3), Fixation(60, 50, 0.35, 0.2)],
        readers={"r2": [Fixation(21, 19, 0.0, 0.25)]},
        report=Report("The heart is enlarged.", "Cardiomegaly."),
    )
    path = save_case(case, tmp_path / "c1.json")
    code, out, _ = run_cli(capsys, str(path), "--json")
    s = json.loads(out)
    assert code == 0 and s["validation"] == "ok" and s["id"] == "c1"
    assert s["findings"] == "1 positive, 1 negative, 1 uncertain of 3 labelled"
    assert s["boxes"] == "1 (Cardiomegaly)" and s["fixations"].startswith("2 (0.50 s")
    assert s["readers"] == "1 (r2)" and s["report"] == "5 words, 36 characters"
    assert s["synthetic"].startswith("yes") and s["image file"] == "img.png (MISSING)"
    # In a case store the record sits in cases/ and the image at the root.
    from PIL import Image

    store_case = save_case(case, tmp_path / "cases" / "c1.json")
    Image.new("L", (100, 80)).save(tmp_path / "img.png")
    code, out, _ = run_cli(capsys, str(store_case), "--json")
    assert json.loads(out)["image file"] == f"{(tmp_path / 'img.png').resolve()} (found)"


def test_invalid_case_reports_validation_failure(capsys, tmp_path):
    path = tmp_path / "bad.json"
    data = Case(id="b", image=ImageRef("", 100, 100), fixations=[Fixation(500, 5)]).to_dict()
    path.write_text(json.dumps(data))
    code, out, _ = run_cli(capsys, str(path))
    assert code == 1
    assert "FAILED: fixations[0]: point (500.0, 5.0) lies outside the 100x100 image" in out


def test_broken_json_is_a_clear_error(capsys, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    code, _, err = run_cli(capsys, str(path))
    assert code == 2 and "broken.json: not valid JSON" in err and "Traceback" not in err


@pytest.mark.parametrize("folder, fmt, cases", [("reflacx", "reflacx", 2), ("egd_cxr", "egd-cxr", 3), ("mimic_eye", "mimic-eye", 2)])
def test_dataset_folders(capsys, folder, fmt, cases):
    code, out, _ = run_cli(capsys, str(FIXTURES / folder), "--json")
    s = json.loads(out)
    assert code == 0 and s["format"] == fmt and s["cases"] == cases and s["with gaze"] == cases
    assert s["warnings"] == len(s["warning list"]) > 0
    assert {p["finding"] for p in s["prevalence"]} >= {"Cardiomegaly"}
    assert s["dropped"] and all(isinstance(n, int) and n > 0 for n in s["dropped"].values())


def test_dataset_table_lists_prevalence_and_warnings(capsys):
    code, out, _ = run_cli(capsys, str(FIXTURES / "reflacx"), "--warnings", "2")
    assert code == 0
    assert "format" in out and "reflacx" in out and "splits" in out and "train 1, val 1, test 0" in out
    assert "Pleural Effusion" in out and "warnings (2 of 11 shown):" in out
    assert "left out by the reader (and why):" in out
    assert "     2  readings REFLACX discarded (eye_tracking_data_discarded; no gaze or dictation)" in out


def test_egd_table_says_calibration_screens_were_left_out(capsys):
    code, out, _ = run_cli(capsys, str(FIXTURES / "egd_cxr"))
    assert code == 0
    assert "     1  EGD-CXR calibration screens (DICOM_ID = next image's id minus 5 characters)" in out
    assert "     3  fixations off the image (X/Y_ORIGINAL < 0)" in out


def test_bad_paths(capsys, tmp_path):
    code, _, err = run_cli(capsys, str(tmp_path / "nothing.dcm"))
    assert code == 2 and "nothing.dcm: no such file or folder" in err
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    code, _, err = run_cli(capsys, str(odd))
    assert code == 2 and "notes.txt: not an image, a case JSON or a dataset" in err
    code, _, err = run_cli(capsys, str(tmp_path))
    assert code == 2 and "not a recognised dataset" in err
    bad_image = tmp_path / "fake.png"
    bad_image.write_bytes(b"not a png")
    code, _, err = run_cli(capsys, str(bad_image))
    assert code == 2 and "fake.png" in err
