"""`gazelabel export-bundle` (issue 16, item 5): each family's MONAI bundle passes `python -m monai.bundle
verify_metadata` (against the specification's mandatory keys, offline) and `python -m monai.bundle run`
answers an image with the same scores, fixations, report and answer as Pipeline.run in this process
(within 1e-4). Tiny models trained on the SYNTHETIC phantom."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from models.cli import main

pytestmark = pytest.mark.integration

ARTIFACTS = {"classifier": "classifier.pt", "scanpath": "scanpath.pt", "report": "report", "vqa": "vqa.pt"}
QUESTION = "Is there a pleural effusion?"


def _monai(args, cwd, timeout=600):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bundles(tiny_models, tmp_path_factory):
    store, models_dir = tiny_models
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for family, artifact in ARTIFACTS.items():
        if not (models_dir / artifact).exists():
            continue
        assert main(["export-bundle", str(models_dir / artifact), "--out", str(root / family)]) == 0
        out[family] = root / family
    assert set(out) == set(ARTIFACTS)
    return store, models_dir, out


def test_every_bundle_has_the_specified_layout_and_verifies(bundles):
    _, _, out = bundles
    for family, bundle in out.items():
        for rel in ("configs/metadata.json", "configs/inference.json", "models/model.pt", "docs/README.md"):
            assert (bundle / rel).is_file(), (family, rel)
        r = _monai(["verify_metadata", "--meta_file", "configs/metadata.json", "--filepath",
                    "configs/metadata_schema.json"], bundle)
        assert r.returncode == 0 and "metadata is verified with no error" in (r.stdout + r.stderr), r.stderr[-2000:]
        meta = json.loads((bundle / "configs" / "metadata.json").read_text())
        assert meta["synthetic"] is True and meta["gazelabel"]["family"] == family
    assert (out["report"] / "models" / "lm" / "config.json").is_file()
    assert (out["report"] / "models" / "classifier.pt").is_file()  # the report needs its findings


def test_a_metadata_without_a_mandatory_key_fails_verification(bundles, tmp_path):
    _, _, out = bundles
    meta = json.loads((out["classifier"] / "configs" / "metadata.json").read_text())
    del meta["authors"]
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / "configs" / "metadata_schema.json").write_text((out["classifier"] / "configs" / "metadata_schema.json").read_text())
    r = _monai(["verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", "configs/metadata_schema.json"],
               tmp_path)
    assert r.returncode != 0 and "authors" in (r.stdout + r.stderr)


def test_monai_bundle_run_answers_as_the_pipeline_does(bundles, tmp_path):
    from models.imaging import read_image
    from models.pipeline import TASKS, Pipeline
    from models.bundle import TASK_OF

    store, models_dir, out = bundles
    image = sorted(store.glob("*.png"))[0]
    pipeline = Pipeline.from_dir(models_dir)
    for family, bundle in out.items():
        args = ["run", "--config_file", "configs/inference.json", "--meta_file", "configs/metadata.json",
                "--image", str(image), "--output_dir", str(tmp_path / family)]
        task = TASKS[TASK_OF[family]]
        options = task.defaults
        if task.needs_question:
            args += ["--question", QUESTION]
            from dataclasses import replace

            options = replace(options, question=QUESTION)
        r = _monai(args, bundle)
        assert r.returncode == 0, r.stderr[-3000:]
        got = json.loads((tmp_path / family / f"{image.stem}.json").read_text())
        want = pipeline.run(read_image(image), families=task.families, options=options).case.to_dict()
        if "classifier" in task.families and family != "scanpath":
            scores, ref = got["scores"], want["scores"]
            assert scores.keys() == ref.keys() and all(abs(scores[k] - ref[k]) <= 1e-4 for k in ref), family
        if family in ("scanpath", "report", "vqa"):
            assert len(got["fixations"]) == len(want["fixations"]) > 0
            for a, b in zip(got["fixations"], want["fixations"]):
                assert abs(a["x"] - b["x"]) <= 1e-4 and abs(a["y"] - b["y"]) <= 1e-4, family
        if family == "report":
            assert got["report"]["findings"] == want["report"]["findings"] and got["report"]["impression"]
        if family == "vqa":
            assert got["prediction"]["answer"] == want["prediction"]["answer"]


def test_export_refuses_what_it_cannot_bundle(bundles, tmp_path, capsys):
    _, models_dir, out = bundles
    assert main(["export-bundle", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "b")]) == 2
    assert "no such model" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["export-bundle", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "j")]) == 2
    assert "not a GazeLabel model" in capsys.readouterr().err
    assert main(["export-bundle", str(models_dir / "classifier.pt"), "--out", str(out["classifier"])]) == 2
    assert "not empty" in capsys.readouterr().err
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    import shutil

    shutil.copytree(models_dir / "report", lonely / "report")  # no classifier beside it
    assert main(["export-bundle", str(lonely / "report"), "--out", str(tmp_path / "rb")]) == 2
    assert "needs the classifier model beside it" in capsys.readouterr().err
