"""Class: JSON that breaks the store for everyone (NaN/Infinity stored, deep nesting, wrong types -> 500s).

Every JSON form field, body and label is parsed strictly (:mod:`models.strict_json`): NaN, Infinity, numbers
that overflow to infinity, nesting over 32 levels and wrong types give a 4xx naming the field, and nothing is
stored. An index that already holds such values (written by an older server or by hand) still lists, with
the bad entry skipped and a warning, across restarts.
"""

from __future__ import annotations

import json

import pytest
from attack_helpers import label_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.schema import Case, CaseError
from models.strict_json import JSONValueError, loads

pytestmark = pytest.mark.integration

POISON = ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]
DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 3000 + "1" + "}" * 3000


def strict(text: str):
    return loads(text, "response", max_bytes=None, expect=None)


def listings_are_clean(server, image_id: str) -> None:
    """Every listing that a NaN used to break answers 200 with strict JSON."""
    for path, params in [("/datastore/", {"output": "all"}), ("/datastore/", {"output": "stats"}),
                         ("/datastore/", {"output": "train"}), ("/datastore/image/info", {"image": image_id}),
                         ("/info/", {})]:
        response = server.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        strict(response.text)


@pytest.mark.parametrize("poison", POISON)
def test_non_finite_numbers_are_refused_everywhere(gazelabel_server, poison):
    server = gazelabel_server
    image_id = server.image_ids[14]
    label = ("x.json", label_json(image_id))
    attempts = [
        server.put("/datastore/label", params={"image": image_id}, files={"label": label}, data={"params": f'{{"q": {poison}}}'}),
        server.put("/datastore/label", params={"image": image_id}, files={"label": label}, data={"params": f'{{"a": [1, {{"b": {poison}}}]}}'}),
        server.put("/datastore/image/info", params={"image": image_id}, data={"info": f'{{"q": {poison}}}'}),
        server.put("/datastore/label/info", params={"label": image_id, "tag": "final"}, data={"info": f'{{"q": {poison}}}'}),
        server.put("/datastore/label", params={"image": image_id},
                   files={"label": ("x.json", label_json(image_id)[:-1] + f', "extra": {{"p": {poison}}}}}')}),
        server.put("/datastore/label", params={"image": image_id},
                   files={"label": ("x.json", label_json(image_id)[:-1] + f', "scores": {{"Cardiomegaly": {poison}}}}}')}),
        server.post("/train/gaze_classifier", data=f'{{"epochs": {poison}}}', headers={"Content-Type": "application/json"}),
        server.post("/activelearning/random", data=f'{{"client_id": {poison}}}', headers={"Content-Type": "application/json"}),
        server.post(f"/infer/gaze_classifier?image={image_id}", data={"params": f'{{"mc_samples": {poison}}}'}),
    ]
    for response in attempts:
        assert 400 <= response.status_code < 500, response.text
        message = response.json()["detail"]
        assert any(w in message for w in ("not allowed", "finite", "must be between", "expected")), message
    listings_are_clean(server, image_id)


@pytest.mark.parametrize("payload", [DEEP, DEEP_OBJECT])
def test_deep_nesting_is_a_4xx_not_a_recursion_error(gazelabel_server, payload):
    server = gazelabel_server
    image_id = server.image_ids[14]
    attempts = [
        server.put("/datastore/label", params={"image": image_id}, files={"label": ("x.json", payload)}),
        server.put("/datastore/label", params={"image": image_id}, files={"label": ("x.json", label_json(image_id)[:-1] + f', "extra": {payload}}}')}),
        server.put("/datastore/label", params={"image": image_id}, files={"label": ("x.json", label_json(image_id)[:-1] + f', "coverage": {{"visited": {payload}}}}}')}),
        server.put("/datastore/image/info", params={"image": image_id}, data={"info": '{"x": ' + payload + "}"}),
        server.post("/train/gaze_classifier", data=payload, headers={"Content-Type": "application/json"}),
        server.post(f"/infer/gaze_classifier?image={image_id}", data={"params": '{"mc_samples": ' + payload + "}"}),
    ]
    for response in attempts:
        assert 400 <= response.status_code < 500, response.text[:300]
    listings_are_clean(server, image_id)


@pytest.mark.parametrize("field, value", [
    ("coverage", 5), ("coverage", {"visited": 5}), ("coverage", {"visited": [1, 2]}), ("extra", [1, 2]),
    ("extra", "text"), ("source", {"dataset": {"x": 1}}), ("report", {"findings": {"x": 1}}),
    ("report", {"evidence": [{"sentence": 0, "region": 3}]}), ("image", {"width": "wide", "height": 512}),
    ("image", {"width": 512, "height": 512, "synthetic": "yes"}), ("image", {"width": 512, "height": 512, "path": 7}),
    ("readers", {"r1": {"x": 1}}), ("fixations", [{"x": 1e400, "y": 1}]), ("findings", {"Cardiomegaly": True}),
    ("findings", {"Cardiomegaly": 10**400}), ("boxes", [{"finding": "Cardiomegaly", "x1": [], "y1": 0, "x2": 1, "y2": 1}]),
])
def test_wrong_types_in_a_label_are_4xx_naming_the_field(gazelabel_server, field, value):
    server = gazelabel_server
    image_id = server.image_ids[15]
    body = json.loads(label_json(image_id))
    body[field] = value
    response = server.put("/datastore/label", params={"image": image_id},
                          files={"label": ("x.json", json.dumps(body).replace("Infinity", "1e999"))})
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"] or "label" in response.json()["detail"], response.text
    listings_are_clean(server, image_id)


