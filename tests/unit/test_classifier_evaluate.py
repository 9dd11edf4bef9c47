"""Evaluation arithmetic on hand-made predictions: agreement, pointing game, classification report."""

import numpy as np
import pytest

from models.classifier.evaluate import agreement_per_case, evaluate_predictions, pointing_per_box
from models.vocab import FINDING_INDEX, FINDINGS

S, G = 32, 4  # model size, attention grid


def _pred(n=6):
    rng = np.random.default_rng(0)
    labels = np.zeros((n, 14)); labels[: n // 2, FINDING_INDEX["Cardiomegaly"]] = 1
    probs = rng.random((n, 14)) * 0.4; probs[: n // 2, FINDING_INDEX["Cardiomegaly"]] += 0.5
    attention = np.full((n, 14, G, G), 1.0 / G**2)
    attention[:, FINDING_INDEX["Cardiomegaly"]] = 0.0
    attention[:, FINDING_INDEX["Cardiomegaly"], 3, 1] = 1.0  # cell x 8..16, y 24..32
    prior = np.zeros((n, G, G)); prior[:, 1, 2] = 1.0
    gaze = np.zeros((n, S, S)); gaze[:, 8:16, 16:24] = 1.0  # the same cell as the prior, at model resolution
    boxes = np.zeros((n, 16, 5)); boxes[:, 0] = [FINDING_INDEX["Cardiomegaly"], 6, 22, 18, 32]
    fixations = np.zeros((n, 64, 3)); fixations[:, 0] = [20, 12, 0.3]
    return {"probs": probs, "labels": labels, "mask": np.ones((n, 14)), "attention": attention, "prior": prior,
            "gaze": gaze, "has_gaze": np.array([1.0] * (n - 1) + [0.0]), "boxes": boxes,
            "n_boxes": np.array([1] * n), "fixations": fixations, "n_fixations": np.array([1] * n)}


def test_agreement_prior_vs_findings():
    pred = _pred()
    prior = agreement_per_case(pred, S, "prior")
    assert len(prior["cc"]) == 5  # the case without gaze is skipped
    assert np.all(prior["cc"] > 0.8) and np.all(prior["nss"] > 1)
    findings = agreement_per_case(pred, S, "findings")
    assert np.all(findings["cc"] < prior["cc"])
    with pytest.raises(ValueError, match="which"):
        agreement_per_case(pred, S, "both")


def test_pointing_hits_and_misses():
    pred = _pred()
    assert pointing_per_box(pred, S).tolist() == [1.0] * 6
    pred["boxes"][:, 0, 1:] = [24, 0, 32, 8]  # box in the opposite corner
    assert pointing_per_box(pred, S).tolist() == [0.0] * 6


def test_report_structure_and_perfect_auc():
    report = evaluate_predictions(_pred(), np.full(14, 0.5), S, n_boot=50)
    card = report["classification"]["per_finding"]["Cardiomegaly"]
    assert card["auc"]["estimate"] == 1.0 and card["n_positive"] == 3
    assert card["f1"]["estimate"] == 1.0
    assert report["classification"]["per_finding"]["Edema"]["auc"]["estimate"] is None  # one class: undefined
    assert report["pointing_game"]["accuracy"]["estimate"] == 1.0
    assert set(report["classification"]["per_finding"]) == set(FINDINGS)
    assert report["attention_gaze"]["n_cases"] == 5
