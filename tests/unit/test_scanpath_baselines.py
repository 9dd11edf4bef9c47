"""Coverage of anatomical regions, baseline generators and the evaluation protocol (no model needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.datasets.base import CaseSource
from models.schema import Case, Fixation, ImageRef, Report
from models.scanpath.baselines import CentreBias, MapSampler, PathStatistics, mean_fixation_map
from models.scanpath.coverage import coverage
from models.scanpath.evaluate import (CEILING, REPORT_TEXT_NOTES, MetricSettings, evaluate_systems, format_table,
                                     predictor_systems, run_evaluation, summarise)
from models.vocab import REGION_NAMES


# ------------------------------------------------------------------------------------------------ coverage
def test_coverage_of_one_central_heart_fixation():
    # (0.57, 0.65) lies in the heart, the left lower zone and "bones and soft tissues" (whole image).
    out = coverage([Fixation(570, 650, 0, 0.3)], 1000, 1000, radius_fraction=0.0)
    assert out["visited"] == ["left lower zone", "heart", "bones and soft tissues"]
    assert set(out["missed"]) == set(REGION_NAMES) - set(out["visited"])
    assert out["missed"][0] == "trachea"  # vocabulary order


def test_coverage_foveal_radius_reaches_a_neighbouring_region():
    # trachea spans x 0.44-0.56, y 0-0.22; a fixation at x=0.60 is 40 px from it on a 1000 px image
    fix = [Fixation(600, 100, 0, 0.3)]
    assert "trachea" not in coverage(fix, 1000, 1000, radius_fraction=0.03)["visited"]
    assert "trachea" in coverage(fix, 1000, 1000, radius_fraction=0.05)["visited"]


def test_coverage_orders_visits_and_uses_the_chest_box():
    fix = [Fixation(570, 650, 0, 0.3), Fixation(500, 50, 0.3, 0.3)]
    visited = coverage(fix, 1000, 1000, radius_fraction=0.0)["visited"]
    assert visited.index("heart") < visited.index("trachea")
    # the same pixel is the chest's centre when the chest occupies only the image's left half
    boxed = coverage([Fixation(250, 500, 0, 0.3)], 1000, 1000, chest_box=(0, 0, 500, 1000), radius_fraction=0.0)
    assert "heart" in boxed["visited"] and "right mid zone" not in boxed["visited"]
    assert coverage([Fixation(250, 500, 0, 0.3)], 1000, 1000, radius_fraction=0.0)["visited"][0] == "right mid zone"


def test_coverage_without_fixations_and_bad_arguments():
    assert coverage([], 100, 100) == {"visited": [], "missed": list(REGION_NAMES)}
    with pytest.raises(ValueError, match="chest_box"):
        coverage([], 100, 100, chest_box=(10, 10, 5, 50))
    with pytest.raises(ValueError, match="width and height"):
        coverage([], 0, 100)


# ------------------------------------------------------------------------------------------------ baselines
def training_cases() -> list[Case]:
    rng = np.random.default_rng(0)
    cases = []
    for i in range(6):
        paths = []
        for _ in range(2):
            n = int(rng.integers(4, 9))
            xy = rng.normal([300, 200], [30, 20], size=(n, 2))
            paths.append([Fixation(float(x), float(y), 0.0, 0.25) for x, y in xy])
        cases.append(Case(f"c{i}", ImageRef("", 600, 400), fixations=paths[0], readers={"reader_2": paths[1]}))
    return cases


def test_path_statistics_and_centre_bias_follow_the_training_readers():
    cases = training_cases()
    stats = PathStatistics.fit(cases, max_length=6)
    assert stats.lengths.max() <= 6 and set(stats.durations) == {0.25}
    centre = CentreBias.fit(cases)
    assert centre.spread[0] == pytest.approx(math.sqrt(np.mean([(f.x / 600 - 0.5) ** 2 for c in cases for p in (c.fixations, c.readers["reader_2"]) for f in p])))
    path = centre(600, 400, np.random.default_rng(1))
    assert 4 <= len(path) <= 8
    assert all(0 <= f.x <= 600 and 0 <= f.y <= 400 for f in path)
    assert [f.t for f in path] == pytest.approx([0.25 * i for i in range(len(path))])
    with pytest.raises(ValueError, match="no training case"):
        PathStatistics.fit([Case("empty")])


def test_map_sampler_draws_only_from_the_map_support():
    stats = PathStatistics(np.array([20]), np.array([0.3]))
    saliency = np.zeros((4, 4))
    saliency[1, 2] = 1.0  # cell x in [0.5, 0.75), y in [0.25, 0.5)
    path = MapSampler(stats, saliency)(800, 400, np.random.default_rng(0))
    assert len(path) == 20
    assert all(400 <= f.x < 600 and 100 <= f.y < 200 for f in path)
    big = np.zeros((400, 800))
    big[:, :80] = 1.0  # a per-image map over original pixels overrides the default
    path = MapSampler(stats)(800, 400, np.random.default_rng(0), saliency=big)
    assert all(f.x < 100 for f in path)
    with pytest.raises(ValueError, match="no saliency map"):
        MapSampler(stats)(800, 400, np.random.default_rng(0))


def test_mean_fixation_map_is_a_distribution_peaking_at_the_fixations():
    m = mean_fixation_map(training_cases(), grid=32)
    assert m.sum() == pytest.approx(1.0)
    row, col = np.unravel_index(m.argmax(), m.shape)
    assert abs((col + 0.5) / 32 - 0.5) < 0.1 and abs((row + 0.5) / 32 - 0.5) < 0.1


# ------------------------------------------------------------------------------------------------ protocol
def test_evaluation_protocol_oracle_ceiling_and_ratios():
    cases = training_cases()
    cases.append(Case("one_reader", ImageRef("", 600, 400), fixations=cases[0].fixations))
    systems = {
        "oracle_reader_1": lambda c: [c.fixations],
        "corner": lambda c: [[Fixation(5, 5, 0, 0.1), Fixation(10, 8, 0.1, 0.1), Fixation(6, 12, 0.2, 0.1)]],
    }
    result = evaluate_systems(cases, systems, settings=MetricSettings(map_size=64))
    assert result.case_ids[-1] == "one_reader"
    assert result.scores[CEILING][-1] is None  # one reader: no ceiling
    # the oracle scores 1 against itself on its own image's reader 1
    assert result.scores["oracle_reader_1"][-1]["cc"] == pytest.approx(1.0)
    summary = summarise(result, n_boot=50)
    oracle, corner = summary["systems"]["oracle_reader_1"], summary["systems"]["corner"]
    assert oracle["cc"]["mean"] > corner["cc"]["mean"]
    assert summary["systems"][CEILING]["cc"]["n"] == 6
    ratio = summary["ratio_to_ceiling"]["oracle_reader_1"]["cc"]
    assert ratio["low"] <= ratio["mean"] <= ratio["high"]
    assert summary["duration_ks"]["corner"]["mean"] == 1.0  # 0.1 s vs 0.25 s: disjoint
    table = format_table(summary)
    assert "oracle_reader_1" in table and CEILING in table and "ratio to human ceiling" in table


# ------------------------------------------------------------------------------------- report-text conditioning
class TextRecordingPredictor:
    """Stands in for a ScanpathPredictor trained with --text: records the report text of every call."""

    uses_text = True

    def __init__(self):
        self.texts = []

    def __call__(self, image, *, n_samples=1, report_text=None, **kw):
        self.texts.append(report_text)
        return [[Fixation(300, 200, 0.0, 0.25), Fixation(320, 210, 0.25, 0.25)] for _ in range(n_samples)]


def report_cases(tmp_path) -> list[Case]:
    cases = []
    for i, c in enumerate(training_cases()):
        image = tmp_path / f"{c.id}.png"
        image.write_bytes(b"not read: read_image is replaced in these tests")
        cases.append(Case(c.id, ImageRef(str(image), 600, 400), fixations=c.fixations, readers=c.readers,
                          report=Report(findings=f"Ground truth report {i}.")))
    return cases


@pytest.fixture
def no_pixels(monkeypatch):
    monkeypatch.setattr("models.imaging.read_image", lambda path: path)


def test_predictor_systems_text_conditioning_is_explicit(tmp_path, no_pixels):
    case = report_cases(tmp_path)[0]
    predictor = TextRecordingPredictor()
    predictor_systems(predictor)["predictor"](case)  # default: no text (the old default fed the ground truth)
    predictor_systems(predictor, report_text="ground_truth")["predictor"](case)
    predictor_systems(predictor, report_text="generated", generated_reports={case.id: "Generated."})["predictor"](case)
    predictor_systems(predictor, report_text="generated", generated_reports=lambda c: f"from {c.id}")["predictor"](case)
    systems = predictor_systems(predictor, samples=3, report_text="ground_truth")
    assert len(systems["predictor_samples"](case)) == 3
    assert predictor.texts == [None, "Ground truth report 0.", "Generated.", "from c0", "Ground truth report 0."]


@pytest.mark.parametrize("kwargs, message", [
    ({"report_text": "gt"}, "report_text must be one of 'none', 'generated', 'ground_truth', got 'gt'"),
    ({"report_text": True}, "report_text must be one of"),
    ({"report_text": "generated"}, "report_text='generated' needs generated_reports"),
    ({"generated_reports": {"c0": "x"}}, "generated_reports is only read with report_text='generated'"),
])
def test_report_text_errors_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        predictor_systems(TextRecordingPredictor(), **kwargs)


def test_generated_reports_must_cover_every_case(tmp_path, no_pixels):
    case = report_cases(tmp_path)[0]
    systems = predictor_systems(TextRecordingPredictor(), report_text="generated", generated_reports={"other": "x"})
    with pytest.raises(ValueError, match="generated_reports has no report for case 'c0'"):
        systems["predictor"](case)


@pytest.mark.parametrize("report_text", [None, "none", "ground_truth", "generated"])
def test_run_evaluation_records_the_report_text_setting(tmp_path, no_pixels, report_text):
    cases = report_cases(tmp_path)
    source = CaseSource("toy", cases, splits={"test": [c.id for c in cases[:3]]}, synthetic=True)
    predictor = TextRecordingPredictor()
    kwargs = {} if report_text is None else {"report_text": report_text}
    if report_text == "generated":
        kwargs["generated_reports"] = {c.id: f"generated {c.id}" for c in cases}
    summary = run_evaluation(source, predictor, baselines=False, n_boot=10, **kwargs)
    mode = report_text or "none"
    assert summary["report_text"] == mode and summary["report_text_note"] == REPORT_TEXT_NOTES[mode]
    assert summary["report_text_used_by_model"] is True
    expected = {"none": [None] * 3, "ground_truth": [f"Ground truth report {i}." for i in range(3)],
                "generated": [f"generated c{i}" for i in range(3)]}[mode]
    assert predictor.texts == expected
    header = format_table(summary).splitlines()[0]
    assert header.startswith(f"report text: {mode} (")
    assert ("ORACLE" in header) == (mode == "ground_truth")
