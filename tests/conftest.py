"""Fixtures shared by every test area: offline settings, the real CR and a small SYNTHETIC phantom store."""

from __future__ import annotations

import os
from pathlib import Path
import random

import pytest

# Nothing may reach a model hub; MONAI Label must not start mlflow tracking.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MONAI_LABEL_TRACKING_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads must sleep, not spin: spinning tripled CPU training time on a busy 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# torch's optimizers import torch._dynamo, which loads triton's LLVM; once Mesa's LLVM is loaded by an
# offscreen (EGL) VTK render, that load crashes the interpreter. Tests render and train in one process, so
# triton is loaded first, here (GazeLabelLib.headless does the same when torch is already imported).
import torch._dynamo  # noqa: E402,F401


def pytest_addoption(parser):
    parser.addoption("--file-order", default=os.environ.get("GAZELABEL_TEST_ORDER", "default"),
                     help="order of the test files: default, reverse, or random[:SEED] (each file keeps its own order)")


def pytest_report_header(config):
    return f"test file order: {config.getoption('--file-order')}"


def pytest_collection_modifyitems(config, items):
    """Run the test files in another order (``make test`` uses reverse): every file must pass in any order."""
    order = config.getoption("--file-order")
    if order == "default":
        return
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(str(item.path), []).append(item)
    names = list(files)
    if order == "reverse":
        names.reverse()
    elif order.startswith("random"):
        seed = int(order.partition(":")[2] or random.randrange(10**6))
        random.Random(seed).shuffle(names)
        config._gazelabel_order_seed = seed
        print(f"\ntest file order: random:{seed}")
    else:
        raise pytest.UsageError(f"--file-order {order!r}: use default, reverse or random[:SEED]")
    items[:] = [item for name in names for item in files[name]]


@pytest.fixture(scope="session")
def real_cr_path():
    """The real PA chest CR (MONOCHROME1) shipped by pydicom-data."""
    from models.imaging import sample_cr_path

    return sample_cr_path("RG1_UNCR.dcm")


@pytest.fixture(scope="session")
def phantom_store(tmp_path_factory):
    """A 16-image SYNTHETIC phantom case store (3 simulated readers), made once per test session."""
    from models.datasets.phantom import generate_store

    root = tmp_path_factory.mktemp("phantom") / "store"
    generate_store(root, n=16, seed=7, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny classifier, scanpath and report models trained on a SYNTHETIC phantom store (about a minute).

    Returns (store_dir, models_dir). For tests that need working models, not good ones."""
    from models.quickstart import PROFILES, ensure_sample_store, train_default_models

    base = tmp_path_factory.mktemp("tiny_models")
    store = ensure_sample_store(base / "store", n=PROFILES["tiny"]["images"], seed=11, progress=False)
    train_default_models(store, base / "models", profile="tiny", device="cpu", progress=False)
    return store, base / "models"


@pytest.fixture(scope="session")
def load_script():
    """``load_script("benchmarks/pipeline_latency.py")`` -> that script imported as a module (scripts under
    benchmarks/ and slicer_extension/ are files, not packages), each call a fresh import."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]

    def load(relative: str, name: str | None = None):
        path = root / relative
        spec = importlib.util.spec_from_file_location(name or f"{path.stem}_under_test", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load

