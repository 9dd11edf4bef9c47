"""Predicted scanpaths never pass for recorded gaze; trainings learn from every human reader."""

from __future__ import annotations

import pytest

from models.recorded_gaze import fixations_are_predicted, gaze_kind, image_id_of, recorded_readers, training_gaze
from models.schema import Case, Fixation, ImageRef, Prediction


def fx(*xs):
    return [Fixation(float(x), 10.0, 0.1 * i, 0.2) for i, x in enumerate(xs)]


def case(fixations=(), readers=None, gaze_source=None, models=None, cid="img1"):
    pred = None if gaze_source is None and models is None else Prediction(models=models or {}, gaze_source=gaze_source)
    return Case(id=cid, image=ImageRef("", 100, 100), fixations=list(fixations), readers=dict(readers or {}), prediction=pred)


def test_predicted_fixations_are_recognised():
    assert fixations_are_predicted(case(fx(1, 2), gaze_source="predicted"))
    assert fixations_are_predicted(case(fx(1, 2), models={"scanpath": "stamp"}))  # older answers
    assert not fixations_are_predicted(case(fx(1, 2), gaze_source="recorded"))
    assert not fixations_are_predicted(case(fx(1, 2)))  # a dataset record
    assert not fixations_are_predicted(case([], gaze_source="predicted"))


def test_kinds_and_readers():
    annotator = {"annotator-3f2a": fx(50, 60)}
    assert gaze_kind(case(fx(1), gaze_source="predicted")) == "predicted"
    assert gaze_kind(case(fx(1), annotator, gaze_source="predicted")) == "recorded"
    assert gaze_kind(case()) == "none"
    assert list(recorded_readers(case(fx(1), annotator))) == ["reader_1", "annotator-3f2a"]
    assert list(recorded_readers(case(fx(1), annotator, gaze_source="predicted"))) == ["annotator-3f2a"]


def test_pooled_per_reader_and_none():
    cases = [case(fx(1, 2), {"annotator-a": fx(30)}, cid="a"), case(fx(5), gaze_source="predicted", cid="b"), case(cid="c")]
    pooled, counts = training_gaze(cases, "pooled")
    assert counts == {"recorded": 1, "predicted": 1, "none": 1}
    assert [f.x for f in pooled[0].fixations] == [1, 2, 30] and pooled[0].readers == {}
    assert pooled[1].fixations == []  # a model's guess is not supervision
    per, _ = training_gaze(cases, "per_reader")
    assert [c.id for c in per] == ["a~reader_1", "a~annotator-a", "b", "c"]
    assert {image_id_of(c.id) for c in per} == {"a", "b", "c"}
    none, _ = training_gaze(cases, "none")
    assert all(not c.fixations and not c.readers for c in none)
    used, _ = training_gaze(cases, "pooled", use_predicted=True)
    assert [f.x for f in used[1].fixations] == [5]
    assert cases[0].readers == {"annotator-a": fx(30)}  # inputs untouched


@pytest.mark.parametrize("family", ["scanpath", "report"])
def test_sequence_families_keep_each_reader_a_sequence(family):
    out, _ = training_gaze([case(fx(1, 2), {"annotator-a": fx(30, 40)}, gaze_source="predicted")], "pooled", family=family)
    assert [f.x for f in out[0].fixations] == [30, 40] and out[0].readers == {}
    two, _ = training_gaze([case(fx(1, 2), {"annotator-a": fx(30, 40)})], "pooled", family=family)
    assert [f.x for f in two[0].fixations] == [1, 2] and [f.x for f in two[0].readers["annotator-a"]] == [30, 40]


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="gaze_readers must be one of pooled, per_reader, none"):
        training_gaze([], "everyone")
