"""Report metrics on hand-checked toy inputs; one METEOR process for the module (start-up ~13 s)."""

import numpy as np
import pytest

from models.metrics.report import (BERTSCORE_LABEL, CE5_UNCERTAIN_POSITIVE, CE14_POSITIVE_ONLY, CE_CONVENTIONS,
                                   CHEXBERT_5, NOT_COMPUTED, ReportScorer, ce_label_matrix, clean_report,
                                   clean_report_iu_xray, clean_report_mimic_cxr, clinical_efficacy, micro_f1,
                                   require_java)
from models.vocab import FINDINGS

REFS = [
    "The heart is enlarged. There is a small left pleural effusion. No pneumothorax.",
    "The lungs are clear. No pleural effusion or pneumothorax. The heart size is normal.",
]


@pytest.fixture(scope="module")
def scorer():
    with ReportScorer(meteor=True, bertscore=True) as s:
        yield s


# ------------------------------------------------------------------------------------ R2Gen cleaning
# Expected strings derived by hand from R2Gen's Tokenizer.clean_report_iu_xray / clean_report_mimic_cxr
# (github.com/cuhksz-nlp/R2Gen, modules/tokenizers.py); the step that decides each case is named.
@pytest.mark.parametrize("text, expected", [
    # split at ". " only: ".\n" is no sentence break for IU X-ray, "." and "|" handling per the char class
    ("The heart is normal.\nNo effusion|||", "the heart is normal\nno effusion||| ."),
    # "1. " deleted, ". 2. " -> ". "
    ("1. No acute disease. 2. Stable cardiomegaly.", "no acute disease . stable cardiomegaly ."),
    # "1. " is deleted inside "T11. " too
    ("T11. Mild degenerative change.", "t1mild degenerative change ."),
    # empty sentences are kept (R2Gen's filter `!= []` is always true)
    ("No effusion. . Normal.", "no effusion .  . normal ."),
    # ":" .. "[" is a range ("<", "=", ">" go), "-" survives, "%" and "()" go
    ("Left-sided (small) effusion; 50% <a=b>", "left-sided small effusion 50 ab ."),
    # quotes, slashes and apostrophes deleted first
    ("Don't \"see\" a/b", "dont see ab ."),
    ("Lungs: clear..  ", "lungs clear ."),
    ("", " ."),
])
def test_clean_report_iu_xray_reproduces_r2gen(text, expected):
    assert clean_report_iu_xray(text) == expected


def test_clean_report_mimic_cxr_reproduces_r2gen():
    # newline -> space makes two sentences; "___" -> "_" -> deleted; runs of spaces halved 6 times; "...." -> "."
    assert clean_report_mimic_cxr("The heart is normal.\nNo effusion|||") == "the heart is normal . no effusion||| ."
    assert clean_report_mimic_cxr("Chest ___ with  __ double   spaces....") == "chest  with  double spaces ."


def test_clean_report_is_r2gen_whitespace_tokenised():
    # what R2Gen's tokenizer splits into tokens, re-joined by single spaces
    assert clean_report("The heart is normal.\nNo effusion|||") == "the heart is normal no effusion||| ."
    assert clean_report("The heart is normal.\nNo effusion|||", "mimic_cxr") == "the heart is normal . no effusion||| ."
    assert clean_report("No effusion. . Normal.") == "no effusion . . normal ."
    assert clean_report("") == "."
    with pytest.raises(ValueError, match="cleaning must be one of.*'iu_xray'.*got 'r2gen'"):
        clean_report("x", "r2gen")


def test_nlg_scores_the_r2gen_cleaned_text():
    # R2Gen drops the list number "1. ", so these two are the same text for the NLG metrics.
    with ReportScorer(meteor=False, bertscore=False) as s:
        m = s.nlg(["1. No acute disease."], ["No acute disease."])
        assert m["BLEU-1"] == pytest.approx(1.0, abs=1e-6) and m["ROUGE-L"] == pytest.approx(1.0)
        assert "clean_report_iu_xray" in s.score(["1. No acute disease."], ["No acute disease."])["text_cleaning"]
    assert "clean_report_mimic_cxr" in ReportScorer(meteor=False, bertscore=False,
                                                    cleaning="mimic_cxr").score(REFS, REFS)["text_cleaning"]
    with pytest.raises(ValueError, match="cleaning must be one of"):
        ReportScorer(meteor=False, bertscore=False, cleaning="iu")


