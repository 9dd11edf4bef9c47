"""The web annotator's controller (``web_annotator.controller.WebAnnotator``) on a headless MRML scene: the rows
the page shows, the evidence highlight, scanpath samples and readers, overlays, box removal, and that saving
sends the case's own fixations whatever path is on screen. The browser tests (``tests/web``) run the same code
inside trame-slicer; these need no browser."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from models.report.evidence import report_sentences as models_report_sentences
from models.schema import Report


class FakeClient:
    """Records the label the session saves (the session's HTTP is tested in test_annotation_loop)."""

    def __init__(self):
        self.saved = []

    def save_label(self, image_id, case, tag="final", params=None):
        self.saved.append(copy.deepcopy(case))
        return {"image": image_id, "label": image_id}


@pytest.fixture
def annotator(loaded, phantom_case):
    from web_annotator.controller import WebAnnotator

    case, _ = phantom_case
    a = WebAnnotator(loaded.scene)
    a.session.client = FakeClient()
    a.session.image_id = case["id"]
    return a


def test_report_sentences_follow_the_models_rule(phantom_case):
    from GazeLabelLib import scene_io

    case, _ = phantom_case
    reports = [case["report"], {"findings": "No acute findings.  The heart is normal! Lungs clear?", "impression": "Normal."},
               {"findings": "", "impression": "Possible  effusion. Small."}, "One. Two."]
    for report in reports:
        model = Report.from_dict(report)
        assert scene_io.report_sentences(report) == models_report_sentences(model), report


def test_rows_for_the_page(annotator, phantom_case):
    case, _ = phantom_case
    rows = annotator.findings_rows()
    assert [r["finding"] for r in rows][:3] and len(rows) == 14
    for r in rows:
        assert r["value"] == case["findings"].get(r["finding"])
        assert r["score_text"] == ("" if case["scores"].get(r["finding"]) is None else f"{case['scores'][r['finding']]:.2f}")
    boxes = annotator.box_rows()
    assert [b["finding"] for b in boxes] == [b["finding"] for b in case["boxes"]]
    for row, box in zip(boxes, case["boxes"]):
        assert row["xyxy"] == pytest.approx([box["x1"], box["y1"], box["x2"], box["y2"]], abs=0.06)
    report = annotator.report_rows()
    assert [r["text"] for r in report] == models_report_sentences(Report.from_dict(case["report"]))
    for e in case["report"]["evidence"]:
        row = report[e["sentence"]]
        assert set(e.get("fixations") or []) <= set(row["fixations"])
        if e.get("box") is not None:
            assert e["box"] in row["boxes"]
    view = annotator.case_view()
    assert view["id"] == case["id"] and len(view["fixations"]) == len(case["fixations"])
    assert annotator.case_title().startswith(case["id"]) and "SYNTHETIC" in annotator.case_title()


def test_sentence_highlight_colours_its_evidence_and_clears(annotator, loaded):
    from GazeLabelLib import scene_io

    scene = loaded.scene
    rows = annotator.report_rows()
    row = next(r for r in rows if r["fixations"])
    shown = annotator.highlight_sentence(row["index"])
    assert shown == {"boxes": row["boxes"], "fixations": row["fixations"]}
    points = scene_io.find_role(scene, "fixations")
    assert points.GetDisplayNode().GetSelectedColor() == pytest.approx(scene_io.HIGHLIGHT_COLOR)
    selected = [bool(points.GetNthControlPointSelected(i)) for i in range(points.GetNumberOfControlPoints())]
    assert selected == [i in row["fixations"] for i in range(len(selected))]
    for i, roi in enumerate(scene_io.nodes_with_role(scene, "box")):
        color = roi.GetDisplayNode().GetColor()
        if i in row["boxes"]:
            assert color == pytest.approx(scene_io.HIGHLIGHT_COLOR) and roi.GetDisplayNode().GetOpacity() == 1.0
        elif row["boxes"]:
            assert roi.GetDisplayNode().GetOpacity() == scene_io.HIGHLIGHT_FADE
    before = scene_io.scene_to_case(scene)
    annotator.highlight_sentence(None)
    assert points.GetDisplayNode().GetSelectedColor() == pytest.approx(scene_io.FIXATION_COLOR)
    assert all(points.GetNthControlPointSelected(i) for i in range(points.GetNumberOfControlPoints()))
    assert all(r.GetDisplayNode().GetColor() == pytest.approx(scene_io.BOX_COLOR) and r.GetDisplayNode().GetOpacity() == 1.0
               for r in scene_io.nodes_with_role(scene, "box"))
    assert scene_io.scene_to_case(scene) == before  # display only
    with pytest.raises(ValueError, match="sentence 999 does not exist"):
        annotator.highlight_sentence(998)


def test_a_sample_path_is_shown_but_the_case_keeps_its_fixations(annotator, loaded, phantom_case):
    from GazeLabelLib import scene_io

    case, _ = phantom_case
    scene = loaded.scene
    own = scene_io.fixations_from_scene(scene)
    sample = [{"x": 40.0 + 10 * i, "y": 50.0 + 5 * i, "t": 0.3 * i, "duration": 0.2} for i in range(5)]
    node = scene_io.case_node(scene)
    import json

    verbatim = json.loads(node.GetParameter("case"))
    verbatim["prediction"] = {"scanpath_samples": [own, sample], "gaze_source": "predicted"}
    node.SetParameter("case", json.dumps(verbatim))

    choices = [c["value"] for c in annotator.path_choices()]
    assert choices[:3] == ["case", "sample:0", "sample:1"]
    shown = annotator.show_path("sample:1")
    assert [f["x"] for f in shown] == [f["x"] for f in sample]
    assert [round(f["x"], 3) for f in scene_io.fixations_from_scene(scene)] == [f["x"] for f in sample]
    annotator.set_overlay("samples", True)
    curves = scene_io.nodes_with_role(scene, "scanpath_samples")
    assert len(curves) == 1 and curves[0].GetNumberOfControlPoints() == len(own)  # the other sample, faint

    frame = annotator.play_step(speed=2.0)
    assert frame.label == "1" and frame.x == pytest.approx(sample[0]["x"], abs=1e-3)
    annotator.save()
    saved = annotator.session.client.saved[-1]
    assert [(round(f["x"], 3), round(f["y"], 3)) for f in saved["fixations"]] == \
        [(round(f["x"], 3), round(f["y"], 3)) for f in own]
    assert annotator.path_shown == "case" and len(scene_io.fixations_from_scene(scene)) == len(case["fixations"])
    with pytest.raises(ValueError, match="sample 3 does not exist"):
        annotator.show_path("sample:2")


def test_overlays_window_level_and_heat_contrast(annotator, loaded, phantom_case):
    from GazeLabelLib import scene_io
    from web_annotator.controller import OVERLAY_ROLES

    case, _ = phantom_case
    scene = loaded.scene
    h, w = case["image"]["height"], case["image"]["width"]
    flat = 0.95 + 0.05 * np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w)  # a barely trained model's map
    heat = scene_io.heatmap_volume(scene, flat)
    assert scene_io.set_heatmap_range(scene) == pytest.approx((0.95, 1.95))  # transparent: below the floor
    annotator.set_overlay("heat_stretch", True)
    display = heat.GetDisplayNode()
    assert (display.GetLevel() - display.GetWindow() / 2, display.GetLevel() + display.GetWindow() / 2) == \
        pytest.approx((0.95, 1.0), abs=1e-6)
    for overlay, roles in OVERLAY_ROLES.items():
        if overlay == "samples":
            continue
        annotator.set_overlay(overlay, False)
        assert all(not n.GetDisplayNode().GetVisibility() for r in roles for n in scene_io.nodes_with_role(scene, r))
        annotator.set_overlay(overlay, True)
        assert all(n.GetDisplayNode().GetVisibility() for r in roles for n in scene_io.nodes_with_role(scene, r))
    annotator.set_overlay("heatmap", False)
    assert annotator.heatmap_opacity == 0.0
    annotator.set_window_level(0.5, 0.3)
    image = scene_io.require_role(scene, "image").GetDisplayNode()
    assert (image.GetWindow(), image.GetLevel()) == pytest.approx((0.5, 0.3))
    with pytest.raises(ValueError, match="window must be > 0"):
        annotator.set_window_level(0, 0.5)
    with pytest.raises(ValueError, match="overlay"):
        annotator.set_overlay("labels", True)


