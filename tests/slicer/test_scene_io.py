"""Case <-> MRML scene: geometry, round trip, the annotator's edits, and bad input (headless slicer-core)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.imaging import read_image, sample_cr_path
from models.schema import Case
from models.vocab import FINDINGS


def close(a, b, tol: float, where: str = "case") -> None:
    """Recursive equality with ``tol`` on floats; the message names the first differing field."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            close(a[k], b[k], tol, f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, tol, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert abs(a - b) <= tol, f"{where}: {a} != {b} (tolerance {tol})"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_vocab_matches_models():
    from GazeLabelLib.vocab import FINDINGS as extension_findings

    assert extension_findings == FINDINGS


def test_pixel_geometry(headless):
    """Pixel centre (i + 0.5, j + 0.5) is voxel IJK (i, j, 0); spacing comes from the case; patient right
    (image left, small x) has larger R, and the image top (small y) is anterior-up in the axial view."""
    from GazeLabelLib import scene_io

    array = np.random.default_rng(0).random((40, 60)).astype(np.float32)
    volume = scene_io.image_volume(headless.scene, array, (0.2, 0.25))
    assert volume.GetSpacing() == pytest.approx((0.25, 0.2, 1.0))
    assert volume.GetImageData().GetDimensions() == (60, 40, 1)

    import slicer

    np.testing.assert_array_equal(slicer.util.arrayFromVolume(volume)[0], array)
    ras = scene_io.pixels_to_ras(volume, [[10.5, 7.5], [0.5, 0.5]])
    m = scene_io.ijk_to_ras_matrix(volume)
    expected = [m.MultiplyPoint((10, 7, 0, 1))[:3], m.MultiplyPoint((0, 0, 0, 1))[:3]]
    np.testing.assert_allclose(ras, expected, atol=1e-9)
    assert ras[0, 0] < ras[1, 0] and ras[0, 1] < ras[1, 1]  # larger x -> patient left; larger y -> lower
    np.testing.assert_allclose(ras[0, 0] - ras[1, 0], -10 * 0.25)
    np.testing.assert_allclose(scene_io.ras_to_pixels(volume, ras), [[10.5, 7.5], [0.5, 0.5]], atol=1e-9)


def test_decoded_images_match_server_reader(phantom_case, tmp_path):
    """The extension decodes PNG and DICOM like the server's models.imaging, so pixel coordinates agree."""
    from GazeLabelLib.image_io import decode_image

    case, png = phantom_case
    path = tmp_path / "x.png"
    path.write_bytes(png)
    ours = decode_image(png, "x.png")
    np.testing.assert_allclose(ours.array, read_image(path).array, atol=1e-6)

    cr = sample_cr_path("RG1_UNCR.dcm")
    ours = decode_image(cr.read_bytes(), cr.name)
    theirs = read_image(cr)
    assert ours.array.shape == theirs.array.shape and ours.spacing_mm == pytest.approx(theirs.spacing_mm)
    assert np.abs(ours.array - theirs.array).mean() < 0.01  # MONOCHROME1 inverted the same way


def test_round_trip_is_identity(loaded, phantom_case):
    """Server JSON (a Case dict) -> MRML -> Case dict is the identity within 0.5 px, and validates."""
    from GazeLabelLib import scene_io

    case, _ = phantom_case
    back = scene_io.scene_to_case(loaded.scene)
    expected = Case.from_dict(case).to_dict()
    close(Case.from_dict(back).to_dict(), expected, tol=0.5)
    # Durations, times and scores are stored as numbers, not pixels: they come back exactly.
    assert [f["duration"] for f in back["fixations"]] == [f["duration"] for f in case["fixations"]]


def test_scene_nodes(loaded, phantom_case):
    """Fixations in order with labels 1..n and their timing; a linear scanpath; one flat ROI per box named by
    finding; duration discs; findings and report stored on the scene; the volume name says SYNTHETIC."""
    from GazeLabelLib import scene_io

    case, _ = phantom_case
    scene = loaded.scene
    points = scene_io.find_role(scene, "fixations")
    n = len(case["fixations"])
    assert points.GetNumberOfControlPoints() == n
    labels = [points.GetNthControlPointLabel(i) for i in range(n)]
    assert labels[0] == "1" and all(label in ("", str(i + 1)) for i, label in enumerate(labels))  # thinned, never renumbered
    timing = json.loads(points.GetNthControlPointDescription(n - 1))
    assert timing == {"t": case["fixations"][-1]["t"], "duration": case["fixations"][-1]["duration"]}

    path = scene_io.find_role(scene, "scanpath")
    assert path.GetNumberOfControlPoints() == n and path.GetCurveTypeAsString(path.GetCurveType()) == "linear"

    rois = scene_io.nodes_with_role(scene, "box")
    assert [r.GetName() for r in rois] == [b["finding"] for b in case["boxes"]]
    size = [0.0] * 3
    rois[0].GetSizeWorld(size)
    assert size[2] == pytest.approx(1.0) and min(size[:2]) > 5 * size[2]  # flat in the image plane

    discs = scene_io.find_role(scene, "durations").GetPolyData()
    assert discs.GetNumberOfPoints() > 0
    longest = int(np.argmax([f["duration"] for f in case["fixations"]]))
    shortest = int(np.argmin([f["duration"] for f in case["fixations"]]))
    r_long = scene_io.disc_radius_px(case["fixations"][longest]["duration"], 512, 512)
    assert r_long > scene_io.disc_radius_px(case["fixations"][shortest]["duration"], 512, 512)

    rows = {r["finding"]: r["value"] for r in scene_io.findings_table(scene)}
    assert rows == {f: case["findings"].get(f) for f in FINDINGS}
    assert scene_io.report_text(scene).startswith("FINDINGS: " + case["report"]["findings"][:20])
    assert scene_io.require_role(scene, "image").GetName() == f"{case['id']} (SYNTHETIC)"


