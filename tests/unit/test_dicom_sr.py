"""Case <-> DICOM SR (TID 1500), heatmap -> Parametric Map / Secondary Capture, `gazelabel export-sr / import-sr`.

Round trips over SYNTHETIC phantom cases (DICOM CR) and the real CR of pydicom-data; every written object
is checked with dciodvfy (dicom3tools; those checks skip when it is not installed) and read back with pydicom.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pydicom
import pytest

from models.cli import main
from models.datasets.phantom import generate_store
from models.datasets.store import CaseStore
from models.dicom_sr import (SRError, as_stored, case_to_sr, heatmap_to_parametric_map, heatmap_to_secondary_capture,
                             sr_to_case, write_sr)
from models.dicom_sr import codes as C
from models.dicom_sr.validate import dciodvfy, dciodvfy_path
from models.schema import Box, Case, CaseError, Evidence, Fixation, ImageRef, Prediction, Report, Source
from models.vocab import FINDINGS, REGION_NAMES

needs_dciodvfy = pytest.mark.skipif(dciodvfy_path() is None, reason="dciodvfy not installed (apt-get install dicom3tools)")


def valid(path) -> None:
    if dciodvfy_path() is None:
        return
    errors, _ = dciodvfy(path)
    assert errors == [], errors


@pytest.fixture(scope="module")
def phantom_dicom(tmp_path_factory):
    root = generate_store(tmp_path_factory.mktemp("sr") / "store", 4, seed=11, dicom=True, progress=False)
    return CaseStore(root)


@pytest.fixture(scope="module")
def real_cr(real_cr_path):
    return pydicom.dcmread(real_cr_path, stop_before_pixels=True)


def rich_case(image) -> Case:
    """A label using every part the SR carries: all three label values, scores, boxes with and without
    region and score, two readers, coverage, a report whose evidence links boxes and fixations."""
    w, h = int(image.Columns), int(image.Rows)
    return Case(
        id="real-cr/one", image=ImageRef(path="x.dcm", width=w, height=h, view="PA"),
        findings={"Cardiomegaly": 1, "Pleural Effusion": 0, "Pneumothorax": -1, "No Finding": 0},
        scores={"Cardiomegaly": 0.9312345678, "Edema": 0.1},
        boxes=[Box("Cardiomegaly", 700.25, 900.125, 1500.0, 1500.5, "heart", 0.88),
               Box("Pleural Effusion", 100, 1700, 600, 1900, "right costophrenic angle"),
               Box("Support Devices", 0, 0, 50.5, 60.25)],
        fixations=[Fixation(1024.3, 980.5, 0.0, 0.31), Fixation(800.0, 1000.0, 0.31, 0.2),
                   Fixation(-0.25, h + 0.5, 0.51, 0.1234567)],
        readers={"reader_2": [Fixation(1010.0, 990.0, 0.0, 0.27)], "anna^b\\c": [Fixation(5.0, 6.0, 1.5, 2.5)]},
        report=Report("The heart is enlarged.  No effusion.", "Cardiomegaly.",
                      [Evidence(0, "Cardiomegaly", "heart", 0, [0, 1]), Evidence(1, None, "right costophrenic angle"),
                       Evidence(2, "Cardiomegaly", None, None, [2])]),
        coverage={"visited": ["heart", "right upper zone"], "missed": ["left costophrenic angle"], "empty": []},
        source=Source("phantom", "seed=7", None),
    )


def roundtrip(case: Case, image, tmp_path, name="sr.dcm", **kwargs) -> Case:
    path = tmp_path / name
    write_sr(case_to_sr(case, image, **kwargs), path)
    valid(path)
    return sr_to_case(pydicom.dcmread(path))


# ---------------------------------------------------------------------------------------------- codes
def test_every_finding_and_region_has_a_code_with_its_source():
    from pydicom.sr._concepts_dict import concepts

    assert set(C.FINDING_CODES) == set(FINDINGS) and set(C.REGION_CODES) == set(REGION_NAMES)
    assert len({c.key for c in C.FINDING_CODES.values()}) == len(FINDINGS)  # no two findings share a code
    assert len(C.REGION_BY_CODE) == len(REGION_NAMES)  # location + laterality tell every region apart
    for code in C.all_codes():
        assert code.source in ("PS3.16", "TID 1500", "SNOMED CT", "local"), code
        if code.source == "PS3.16":  # the code is in the DICOM standard's tables with this meaning
            meanings = [m.lower() for d in concepts[code.scheme].values() for v, (m, _) in d.items() if v == code.value]
            assert any(m.startswith(code.meaning.lower()) for m in meanings), (code, meanings)
        if code.source == "local":
            assert code.scheme == C.LOCAL_SCHEME and C.LOCAL_SCHEME.startswith("99")
        if code.source == "TID 1500":
            assert code.key == ("C0034375", "UMLS")  # the template's own container, and nothing else
        if code.source == "SNOMED CT":
            assert code.scheme == "SCT" and code.value.isdigit()


# ---------------------------------------------------------------------------------------------- round trips
def test_phantom_cases_round_trip_exactly(phantom_dicom, tmp_path):
    parts = set()
    for image_id in phantom_dicom.ids():
        case = phantom_dicom.case(image_id)
        image = pydicom.dcmread(phantom_dicom.image_paths()[image_id], stop_before_pixels=True)
        back = roundtrip(case, image, tmp_path, f"{image_id}.dcm", annotator="radiologist-7")
        assert back.to_dict() == as_stored(case, image, annotator="radiologist-7").to_dict()
        parts |= {k for k in ("fixations", "readers", "report", "boxes", "coverage") if getattr(back, k)}
        assert back.image.synthetic and back.id == image_id
    assert parts == {"fixations", "readers", "report", "boxes", "coverage"}


def test_real_cr_rich_label_round_trips(real_cr, tmp_path):
    case = rich_case(real_cr)
    back = roundtrip(case, real_cr, tmp_path, annotator="alice")
    assert back.to_dict() == as_stored(case, real_cr, annotator="alice").to_dict()
    # what as_stored changes is only the representation: float32 coordinates, the image's own size
    assert back.boxes[0].x1 == pytest.approx(700.25) and back.fixations[2].duration == pytest.approx(0.1234567)
    assert back.report.evidence[0].box == 0 and back.report.evidence[0].fixations == [0, 1]
    assert back.readers["anna^b\\c"][0].t == 1.5  # a reader key PN cannot hold survives as the login name
    assert back.coverage["empty"] == [] and back.image.path == ""


def test_prediction_round_trips_with_the_models_as_device_observer(real_cr, tmp_path):
    case = rich_case(real_cr)
    case.prediction = Prediction(models={"classifier": "abc123", "report": "def456"}, synthetic=True, uncertainty=0.42,
                                 scanpath_samples=[case.fixations], timings={"classifier": 0.1})
    sr = case_to_sr(case, real_cr, label_tag="prediction")
    observer = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121005")
    assert observer.ConceptCodeSequence[0].CodeMeaning == "Device"
    write_sr(sr, tmp_path / "p.dcm")
    valid(tmp_path / "p.dcm")
    back = sr_to_case(pydicom.dcmread(tmp_path / "p.dcm"))
    assert back.prediction.models == case.prediction.models and back.prediction.uncertainty == 0.42
    assert back.to_dict() == as_stored(case, real_cr).to_dict()


def test_boxes_are_closed_polylines_and_fixations_points_on_the_source_image(real_cr):
    case = rich_case(real_cr)
    sr = case_to_sr(case, real_cr, annotator="alice")
    scoords = []

    def walk(items):
        for item in items:
            if getattr(item, "ValueType", "") == "SCOORD":
                scoords.append(item)
            walk(getattr(item, "ContentSequence", []))

    walk(sr.ContentSequence)
    polylines = [s for s in scoords if s.GraphicType == "POLYLINE"]
    points = [s for s in scoords if s.GraphicType == "POINT"]
    assert len(polylines) == 3 and len(points) == 3 + 2
    data = np.asarray(polylines[0].GraphicData).reshape(-1, 2)
    assert data.shape == (5, 2) and (data[0] == data[-1]).all()
    for s in scoords:
        ref = s.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert ref == real_cr.SOPInstanceUID
    assert sr.Modality == "SR" and sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"


def test_a_resave_names_its_predecessor(real_cr, tmp_path):
    first = case_to_sr(rich_case(real_cr), real_cr, annotator="alice")
    second = case_to_sr(rich_case(real_cr), real_cr, annotator="alice", predecessor=first,
                        series_instance_uid=first.SeriesInstanceUID, instance_number=2)
    ref = second.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == first.SOPInstanceUID and second.InstanceNumber == 2
    write_sr(second, tmp_path / "second.dcm")
    valid(tmp_path / "second.dcm")


# ---------------------------------------------------------------------------------------------- refusals
def test_a_case_for_another_image_size_is_refused(real_cr):
    case = rich_case(real_cr)
    case.image.width += 1
    with pytest.raises(CaseError, match="export the case against the radiograph"):
        case_to_sr(case, real_cr)


def _sr(real_cr):
    return case_to_sr(rich_case(real_cr), real_cr, annotator="alice")


def test_foreign_template_is_refused(real_cr):
    sr = _sr(real_cr)
    sr.ContentTemplateSequence[0].TemplateIdentifier = "2000"
    with pytest.raises(SRError, match="TID 2000, not TID 1500"):
        sr_to_case(sr)
    del sr.ContentTemplateSequence
    with pytest.raises(SRError, match="no template identifier"):
        sr_to_case(sr)


def test_missing_references_are_refused(real_cr):
    sr = _sr(real_cr)
    del sr.CurrentRequestedProcedureEvidenceSequence
    with pytest.raises(SRError, match="references no image"):
        sr_to_case(sr)


def test_a_region_on_an_unreferenced_image_is_refused(real_cr):
    sr = _sr(real_cr)
    sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID = "1.2.3.4"
    with pytest.raises(SRError, match="does not reference"):
        sr_to_case(sr)


def test_a_region_without_its_source_image_is_refused(real_cr):
    sr = _sr(real_cr)
    measurements = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    box = next(g for g in measurements.ContentSequence if any(getattr(c, "TextValue", "") == "box 0" for c in g.ContentSequence))
    scoord = next(c for c in box.ContentSequence if c.ValueType == "SCOORD")
    del scoord.ContentSequence
    with pytest.raises(SRError, match="names no source image"):
        sr_to_case(sr)


def test_a_dangling_evidence_link_is_refused(real_cr):
    sr = _sr(real_cr)
    record = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "C0034375")
    link = next(c for i in record.ContentSequence for c in getattr(i, "ContentSequence", [])
                if "ReferencedContentItemIdentifier" in c)
    link.ReferencedContentItemIdentifier = [1, 99, 1]
    with pytest.raises(SRError, match="1.99.1, which does not exist"):
        sr_to_case(sr)


def test_not_an_sr_is_refused(real_cr):
    with pytest.raises(SRError, match="not a structured report"):
        sr_to_case(copy.deepcopy(real_cr))


def test_unknown_groups_are_counted_not_silently_dropped(real_cr):
    sr = _sr(real_cr)
    measurements = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    group = next(g for g in measurements.ContentSequence if any(getattr(c, "TextValue", "") == "finding Edema" for c in g.ContentSequence))
    finding = next(c for c in group.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "121071")
    finding.ConceptCodeSequence[0].CodeValue = "999999"  # a finding code GazeLabel does not know
    back = sr_to_case(sr)
    assert "Edema" not in back.scores
    assert back.extra["dicom_sr"]["skipped"] == {"measurement groups of unknown kind": 1}


# ---------------------------------------------------------------------------------------------- heatmaps
def test_heatmap_as_parametric_map_keeps_values_on_the_source_grid(tmp_path, real_cr_path):
    image = pydicom.dcmread(real_cr_path)
    yy, xx = np.mgrid[0:image.Rows, 0:image.Columns]
    heatmap = np.exp(-((xx - 900) ** 2 + (yy - 1100) ** 2) / (2 * 200.0 ** 2)).astype(np.float32)
    pm = heatmap_to_parametric_map(heatmap, image)
    pm.save_as(tmp_path / "pm.dcm")
    valid(tmp_path / "pm.dcm")
    back = pydicom.dcmread(tmp_path / "pm.dcm")
    assert (back.Rows, back.Columns) == (image.Rows, image.Columns)
    assert np.array_equal(back.pixel_array, heatmap)  # float32 frames keep the values bit for bit
    assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
    assert back.StudyInstanceUID == image.StudyInstanceUID
    sc = heatmap_to_secondary_capture(heatmap, image)
    sc.save_as(tmp_path / "sc.dcm")
    valid(tmp_path / "sc.dcm")
    rgb = pydicom.dcmread(tmp_path / "sc.dcm").pixel_array
    assert rgb.shape == (image.Rows, image.Columns, 3)
    assert rgb[1100, 900, 0] > rgb[1100, 900, 2] + 40  # red where the map is high
    assert abs(int(rgb[10, 10, 0]) - int(rgb[10, 10, 2])) <= 1  # grey film where it is zero


def test_heatmap_on_another_grid_is_refused(real_cr):
    with pytest.raises(CaseError, match="source image's own pixel grid"):
        heatmap_to_parametric_map(np.zeros((10, 10), np.float32), real_cr)
    with pytest.raises(CaseError, match="NaN"):
        heatmap_to_parametric_map(np.full((real_cr.Rows, real_cr.Columns), np.nan, np.float32), real_cr)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_export_and_import_round_trip(real_cr_path, real_cr, tmp_path, capsys):
    case = rich_case(real_cr)
    (tmp_path / "case.json").write_text(json.dumps(case.to_dict()))
    np.save(tmp_path / "map.npy", np.zeros((real_cr.Rows, real_cr.Columns), np.float32))
    assert main(["export-sr", str(tmp_path / "case.json"), "--image", str(real_cr_path), "--out", str(tmp_path / "o.dcm"),
                 "--annotator", "alice", "--heatmap", str(tmp_path / "map.npy"), "--pm", str(tmp_path / "pm.dcm")]) == 0
    valid(tmp_path / "o.dcm")
    valid(tmp_path / "pm.dcm")
    assert main(["import-sr", str(tmp_path / "o.dcm"), "--out", str(tmp_path / "back.json")]) == 0
    back = Case.from_dict(json.loads((tmp_path / "back.json").read_text()))
    assert back.to_dict() == as_stored(case, real_cr, annotator="alice").to_dict()


@pytest.mark.parametrize("problem", ["missing-case", "not-dicom", "wrong-size", "import-not-sr", "import-missing"])
def test_cli_errors_are_one_line_and_exit_2(problem, real_cr_path, real_cr, tmp_path, capsys):
    case = rich_case(real_cr)
    good = tmp_path / "case.json"
    good.write_text(json.dumps(case.to_dict()))
    text = tmp_path / "notes.dcm"
    text.write_text("not a dicom file")
    wrong = tmp_path / "wrong.json"
    case.image.width -= 5
    wrong.write_text(json.dumps(case.to_dict()))
    argv = {
        "missing-case": ["export-sr", str(tmp_path / "nope.json"), "--image", str(real_cr_path), "--out", str(tmp_path / "o.dcm")],
        "not-dicom": ["export-sr", str(good), "--image", str(text), "--out", str(tmp_path / "o.dcm")],
        "wrong-size": ["export-sr", str(wrong), "--image", str(real_cr_path), "--out", str(tmp_path / "o.dcm")],
        "import-not-sr": ["import-sr", str(real_cr_path), "--out", str(tmp_path / "c.json")],
        "import-missing": ["import-sr", str(tmp_path / "none.dcm"), "--out", str(tmp_path / "c.json")],
    }[problem]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"gazelabel {argv[0]}: error:") and "Traceback" not in err
    named = {"missing-case": "nope.json", "not-dicom": "notes.dcm", "wrong-size": "wrong.json",
             "import-not-sr": "RG1_UNCR.dcm", "import-missing": "none.dcm"}[problem]
    assert named in err
    assert not (tmp_path / "o.dcm").exists() and not (tmp_path / "c.json").exists()


@needs_dciodvfy
def test_dciodvfy_checks_what_we_write_and_catches_a_broken_file(real_cr, tmp_path):
    write_sr(_sr(real_cr), tmp_path / "ok.dcm")
    errors, _ = dciodvfy(tmp_path / "ok.dcm")
    assert errors == []
    broken = _sr(real_cr)
    del broken.ContentTemplateSequence[0].MappingResource, broken.CompletionFlag  # Type 1 attributes
    write_sr(broken, tmp_path / "broken.dcm")
    errors, _ = dciodvfy(tmp_path / "broken.dcm")
    assert errors  # the validator is live: a file missing required attributes fails


@pytest.mark.parametrize("kind", ["empty", "report-only", "fixations-only", "uncertain-only"])
def test_sparse_cases_are_valid_and_round_trip(kind, real_cr, tmp_path):
    w, h = int(real_cr.Columns), int(real_cr.Rows)
    case = Case(id=f"sparse-{kind}", image=ImageRef(width=w, height=h))
    if kind == "report-only":
        case.report = Report("Lungs are clear.", "", [Evidence(0, None, "right upper zone")])
    elif kind == "fixations-only":
        case.fixations = [Fixation(w / 2, h / 2, 0.0, 0.25)]
    elif kind == "uncertain-only":
        case.findings = {"Atelectasis": -1}
    back = roundtrip(case, real_cr, tmp_path, annotator="alice")
    assert back.to_dict() == as_stored(case, real_cr, annotator="alice").to_dict()
