"""A short `gazelabel train scanpath` run on a small SYNTHETIC phantom store must beat the centre-bias
baseline on held-out images: on MultiMatch through the benchmark's evaluation protocol, and on the
likelihood of the held-out readers' fixations."""

from __future__ import annotations

import json

import pytest

from models.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch

    from models.datasets.phantom import generate_store

    torch.set_num_threads(1)  # tiny ops: one thread is fastest, and the test machine is shared
    root = tmp_path_factory.mktemp("scanpath")
    store = root / "store"
    generate_store(store, n=90, seed=5, size=128, readers=3, splits=(0.7, 0.0, 0.3), progress=False)
    model = root / "scanpath.pt"
    assert main(["train", "scanpath", "--data", str(store), "--out", str(model), "--epochs", "12", "--size", "64",
                 "--batch-size", "8", "--lr", "2e-3", "--device", "cpu", "--threads", "1", "--seed", "0"]) == 0
    report = root / "eval.json"
    assert main(["evaluate", "scanpath", "--data", str(store), "--model", str(model), "--json", str(report),
                 "--samples", "2", "--temperature", "0.3", "--bootstrap", "100", "--threads", "1"]) == 0
    return store, model, json.loads(report.read_text())


def test_paths_beat_centre_bias_on_held_out_images(trained):
    _, _, summary = trained
    systems = summary["systems"]
    assert summary["synthetic"] is True and summary["n_images"] >= 15
    centre = systems["centre_bias"]["mm_mean"]
    for name in ("predictor", "predictor_samples"):
        ours = systems[name]["mm_mean"]
        assert ours["low"] > centre["high"], (name, ours, centre)  # CIs do not overlap


def test_held_out_fixations_are_likelier_than_under_centre_bias(trained):
    """Per-fixation x, y negative log-likelihood on test readers (teacher forcing) against the centre-bias
    Gaussian with the training readers' spread: the model must explain where readers look better."""
    import math

    import torch

    from models.datasets.store import CaseStore
    from models.scanpath.baselines import CentreBias
    from models.scanpath.losses import mixture_nll_xy
    from models.scanpath.predict import ScanpathPredictor
    from models.scanpath.train import ScanpathDataset

    store, model_path, _ = trained
    source = CaseStore(store).source()
    spread = CentreBias.fit(source.split("train")).spread  # fractions of width/height = model coords (square)
    net = ScanpathPredictor.from_checkpoint(model_path).model
    data = ScanpathDataset(source.split("test"), net.cfg.size, net.cfg.slots)
    ours, centre, count = 0.0, 0.0, 0
    with torch.no_grad():
        for item in data:
            keep = item["lengths"] > 0
            targets, lengths = item["targets"][keep], item["lengths"][keep]
            out = net(item["image"][None], targets, None, torch.zeros(len(targets), dtype=torch.long))
            valid = torch.arange(targets.shape[1])[None] < lengths[:, None]
            ours += float(mixture_nll_xy(targets[..., :2], out["mix_logit"], out["mean_xy"], out["logvar_xy"])[valid].sum())
            xy = targets[..., :2][valid]
            for axis, s in enumerate(spread):
                centre += float((0.5 * math.log(2 * math.pi * s * s) + (xy[:, axis] - 0.5) ** 2 / (2 * s * s)).sum())
            count += int(valid.sum())
    assert ours / count < centre / count - 0.3, (ours / count, centre / count)


def test_report_carries_ceiling_ratios_with_intervals(trained):
    _, _, summary = trained
    ratio = summary["ratio_to_ceiling"]["predictor"]["cc"]
    assert ratio["low"] <= ratio["mean"] <= ratio["high"]
    assert summary["duration_ks"]["predictor_samples"]["mean"] < summary["duration_ks"]["predictor"]["mean"]


def test_report_conditioned_model_trains_and_uses_the_report(tmp_path):
    """`--text` embeds reports with the frozen MiniLM; the prediction then depends on the report."""
    import torch

    from models.checkpoint import load_checkpoint
    from models.datasets.phantom import generate_store
    from models.imaging import read_image
    from models.scanpath.predict import ScanpathPredictor

    torch.set_num_threads(1)
    store = tmp_path / "store"
    generate_store(store, n=12, seed=6, size=128, readers=2, splits=(0.75, 0.0, 0.25), progress=False)
    model = tmp_path / "text.pt"
    assert main(["train", "scanpath", "--data", str(store), "--out", str(model), "--epochs", "2", "--size", "64",
                 "--slots", "16", "--text", "--device", "cpu", "--threads", "1"]) == 0
    predictor = ScanpathPredictor.from_checkpoint(model)
    assert predictor.uses_text and load_checkpoint(model, "scanpath")["config"]["train"]["text"] is True
    image = read_image(next(store.glob("*.png")))
    a = predictor(image, report_text="Large right pleural effusion.")[0]
    b = predictor(image, report_text="Normal heart size. No acute findings.")[0]
    assert [(f.x, f.y) for f in a] != [(f.x, f.y) for f in b]