# ------------------------------------------------------------------------------------------- scorer
def test_identical_reports_score_one(scorer):
    m = scorer.score(REFS, list(REFS))
    for n in range(1, 5):
        assert m[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
    assert m["ROUGE-L"] == pytest.approx(1.0)
    assert m["METEOR"] > 0.95
    assert m[f"{BERTSCORE_LABEL} F1"] == pytest.approx(1.0, abs=1e-4)
    assert m["ce_f1_micro14_positive_only"] == 1.0 and m["ce_f1_micro5_uncertain_positive"] == 1.0
    # macro over all 14: findings absent from both sides count 0.0 (scikit-learn's zero_division default)
    undefined = m["ce_findings_undefined_14_positive_only"]
    assert 0 < len(undefined) < 14
    assert m["ce_f1_macro14_positive_only"] == pytest.approx((14 - len(undefined)) / 14)
    assert m["not_computed"] == NOT_COMPUTED


def test_worse_hypotheses_score_lower_and_newlines_are_safe(scorer):
    hyps = ["The heart is normal.\nNo effusion|||", "There is a right lower lobe pneumonia."]
    m = scorer.score(REFS, hyps)
    assert 0.0 < m["BLEU-1"] < 0.8
    assert m["METEOR"] < 0.6
    assert m["ce_f1_micro14_positive_only"] < 0.5


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


# ------------------------------------------------------------------------------------------------ CE
CE_REFS = [{"Cardiomegaly": 1, "Edema": 1}, {"No Finding": 1}]
CE_HYPS = [{"Cardiomegaly": 1, "Edema": -1}, {"Pleural Effusion": 1}]


def test_clinical_efficacy_both_conventions_hand_worked():
    ce = clinical_efficacy(CE_REFS, CE_HYPS)
    # 14 findings, positive only. TP: cardiomegaly; FN: edema (uncertain is not positive), no finding; FP: effusion.
    assert ce["ce_precision_micro14_positive_only"] == pytest.approx(1 / 2)
    assert ce["ce_recall_micro14_positive_only"] == pytest.approx(1 / 3)
    assert ce["ce_f1_micro14_positive_only"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))
    assert ce["ce_per_finding_14_positive_only"]["Edema"]["fn"] == 1
    # CheXbert's 5, uncertain positive. "No Finding" is not one of them; TP: cardiomegaly, edema; FP: effusion.
    assert ce["ce_precision_micro5_uncertain_positive"] == pytest.approx(2 / 3)
    assert ce["ce_recall_micro5_uncertain_positive"] == pytest.approx(1.0)
    assert ce["ce_f1_micro5_uncertain_positive"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))
    assert ce["ce_per_finding_5_uncertain_positive"]["Edema"]["tp"] == 1
    assert list(ce["ce_per_finding_5_uncertain_positive"]) == list(CHEXBERT_5)
    assert ce["ce_conventions"]["5_uncertain_positive"]["positive_values"] == [1, -1]
    assert ce["ce_conventions"]["14_positive_only"]["findings"] == list(FINDINGS)
    # every number's key names its convention (the legacy aliases are declared as such)
    legacy = set(ce["ce_legacy_aliases"])
    for key, value in ce.items():
        if isinstance(value, float) and key not in legacy:
            assert key.endswith(("_positive_only", "_uncertain_positive")), key


def test_macro_is_over_all_findings_with_zero_for_undefined():
    ce = clinical_efficacy(CE_REFS, CE_HYPS)
    # 14: only cardiomegaly has F1 1; edema, no finding, effusion 0; the 10 absent findings 0 -> 1/14
    # (the old macro averaged over the 4 findings that occur: 1/4).
    assert ce["ce_f1_macro14_positive_only"] == pytest.approx(1 / 14)
    assert ce["ce_precision_macro14_positive_only"] == pytest.approx(1 / 14)
    assert ce["ce_recall_macro14_positive_only"] == pytest.approx(1 / 14)
    assert len(ce["ce_findings_undefined_14_positive_only"]) == 10 and "Fracture" in ce["ce_findings_undefined_14_positive_only"]
    # 5: cardiomegaly 1, edema 1, effusion 0, atelectasis and consolidation undefined -> 0: 2/5
    assert ce["ce_f1_macro5_uncertain_positive"] == pytest.approx(2 / 5)
    assert ce["ce_findings_undefined_5_uncertain_positive"] == ["Atelectasis", "Consolidation"]
    fracture = ce["ce_per_finding_14_positive_only"]["Fracture"]
    assert (fracture["precision"], fracture["recall"], fracture["f1"], fracture["defined"]) == (0.0, 0.0, 0.0, False)
    # precision of a finding never predicted (no finding: tp 0, fp 0) is 0.0, not None
    assert ce["ce_per_finding_14_positive_only"]["No Finding"]["precision"] == 0.0


