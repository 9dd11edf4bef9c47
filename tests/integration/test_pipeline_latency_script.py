"""benchmarks/pipeline_latency.py runs end to end on tiny models (2 images, 1 round, with a live server) and
writes the fields the README's latency table is read from. Its numbers are not checked here: speed goals
live in the benchmark's committed JSON, not in timed tests."""

import json
import math


def test_pipeline_latency_script_writes_its_table(load_script, tiny_models, tmp_path):
    store, models = tiny_models
    out = tmp_path / "latency.json"
    script = load_script("benchmarks/pipeline_latency.py")
    assert script.main(["--models-dir", str(models), "--store", str(store), "--work", str(tmp_path / "work"),
                        "--images", "2", "--repeats", "1", "--threads", "1", "--server", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["synthetic"] is True and result["images"] == 2
    one = result["by_threads"]["1"]
    assert one["threads"] == 1 and one["runs"] == 2
    for step in ("read", "classifier", "scanpath", "report", "whole", "densenet121_224", "densenet121_512"):
        assert one["median_ms"][step] > 0, step
    assert one["median_ms"]["whole"] >= one["median_ms"]["report"]
    assert math.isclose(one["ratio_to_densenet121_224"]["whole"],
                        one["median_ms"]["whole"] / one["median_ms"]["densenet121_224"])
    assert len(one["load_average_before"]) == 3 and one["report_sentences_median"] >= 1
    acc = result["accuracy"]  # what the timed answers are worth, on the same images
    assert acc["images"] == 2 and "reports" not in one
    for key in ("ce_f1_micro14_positive_only", "ce_f1_micro5_uncertain_positive"):
        assert 0.0 <= acc[key] <= 1.0, key
    assert 0.0 <= acc["validation_from_checkpoints"]["classifier"]["val_macro_auc"] <= 1.0
    server = result["server"]
    assert server["runs"] == 2 and server["p50_ms"] > 0 and server["in_process_alternating_p50_ms"] > 0