def test_boxes_added_removed_and_findings_edited_reach_the_label(annotator, loaded, phantom_case):
    case, _ = phantom_case
    n = len(case["boxes"])
    annotator.add_box("Pneumothorax", (10.0, 20.0, 60.0, 90.0))
    annotator.remove_box(0)
    rows = annotator.box_rows()
    assert len(rows) == n and rows[-1]["finding"] == "Pneumothorax"
    annotator.set_finding("Edema", 1)
    annotator.set_finding(next(iter(case["findings"])), None)
    annotator.save()
    saved = annotator.session.client.saved[-1]
    assert [b["finding"] for b in saved["boxes"]] == [b["finding"] for b in case["boxes"][1:]] + ["Pneumothorax"]
    assert saved["boxes"][-1]["x1"] == pytest.approx(10.0, abs=0.5) and saved["findings"]["Edema"] == 1
    assert next(iter(case["findings"])) not in saved["findings"]
    # Evidence that pointed at the removed box lost it; the others point at the same boxes as before.
    for e in saved["report"]["evidence"]:
        assert e["box"] is None or saved["boxes"][e["box"]]["finding"] == case["boxes"][e["box"] + 1]["finding"]
    with pytest.raises(ValueError, match="box 99 does not exist"):
        annotator.remove_box(98)