def test_no_positives_anywhere_is_zero_everywhere():
    refs, hyps = [{}, {"Fracture": 0, "Edema": 0}], [{"Edema": 0}, {}]
    ce = clinical_efficacy(refs, hyps)
    for c in CE_CONVENTIONS:
        for stat in ("precision", "recall", "f1"):
            for avg in ("micro", "macro"):
                assert ce[c.key(stat, avg)] == 0.0
        assert ce[f"ce_findings_undefined_{c.name}"] == list(c.findings)
        # the benchmark's bootstrap statistic follows the same rule (it returned NaN before)
        assert micro_f1(ce_label_matrix(refs, c), ce_label_matrix(hyps, c)) == 0.0


def test_clinical_efficacy_matches_scikit_learn_zero_division_0():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    values = np.array([1, 0, -1, 2])  # 2 = not mentioned
    refs, hyps = [], []
    for _ in range(12):
        for out in (refs, hyps):
            # most findings rare, some never present: exercises the undefined ones
            v = rng.choice(values, size=len(FINDINGS), p=[0.15, 0.1, 0.1, 0.65])
            v[[FINDINGS.index("Fracture"), FINDINGS.index("Atelectasis")]] = 2
            out.append({f: int(x) for f, x in zip(FINDINGS, v) if x != 2})
    ce = clinical_efficacy(refs, hyps)
    for c in CE_CONVENTIONS:
        y, p = ce_label_matrix(refs, c), ce_label_matrix(hyps, c)
        for avg in ("micro", "macro"):
            pr, rc, f1, _ = metrics.precision_recall_fscore_support(y, p, average=avg, zero_division=0)
            assert ce[c.key("precision", avg)] == pytest.approx(pr)
            assert ce[c.key("recall", avg)] == pytest.approx(rc)
            assert ce[c.key("f1", avg)] == pytest.approx(f1)
        assert micro_f1(y, p) == pytest.approx(ce[c.key("f1", "micro")])


def test_legacy_keys_are_declared_aliases():
    ce = clinical_efficacy(CE_REFS, CE_HYPS)
    assert ce["ce_legacy_aliases"]["ce_f1_micro14"] == "ce_f1_micro14_positive_only"
    assert ce["ce_f1_micro14"] == ce["ce_f1_micro14_positive_only"]
    assert ce["ce_f1_macro14"] == ce["ce_f1_macro14_positive_only"] == pytest.approx(1 / 14)
    assert ce["ce_positive_values"] == [1]
    up = clinical_efficacy(CE_REFS, CE_HYPS, uncertain_as_positive=True)
    assert up["ce_per_finding_14_uncertain_positive"]["Edema"]["tp"] == 1
    assert up["ce_f1_micro14_uncertain_positive"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert up["ce_legacy_aliases"]["ce_f1_micro14"] == "ce_f1_micro14_uncertain_positive"
    assert up["ce_per_finding"]["Edema"]["tp"] == 1 and up["ce_positive_values"] == [1, -1]
    # the default conventions are there whatever the flag
    assert up["ce_f1_micro14_positive_only"] == ce["ce_f1_micro14_positive_only"]


def test_clinical_efficacy_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="1 predicted_labels for 2 reference_labels"):
        clinical_efficacy(CE_REFS, CE_HYPS[:1])
    with pytest.raises(ValueError, match=r"predicted_labels\[1\]: expected a dict"):
        clinical_efficacy(CE_REFS, [{}, "Edema"])


def test_report_benchmark_uses_the_shared_ce_rule(load_script):
    bench = load_script("benchmarks/report_benchmark.py")
    assert set(bench.CE_CI) == {"ce_f1_micro14_positive_only", "ce_f1_micro5_uncertain_positive"}
    ref, hyp = bench.ce_matrices(CE_REFS), bench.ce_matrices(CE_HYPS)
    ce = clinical_efficacy(CE_REFS, CE_HYPS)
    for key in bench.CE_CI:
        assert bench.micro_f1(ref[key], hyp[key]) == pytest.approx(ce[key])
    empty = bench.ce_matrices([{}])
    assert bench.micro_f1(empty["ce_f1_micro14_positive_only"], empty["ce_f1_micro14_positive_only"]) == 0.0
    assert ref["ce_f1_micro5_uncertain_positive"].shape == (2, 5)
    assert ce_label_matrix(CE_REFS, CE14_POSITIVE_ONLY).shape == (2, 14)
    assert ce_label_matrix(CE_HYPS, CE5_UNCERTAIN_POSITIVE)[0].tolist() == [0, 1, 0, 1, 0]
