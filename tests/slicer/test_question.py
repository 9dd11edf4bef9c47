"""The Slicer module's question box, headless: ``AnnotationSession.ask`` sends the question to the ``vqa`` task
and highlights the answer's evidence box and fixations beside the edited case (which stays as it was); bad
questions are refused before anything is sent; and once against a live server with the tiny models."""

from __future__ import annotations

import copy

import pytest


class StubClient:
    """Answers every infer with a canned vqa reply and records the calls."""

    def __init__(self, reply: dict):
        self.reply = reply
        self.calls = []

    def infer(self, model, image_id, params=None, *, output="all"):
        from GazeLabelLib.client import InferResult

        self.calls.append((model, image_id, dict(params or {}), output))
        return InferResult(copy.deepcopy(self.reply))


def vqa_reply(case: dict, answer: dict) -> dict:
    reply_case = {**copy.deepcopy(case), "prediction": {"answer": answer}}
    return {"case": reply_case, "synthetic": True}


def test_ask_highlights_the_evidence_and_leaves_the_case(loaded, phantom_case):
    from GazeLabelLib import question, scene_io
    from GazeLabelLib.session import AnnotationSession

    case, _ = phantom_case
    box = [float(v) for v in (case["boxes"][0]["x1"], case["boxes"][0]["y1"], case["boxes"][0]["x2"], case["boxes"][0]["y2"])]
    answer = {"question": "Where is it?", "answer": "left lower zone", "answerable": True, "confidence": 0.7, "box": box,
              "fixations": [0, 2], "gaze_source": "recorded"}
    session = AnnotationSession(loaded.scene, StubClient(vqa_reply(case, answer)))
    session.image_id = case["id"]
    before = scene_io.scene_to_case(loaded.scene)
    got = session.ask("  Where is the pleural effusion?  ")
    assert got == answer and session.last_answer == answer
    model, image_id, params, output = session.client.calls[-1]
    assert (model, image_id, params, output) == ("vqa", case["id"], {"question": "Where is the pleural effusion?"}, "json")
    shown = question.evidence_in_scene(loaded.scene)
    assert shown["box"] == pytest.approx(box, abs=0.5)
    want = [(str(i + 1), case["fixations"][i]["x"], case["fixations"][i]["y"]) for i in (0, 2)]
    assert [label for label, _, _ in shown["fixations"]] == [w[0] for w in want]
    for (_, x, y), (_, wx, wy) in zip(shown["fixations"], want):
        assert (x, y) == pytest.approx((wx, wy), abs=0.5)
    assert scene_io.scene_to_case(loaded.scene) == before  # the evidence is display only
    assert "left lower zone (confidence 0.70)" in question.answer_text(got)

    # a refusal: its reason is shown and the previous evidence goes away
    session.client.reply = vqa_reply(case, {"question": "asdkj", "answer": "cannot answer", "answerable": False,
                                            "reason": "the question is unlike the questions this model was trained on",
                                            "confidence": None, "box": None, "fixations": []})
    refused = session.ask("asdkj")
    assert question.answer_text(refused).startswith("Cannot answer: the question is unlike")
    assert question.evidence_in_scene(loaded.scene) == {"box": None, "fixations": []}


@pytest.mark.parametrize("text, problem", [("", "type a question"), ("   ", "type a question"), ("x" * 301, "300"),
                                           (None, "text")])
def test_bad_questions_are_refused_before_sending(loaded, phantom_case, text, problem):
    from GazeLabelLib.session import AnnotationSession

    case, _ = phantom_case
    client = StubClient(vqa_reply(case, {"question": "x", "answer": "yes"}))
    session = AnnotationSession(loaded.scene, client)
    session.image_id = case["id"]
    with pytest.raises(ValueError, match=problem):
        session.ask(text)
    assert client.calls == []


def test_a_reply_without_an_answer_is_an_error(loaded, phantom_case):
    from GazeLabelLib.session import AnnotationSession

    case, _ = phantom_case
    session = AnnotationSession(loaded.scene, StubClient({"case": case}))
    session.image_id = case["id"]
    with pytest.raises(ValueError, match="no answer"):
        session.ask("Is there an effusion?")


def test_ask_against_a_live_server(start_server, headless):
    from GazeLabelLib import question
    from GazeLabelLib.client import ServerError
    from GazeLabelLib.session import AnnotationSession

    server = start_server()
    session = AnnotationSession(headless.scene)
    session.connect(server.url)
    assert "vqa" in session.models
    image_id = server.image_ids[20]  # a slicer-owned index (saves nothing here)
    session.load_image(image_id)
    answer = session.ask("Which regions were not inspected?")
    assert answer["question"] == "Which regions were not inspected?" and "answerable" in answer
    shown = question.evidence_in_scene(headless.scene)
    assert len(shown["fixations"]) == len([i for i in answer.get("fixations") or []])
    with pytest.raises(ServerError, match="question"):
        session.ask("Is there an effusion?", model="pipeline")  # the server names the parameter
    session.load_image(server.image_ids[21])
    assert question.evidence_in_scene(headless.scene) == {"box": None, "fixations": []}