def test_one_box_at_a_time_shows_its_drag_handles(annotator, loaded):
    from GazeLabelLib import scene_io

    def handles():
        return [bool(r.GetDisplayNode().GetHandlesInteractive()) for r in scene_io.nodes_with_role(loaded.scene, "box")]

    annotator.apply_display()
    assert not any(handles())  # a new case: none (drawing every box's handles is what makes a frame slow)
    annotator.add_box("Pneumothorax", (10.0, 20.0, 60.0, 90.0))
    assert handles()[-1] and sum(handles()) == 1 and annotator.box_rows()[-1]["editable"]
    annotator.set_editable_box(0)
    assert handles()[0] and sum(handles()) == 1
    n = len(handles())
    annotator.set_editable_box(n - 1)
    annotator.remove_box(0)  # the editable box moves up one place
    assert annotator.editable_box == n - 2 and handles()[-1]
    annotator.set_editable_box(None)
    assert not any(handles())
    with pytest.raises(ValueError, match="does not exist"):
        annotator.set_editable_box(50)


def test_the_highlight_is_on_screen(annotator, loaded, screenshot, tmp_path, offscreen_gl):
    """Rendered by Slicer's displayable managers: the highlighted fixations are magenta where they are."""
    from GazeLabelLib import scene_io
    from GazeLabelLib.headless import render_slice_view

    row = next(r for r in annotator.report_rows() if r["fixations"])
    annotator.highlight_sentence(row["index"])
    shot = render_slice_view(loaded, tmp_path / "highlight.png", size=(640, 640))
    png = screenshot.rgb(shot)
    volume = scene_io.require_role(loaded.scene, "image")
    fixations = scene_io.fixations_from_scene(loaded.scene)

    def magenta(p):
        return ((p[:, 0] > 200) & (p[:, 1] < 120) & (p[:, 2] > 200)).any()

    for i in row["fixations"]:
        xy = shot.pixel_of(scene_io.pixels_to_ras(volume, [[fixations[i]["x"], fixations[i]["y"]]])[0])
        assert magenta(screenshot.around(png, xy, 6)), f"fixation {i + 1} not magenta"


def test_the_question_box_asks_the_vqa_task_and_highlights_its_evidence(loaded, phantom_case):
    """The web page's "Ask the model" panel goes through ``AnnotationSession.ask`` (the Slicer module's code):
    the answer line, the evidence box in the scene, nothing changed in the case; refused before sending when
    empty; unavailable when the server has no vqa task."""
    from GazeLabelLib import question, scene_io
    from GazeLabelLib.client import InferResult
    from web_annotator.controller import WebAnnotator

    case, _ = phantom_case
    box = [float(case["boxes"][0][k]) for k in ("x1", "y1", "x2", "y2")]
    answer = {"question": "Where is it?", "answer": "right lower zone", "answerable": True, "confidence": 0.61,
              "box": box, "fixations": [1], "gaze_source": "predicted"}

    class VqaClient(FakeClient):
        def __init__(self):
            super().__init__()
            self.asked = []

        def infer(self, model, image_id, params=None, *, output="all"):
            self.asked.append((model, image_id, dict(params or {})))
            return InferResult({"case": {**copy.deepcopy(case), "prediction": {"answer": answer}}, "synthetic": True})

    a = WebAnnotator(loaded.scene)
    a.session.client = VqaClient()
    a.session.image_id = case["id"]
    a.session.info = {"models": {"pipeline": {}}}
    assert not a.can_ask  # no vqa task on this server
    a.session.info = {"models": {"pipeline": {}, "vqa": {}}}
    assert a.can_ask
    before = scene_io.scene_to_case(loaded.scene)
    line = a.ask("Where is the effusion?")
    assert line.startswith("right lower zone (confidence 0.61)") and "evidence box" in line
    assert a.session.client.asked == [("vqa", case["id"], {"question": "Where is the effusion?"})]
    assert question.evidence_in_scene(loaded.scene)["box"] == pytest.approx(box, abs=0.5)
    assert scene_io.scene_to_case(loaded.scene) == before
    with pytest.raises(ValueError, match="type a question"):
        a.ask("   ")
    assert len(a.session.client.asked) == 1
