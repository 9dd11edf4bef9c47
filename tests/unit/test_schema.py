import json
import math

import pytest

from models.schema import Case, CaseError, load_case, save_case


def _case(**over):
    d = {
        "id": "c1",
        "image": {"path": "c1.png", "width": 100, "height": 80, "spacing_mm": [0.5, 0.5]},
        "findings": {"Cardiomegaly": 1, "pleural effusion": 0, "Pneumothorax": -1},
        "scores": {"Cardiomegaly": 0.9},
        "boxes": [{"finding": "Cardiomegaly", "x1": 30, "y1": 40, "x2": 70, "y2": 70, "region": "heart"}],
        "fixations": [{"x": 50, "y": 40, "t": 0.0, "duration": 0.3}, {"x": 20, "y": 20, "t": 0.3, "duration": 0.2}],
        "report": {"findings": "The heart is enlarged.", "impression": "Cardiomegaly.",
                   "evidence": [{"sentence": 0, "finding": "Cardiomegaly", "box": 0, "fixations": [0]}]},
    }
    d.update(over)
    return d


def test_round_trip_and_canonical_names(tmp_path):
    case = Case.from_dict(_case())
    assert case.findings == {"Cardiomegaly": 1, "Pleural Effusion": 0, "Pneumothorax": -1}
    path = save_case(case, tmp_path / "c1.json")
    again = load_case(path)
    assert again.to_dict() == case.to_dict()
    assert json.loads(path.read_text())["schema"] == "gazelabel.case/1"


def test_label_vector_masks_unmentioned():
    target, mask = Case.from_dict(_case()).label_vector(uncertain_as=0.5)
    from models.vocab import FINDING_INDEX

    assert target[FINDING_INDEX["Cardiomegaly"]] == 1 and mask[FINDING_INDEX["Cardiomegaly"]] == 1
    assert target[FINDING_INDEX["Pneumothorax"]] == 0.5
    assert mask[FINDING_INDEX["Edema"]] == 0 and sum(mask) == 3


@pytest.mark.parametrize(
    "override, message",
    [
        ({"fixations": [{"x": math.nan, "y": 1}]}, "fixations[0].x: must be a finite number"),
        ({"fixations": [{"x": 1, "y": 1, "duration": -0.1}]}, "fixations[0].duration: must be >= 0"),
        ({"fixations": [{"x": 500, "y": 10}]}, "fixations[0]: point (500.0, 10.0) lies outside the 100x80 image"),
        ({"findings": {"Dragon": 1}}, "unknown finding 'Dragon'"),
        ({"findings": {"Edema": 2}}, "must be 1 (positive), 0 (negative) or -1 (uncertain)"),
        ({"boxes": [{"finding": "Edema", "x1": 50, "y1": 10, "x2": 40, "y2": 20}]}, "needs x1 < x2"),
        ({"boxes": [{"finding": "Edema", "x1": 1, "y1": 1, "x2": 2, "y2": 2, "region": "moon"}]}, "unknown region"),
        ({"scores": {"Edema": 1.5}}, "probability in [0, 1]"),
        ({"id": ""}, "id: a non-empty string"),
        ({"report": {"findings": "x", "evidence": [{"sentence": 0, "box": 3}]}}, "report.evidence[0].box"),
    ],
)
def test_validation_names_field_and_problem(override, message):
    with pytest.raises(CaseError) as err:
        Case.from_dict(_case(**override))
    assert message in str(err.value)


def test_load_case_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CaseError, match="bad.json: not valid JSON"):
        load_case(bad)
    with pytest.raises(CaseError, match="missing.json: no such file"):
        load_case(tmp_path / "missing.json")
    bad.write_text(json.dumps(_case(fixations=[{"x": 1}])))
    with pytest.raises(CaseError, match=r"bad.json: fixations\[0\]: missing 'y'"):
        load_case(bad)
