"""The simulated radiologist against real gaze statistics (gaze_stats.json), its variability and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from models.datasets.phantom import ReaderStyle, generate_case, simulate_reading
from models.gaze import fixation_heatmap, fixations_to_array, saccade_amplitudes

# Real radiologists (GazeSearch from REFLACX + EGD-CXR, /work/shared/data/gaze_stats.json).
REAL_MEDIAN_DURATION_S = 0.2829999999999995
REAL_MEDIAN_AMPLITUDE_FRACTION = 38.3275357934736 / 224
# Tolerances the simulator promises (relative).
DURATION_TOLERANCE = 0.10
AMPLITUDE_TOLERANCE = 0.12
SIZE = 256


@pytest.fixture(scope="module")
def cases():
    """20 phantom cases; their readings come from 3 simulated readers each."""
    return [generate_case(21, i, size=SIZE, readers=3)[0] for i in range(20)]


def _readings(case):
    return [case.fixations] + [case.readers[k] for k in sorted(case.readers)]


def test_durations_and_amplitudes_match_real_radiologists(cases):
    durations, amplitudes, counts = [], [], []
    for case in cases:
        for fx in _readings(case):
            durations += list(fixations_to_array(fx)[:, 3])
            amplitudes += list(saccade_amplitudes(fx) / SIZE)
            counts.append(len(fx))
    assert np.median(durations) == pytest.approx(REAL_MEDIAN_DURATION_S, rel=DURATION_TOLERANCE)
    assert np.median(amplitudes) == pytest.approx(REAL_MEDIAN_AMPLITUDE_FRACTION, rel=AMPLITUDE_TOLERANCE)
    assert 35 <= np.mean(counts) <= 50  # a full reading (EGD-CXR ~45)
    assert min(counts) >= 20 and max(counts) <= 60


def test_timing_is_cumulative_and_points_inside_the_image(cases):
    for case in cases[:5]:
        for fx in _readings(case):
            a = fixations_to_array(fx)
            assert a[0, 2] == 0.0
            assert np.all(a[1:, 2] >= a[:-1, 2] + a[:-1, 3] - 1e-3)  # next start after this one ends
            assert np.all((a[:, 0] >= 0) & (a[:, 0] <= SIZE) & (a[:, 1] >= 0) & (a[:, 1] <= SIZE))
            assert np.all(a[:, 3] > 0)


def test_longer_dwell_and_more_looks_on_findings(cases):
    on, off = [], []
    for case in cases:
        boxes = [b for b in case.boxes if case.findings[b.finding] == 1 and b.region != "bones and soft tissues"]
        if not boxes:
            continue
        for fx in _readings(case):
            for f in fx:
                inside = any(b.x1 <= f.x <= b.x2 and b.y1 <= f.y <= b.y2 for b in boxes)
                (on if inside else off).append(f.duration)
    assert len(on) > 50
    assert np.median(on) > 1.2 * np.median(off)


def test_same_reader_same_reading_and_readers_differ(cases):
    case = cases[0]
    a = simulate_reading(case, SIZE, reader_seed=4)
    assert a == simulate_reading(case, SIZE, reader_seed=4)
    assert a != simulate_reading(case, SIZE, reader_seed=5)
    assert ReaderStyle.from_seed(4) == ReaderStyle.from_seed(4) != ReaderStyle.from_seed(5)


def _cc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_readers_agree_more_on_the_same_image_than_across_images(cases):
    maps = [[fixation_heatmap(fx, (32, 32), scale=32 / SIZE) for fx in _readings(c)] for c in cases]
    same = [_cc(m[i], m[j]) for m in maps for i in range(3) for j in range(i + 1, 3)]
    other = [_cc(maps[k][i], maps[(k + 1) % len(maps)][j]) for k in range(len(maps)) for i in range(3) for j in range(3) if i != j]
    assert np.mean(same) > np.mean(other) + 0.03  # a human-consistency ceiling above chance
    assert np.mean(same) < 0.98  # but readers are not copies of each other


def test_image_size_is_required_without_a_sized_case(cases):
    case = cases[0]
    blank = type(case)(id="x", boxes=[], findings={})
    with pytest.raises(ValueError, match="image size unknown"):
        simulate_reading(blank)
    assert len(simulate_reading(blank, (300, 200))) >= 20
