"""`gazelabel predict-store`: batched classifier over a case store, Case JSON per image, scores the server
ranks by, resume, sharding under torchrun, one-line errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.classifier.network import ClassifierConfig, GazeAttentionNet
from models.classifier.predict import ClassifierPredictor
from models.cli import main
from models.commands.predict_store import model_stamp, predict_batch
from models.datasets.index import SCORE_KEY, StoreIndex, sqlite_url
from models.datasets.store import CaseStore
from models.families import FAMILIES
from models.imaging import read_image
from models.pipeline import Pipeline, RunOptions
from models.schema import load_case
from models.vocab import FINDINGS

N = 10


@pytest.fixture(scope="module")
def store_and_models(tmp_path_factory):
    """A 10-image SYNTHETIC phantom store and a tiny (untrained, seeded) classifier, as
    test_classifier_predict builds one: working models, not good ones, in well under a second."""
    from models.datasets.phantom import generate_store

    base = tmp_path_factory.mktemp("predict_store")
    store = generate_store(base / "store", n=N, seed=3, size=128, readers=1, progress=False)
    torch.manual_seed(0)
    net = GazeAttentionNet(ClassifierConfig(size=64, width=4))
    thresholds = torch.tensor([0.5] * len(FINDINGS), dtype=torch.float64)
    save_checkpoint(base / "models" / "classifier.pt", "classifier", config={"model": net.config.to_dict()},
                    state={"model": net.state_dict(), "thresholds": thresholds}, info={"synthetic": True})
    return base / "store", base / "models"


@pytest.fixture
def store(store_and_models, tmp_path):
    """A fresh copy of the store (the server's index writes into it)."""
    return shutil.copytree(store_and_models[0], tmp_path / "store")


def _run(*argv) -> int:
    return main(["predict-store", *map(str, argv)])


def _strip_timings(d: dict) -> dict:
    d = json.loads(json.dumps(d))
    d["prediction"].pop("timings")
    return d


def _close(a, b, tol=1e-6) -> bool:
    """Equal JSON trees, numbers within ``tol``."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= tol
    return a == b


def test_batched_prediction_equals_the_single_image_predictor(store_and_models):
    store, models = store_and_models
    predictor = ClassifierPredictor.from_checkpoint(models / "classifier.pt")
    images = [read_image(p) for p in list(CaseStore(store).image_paths().values())[:5]]
    batched = predict_batch(predictor, images, mc_samples=0)
    for image, got in zip(images, batched):
        want = predictor(image, mc_samples=0)
        assert got.scores.keys() == want.scores.keys()
        assert max(abs(got.scores[f] - want.scores[f]) for f in FINDINGS) < 1e-6
        assert got.uncertainty == pytest.approx(want.uncertainty, abs=1e-6)
        np.testing.assert_allclose(got.attention, want.attention, atol=1e-5)
        assert [(b.finding, b.region) for b in got.boxes] == [(b.finding, b.region) for b in want.boxes]
    # MC dropout: batch size 1 under the same seed draws the same masks as the single-image call, exactly
    torch.manual_seed(123)
    (one,) = predict_batch(predictor, images[:1], mc_samples=3)
    torch.manual_seed(123)
    assert predictor(images[0], mc_samples=3).scores == one.scores


def test_one_case_per_image_as_the_pipeline_writes_it_and_scores_the_server_ranks(store, store_and_models, tmp_path, capsys):
    """The server's own index and uncertainty strategy: after predict-store it ranks with no scoring of its own."""
    from monailabel_app.lib.activelearning.uncertainty import UncertaintyStrategy
    from monailabel_app.lib.configs.models import ModelCache, stamp_text
    from monailabel_app.lib.datastores.database import IndexedCaseDatastore

    models = store_and_models[1]
    IndexedCaseDatastore(str(store)).close()  # the server indexed the store once: <store>/gazelabel_index.sqlite3
    out = tmp_path / "out"
    assert _run(store, "--models", models, "--out", out, "--batch-size", 4, "--mc-samples", 0) == 0
    log = capsys.readouterr().out
    assert re.search(rf"{N} predicted, 0 skipped, 0 unreadable .*images/s", log.splitlines()[-1]), log
    cache = ModelCache(models)
    model = stamp_text(cache.served(("classifier",))[0])
    assert model == model_stamp(models) and f"index sqlite:///{store}" in log  # the store's index by default

    paths = CaseStore(store).image_paths()
    assert sorted(p.stem for p in out.glob("*.json")) == sorted(paths)
    pipe = Pipeline.from_dir(models)
    predictor = pipe.classifier
    index = StoreIndex(sqlite_url(str(store)))
    for image_id, path in paths.items():
        case = load_case(out / f"{image_id}.json")  # a valid Case
        assert case.prediction.models == {"classifier": model}
        image = read_image(path)
        want = pipe.run(image, case_id=image_id, families=("classifier",), options=RunOptions(mc_samples=0)).case
        assert _close(_strip_timings(case.to_dict()), _strip_timings(want.to_dict()))
        single = predictor(image, mc_samples=0)  # what score_image computes for this image
        score = index.image(image_id)["info"][SCORE_KEY]
        assert score["model"] == model and score["mc_samples"] == 0
        assert score["value"] == pytest.approx(single.uncertainty, abs=1e-6)
        assert score["probs"] == pytest.approx([round(single.scores[f], 6) for f in sorted(single.scores)], abs=2e-6)
    assert index.scored_count(model, 0) == N
    index.close()

    ds = IndexedCaseDatastore(str(store))
    strategy = UncertaintyStrategy(cache)
    answer = strategy({"mc_samples": 0}, ds)
    assert answer["computed"] == 0
    # the background pass finds nothing to score, and the next call starts none
    assert strategy.wait_background(60) == {"model": model, "mc_samples": 0, "scored": 0}
    assert strategy({"mc_samples": 0}, ds)["scoring_in_background"] is False
    ranked = {i: ds.get_image_info(i)[SCORE_KEY]["value"] for i in paths}
    assert answer["id"] == max(ranked, key=lambda i: (ranked[i], i))
    ds.close()


def test_resume_skips_what_this_model_did_and_redoes_it_for_a_new_model(store, store_and_models, tmp_path, capsys):
    models = tmp_path / "models"
    shutil.copytree(store_and_models[1], models)
    out = tmp_path / "out"
    assert _run(store, "--models", models, "--out", out, "--batch-size", 3, "--mc-samples", 2, "--no-db") == 0
    first = {p.name: p.read_bytes() for p in out.glob("*.json")}
    assert len(first) == N
    capsys.readouterr()
    assert _run(store, "--models", models, "--out", out, "--batch-size", 3, "--mc-samples", 2, "--no-db") == 0
    assert f"0 predicted, {N} skipped" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.glob("*.json")} == first  # nothing rewritten
    # MC dropout is seeded per batch: a rerun with the same batch size reproduces the numbers
    shutil.rmtree(out)
    assert _run(store, "--models", models, "--out", out, "--batch-size", 3, "--mc-samples", 2, "--no-db") == 0
    again = {p.name: json.loads(p.read_bytes()) for p in out.glob("*.json")}
    assert all(_strip_timings(again[k]) == _strip_timings(json.loads(v)) for k, v in first.items())
    # a newly published classifier file (new stamp) makes every output stale
    st = os.stat(models / "classifier.pt")
    os.utime(models / "classifier.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    capsys.readouterr()
    assert _run(store, "--models", models, "--out", out, "--batch-size", 3, "--mc-samples", 2, "--no-db") == 0
    assert f"{N} predicted, 0 skipped" in capsys.readouterr().out
    assert load_case(next(out.glob("*.json"))).prediction.models["classifier"] == model_stamp(models)


def test_mc_scores_at_batch_size_one_equal_the_seeded_single_image_call(store, store_and_models, tmp_path):
    models = store_and_models[1]
    db = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    index = StoreIndex(db)  # another database (--db), indexing this store's images
    from models.datasets.index import scan_folder
    from models.datasets.store import IMAGE_SUFFIXES

    scan_folder(index, str(store), IMAGE_SUFFIXES, (".json",), lambda i: True)
    assert _run(store, "--models", models, "--out", tmp_path / "out", "--batch-size", 1, "--mc-samples", 3,
                "--db", db, "--seed", 5) == 0
    predictor = FAMILIES["classifier"].load(models / "classifier.pt")
    for image_id, path in list(CaseStore(store).image_paths().items())[:3]:
        torch.manual_seed(zlib.crc32(f"5:{image_id}".encode()))
        want = predictor(read_image(path), mc_samples=3)
        score = index.image(image_id)["info"][SCORE_KEY]
        assert score["mc_samples"] == 3 and score["value"] == pytest.approx(want.uncertainty, abs=1e-6)
        assert score["probs"] == pytest.approx([round(want.scores[f], 6) for f in sorted(want.scores)], abs=2e-6)
    index.close()


@pytest.mark.parametrize("case", ["store", "models", "no_classifier", "batch"])
def test_bad_input_is_one_line_and_exit_2(case, store_and_models, tmp_path, capsys):
    store, models = store_and_models
    (tmp_path / "empty").mkdir()
    args = {"store": (tmp_path / "nope", models, 4), "models": (store, tmp_path / "nope", 4),
            "no_classifier": (store, tmp_path / "empty", 4), "batch": (store, models, 0)}[case]
    rc = _run(args[0], "--models", args[1], "--out", tmp_path / "out", "--batch-size", args[2])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("gazelabel predict-store: error: ")
    assert {"store": "nope", "models": "nope", "no_classifier": "classifier.pt", "batch": "--batch-size"}[case] in err[0]
    assert not (tmp_path / "out").exists()


def test_two_ranks_under_torchrun_cover_every_image_once(store, store_and_models, tmp_path):
    models = store_and_models[1]
    db = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    index = StoreIndex(db)
    from models.datasets.index import scan_folder
    from models.datasets.store import IMAGE_SUFFIXES

    scan_folder(index, str(store), IMAGE_SUFFIXES, (".json",), lambda i: True)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "models.cli",
           "predict-store", str(store), "--models", str(models), "--out", str(out), "--batch-size", "2",
           "--mc-samples", "0", "--db", db, "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    shards = {int(r): int(k) for r, k in re.findall(r"\[rank (\d)/2\] predict-store: (\d+) images of", log)}
    assert shards == {0: N // 2, 1: N // 2}, log[-3000:]
    assert log.count(f"{N} predicted, 0 skipped") == 1, log[-3000:]  # rank 0 sums the shards
    assert sorted(p.stem for p in out.glob("*.json")) == sorted(CaseStore(store).ids())
    assert index.scored_count(model_stamp(models), 0) == N
    index.close()


def test_an_unreadable_image_is_named_the_others_are_predicted_and_the_exit_is_2(store, store_and_models, tmp_path, capsys):
    (store / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert _run(store, "--models", store_and_models[1], "--out", out, "--batch-size", 4, "--mc-samples", 0, "--no-db") == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "1 images could not be read" in err
    assert len(list(out.glob("*.json"))) == N and not (out / "broken.json").exists()
