"""End to end on a tiny SYNTHETIC phantom store: `gazelabel train/evaluate classifier`, then predict.

The trained model must beat chance by a measured margin on cases it never saw, and the evaluation JSON
must carry every promised metric with a CI."""

import json

import numpy as np
import pytest

from models.cli import main

pytestmark = pytest.mark.integration

# Findings the tiny phantom model reliably learns in a few epochs (large, high-contrast signs).
EASY = ("Cardiomegaly", "Edema", "No Finding")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from models.datasets.phantom import generate_store

    root = tmp_path_factory.mktemp("cls")
    store = root / "store"
    generate_store(store, n=200, seed=3, size=128, readers=1, splits=(0.6, 0.15, 0.25), progress=False)
    model = root / "cls.pt"
    rc = main(["train", "classifier", "--data", str(store), "--out", str(model), "--epochs", "8", "--size", "64",
               "--width", "8", "--batch-size", "16", "--lr", "3e-3", "--gaze-weight", "0.3", "--device", "cpu",
               "--no-progress"])
    assert rc == 0
    report = root / "eval.json"
    assert main(["evaluate", "classifier", "--data", str(store), "--model", str(model), "--json", str(report),
                 "--n-boot", "200"]) == 0
    return store, model, json.loads(report.read_text())


def test_beats_chance_on_held_out_cases(trained):
    _, _, report = trained
    aucs = [report["classification"]["per_finding"][f]["auc"]["estimate"] for f in EASY]
    assert np.mean(aucs) > 0.75, aucs  # chance is 0.5
    assert report["classification"]["macro_auc"]["estimate"] > 0.55


def test_report_has_all_metrics_with_cis(trained):
    _, _, report = trained
    assert report["synthetic"] is True and report["split"] == "test"
    assert "validation" in report["threshold_source"]
    for key in ("cc", "kl", "iou_topk", "iou_binarised", "nss"):
        ci = report["attention_gaze"][key]
        assert ci["low"] <= ci["estimate"] <= ci["high"], key
    assert report["attention_gaze"]["n_cases"] > 0
    assert report["pointing_game"]["n_boxes"] > 0
    per = report["classification"]["per_finding"]["Cardiomegaly"]
    assert set(per) == {"n", "n_positive", "threshold", "auc", "f1"}


def test_predictor_on_a_store_image(trained):
    from models.classifier.predict import ClassifierPredictor
    from models.datasets.store import CaseStore
    from models.schema import Case

    store, model, _ = trained
    src = CaseStore(store).source()
    case = src.split("test")[0]
    predictor = ClassifierPredictor.from_checkpoint(model)
    res = predictor(CaseStore(store).load_image(case.id), mc_samples=3)
    assert res.heatmap().shape == (case.image.height, case.image.width)
    out = Case.from_dict(res.to_case(case.id, case.image).to_dict())
    assert out.image.synthetic and set(out.scores) == set(res.scores)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "classifier", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["evaluate", "classifier", "--data", str(tmp_path), "--model", str(tmp_path / "none.pt"),
                 "--json", str(tmp_path / "x.json")]) == 2
    with pytest.raises(SystemExit):
        main(["train", "classifier", "--data", "x", "--out", "y", "--size", "100"])
    assert main(["train", "classifier", "--data", str(tmp_path), "--out", "y", "--gaze-terms", "1,2"]) == 2
