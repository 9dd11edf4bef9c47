"""Checkpoints written by the first layout (``gazelabel.checkpoint/1``: weights under ``state_dict``,
family facts at the top level) still load, predict exactly what the same weights predict in the current
layout, and keep what they said about their training data and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.checkpoint import FORMAT, LEGACY_FORMAT, CheckpointError, load_checkpoint, migrate, save_checkpoint
from models.classifier.network import ClassifierConfig, GazeAttentionNet
from models.classifier.predict import ClassifierPredictor
from models.families import FAMILIES
from models.imaging import LoadedImage
from models.scanpath.network import ScanpathConfig, ScanpathNet
from models.scanpath.predict import ScanpathPredictor
from models.vocab import FINDINGS


def write_v1(path, kind, config, state_dict, **extra):
    """The first layout exactly as its ``save_checkpoint`` wrote it (tensors and plain values)."""
    torch.save({"format": LEGACY_FORMAT, "kind": kind, "config": config, "state_dict": state_dict, **extra}, path)
    return path


@pytest.fixture(scope="module")
def image():
    return LoadedImage(np.random.default_rng(3).random((120, 100), dtype=np.float32))


def test_v1_classifier_predicts_as_its_v2_twin(tmp_path, image):
    torch.manual_seed(0)
    net = GazeAttentionNet(ClassifierConfig(size=64, width=4))
    thresholds = [0.1 + 0.05 * i for i in range(len(FINDINGS))]
    summary = {"history": [{"epoch": 1, "val_macro_auc": 0.61}], "val_macro_auc": 0.64, "synthetic": True,
               "dataset": "phantom"}
    old = write_v1(tmp_path / "v1.pt", "classifier", {"model": net.config.to_dict()}, net.state_dict(),
                   thresholds=thresholds, findings=list(FINDINGS), synthetic=True, dataset="phantom", summary=summary)
    new = save_checkpoint(tmp_path / "v2.pt", "classifier", config={"model": net.config.to_dict()},
                          state={"model": net.state_dict(), "thresholds": torch.tensor(thresholds, dtype=torch.float64)},
                          info={"synthetic": True, "dataset": "phantom"})
    a, b = ClassifierPredictor.from_checkpoint(old), ClassifierPredictor.from_checkpoint(new)
    ra, rb = a(image), b(image)
    assert ra.scores == rb.scores and ra.thresholds == rb.thresholds
    assert np.array_equal(ra.attention, rb.attention)
    assert np.array_equal(a.thresholds, b.thresholds) and a.thresholds[3] == pytest.approx(0.25)
    ckpt = load_checkpoint(old, "classifier")
    assert ckpt["format"] == FORMAT and ckpt["info"]["migrated_from"] == LEGACY_FORMAT
    assert ckpt["info"]["synthetic"] is True and ckpt["info"]["dataset"] == "phantom"
    assert ckpt["metrics"]["val_macro_auc"] == pytest.approx(0.64)  # the summary's value wins over history's
    assert FAMILIES["classifier"].load(old).info["synthetic"] is True


def test_v1_scanpath_predicts_as_its_v2_twin(tmp_path, image):
    torch.manual_seed(1)
    cfg = ScanpathConfig(size=32, slots=8, d_model=32, heads=2, ff=64, decoder_layers=1, channels=(8, 16), dropout=0.0)
    net = ScanpathNet(cfg)
    old = write_v1(tmp_path / "v1.pt", "scanpath", cfg.to_dict(), net.state_dict(),
                   dataset={"name": "egd-cxr", "synthetic": False},
                   training={"epochs": 3, "batch_size": 4, "lr": 1e-3, "seed": 0, "text": False, "n_images": 10,
                             "final_loss": 1.5, "val_loss": 1.75, "seconds": 2.0})
    new = save_checkpoint(tmp_path / "v2.pt", "scanpath", config={"model": cfg.to_dict()}, state={"model": net.state_dict()},
                          info={"synthetic": False, "dataset": "egd-cxr"})
    pa, pb = ScanpathPredictor.from_checkpoint(old), ScanpathPredictor.from_checkpoint(new)
    fa, fb = pa(image, n_samples=3, seed=5), pb(image, n_samples=3, seed=5)
    assert [[(f.x, f.y, f.duration) for f in p] for p in fa] == [[(f.x, f.y, f.duration) for f in p] for p in fb]
    ckpt = load_checkpoint(old, "scanpath")
    assert ckpt["config"]["train"] == {"epochs": 3, "batch_size": 4, "lr": 1e-3, "seed": 0, "text": False}
    assert ckpt["metrics"] == {"train_loss": 1.5, "val_loss": 1.75, "seconds": 2.0}
    assert ckpt["info"]["synthetic"] is False and ckpt["info"]["dataset"] == "egd-cxr"


def test_v1_report_layout_is_split_into_sections():
    ckpt = migrate({"format": LEGACY_FORMAT, "kind": "report",
                    "config": {"image_size": 64, "prefix": {"prefix_tokens": 4}, "lora_targets": ["c_attn"], "lm_dir": "lm"},
                    "state_dict": {"prefix": {"w": torch.zeros(1)}, "lora": {}},
                    "history": {"lm": {"val_loss": [3.0, 2.5]}, "gaze2report": {"val_loss": [2.0, 1.25]}},
                    "synthetic": True, "dataset": "phantom"})
    assert ckpt["config"] == {"train": {"image_size": 64}, "prefix": {"prefix_tokens": 4}, "lora_targets": ["c_attn"],
                              "lm_dir": "lm"}
    assert set(ckpt["state"]) == {"prefix", "lora"}
    assert ckpt["metrics"] == {"lm_val_loss": 2.5, "gaze2report_val_loss": 1.25}


@pytest.mark.parametrize("payload, message", [
    ({"format": LEGACY_FORMAT, "kind": "classifier", "config": {}}, "without weights"),
    ({"format": LEGACY_FORMAT, "kind": "segmenter", "config": {}, "state_dict": {}}, "unknown kind"),
])
def test_broken_v1_files_are_named(tmp_path, payload, message):
    with pytest.raises(CheckpointError, match=message):
        migrate(payload, tmp_path / "x.pt")