def test_annotator_edits_come_back_in_original_pixels(loaded, phantom_case):
    from GazeLabelLib import scene_io

    case, _ = phantom_case
    scene = loaded.scene
    volume = scene_io.require_role(scene, "image")
    rois = scene_io.nodes_with_role(scene, "box")

    # Move and resize the first box, as dragging its handles would.
    scene_io.set_box_pixels(volume, rois[0], (100.0, 120.0, 220.0, 260.0))
    # Delete the last box (when there are two or more), reject a finding, confirm another, rewrite the report.
    deleted = len(rois) > 1
    if deleted:
        scene.RemoveNode(rois[-1])
    scene_io.set_finding(scene, "Cardiomegaly", 0)
    scene_io.set_finding(scene, "Edema", 1)
    scene_io.set_finding(scene, "Fracture", None)
    scene_io.set_report_text(scene, "FINDINGS: Heart size normal.\nIMPRESSION: No acute disease.")

    edited = Case.from_dict(scene_io.scene_to_case(scene))  # still a valid Case
    assert edited.boxes[0].xyxy == pytest.approx((100.0, 120.0, 220.0, 260.0), abs=0.5)
    assert edited.boxes[0].region is None  # stale after the move; the server recomputes it
    assert len(edited.boxes) == len(case["boxes"]) - int(deleted)
    if len(case["boxes"]) > 2:
        assert edited.boxes[1].region == case["boxes"][1]["region"]  # untouched box keeps its region
    assert edited.findings["Cardiomegaly"] == 0 and edited.findings["Edema"] == 1
    assert "Fracture" not in edited.findings
    assert (edited.report.findings, edited.report.impression) == ("Heart size normal.", "No acute disease.")
    assert edited.report.evidence == []  # links to the old wording are dropped
    assert len(edited.fixations) == len(case["fixations"])


def test_evidence_box_links_follow_deleted_boxes(headless):
    from GazeLabelLib import scene_io

    scene_io.image_volume(headless.scene, np.zeros((100, 100), np.float32))
    case = {
        "id": "ev",
        "boxes": [{"finding": "Cardiomegaly", "x1": 10, "y1": 10, "x2": 50, "y2": 50},
                  {"finding": "Edema", "x1": 20, "y1": 20, "x2": 90, "y2": 90}],
        "report": {"findings": "Big heart. Edema.", "impression": "",
                   "evidence": [{"sentence": 0, "box": 0}, {"sentence": 1, "box": 1}]},
    }
    scene_io.case_to_scene(headless.scene, case)
    headless.scene.RemoveNode(scene_io.nodes_with_role(headless.scene, "box")[0])
    back = scene_io.scene_to_case(headless.scene)
    assert [b["finding"] for b in back["boxes"]] == ["Edema"]
    assert [e["box"] for e in back["report"]["evidence"]] == [None, 0]


def test_added_box_and_renamed_roi(loaded):
    from GazeLabelLib import scene_io
    from GazeLabelLib.session import AnnotationSession

    session = AnnotationSession(loaded.scene)
    roi = session.add_box("Pneumothorax")
    back = session.current_case()["boxes"][-1]
    assert back["finding"] == "Pneumothorax" and back["score"] is None
    assert (back["x1"], back["y1"], back["x2"], back["y2"]) == pytest.approx((192, 192, 320, 320), abs=0.5)
    roi.SetName("Pleural Effusion")  # renaming an ROI to another finding re-labels the box
    assert session.current_case()["boxes"][-1]["finding"] == "Pleural Effusion"
    roi.SetName("R-1")
    with pytest.raises(scene_io.SceneError, match="ROI 'R-1': name it after a finding"):
        session.current_case()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["boxes"].append({"finding": "Broken Heart", "x1": 1, "y1": 1, "x2": 9, "y2": 9}), "unknown finding 'Broken Heart'"),
        (lambda c: c["boxes"].append({"finding": "Edema", "x1": 9, "y1": 1, "x2": 1, "y2": 9}), "needs x1 < x2"),
        (lambda c: c["image"].update(width=999), "differ from the loaded image"),
        (lambda c: c.pop("id"), "expected a Case dict with an 'id'"),
    ],
)
def test_bad_cases_are_refused_with_the_field(loaded, phantom_case, mutate, message):
    from GazeLabelLib import scene_io

    case = json.loads(json.dumps(phantom_case[0]))
    mutate(case)
    with pytest.raises(scene_io.SceneError, match=message):
        scene_io.case_to_scene(loaded.scene, case)


