"""`gazelabel train scanpath` / `gazelabel evaluate scanpath` on a tiny hand-made case store, and their
user errors (one line, exit status 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.cli import main
from models.datasets.store import CaseStore
from models.schema import Case, Fixation, ImageRef, Report


def reading(rng: np.random.Generator, n: int, w: int, h: int) -> list[Fixation]:
    xy = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h], size=(n, 2))
    d = rng.uniform(0.15, 0.4, n)
    t = np.concatenate([[0.0], np.cumsum(d[:-1])])
    return [Fixation(float(x), float(y), float(s), float(u)) for (x, y), s, u in zip(xy, t, d)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    s = CaseStore(root)
    rng = np.random.default_rng(0)
    splits = {"train": [], "val": [], "test": []}
    for i in range(8):
        w, h = (96, 64) if i % 2 else (64, 64)
        case = Case(f"img{i}", ImageRef(synthetic=True), fixations=reading(rng, 6, w, h),
                    readers={"reader_2": reading(rng, 5, w, h)}, report=Report(findings="The heart is normal."))
        s.add(case, rng.random((h, w)).astype(np.float32))
        splits["test" if i >= 6 else "val" if i == 5 else "train"].append(case.id)
    s.write_manifest(name="tiny (SYNTHETIC)", synthetic=True, splits=splits)
    return root


def test_train_then_evaluate_writes_a_checkpoint_and_metrics(store, tmp_path, capsys):
    model = tmp_path / "sp.pt"
    code = main(["train", "scanpath", "--data", str(store), "--out", str(model), "--epochs", "1", "--size", "32",
                 "--slots", "8", "--device", "cpu", "--threads", "1"])
    assert code == 0 and model.exists()
    assert "SYNTHETIC" in capsys.readouterr().out
    out = tmp_path / "eval.json"
    code = main(["evaluate", "scanpath", "--data", str(store), "--model", str(model), "--json", str(out), "--samples", "2",
                 "--bootstrap", "20", "--threads", "1"])
    assert code == 0
    summary = json.loads(out.read_text())
    assert summary["synthetic"] is True and summary["n_images"] == 2
    assert {"predictor", "predictor_samples", "centre_bias", "mean_map_sampling", "human_ceiling"} <= set(summary["systems"])
    assert "cc" in summary["ratio_to_ceiling"]["predictor"]
    assert summary["settings"]["sigma_fraction"] == pytest.approx(16 / 224)
    assert "ratio to human ceiling" in capsys.readouterr().out
    assert summary["report_text"] == "none"  # no report conditioning unless asked for, and said so
    code = main(["evaluate", "scanpath", "--data", str(store), "--model", str(model), "--json", str(out),
                 "--bootstrap", "20", "--threads", "1", "--report-text", "ground_truth"])
    assert code == 0 and json.loads(out.read_text())["report_text"] == "ground_truth"
    assert "ORACLE" in json.loads(out.read_text())["report_text_note"]


@pytest.mark.parametrize("argv, message", [
    (["train", "scanpath", "--data", "/nonexistent/data", "--out", "x.pt"], "/nonexistent/data"),
    (["train", "scanpath", "--data", ".", "--out", "x.pt", "--epochs", "0"], "--epochs must be > 0"),
    (["evaluate", "scanpath", "--data", ".", "--model", "/nonexistent/sp.pt", "--json", "o.json"], "no such model file"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_reflacx_fixture_trains_and_predicts_in_original_dicom_pixels(tmp_path, capsys):
    """REFLACX ships gaze in original DICOM pixels but no images: without --images the error says so;
    with a flat folder of <dicom_id>.png at the DICOM size, training and evaluation run and predictions come
    back in those original pixels."""
    from pathlib import Path

    from PIL import Image

    from models.datasets import open_source
    from models.imaging import read_image
    from models.scanpath.predict import ScanpathPredictor

    data = str(Path(__file__).resolve().parents[1] / "fixtures" / "reflacx")
    model = tmp_path / "sp.pt"
    argv = ["train", "scanpath", "--data", data, "--out", str(model), "--epochs", "1", "--size", "32", "--slots", "8",
            "--device", "cpu", "--threads", "1"]
    assert main(argv) == 2
    assert "--images" in capsys.readouterr().err
    images = tmp_path / "images"
    images.mkdir()
    sizes = {}
    for case in open_source(data).cases:
        w, h = case.image.width, case.image.height
        ramp = np.linspace(0, 255, w, dtype=np.uint8)[None].repeat(h, 0)
        Image.fromarray(ramp).save(images / f"{case.id}.png")
        sizes[case.id] = (w, h)
    assert main(argv + ["--images", str(images)]) == 0
    out = tmp_path / "eval.json"
    assert main(["evaluate", "scanpath", "--data", data, "--images", str(images), "--model", str(model), "--json", str(out),
                 "--split", "val", "--bootstrap", "10", "--threads", "1"]) == 0
    assert json.loads(out.read_text())["n_images"] == 1
    case_id, (w, h) = next(iter(sizes.items()))
    paths = ScanpathPredictor.from_checkpoint(model)(read_image(images / f"{case_id}.png"), n_samples=2, seed=0)
    assert all(0 <= f.x <= w and 0 <= f.y <= h for p in paths for f in p)
