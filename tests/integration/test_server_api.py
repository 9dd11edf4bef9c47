"""The GazeLabel app through a live server: infer tasks, labels, active learning, scoring, retraining.

Talks to the shared ``gazelabel_server`` (tiny SYNTHETIC models) with plain HTTP and MONAI Label's client.
Saves labels only for ``image_ids[0:6]`` (see ``IMAGE_OWNERS`` in conftest).
"""

from __future__ import annotations

import json
import math
import time

import nibabel as nib
import numpy as np
import pytest
from requests_toolbelt.multipart.decoder import MultipartDecoder

from models.schema import Case
from models.vocab import FINDINGS

pytestmark = pytest.mark.integration
TASKS = ("gaze_classifier", "scanpath", "report", "pipeline")


def strict_json(text: str):
    """Parse JSON refusing NaN/Infinity, which a browser or the Slicer plugin would choke on."""
    def refuse(name):
        raise AssertionError(f"non-finite number {name} in the JSON")

    return json.loads(text, parse_constant=refuse)


def record(server, image_id: str) -> dict:
    return json.loads((server.store / "cases" / f"{image_id}.json").read_text())


def wait_for_training(server, timeout: float = 420.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.get("/train/").json()
        if status.get("status") not in ("SUBMITTED", "RUNNING"):
            return status
        time.sleep(1.0)
    raise AssertionError(f"training did not finish in {timeout} s:\n{server.log_tail()}")


def test_info_lists_every_task_as_valid_json(gazelabel_server):
    response = gazelabel_server.get("/info/")
    assert response.status_code == 200, response.text
    info = strict_json(response.text)
    assert set(info["models"]) == set(TASKS) | {"vqa"}  # vqa needs a question: tests/integration/test_vqa_server.py
    assert set(info["trainers"]) == {"gaze_classifier", "scanpath", "report", "vqa"}
    assert {"uncertainty", "random", "first"} <= set(info["strategies"])
    assert "uncertainty" in info["scoring"]
    assert all(m["dimension"] == 2 for m in info["models"].values())
    assert info["labels"] == list(FINDINGS)
    assert info["datastore"]["total"] == len(gazelabel_server.image_ids)


@pytest.mark.parametrize("task", TASKS)
def test_infer_answers_a_valid_case(gazelabel_server, task):
    image_id = gazelabel_server.image_ids[10]
    response = gazelabel_server.post(f"/infer/{task}?image={image_id}&output=json", data={"params": json.dumps({"n_samples": 2})})
    assert response.status_code == 200, response.text
    result = strict_json(response.text)
    case = Case.from_dict(result["case"])  # raises CaseError on any malformed field
    assert case.id == image_id and (case.image.width, case.image.height) == (512, 512)
    assert result["synthetic"] is True and case.image.synthetic
    assert case.prediction.synthetic is True  # every task's answer says so in its case
    assert set(result["models"]) and all(result["models"].values())
    if task in ("gaze_classifier", "report", "pipeline"):
        assert set(case.scores) == set(FINDINGS) and all(0 <= s <= 1 for s in case.scores.values())
        assert all(0 <= b.x1 < b.x2 <= 512 and 0 <= b.y1 < b.y2 <= 512 for b in case.boxes)
    if task in ("scanpath", "report", "pipeline"):
        assert case.fixations and all(f.duration > 0 for f in case.fixations)
        assert case.coverage["visited"]
    if task in ("report", "pipeline"):
        assert case.report is not None and case.report.text
        assert case.report.evidence  # sentences link to findings, boxes, fixations (indices checked by from_dict)
    if task in ("scanpath", "pipeline"):
        assert len(case.prediction.scanpath_samples) == 2


def test_report_uses_the_recorded_gaze_when_the_store_has_it(gazelabel_server):
    image_id = gazelabel_server.image_ids[11]
    recorded = record(gazelabel_server, image_id)["fixations"]
    result = gazelabel_server.post(f"/infer/report?image={image_id}&output=json").json()
    assert result["case"]["prediction"]["gaze_source"] == "recorded"
    assert [(f["x"], f["y"]) for f in result["case"]["fixations"]] == [(f["x"], f["y"]) for f in recorded]
    predicted = gazelabel_server.post(f"/infer/report?image={image_id}&output=json",
                                      data={"params": json.dumps({"gaze": "predicted"})}).json()
    assert predicted["case"]["prediction"]["gaze_source"] == "predicted"


def test_heatmap_label_image_matches_the_original_pixels(gazelabel_server, tmp_path):
    image_id = gazelabel_server.image_ids[12]
    response = gazelabel_server.post(f"/infer/gaze_classifier?image={image_id}&output=image")
    assert response.status_code == 200, response.text
    path = tmp_path / "heatmap.nii.gz"
    path.write_bytes(response.content)
    volume = np.asarray(nib.load(path).dataobj)
    assert volume.shape == (512, 512, 1) and volume.dtype == np.float32
    assert 0.0 <= volume.min() and 0.99 <= volume.max() <= 1.0 + 1e-6

    both = gazelabel_server.post(f"/infer/pipeline?image={image_id}&output=all")
    assert both.status_code == 200 and both.headers["content-type"].startswith("multipart/")
    parts = {p.headers[b"Content-Disposition"].decode().split('name="')[1].split('"')[0]: p
             for p in MultipartDecoder.from_response(both).parts}
    params = strict_json(parts["params"].text)
    assert params["heatmap"]["height"] == 512 and params["case"]["report"]
    assert len(parts["image"].content) > 1000


def test_monailabel_client_infers_and_saves_labels(gazelabel_server):
    client = gazelabel_server.client()
    info = client.info()
    assert "pipeline" in info["models"]
    image_id = gazelabel_server.image_ids[0]
    label_file, body = client.infer("pipeline", image_id, {"report_mode": "template"})
    assert label_file is None  # JSON only unless output=image is asked for
    case = Case.from_dict(json.loads(body)["case"])
    case.findings["Cardiomegaly"] = 1  # the annotator's correction
    path = gazelabel_server.work_dir / f"{image_id}.json"
    path.write_text(json.dumps(case.to_dict()))
    saved = client.save_label(image_id, str(path), tag="final", params={"reader": "test"})
    assert saved == {"image": image_id, "label": image_id}

    stored = gazelabel_server.get(f"/datastore/label?label={image_id}&tag=final")
    assert stored.status_code == 200
    assert Case.from_dict(stored.json()).findings["Cardiomegaly"] == 1
    train_list = gazelabel_server.get("/datastore/?output=train").json()
    assert any(item["label"].endswith(f"{image_id}.json") for item in train_list)
    label_info = gazelabel_server.get(f"/datastore/label/info?label={image_id}&tag=final").json()
    assert label_info["reader"] == "test" and label_info["case"]["findings"] == len(case.findings)


def test_scoring_and_uncertainty_strategy(gazelabel_server):
    scored = gazelabel_server.post("/scoring/uncertainty?run_sync=true", json={"mc_samples": 3})
    assert scored.status_code == 200, scored.text
    assert scored.json()["scored"] + scored.json()["skipped"] == len(gazelabel_server.image_ids)
    labelled = {i["label"].rsplit("/", 1)[-1][:-5] for i in gazelabel_server.get("/datastore/?output=train").json()}
    values = {}
    for image_id in gazelabel_server.image_ids:
        info = gazelabel_server.get(f"/datastore/image/info?image={image_id}").json()
        value = info["gazelabel_uncertainty"]["value"]
        assert 0.0 <= value <= 1.0 and math.isfinite(value)
        values[image_id] = value

    chosen = gazelabel_server.post("/activelearning/uncertainty", json={"mc_samples": 3}).json()
    unlabelled = {k: v for k, v in values.items() if k not in labelled}
    assert chosen["id"] in unlabelled
    assert chosen["computed"] == 0  # reused the stored scores of the same model
    assert chosen["uncertainty"] == pytest.approx(max(unlabelled.values()))

    first = gazelabel_server.post("/activelearning/first").json()["id"]
    assert first == min(unlabelled)
    assert gazelabel_server.post("/activelearning/random").json()["id"] in unlabelled

    # diverse: entropy x distance of the predicted findings from the nearest labelled image's, computed here
    diverse = gazelabel_server.post("/activelearning/diverse", json={"mc_samples": 3, "max_compute": 1000}).json()
    assert diverse["id"] in unlabelled
    info = {i: gazelabel_server.get(f"/datastore/image/info?image={i}").json()["gazelabel_uncertainty"]
            for i in gazelabel_server.image_ids}
    if labelled:
        known = np.array([info[i]["probs"] for i in labelled])
        dist = {i: float(np.linalg.norm(known - np.array(info[i]["probs"]), axis=1).min()) for i in unlabelled}
        score = {i: info[i]["value"] * dist[i] / max(dist.values()) for i in unlabelled}
        assert diverse["id"] == max(score, key=lambda i: (score[i], i))
    else:
        assert diverse["id"] == chosen["id"]


@pytest.mark.parametrize("task, family, options", [
    ("gaze_classifier", "classifier", {"epochs": 1, "size": 128, "width": 8, "batch_size": 4}),
    ("scanpath", "scanpath", {"epochs": 1, "size": 128, "slots": 24, "batch_size": 4}),
    # over the server's own classifier (frozen backbone) and scanpath model (gaze samples)
    ("vqa", "vqa", {"epochs": 1, "d_model": 32, "ff": 64, "batch_size": 16, "gaze_samples": 1}),
])
def test_training_on_labels_publishes_a_model_the_server_uses_without_restart(gazelabel_server, task, family, options):
    image_ids = gazelabel_server.image_ids[1:6]
    for image_id in image_ids:
        label = record(gazelabel_server, image_id)
        label.pop("fixations"), label.pop("readers"), label.pop("report")  # gaze comes from the record
        response = gazelabel_server.put(f"/datastore/label?image={image_id}&tag=final",
                                        files={"label": (f"{image_id}.json", json.dumps(label))})
        assert response.status_code == 200, response.text
    probe = gazelabel_server.image_ids[13]
    params = {"params": json.dumps({"question": "Is there a pleural effusion?"})} if task == "vqa" else None
    before = gazelabel_server.post(f"/infer/{task}?image={probe}&output=json", data=params).json()["models"][family]

    started = gazelabel_server.post(f"/train/{task}", json=options)
    assert started.status_code == 200, started.text
    status = wait_for_training(gazelabel_server)
    assert status["status"] == "DONE", "\n".join(status.get("details", [])) + gazelabel_server.log_tail()

    after = gazelabel_server.post(f"/infer/{task}?image={probe}&output=json", data=params)
    assert after.status_code == 200, after.text
    assert after.json()["models"][family] != before  # the new checkpoint is served, no restart
    stats = strict_json(gazelabel_server.get("/info/").text)["train_stats"][task]
    assert stats["cases"] >= len(image_ids) and stats["synthetic"] is True
    assert stats["model"] == after.json()["models"][family]
