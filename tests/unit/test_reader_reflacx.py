"""REFLACX reader on the hand-written fixture shaped like the published files: CRLF line ends, per-fixation
angular resolution that halves when the reader zooms 2x, fixations just outside the image (kept within 0.5
degrees, as REFLACX's filter does) and outside what was shown (dropped), ellipses with the ``Other`` column and
certainty 1-5, a discarded reading whose folder holds only the chest box and ellipses, malformed rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.datasets.base import DatasetError
from models.datasets.reflacx import keep_fixation, read_gaze, read_reflacx, reflacx_heatmap
from models.schema import Case, save_case, load_case

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reflacx"
A = "3a9b2c1d-7e8f6a5b-4c3d2e1f-0a9b8c7d-6e5f4a3b"  # read twice in phase 1
B = "5c6d7e8f-1a2b3c4d-9e8f7a6b-2c3d4e5f-8a9b0c1d"  # phase 3
C = "7d8e9f0a-3b4c5d6e-1f2a3b4c-6d7e8f9a-0b1c2d3e"  # discarded in both phases


@pytest.fixture(scope="module")
def source():
    return read_reflacx(FIXTURE)


def test_one_case_per_dicom_and_discarded_rows_dropped(source):
    ids = [c.id for c in source.cases]
    assert ids == [A, B]
    assert C not in ids  # its folder exists (chest box and ellipses only) but the reading is discarded
    assert (FIXTURE / "main_data" / "P103R441288" / "chest_bounding_box.csv").is_file()
    assert source.dropped["readings REFLACX discarded (eye_tracking_data_discarded; no gaze or dictation)"] == 2
    assert source.splits == {"train": [A], "val": [B], "test": []}  # "validate" -> "val"


def test_second_reading_goes_to_readers_and_extra(source):
    case = source.by_id()[A]
    assert case.source.ref == "P102R108387" and case.extra["reflacx_id"] == "P102R108387"
    assert list(case.readers) == ["P102R915364"]
    assert len(case.readers["P102R915364"]) == 4
    other = case.extra["readings"]["P102R915364"]
    assert other["findings"]["Atelectasis"] == 1
    assert other["boxes"][0]["finding"] == "Pleural Effusion"
    assert other["report"].startswith("Large left pleural effusion")


def test_fixations_durations_times_and_dropped_rows(source):
    case = source.by_id()[A]
    got = [(f.x, f.y, round(f.t, 3), round(f.duration, 3)) for f in case.fixations]
    # First fixation starts 0.05 s before the audio: all times shift by +0.05 and t0 records it.
    assert got == [
        (1270.0, 1530.0, 0.0, 0.26),
        (1205.0, 1012.0, 0.312, 0.278),
        (1850.0, 2420.0, 0.64, 0.325),
        (2544.0, 1500.0, 1.01, 0.16),  # 16 px = 0.28 degrees right of the image: kept, onto the edge
        (640.0, 2380.0, 1.21, 0.32),
        (1300.0, 2100.0, 1.85, 0.5),  # while zoomed 2x
    ]
    assert case.extra["t0_audio_s"] == pytest.approx(-0.05)
    assert case.extra["word_timestamps"][0] == ["Small", pytest.approx(0.57), pytest.approx(0.85)]
    # Pixels per degree per fixation: it halves while zoomed, so no single value describes the reading.
    assert case.extra["fixation_px_per_deg"][0] == [57.6172, 57.5219]
    assert case.extra["fixation_px_per_deg"][5] == [28.8086, 28.761]
    assert case.extra["fixation_shown_rect"][5] == [636.0, 764.0, 1908.0, 2292.0]
    assert len(case.extra["fixation_px_per_deg"]) == len(case.extra["fixation_shown_rect"]) == len(case.fixations)
    assert case.extra["px_per_deg"] == pytest.approx(57.569, abs=1e-3)
    fix_file = str(FIXTURE / "main_data" / "P102R108387" / "fixations.csv")
    assert f"{fix_file}:7: column 'x_position': expected a number, got 'abc'; row skipped" in source.warnings
    assert any(w.startswith(f"{fix_file}:8: negative duration") for w in source.warnings)
    # 1.8 degrees right of the image, and 1.25 degrees left of the zoomed-in part that was shown.
    assert f"{fix_file}: dropped 2 of 10 fixations more than 0.5 degrees outside the image shown (or at the buttons)" in source.warnings
    assert source.dropped["fixations off the shown image (more than 0.5 degrees out, or at the buttons)"] == 2
    assert f"{fix_file}: 1 fixations within 0.5 degrees outside the image moved onto its edge" in source.warnings


def test_keep_fixation_follows_the_reflacx_filter():
    shown, screen, ppd = (0.0, 0.0, 2544.0, 3056.0), (590.0, 0.0, 1886.0, 1557.0), (57.6, 57.5)
    assert keep_fixation(1000, 1000, 2544, 3056, ppd, shown, screen)
    assert keep_fixation(2544 + 0.49 * 57.6, 1500, 2544, 3056, ppd, shown, screen)
    assert not keep_fixation(2544 + 0.51 * 57.6, 1500, 2544, 3056, ppd, shown, screen)
    assert not keep_fixation(-0.3 * 57.6, 1500, 2544, 3056, None, shown, screen)  # outside, no resolution: dropped
    # Near the button panel (screen 10,933-650,1122): dropped even within 0.5 degrees of the image.
    assert not keep_fixation(-10.0, 2200, 2544, 3056, ppd, shown, screen)
    # Without the rectangle columns: the image rectangle and the same 0.5 degrees.
    assert keep_fixation(-0.4 * 57.6, 10, 2544, 3056, ppd, None, None)
    assert not keep_fixation(-0.6 * 57.6, 10, 2544, 3056, ppd, None, None)


def test_reflacx_heatmap_uses_each_fixations_own_sigma_and_the_shown_rectangle():
    from models.schema import Fixation

    fix = [Fixation(500, 500, 0.0, 0.4), Fixation(1500, 500, 0.5, 0.2)]
    ppd = [[50.0, 50.0], [100.0, 100.0]]
    full = reflacx_heatmap(fix, ppd, [None, None], 2000, 1000, shape=(100, 200))
    assert full.shape == (100, 200) and full.sum() == pytest.approx(1.0)
    # Duration-weighted peaks with sigma 50 vs 100 px: peak ratio = (0.4 / 50^2) / (0.2 / 100^2) = 8.
    assert full[50, 50] / full[50, 150] == pytest.approx(8.0, rel=0.02)
    # The second fixation was made while only the left half was shown: it adds nothing on the right.
    clipped = reflacx_heatmap(fix, ppd, [None, [0, 0, 1000, 1000]], 2000, 1000, shape=(100, 200))
    assert clipped[:, 100:].sum() < 1e-9 < full[:, 100:].sum() and clipped.sum() == pytest.approx(1.0)
    assert reflacx_heatmap([], [], [], 20, 10).sum() == 0


def test_labels_map_to_chexpert_with_certainty_threshold(source):
    case = source.by_id()[A]
    f = case.findings
    assert f["Cardiomegaly"] == 1  # Enlarged cardiac silhouette 5
    assert f["Lung Lesion"] == 1  # max(Mass 3, Nodule 1)
    assert f["Pleural Effusion"] == 1 and f["Pleural Other"] == 0  # thickening 2 < 3
    assert f["Support Devices"] == 1 and f["No Finding"] == 0
    other = case.extra["other_labels"]
    assert other["Emphysema"] == 4 and other["Other"] == "Scoliosis|Granuloma" and other["Quality issue"] is False
    # The unparseable certainty is a warning naming file and line, and that label is left out.
    assert any("metadata_phase_1.csv:3: column 'Consolidation'" in w for w in source.warnings)
    assert "Consolidation" not in case.extra["readings"]["P102R915364"]["findings"]
    assert any("metadata_phase_1.csv:5: column 'image_size_x'" in w and w.endswith("row skipped") for w in source.warnings)


def test_ellipses_become_boxes_or_extra(source):
    case = source.by_id()[A]
    assert [(b.finding, b.xyxy) for b in case.boxes] == [
        ("Pleural Effusion", (1490.0, 1980.0, 2380.0, 2750.0)),
        ("Cardiomegaly", (700.0, 1250.0, 1900.0, 2300.0)),
        ("Lung Lesion", (520.0, 880.0, 910.0, 1260.0)),  # Mass + Nodule on one ellipse -> one box
    ]
    other = case.extra["other_ellipses"]
    assert other[0]["labels"] == ["Emphysema"]
    assert other[1] == {"labels": ["Atelectasis"], "certainty": 2.0, "xyxy": [2100.0, 2400.0, 2544.0, 3056.0]}  # clipped
    ell = str(FIXTURE / "main_data" / "P102R108387" / "anomaly_location_ellipses.csv")
    assert f"{ell}:7: column 'certainty': expected a number, got 'high'; row skipped" in source.warnings
    assert f"{ell}:8: no label is True for this ellipse; row skipped" in source.warnings
    assert f"{ell}:10: column 'certainty': an ellipse's certainty runs 1-5, got 0; row skipped" in source.warnings
    assert other[2] == {"labels": ["Other"], "certainty": 3.0, "xyxy": [1800.0, 300.0, 2300.0, 900.0]}  # the Other column
    phase3 = source.by_id()[B]
    assert sorted(b.finding for b in phase3.boxes) == ["Atelectasis", "Consolidation"]


def test_report_chest_box_and_gaze_path(source):
    case = source.by_id()[A]
    assert case.report.findings.startswith("Small left pleural effusion.")
    assert case.extra["chest_box"] == [310.0, 402.0, 2280.0, 2760.0]
    assert case.extra["gaze_csv"].endswith("gaze_data/P102R108387/gaze.csv")
    assert source.by_id()[B].extra["gaze_csv"] is None
    assert case.extra["mimic_image"].endswith(f"s58821758/{A}.dcm")
    assert case.image.path == "" and (case.image.width, case.image.height) == (2544, 3056)


def test_cases_survive_json_round_trip(source, tmp_path):
    for case in source.cases:
        back = load_case(save_case(case, tmp_path / f"{case.id}.json"))
        assert back.to_dict() == Case.from_dict(case.to_dict()).to_dict()
        assert len(back.fixations) == len(case.fixations)


def test_images_resolved_under_mimic_root(tmp_path):
    root = tmp_path / "mimic-cxr-jpg" / "2.0.0"
    jpg = root / "files" / "p18" / "p18004941" / "s58821758" / f"{A}.jpg"
    jpg.parent.mkdir(parents=True)
    jpg.write_bytes(b"\xff\xd8")  # only existence matters for resolution
    src = read_reflacx(FIXTURE, images=root)
    assert src.by_id()[A].image.path == str(jpg.resolve())
    assert src.by_id()[B].image.path == ""
    assert any("1 of 2 images not found" in w for w in src.warnings)


def test_phase_filter_and_missing_files(tmp_path):
    only3 = read_reflacx(FIXTURE, phases=(3,))
    assert [c.id for c in only3.cases] == [B]
    root = tmp_path / "reflacx"
    shutil.copytree(FIXTURE, root)
    (root / "main_data" / "P300R512118" / "fixations.csv").unlink()
    src = read_reflacx(root)  # a reading without fixations is left out with a warning, not fatal
    assert [c.id for c in src.cases] == [A]
    assert src.dropped["readings without fixations.csv"] == 1
    assert any("P300R512118/fixations.csv: no such file" in w for w in src.warnings)
    with pytest.raises(DatasetError, match="metadata_phase"):
        read_reflacx(tmp_path / "empty")


def test_missing_column_names_the_file(tmp_path):
    root = tmp_path / "reflacx"
    shutil.copytree(FIXTURE, root)
    meta = root / "main_data" / "metadata_phase_3.csv"
    meta.write_text(meta.read_text().replace("dicom_id,", "dicomid,", 1))
    with pytest.raises(DatasetError, match=r"metadata_phase_3.csv: missing column\(s\) dicom_id"):
        read_reflacx(root)


def test_read_gaze_samples():
    samples, ppd = read_gaze(FIXTURE / "gaze_data" / "P102R108387" / "gaze.csv")
    assert samples.shape == (29, 3)  # 30 rows, one with empty position skipped
    assert ppd == pytest.approx(57.5)
    assert samples[0, 0] == pytest.approx(-0.05) and (samples[1:, 0] > samples[:-1, 0]).all()
