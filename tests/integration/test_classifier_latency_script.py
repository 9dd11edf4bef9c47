"""benchmarks/classifier_latency.py runs on a trained tiny classifier and pairs the latency with that model's
validation AUC, and says so when there is no trained model to pair. Speed itself is not checked here."""

import json


def test_latency_is_paired_with_the_models_accuracy(load_script, tiny_models, tmp_path, capsys):
    _, models = tiny_models
    out = tmp_path / "latency.json"
    argv = ["--sizes", "64", "--repeats", "1", "--warmup", "0", "--threads", "1", "--json", str(out)]
    script = load_script("benchmarks/classifier_latency.py")
    assert script.main(argv + ["--model", str(models / "classifier.pt")]) == 0
    result = json.loads(out.read_text())
    assert result["threads"] == 1 and result["accuracy"]["model"].endswith("classifier.pt")
    assert "val_macro_auc" in result["accuracy"] and result["accuracy"]["synthetic"] is True
    r = result["results"]["64"]
    assert r["median_ms"]["ours_end_to_end"] > 0 and r["network_input_size"] > 0
    printed = capsys.readouterr().out
    assert "1 torch thread(s)" in printed and "validation macro AUC" in printed

    assert script.main(argv) == 0  # an untrained network: latency only, and the output says so
    assert json.loads(out.read_text())["accuracy"]["model"] is None
    assert "none to pair" in capsys.readouterr().out


def test_a_missing_checkpoint_is_one_clear_error(load_script, tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        load_script("benchmarks/classifier_latency.py").main(["--model", str(tmp_path / "none.pt"),
                                                               "--json", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2 and "none.pt: no such checkpoint file" in capsys.readouterr().err

