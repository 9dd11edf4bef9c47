"""The scanpath encoder and the report's visual tokens on the classifier's standard backbones (issue 16,
item 1): the memory grid follows the backbone's stride, generation works, and a user's weight file reaches
every tensor of the trunk through `gazelabel train scanpath|report --backbone NAME --weights FILE`.
SYNTHETIC phantom data; random weights (nothing is downloaded)."""

from __future__ import annotations

import pytest
import torch

from models.classifier.config import BACKBONE_STRIDES


@pytest.mark.parametrize("name", ["resnet50", "convnext_tiny"])
def test_scanpath_memory_follows_the_backbone_grid(name):
    from models.scanpath.config import ScanpathConfig
    from models.scanpath.network import ScanpathNet

    cfg = ScanpathConfig(size=64, slots=6, d_model=32, heads=4, ff=64, decoder_layers=1, backbone=name)
    net = ScanpathNet(cfg).eval()
    side = 64 // BACKBONE_STRIDES[name]
    assert cfg.grid == side and net.token_centres.shape == (side * side, 2)
    with torch.no_grad():
        assert net.memory(torch.rand(2, 1, 64, 64)).shape == (2, side * side, 32)
        paths, lengths = net.generate(torch.rand(1, 1, 64, 64), n_samples=2, temperature=0.5,
                                      generator=torch.Generator().manual_seed(0))
    assert paths.shape == (1, 2, 6, 3) and (lengths >= 1).all()
    with pytest.raises(ValueError, match="divisible by 32"):
        ScanpathConfig(size=80, backbone="densenet121")


def test_the_report_prefix_runs_on_a_standard_backbone():
    from models.report.gaze2report import Gaze2ReportPrefix, PrefixConfig

    prefix = Gaze2ReportPrefix(PrefixConfig(image_size=64, grid=4, dim=32, lm_hidden=48, backbone="resnet50")).eval()
    with torch.no_grad():
        tokens, logits = prefix(torch.rand(2, 1, 64, 64), torch.rand(2, 5, 3) * 64, torch.tensor([5, 3]))
    assert tokens.shape == (2, 8, 48) and logits.shape == (2, 14)


def test_scanpath_and_report_train_from_a_users_backbone_weights(phantom_store, tmp_path):
    import torchvision.models as tvm

    from models.cli import main
    from models.datasets.store import CaseStore
    from models.families import FAMILIES

    torch.manual_seed(0)
    weights = tmp_path / "resnet50.pth"
    source_weights = tvm.resnet50(weights=None).state_dict()
    torch.save(source_weights, weights)
    assert main(["train", "scanpath", "--data", str(phantom_store), "--out", str(tmp_path / "scanpath.pt"),
                 "--backbone", "resnet50", "--weights", str(weights), "--size", "64", "--epochs", "1",
                 "--device", "cpu"]) == 0
    predictor = FAMILIES["scanpath"].load(tmp_path / "scanpath.pt")
    assert predictor.model.cfg.backbone == "resnet50" and predictor.model.cfg.input_norm == "imagenet"
    image = CaseStore(phantom_store).load_image(CaseStore(phantom_store).ids()[0])
    assert len(predictor(image)[0]) >= 1
    report = FAMILIES["report"]
    report.train(CaseStore(phantom_store).source(), tmp_path / "report",
                 report.make_config({"lm_epochs": 1, "g2r_epochs": 1, "max_train_steps": 2, "device": "cpu",
                                     "image_size": 64, "backbone": "resnet50", "weights": str(weights)}), log=None)
    gen = report.load(tmp_path / "report")
    assert gen.prefix.config.backbone == "resnet50"
    assert main(["train", "scanpath", "--data", str(phantom_store), "--out", str(tmp_path / "x.pt"),
                 "--backbone", "densenet121", "--weights", str(weights), "--size", "64", "--epochs", "1"]) == 2