def test_a_poisoned_legacy_index_is_migrated_without_its_bad_entries(start_server):
    """A store last served by MONAI Label's JSON index (``datastore_v2.json``, as older servers wrote it, NaN
    included) is imported into the database on first start: good entries keep their info, poisoned ones are
    skipped with a warning and re-listed from their files, and the file is renamed so it is imported once."""
    server = start_server()
    image_id, other = server.image_ids[0], server.image_ids[1]
    assert server.put("/datastore/label", params={"image": image_id}, files={"label": ("x.json", label_json(image_id))}).status_code == 200
    server.process.stop()
    for stale in server.store.glob("gazelabel_index.sqlite3*"):
        stale.unlink()  # as if the store had only ever been served with the JSON index
    ext = next(server.store.glob(f"{image_id}.*")).suffix
    raw = {"name": "legacy", "description": "d", "images_dir": ".", "labels_dir": "labels", "objects": {
        image_id: {"image": {"ext": ext, "info": {"legacy_note": "kept"}},
                   "labels": {"final": {"ext": ".json", "info": {"score": float("nan")}}}},
        other: {"image": {"ext": ext, "info": {"deep": json.loads("[" * 40 + "]" * 40)}}, "labels": {}},
        "../../escape": {"image": {"ext": ".png", "info": {}}, "labels": {}},
        "odd_ext": {"image": {"ext": "/../../etc/passwd", "info": {}}, "labels": {}},
    }}
    index = server.store / "datastore_v2.json"
    index.write_text(json.dumps(raw))  # json.dumps writes NaN: what an older server stored
    server.process.start(timeout=300)
    listings_are_clean(server, image_id)
    listing = server.get("/datastore/", params={"output": "all"}).json()
    assert "../../escape" not in listing["objects"] and "odd_ext" not in listing["objects"]
    assert image_id in listing["objects"] and other in listing["objects"]  # re-listed from their files
    assert "deep" not in listing["objects"][other]["image"]["info"]
    assert "score" not in listing["objects"][image_id]["labels"]["final"]["info"]
    assert server.get("/datastore/label", params={"label": image_id, "tag": "final"}).status_code == 200
    assert "skipping the entry" in server.log_tail(400)
    assert not index.exists() and (server.store / "datastore_v2.json.migrated").exists()
    server.process.stop()
    server.process.start(timeout=300)  # and again after a restart, from the database alone
    listings_are_clean(server, image_id)
    assert image_id in server.get("/datastore/", params={"output": "all"}).json()["objects"]


def test_a_legacy_index_keeps_its_good_info(start_server):
    """Scores and notes in a legacy index's good entries survive the migration (the scores ranked too)."""
    server = start_server()
    a, b = server.image_ids[0], server.image_ids[1]
    server.process.stop()
    for stale in server.store.glob("gazelabel_index.sqlite3*"):
        stale.unlink()
    ext = next(server.store.glob(f"{a}.*")).suffix
    score = {"value": 0.75, "mc_samples": 3, "model": "m", "ts": 1}
    raw = {"objects": {a: {"image": {"ext": ext, "info": {"note": "from 0.8.5", "gazelabel_uncertainty": score}}, "labels": {}},
                       b: {"image": {"ext": ext, "info": {}}, "labels": {}}}}
    (server.store / "datastore_v2.json").write_text(json.dumps(raw))
    server.process.start(timeout=300)
    info = server.get("/datastore/image/info", params={"image": a}).json()
    assert info["note"] == "from 0.8.5" and info["gazelabel_uncertainty"] == score
    assert server.get("/datastore/", params={"output": "stats"}).json()["total"] == len(server.image_ids)


JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
                    max_leaves=25)
CASE_KEYS = ["schema", "id", "image", "findings", "scores", "boxes", "fixations", "readers", "report", "coverage", "source", "extra"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(CASE_KEYS), JSON, max_size=8))
def test_any_json_is_a_case_or_a_case_error(data):
    """No JSON value makes Case.from_dict raise anything but CaseError (500s came from TypeError/RecursionError)."""
    data.setdefault("id", "x")
    try:
        Case.from_dict(data)
    except CaseError:
        pass


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_strict_loads_round_trips_or_names_the_problem(value):
    text = json.dumps(value)
    try:
        parsed = loads(text, "field", max_bytes=None, expect=None)
    except JSONValueError as e:
        assert str(e).startswith("field")
        assert any(w in text for w in ("NaN", "Infinity"))
    else:
        assert json.dumps(parsed) == text
