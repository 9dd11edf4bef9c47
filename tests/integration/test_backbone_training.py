"""`gazelabel train classifier --backbone NAME --weights FILE` end to end on the SYNTHETIC phantom store: the
trained checkpoint remembers its backbone and input scaling and predicts; a weight file that cannot be used
is one error line (exit 2) naming the file, before any training."""

from __future__ import annotations

import pytest
import torch

from models.cli import main

pytestmark = pytest.mark.integration


def test_a_resnet50_from_a_users_weight_file_trains_and_predicts(phantom_store, tmp_path, capsys):
    import torchvision.models as tvm

    from models.classifier.predict import ClassifierPredictor
    from models.datasets.store import CaseStore

    torch.manual_seed(0)
    weights = tmp_path / "resnet50-random.pth"  # stands in for a file the user downloaded
    torch.save(tvm.resnet50(weights=None).state_dict(), weights)
    out = tmp_path / "classifier.pt"
    rc = main(["train", "classifier", "--data", str(phantom_store), "--out", str(out), "--backbone", "resnet50",
               "--weights", str(weights), "--size", "64", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
               "--no-progress"])
    assert rc == 0
    assert "backbone weights" in capsys.readouterr().out
    predictor = ClassifierPredictor.from_checkpoint(out)
    assert predictor.model.config.backbone == "resnet50" and predictor.model.config.input_norm == "imagenet"
    store = CaseStore(phantom_store)
    result = predictor(store.load_image(store.ids()[0]))
    assert len(result.scores) == 14 and all(0.0 <= p <= 1.0 for p in result.scores.values())


def test_unusable_weight_files_are_one_error_line(phantom_store, tmp_path, capsys):
    import torchvision.models as tvm

    wrong = tmp_path / "densenet.pth"
    torch.save(tvm.densenet121(weights=None).state_dict(), wrong)
    out = tmp_path / "c.pt"
    args = ["train", "classifier", "--data", str(phantom_store), "--out", str(out), "--size", "64", "--epochs", "1",
            "--device", "cpu", "--no-progress"]
    assert main(args + ["--backbone", "resnet50", "--weights", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert str(wrong) in err and "not resnet50 weights" in err and "Traceback" not in err
    assert main(args + ["--weights", str(wrong)]) == 2  # the default network takes no weight file
    assert "takes no weight file" in capsys.readouterr().err
    assert not out.exists()
