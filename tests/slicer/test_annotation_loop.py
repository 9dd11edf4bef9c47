"""The module's whole annotation loop against a real GazeLabel server (tiny SYNTHETIC phantom models):
connect with basic auth and with a bearer token, next sample by uncertainty, run the pipeline, the case in
the scene, the annotator's view rendered, edits saved as the final label, training started and polled.

One server of its own (``start_server``: the test retrains a model, which the shared server forbids).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import slicer

from models.imaging import read_image
from models.schema import Case, load_case

pytestmark = pytest.mark.integration
USER, PASSWORD = "annotator", "gaze-label-test"


def test_annotation_loop_against_a_live_server(start_server, headless, screenshot, tmp_path, offscreen_missing):
    from GazeLabelLib import scene_io
    from GazeLabelLib.client import ServerError
    from GazeLabelLib.headless import render_slice_view
    from GazeLabelLib.session import AnnotationSession

    server = start_server(basic_auth=f"{USER}:{PASSWORD}")
    session = AnnotationSession(headless.scene)

    # Connect: a wrong password is refused with the reason; basic auth and the bearer token both work.
    with pytest.raises(ServerError, match=r"HTTP 401 \(check the token or user name and password\)") as refused:
        session.connect(server.url, username=USER, password="wrong")
    assert refused.value.status == 401 and session.client is None
    bearer = server.headers["Authorization"].partition(" ")[2]
    assert session.connect(server.url, token=bearer)["name"] == "GazeLabel"
    session.connect(server.url, username=USER, password=PASSWORD)
    assert "pipeline" in session.models and "uncertainty" in session.strategies and "gaze_classifier" in session.trainers

    # Next sample through the active-learning strategy; the image arrives pixel for pixel.
    image_id = session.next_sample("uncertainty", {"mc_samples": 2, "max_compute": 2})
    assert image_id in server.image_ids
    volume = scene_io.require_role(headless.scene, "image")
    original = read_image(server.store / f"{image_id}.png").array
    np.testing.assert_allclose(slicer.util.arrayFromVolume(volume)[0], original, atol=1e-6)

    # Run the pipeline: the server's Case is in the scene and comes back unchanged (within 0.5 px).
    served = Case.from_dict(session.run_pipeline("pipeline"))
    assert served.id == image_id and served.image.synthetic and session.last_result["synthetic"] is True
    assert session.heatmap_source == "server"
    heat = slicer.util.arrayFromVolume(scene_io.require_role(headless.scene, "heatmap"))[0]
    assert heat.shape == original.shape
    assert heat.max() == pytest.approx(session.last_result["heatmap"]["max"], rel=1e-5)
    back = Case.from_dict(scene_io.scene_to_case(headless.scene)).to_dict()
    expected = served.to_dict()
    for key in ("findings", "scores", "report", "coverage", "source", "readers"):
        assert back[key] == expected[key], key
    assert len(back["boxes"]) == len(expected["boxes"]) and len(back["fixations"]) == len(expected["fixations"])
    for got, want in zip(back["boxes"] + back["fixations"], expected["boxes"] + expected["fixations"]):
        for k in ("x1", "y1", "x2", "y2", "x", "y"):
            if k in want:
                assert abs(got[k] - want[k]) <= 0.5, (k, got, want)

    # What the annotator sees, rendered from the scene (the rest of the loop runs even without Mesa EGL).
    if not offscreen_missing:
        shot = render_slice_view(headless, tmp_path / "annotator_view_live.png", size=(800, 800))
        screenshot.check(shot, headless.scene, scene_io.scene_to_case(headless.scene))
        print(f"annotator view: {shot.path}")

    # Correct: reject the first positive finding, confirm Edema, move the first box, add a box, rewrite the report.
    rejected = next((f for f, v in served.findings.items() if v == 1), "Cardiomegaly")
    session.set_finding(rejected, 0)
    session.set_finding("Edema", 1)
    if served.boxes:
        scene_io.set_box_pixels(volume, scene_io.nodes_with_role(headless.scene, "box")[0], (50.0, 60.0, 200.0, 220.0))
    session.add_box("Pneumothorax", (300.0, 40.0, 420.0, 160.0))
    session.set_report_text("FINDINGS: Small right apical pneumothorax.\nIMPRESSION: Pneumothorax.")
    assert session.save_label() == {"image": image_id, "label": image_id}

    saved = load_case(server.store / "labels" / "final" / f"{image_id}.json")
    assert saved.findings[rejected] == 0 and saved.findings["Edema"] == 1
    if served.boxes:
        assert saved.boxes[0].xyxy == pytest.approx((50.0, 60.0, 200.0, 220.0), abs=0.5)
    assert (saved.boxes[-1].finding, saved.boxes[-1].xyxy) == ("Pneumothorax", pytest.approx((300, 40, 420, 160), abs=0.5))
    assert (saved.report.findings, saved.report.impression) == ("Small right apical pneumothorax.", "Pneumothorax.")
    assert len(saved.fixations) == len(served.fixations)

    # Train on the saved label and poll until the task ends (the server's own tests check the new model is used).
    assert session.training_status().status == "NONE"
    started = session.start_training("gaze_classifier", {"epochs": 1, "size": 64, "width": 8})
    assert started["status"] in ("SUBMITTED", "RUNNING")
    deadline = time.monotonic() + 240
    while (status := session.training_status()).running:
        assert time.monotonic() < deadline, f"training still running after 240 s:\n{server.log_tail()}"
        time.sleep(2)
    assert status.status == "DONE", f"{status.raw}\n{server.log_tail()}"
    assert any('"family": "classifier"' in line and '"cases": 1' in line for line in status.details), status.details[-3:]
    if offscreen_missing:
        pytest.skip(f"the loop passed; its screenshot was not rendered: {offscreen_missing}")
