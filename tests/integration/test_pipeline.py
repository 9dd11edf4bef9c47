"""The whole chain on one image: phantom PNG and the real CR, through the API and `gazelabel predict`."""

import json
import os

import numpy as np
import pytest

from models.cli import main
from models.imaging import read_image
from models.pipeline import Pipeline
from models.report.evidence import report_sentences
from models.schema import load_case
from models.vocab import FINDINGS, REGION_NAMES


@pytest.fixture(scope="module")
def pipeline(tiny_models):
    return Pipeline.from_dir(tiny_models[1])


def _check_case(case, width, height):
    assert set(case.scores) == set(FINDINGS)
    assert all(0 <= s <= 1 for s in case.scores.values())
    for b in case.boxes:
        assert 0 <= b.x1 < b.x2 <= width and 0 <= b.y1 < b.y2 <= height
    assert case.fixations, "the scanpath model must predict fixations"
    assert all(0 <= f.x <= width and 0 <= f.y <= height and f.duration > 0 for f in case.fixations)
    assert sorted(case.coverage["visited"] + case.coverage["missed"]) == sorted(REGION_NAMES)
    assert case.report is not None and case.report.text
    writer = case.prediction.report_writer  # tiny_models has a report model: "auto" drafts with Gaze2Report
    assert writer["mode"] in ("gaze2report", "template")  # the real CR below asks for templates
    assert writer["lm_sentences"] + writer["template_sentences"] == len(report_sentences(case.report))
    for e in case.report.evidence:
        assert e.box is None or e.box < len(case.boxes)
        assert all(i < len(case.fixations) for i in e.fixations)
    case.validate()


def test_pipeline_on_phantom_image(pipeline, tiny_models):
    store, _ = tiny_models
    image_path = sorted(store.glob("*.png"))[0]
    result = pipeline.run(image_path, n_samples=3, seed=1)
    img = read_image(image_path)
    assert result.heatmap.shape == (img.height, img.width) and result.heatmap.max() <= 1.0
    _check_case(result.case, img.width, img.height)
    samples = result.case.prediction.scanpath_samples
    assert len(samples) == 3 and samples[1] != samples[2], "sampled scanpaths must differ"
    assert result.case.prediction.synthetic is True
    assert set(result.case.prediction.models) == {"classifier", "scanpath", "report"}


def test_pipeline_on_real_cr_maps_back_to_original_pixels(pipeline, real_cr_path):
    result = pipeline.run(real_cr_path, report_mode="template")
    assert (result.case.image.width, result.case.image.height) == (1841, 1955)
    assert result.heatmap.shape == (1955, 1841)
    _check_case(result.case, 1841, 1955)


def test_predict_command_writes_case_and_overlay(tiny_models, tmp_path, capsys):
    store, models = tiny_models
    image = sorted(store.glob("*.png"))[1]
    code = main(["predict", str(image), "--models", str(models), "--json", str(tmp_path / "p.json"),
                 "--overlay", str(tmp_path / "p.png"), "--scanpath", "--report"])
    out = capsys.readouterr().out
    assert code == 0 and "SYNTHETIC" in out and "visited:" in out and "FINDINGS:" in out
    case = load_case(tmp_path / "p.json")
    assert case.fixations and case.report is not None
    assert case.prediction.synthetic is True
    overlay = read_image(tmp_path / "p.png")
    assert overlay.array.std() > 0.05


def test_predict_command_errors_are_one_line(tiny_models, tmp_path, capsys):
    _, models = tiny_models
    (tmp_path / "x.png").write_bytes(b"not an image")
    assert main(["predict", str(tmp_path / "x.png"), "--models", str(models)]) == 2
    assert "x.png: not a recognised image" in capsys.readouterr().err
    # Inputs are checked before any model loads: the bad image is reported even without models ...
    assert main(["predict", str(tmp_path / "x.png"), "--models", str(tmp_path / "none")]) == 2
    assert "x.png: not a recognised image" in capsys.readouterr().err
    # ... and a good image with no models says where it looked and how to get models.
    good = sorted(tiny_models[0].glob("*.png"))[0]
    assert main(["predict", str(good), "--models", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no models found" in err and "make demo" in err and len(err.strip().splitlines()) == 1


def test_the_model_cache_reloads_republished_models(tiny_models, tmp_path):
    """The server's one cache of models: a republished checkpoint is loaded on the next request."""
    import shutil

    from monailabel_app.lib.configs.models import ModelCache

    models = shutil.copytree(tiny_models[1], tmp_path / "models", symlinks=True)
    cache = ModelCache(models)
    first = cache.predictor("classifier")
    assert cache.predictor("classifier") is first
    pipeline = cache.pipeline(("classifier", "scanpath", "report"), required=("classifier",))
    assert pipeline.classifier is first and pipeline.scanpath is not None and pipeline.report is not None
    clf = models / "classifier.pt"
    st = clf.stat()
    os.utime(clf, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert cache.predictor("classifier") is not first
