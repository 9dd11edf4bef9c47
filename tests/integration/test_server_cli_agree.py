"""The server's infer tasks and `gazelabel predict --task NAME` are one code path (Pipeline.run): with the
same models, image and options they give the same case — scores, boxes, fixations, sampled scanpaths,
coverage and report — whether the gaze is predicted or recorded."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from models.cli import main as cli_main
from models.pipeline import TASKS
from models.schema import Case

pytestmark = pytest.mark.timeout(900)

OPTIONS = {"n_samples": 3, "seed": 11, "temperature": 0.5}
QUESTION = "Which side is the pleural effusion on?"  # the vqa task's question


def cli_case(server, image_id: str, task: str, tmp_path, *extra: str) -> Case:
    out = tmp_path / f"{task}.json"
    if TASKS[task].needs_question:
        extra = (*extra, "--question", QUESTION)
    rc = cli_main(["predict", str(server.store / f"{image_id}.png"), "--task", task, "--models", str(server.models_dir),
                   "--json", str(out), "--samples", str(OPTIONS["n_samples"]), "--seed", str(OPTIONS["seed"]),
                   "--temperature", str(OPTIONS["temperature"]), *extra])
    assert rc == 0
    return Case.from_dict(json.loads(out.read_text()))


def server_case(server, image_id: str, task: str, **params) -> Case:
    if TASKS[task].needs_question:
        params["question"] = QUESTION
    response = server.post(f"/infer/{task}?image={image_id}&output=json", data={"params": json.dumps({**OPTIONS, **params})})
    assert response.status_code == 200, response.text
    return Case.from_dict(response.json()["case"])


def xyd(fixations) -> list[float]:
    """x, y, duration of every fixation, flat (pytest.approx compares flat sequences)."""
    return [v for f in fixations for v in (f.x, f.y, f.duration)]


def assert_same(a: Case, b: Case):
    assert a.scores.keys() == b.scores.keys()
    assert all(a.scores[k] == pytest.approx(b.scores[k], abs=1e-5) for k in a.scores)
    assert [(x.finding, x.x1, x.y1, x.x2, x.y2) for x in a.boxes] == [(x.finding, x.x1, x.y1, x.x2, x.y2) for x in b.boxes]
    assert xyd(a.fixations) == pytest.approx(xyd(b.fixations), abs=1e-3)
    pa, pb = a.prediction, b.prediction
    assert (pa is None) == (pb is None)
    if pa is not None:
        assert len(pa.scanpath_samples) == len(pb.scanpath_samples)
        for sa, sb in zip(pa.scanpath_samples, pb.scanpath_samples):
            assert xyd(sa) == pytest.approx(xyd(sb), abs=1e-3)
        assert pa.gaze_source == pb.gaze_source
    assert a.coverage == b.coverage
    assert (a.report.text if a.report else None) == (b.report.text if b.report else None)
    if a.report:
        assert [asdict(e) for e in a.report.evidence] == [asdict(e) for e in b.report.evidence]
    qa, qb = (c.prediction.answer if c.prediction else None for c in (a, b))
    assert (qa is None) == (qb is None)
    if qa is not None:
        assert (qa.answer, qa.answerable, qa.kind, qa.fixations) == (qb.answer, qb.answerable, qb.kind, qb.fixations)
        assert (qa.confidence or 0.0) == pytest.approx(qb.confidence or 0.0, abs=1e-4)
        assert (qa.box is None) == (qb.box is None) and (qa.box is None or qa.box == pytest.approx(qb.box, abs=1e-3))


@pytest.mark.parametrize("task", TASKS)
def test_server_and_cli_agree_with_predicted_gaze(gazelabel_server, tmp_path, task):
    image_id = gazelabel_server.image_ids[12]
    assert_same(server_case(gazelabel_server, image_id, task, gaze="predicted"),
                cli_case(gazelabel_server, image_id, task, tmp_path, "--gaze", "predicted"))


@pytest.mark.parametrize("task", ["report", "pipeline"])
def test_server_and_cli_agree_with_recorded_gaze(gazelabel_server, tmp_path, task):
    image_id = gazelabel_server.image_ids[12]
    stored = gazelabel_server.store / "cases" / f"{image_id}.json"
    from_server = server_case(gazelabel_server, image_id, task, gaze="recorded")
    assert from_server.prediction.gaze_source == "recorded"
    assert_same(from_server, cli_case(gazelabel_server, image_id, task, tmp_path, "--gaze", "recorded", "--gaze-from", str(stored)))
