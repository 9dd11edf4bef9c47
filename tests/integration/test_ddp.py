"""Data-parallel training under torchrun: 2 CPU processes (gloo), a couple of steps, rank 0 saves."""

import os
import subprocess
import sys

import pytest
import torch

from models.checkpoint import load_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from models.datasets.phantom import generate_store

    root = tmp_path_factory.mktemp("ddp") / "store"
    generate_store(root, n=12, seed=5, size=128, readers=1, progress=False)
    return root


# Each family's smallest CLI training: (family, checkpoint under tmp, extra arguments).
DDP_RUNS = {
    "classifier": ("ddp.pt", ["--epochs", "1", "--size", "64", "--width", "4", "--batch-size", "2",
                              "--max-images", "8", "--device", "cpu", "--no-progress"]),
    "scanpath": ("ddp.pt", ["--epochs", "1", "--size", "64", "--batch-size", "2", "--max-images", "8",
                            "--device", "cpu", "--threads", "1"]),
    "report": ("report", ["--epochs", "1", "--device", "cpu", "--threads", "1"]),
}


@pytest.mark.parametrize("family_name", sorted(DDP_RUNS))
def test_two_process_training_writes_one_checkpoint(family_name, tiny_store, tmp_path):
    """Every family trains under torchrun: both ranks finish, rank 0 alone saves, the weights are stored
    unwrapped (no ``module.`` prefix) and load with the family's own loader in a single process."""
    from models.families import FAMILIES

    family = FAMILIES[family_name]
    target, extra = DDP_RUNS[family_name]
    out = tmp_path / target
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "models.cli", "train", family_name, "--data", str(tiny_store), "--out", str(out), *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]  # torchrun fails if any rank fails
    assert log.count("saved ") == 1, log[-3000:]  # rank 0 alone logs and saves
    ckpt = load_checkpoint(family.checkpoint(out), family.kind)
    assert ckpt["metrics"]["world_size"] == 2
    for name, weights in ckpt["state"].items():
        weights = weights if isinstance(weights, dict) else {name: weights}
        assert not any(k.startswith("module.") for k in weights), name  # saved unwrapped, loadable alone
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()), name
    if family_name == "classifier":
        assert 2 <= ckpt["metrics"]["train_cases"] <= 8  # --max-images caps the training split
        (epoch,) = ckpt["info"]["history"]
        assert epoch["bce"] > 0 and epoch["epoch"] == 1  # losses all-reduced over both ranks
    assert family.load(out, device="cpu").info["synthetic"] is True  # phantom store: said synthetic
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


def test_helpers_degrade_to_one_process(monkeypatch):
    from models.distributed import (all_reduce_mean, gather_objects, init_distributed, make_sampler,
                                    reduce_metrics, unwrap_model, wrap_model)

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert ctx.world_size == 1 and ctx.is_main and not ctx.distributed
    assert make_sampler(list(range(4)), ctx, shuffle=True) is None
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, ctx) is model and unwrap_model(model) is model
    assert all_reduce_mean(3.0, ctx) == 3.0
    assert reduce_metrics({"loss": 6.0}, 3, ctx) == {"loss": 2.0}
    assert gather_objects({"a": 1}, ctx) == [{"a": 1}]
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        init_distributed("cpu")