def test_bad_decisions_and_missing_nodes(headless):
    from GazeLabelLib import scene_io

    with pytest.raises(scene_io.SceneError, match="no GazeLabel image node"):
        scene_io.case_to_scene(headless.scene, {"id": "x"})
    scene_io.image_volume(headless.scene, np.zeros((20, 20), np.float32))
    scene_io.case_to_scene(headless.scene, {"id": "x"})
    with pytest.raises(scene_io.SceneError, match="unknown finding 'Heart'"):
        scene_io.set_finding(headless.scene, "Heart", 1)
    with pytest.raises(scene_io.SceneError, match="decision must be 1, 0, -1 or None"):
        scene_io.set_finding(headless.scene, "Edema", 2)
    with pytest.raises(scene_io.SceneError, match="heatmap shape"):
        scene_io.heatmap_volume(headless.scene, np.zeros((10, 20)))


def test_report_text_round_trip():
    from GazeLabelLib.scene_io import format_report, parse_report

    report = {"findings": "Line one.\nLine two.", "impression": "Normal chest."}
    assert parse_report(format_report(report)) == report
    assert parse_report("free text only") == {"findings": "free text only", "impression": ""}
    assert parse_report("impression: a\nFINDINGS: b") == {"findings": "b", "impression": "a"}


def test_undecodable_images_name_the_file():
    from GazeLabelLib.image_io import ImageDecodeError, decode_image

    with pytest.raises(ImageDecodeError, match="cxr_1.png: the server sent an empty file"):
        decode_image(b"", "cxr_1.png")
    with pytest.raises(ImageDecodeError, match="cxr_2.bin: unsupported image format"):
        decode_image(b"hello world" * 10, "cxr_2.bin")
    with pytest.raises(ImageDecodeError, match="cxr_3.dcm: cannot decode DICOM"):
        decode_image(b"\0" * 128 + b"DICM" + b"\0" * 50, "cxr_3.dcm")


@pytest.mark.parametrize("image_px_per_view_px", [0.4, 0.8, 1.6, 3.0])
def test_labels_never_cover_each_other(loaded, phantom_case, image_px_per_view_px):
    """Box names sit beside their boxes and fixation numbers are thinned so that no two labels overlap, at
    any zoom; crowded boxes (one inside another, the same box twice) still get one label each."""
    from GazeLabelLib import scene_io
    from GazeLabelLib.layout import overlaps

    case, _ = phantom_case
    scene = loaded.scene
    base = case["boxes"][0]
    for dx in (0.0, 4.0, 8.0):  # near-identical boxes: their names used to print over each other
        scene_io.add_box(scene, {**base, "x1": base["x1"] + dx, "y1": base["y1"] + dx})
    placed = scene_io.layout_labels(scene, image_px_per_view_px)
    rects = placed["boxes"] + placed["fixations"]
    assert len(placed["boxes"]) == len(scene_io.nodes_with_role(scene, "box"))
    assert not [(a, b) for i, a in enumerate(rects) for b in rects[i + 1:] if overlaps(a, b)]
    points = scene_io.find_role(scene, "fixations")
    shown = sum(bool(points.GetNthControlPointLabel(i)) for i in range(points.GetNumberOfControlPoints()))
    assert shown == len(placed["fixations"]) >= 1
    labels = scene_io.find_role(scene, "box_labels")
    assert labels.GetNumberOfControlPoints() == len(placed["boxes"])
    back = scene_io.scene_to_case(scene)  # display-only nodes never reach the saved label
    assert len(back["boxes"]) == len(case["boxes"]) + 3 and len(back["fixations"]) == len(case["fixations"])


def test_layout_copies_are_identical():
    """Slicer's Python cannot import models: models/layout.py and GazeLabelLib/layout.py are one file."""
    root = Path(__file__).resolve().parents[2]
    assert (root / "models" / "layout.py").read_text() == (root / "slicer_extension" / "GazeLabel" / "GazeLabelLib" / "layout.py").read_text()


def test_the_volume_name_says_what_is_synthetic():
    from GazeLabelLib.scene_io import synthetic_suffix

    assert synthetic_suffix({"id": "x", "image": {"synthetic": True}}) == " (SYNTHETIC)"
    assert synthetic_suffix({"id": "x", "prediction": {"synthetic": True}}) == " (SYNTHETIC-trained models)"
    assert synthetic_suffix({"id": "x", "image": {"synthetic": True}, "prediction": {"synthetic": True}}) \
        == " (SYNTHETIC, SYNTHETIC-trained models)"
    assert synthetic_suffix({"id": "x", "image": {}}) == ""
