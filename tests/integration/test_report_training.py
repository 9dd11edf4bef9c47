"""A tiny end-to-end report training run on a SYNTHETIC phantom store: loss goes down, the checkpoint loads
and every mode writes a report with valid evidence. Budget: < 120 s on 2 CPU cores."""

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from models.datasets.phantom.generate import generate_store
    from models.datasets.store import CaseStore
    from models.report.config import ReportConfig
    from models.report.corpus import split_cases
    from models.report.train import train_report_generator

    root = tmp_path_factory.mktemp("report")
    store = generate_store(root / "phantom", 24, seed=3, size=128, progress=False)
    source = CaseStore(store).source()
    by_split = split_cases(source.cases, source.splits)
    cfg = ReportConfig(lm_epochs=6, g2r_epochs=2, batch_size=8, g2r_batch_size=8, n_layer=2, n_embd=64,
                       image_size=64, prefix_tokens=4, lm_lr=3e-3, min_frequency=1, device="cpu")
    ckpt = train_report_generator(by_split, root / "model", cfg, synthetic=True)
    return ckpt, cfg, by_split, source


def test_lm_loss_goes_down(trained):
    from models.checkpoint import load_checkpoint

    ckpt, _, _, _ = trained
    history = load_checkpoint(ckpt, "report")["info"]["history"]
    lm = history["lm"]
    assert lm["val_loss"][-1] < lm["initial_val_loss"] - 0.5
    assert lm["train_loss"][-1] < lm["train_loss"][0]
    g2r = history["gaze2report"]
    assert g2r["trainable_params"] > 0 and g2r["lm_frozen_params"] == lm["params"]


def test_checkpoint_generates_in_every_mode(trained):
    from models.imaging import read_image
    from models.report.evaluate import simulated_classifier
    from models.report.evidence import check_evidence
    from models.report.generate import ReportGenerator
    from models.labeling.labeler import label_report
    import numpy as np

    ckpt, _, by_split, _ = trained
    gen = ReportGenerator.from_checkpoint(ckpt.parent)
    assert gen.info["synthetic"] is True
    case = (by_split.get("test") or by_split["train"])[0]
    image = read_image(case.image.path)
    result = simulated_classifier(case, np.random.default_rng(0))
    template = gen(image, result, case.fixations, mode="template")
    for mode in ("gaze2report", "prompt"):
        report, stats = gen.write(image, result, case.fixations, mode=mode, max_new_tokens=40)
        assert stats["lm_sentences"] + stats["fallback"] == stats["sentences"] > 0
        check_evidence(report, len(result.boxes), len(case.fixations))
        # Same plan units, whoever wrote them: the evidence says the same findings in the same order, and
        # the labeler reads the same CheXpert values as from the template report.
        assert [e.finding for e in report.evidence] == [e.finding for e in template.evidence]
        assert label_report(report.text) == label_report(template.text)
    no_gaze = gen(image, result, case.fixations, mode="gaze2report", use_gaze=False, max_new_tokens=40)
    assert no_gaze.findings.strip()


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    from models.report.generate import ReportGenerator
    from models.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="no such model file"):
        ReportGenerator.from_checkpoint(tmp_path)
    (tmp_path / "report.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable model file"):
        ReportGenerator.from_checkpoint(tmp_path)


def test_cli_trains_and_evaluates(trained, tmp_path):
    import json

    from models.cli import main

    ckpt = trained[0]
    store = ckpt.parent.parent / "phantom"
    assert main(["train", "report", "--data", str(store), "--out", str(tmp_path / "m"), "--epochs", "1",
                 "--threads", "1"]) == 0
    assert (tmp_path / "m" / "report.pt").is_file() and (tmp_path / "m" / "lm" / "config.json").is_file()
    out = tmp_path / "eval.json"
    assert main(["evaluate", "report", "--data", str(store), "--model", str(ckpt.parent), "--json", str(out),
                 "--mode", "gaze2report", "--split", "train", "--limit", "3", "--no-meteor", "--no-bertscore"]) == 0
    result = json.loads(out.read_text())
    assert result["synthetic"] is True and result["mode"] == "gaze2report"
    timing = result["timing_cpu"]
    assert timing["lm_sentences"] + timing["template_fallback_sentences"] == timing["sentences"] > 0
    for key in ("ce_f1_micro14_positive_only", "ce_f1_micro5_uncertain_positive"):  # both conventions, named
        assert 0.0 <= result["metrics"][key] <= 1.0, key
    # Bad input: a clear one-line error and exit code 2, no traceback.
    assert main(["evaluate", "report", "--data", str(store), "--model", str(tmp_path / "none"), "--json",
                 str(out)]) == 2


def test_benchmark_refuses_a_gaze_model_as_the_no_gaze_model(trained, tmp_path, load_script):
    bench = load_script("benchmarks/report_benchmark.py")
    ckpt = trained[0]
    with pytest.raises(SystemExit, match="that model was trained with gaze tokens"):
        bench.main(["--data", str(ckpt.parent.parent / "phantom"), "--model", str(ckpt.parent),
                    "--model-nogaze", str(ckpt.parent), "--skip-iu", "--out", str(tmp_path / "b.json")])
