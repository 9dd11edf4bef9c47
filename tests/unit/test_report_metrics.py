"""Report metrics on hand-checked toy inputs; one METEOR process for the module (start-up ~13 s)."""

import pytest

from models.metrics.report import (BERTSCORE_LABEL, NOT_COMPUTED, ReportScorer, clean_report, clinical_efficacy,
                                   require_java)

REFS = [
    "The heart is enlarged. There is a small left pleural effusion. No pneumothorax.",
    "The lungs are clear. No pleural effusion or pneumothorax. The heart size is normal.",
]


@pytest.fixture(scope="module")
def scorer():
    with ReportScorer(meteor=True, bertscore=True) as s:
        yield s


def test_clean_report():
    assert clean_report("Heart is NORMAL.\nNo effusion|||") == "heart is normal . no effusion ."
    assert clean_report("Lungs: clear..  ") == "lungs clear ."


def test_identical_reports_score_one(scorer):
    m = scorer.score(REFS, list(REFS))
    for n in range(1, 5):
        assert m[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
    assert m["ROUGE-L"] == pytest.approx(1.0)
    assert m["METEOR"] > 0.95
    assert m[f"{BERTSCORE_LABEL} F1"] == pytest.approx(1.0, abs=1e-4)
    assert m["ce_f1_micro14"] == 1.0 and m["ce_f1_macro14"] == 1.0
    assert m["not_computed"] == NOT_COMPUTED


def test_worse_hypotheses_score_lower_and_newlines_are_safe(scorer):
    hyps = ["The heart is normal.\nNo effusion|||", "There is a right lower lobe pneumonia."]
    m = scorer.score(REFS, hyps)
    assert 0.0 < m["BLEU-1"] < 0.8
    assert m["METEOR"] < 0.6
    assert m["ce_f1_micro14"] < 0.5


def test_clinical_efficacy_counts():
    refs = [{"Cardiomegaly": 1, "Edema": 1}, {"No Finding": 1}]
    hyps = [{"Cardiomegaly": 1, "Edema": -1}, {"Pleural Effusion": 1}]
    ce = clinical_efficacy(refs, hyps)
    # TP: cardiomegaly; FN: edema (uncertain is not positive), no finding; FP: effusion.
    assert ce["ce_precision_micro14"] == pytest.approx(1 / 2)
    assert ce["ce_recall_micro14"] == pytest.approx(1 / 3)
    assert ce["ce_f1_micro14"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))
    assert ce["ce_per_finding"]["Edema"]["fn"] == 1
    assert "Fracture" in ce["ce_macro14_findings_undefined"]
    assert clinical_efficacy(refs, hyps, uncertain_as_positive=True)["ce_per_finding"]["Edema"]["tp"] == 1


def test_bad_input_raises(scorer):
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        scorer.nlg(REFS, REFS[:1])
    with pytest.raises(ValueError, match="no reports"):
        scorer.nlg([], [])
    with pytest.raises(ValueError, match="hypotheses\\[0\\]"):
        scorer.nlg(REFS[:1], [None])


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="default-jre-headless"):
        require_java()
