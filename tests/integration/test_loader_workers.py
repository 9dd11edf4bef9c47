"""DataLoader worker processes for the three trained families (issue 16, item 3): ``--workers N`` /
``workers`` decodes in N persistent processes (pinned memory only for CUDA batches) and trains to a loadable
checkpoint on the SYNTHETIC phantom store, as without workers."""

from __future__ import annotations

import pytest

from models.cli import main
from models.training import loader_options

pytestmark = pytest.mark.integration


def test_loader_options():
    assert loader_options("cpu", 0) == {"num_workers": 0, "pin_memory": False}
    assert loader_options("cpu", 2) == {"num_workers": 2, "pin_memory": False, "persistent_workers": True}
    import torch

    assert loader_options(torch.device("cuda", 0), 1)["pin_memory"] is True
    with pytest.raises(ValueError, match="workers must be >= 0"):
        loader_options("cpu", -1)


def test_each_family_trains_with_worker_processes(phantom_store, tmp_path):
    from models.families import FAMILIES

    common = ["--data", str(phantom_store), "--device", "cpu", "--workers", "2"]
    assert main(["train", "classifier", *common, "--out", str(tmp_path / "classifier.pt"), "--size", "64",
                 "--epochs", "1", "--batch-size", "8", "--no-progress"]) == 0
    assert main(["train", "scanpath", *common, "--out", str(tmp_path / "scanpath.pt"), "--epochs", "1"]) == 0
    for family in ("classifier", "scanpath"):
        FAMILIES[family].load(tmp_path / f"{family}.pt")  # a loadable checkpoint
    from models.datasets.store import CaseStore

    report = FAMILIES["report"]
    report.train(CaseStore(phantom_store).source(), tmp_path / "report",
                 report.make_config({"lm_epochs": 1, "g2r_epochs": 1, "max_train_steps": 2, "workers": 2,
                                     "device": "cpu"}), log=None)
    report.load(tmp_path / "report")
    with pytest.raises(ValueError, match="workers must be >= 0"):
        FAMILIES["classifier"].make_config({"workers": -1})
