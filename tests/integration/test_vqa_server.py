"""The ``vqa`` infer task on a live server (tiny SYNTHETIC models): a question in ``params.question`` gets the
answer block in the Case; a missing, empty, over-long or non-text question is a 400 naming ``question``; an
unanswerable one is answered "cannot answer" with a reason. Saves no labels (see ``IMAGE_OWNERS``)."""

from __future__ import annotations

import json

import pytest

from models.schema import Case
from models.vocab import REGION_NAMES

pytestmark = pytest.mark.integration
IMAGE = 16  # image_ids index this module asks about (it saves nothing)


def ask(server, params: dict | None, task: str = "vqa", image: int = IMAGE):
    image_id = server.image_ids[image]
    data = {} if params is None else {"params": json.dumps(params)}
    return server.post(f"/infer/{task}?image={image_id}&output=json", data=data)


def test_info_lists_the_vqa_task(gazelabel_server):
    info = gazelabel_server.get("/info/").json()
    assert "vqa" in info["models"]
    assert "vqa" in info["trainers"]  # POST /train/vqa: over the server's classifier and scanpath models


def test_vqa_answers_with_evidence_in_the_case(gazelabel_server):
    image_id = gazelabel_server.image_ids[IMAGE]
    recorded = json.loads((gazelabel_server.store / "cases" / f"{image_id}.json").read_text())["fixations"]
    response = ask(gazelabel_server, {"question": "Where is the pleural effusion?"})
    assert response.status_code == 200, response.text
    result = response.json()
    case = Case.from_dict(result["case"])  # validates the answer block: box inside the image, fixation indices
    answer = case.prediction.answer
    assert answer.question == "Where is the pleural effusion?" and answer.findings == ["Pleural Effusion"]
    assert answer.gaze_source == "recorded"  # the store has the reader's gaze: the answer rests on it
    assert [(f.x, f.y) for f in case.fixations] == [(f["x"], f["y"]) for f in recorded]
    assert set(result["models"]) >= {"vqa"} and "vqa" in case.prediction.models and result["synthetic"] is True
    assert answer.answerable == (answer.answer != "cannot answer")
    if answer.answerable:
        assert 0.0 <= answer.confidence <= 1.0 and answer.type == "location"
        assert answer.answer in ("none", *REGION_NAMES)
    else:
        assert answer.reason

    predicted = ask(gazelabel_server, {"question": "Which regions were not inspected?", "gaze": "predicted",
                                       "mc_samples": 2}).json()
    a = Case.from_dict(predicted["case"]).prediction.answer
    assert a.gaze_source == "predicted" and (not a.answerable or a.mc_samples == 2)


def test_unanswerable_questions_are_refused_with_a_reason(gazelabel_server):
    for question, reason in (("asdkj qwe zzz", "unlike"), ("Is there a pneumoperitoneum?", "no finding"),
                             ("Where is the No Finding?", "No Finding")):
        response = ask(gazelabel_server, {"question": question})
        assert response.status_code == 200, response.text
        answer = response.json()["case"]["prediction"]["answer"]
        assert answer["answerable"] is False and answer["answer"] == "cannot answer" and answer["confidence"] is None
        assert reason in answer["reason"], answer


@pytest.mark.parametrize("params, problem", [
    (None, "question"),
    ({}, "question"),
    ({"question": ""}, "empty"),
    ({"question": "   "}, "empty"),
    ({"question": "x" * 301}, "300"),
    ({"question": 42}, "text"),
    ({"question": ["Is there an effusion?"]}, "text"),
])
def test_a_bad_question_is_a_400_naming_it(gazelabel_server, params, problem):
    response = ask(gazelabel_server, params)
    assert response.status_code == 400, response.text
    detail = str(response.json().get("detail", response.text))
    assert "question" in detail and problem in detail, detail
    assert "Traceback" not in response.text


def test_a_question_to_another_task_is_a_400(gazelabel_server):
    response = ask(gazelabel_server, {"question": "Is there an effusion?"}, task="pipeline")
    assert response.status_code == 400, response.text
    assert "question" in response.text
