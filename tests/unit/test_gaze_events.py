"""I-VT / I-DT fixation detection (pymovements) on synthetic samples with known fixations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.gaze_events import detect_fixations, fixations_from_gaze_csv

GAZE_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "reflacx" / "gaze_data" / "P102R108387" / "gaze.csv"
PX_PER_DEG = 50.0
# (x px, y px, duration s): three fixations joined by 40 ms saccades of 8-11 degrees.
TRUTH = [(400.0, 500.0, 0.30), (900.0, 700.0, 0.45), (600.0, 1100.0, 0.25)]


def synthetic_samples(rate: float = 1000.0, noise_px: float = 1.5, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """``(N, 3)`` t, x, y samples and the true fixation onsets."""
    dt = 1.0 / rate
    rows, onsets, t, prev = [], [], 0.0, None
    for x, y, duration in TRUTH:
        if prev is not None:
            n = int(round(0.040 * rate))
            for k in range(n):
                f = (k + 1) / (n + 1)
                rows.append((t, prev[0] + f * (x - prev[0]), prev[1] + f * (y - prev[1])))
                t += dt
        onsets.append(t)
        for _ in range(int(round(duration * rate))):
            rows.append((t, x, y))
            t += dt
        prev = (x, y)
    samples = np.array(rows)
    samples[:, 1:] += np.random.default_rng(seed).normal(0.0, noise_px, (len(samples), 2))
    return samples, onsets


@pytest.mark.parametrize("method", ["ivt", "idt"])
def test_recovers_known_fixations(method):
    samples, onsets = synthetic_samples()
    found = detect_fixations(samples, method=method, px_per_deg=PX_PER_DEG)
    assert len(found) == 3
    for fix, (x, y, duration), onset in zip(found, TRUTH, onsets):
        assert abs(fix.x - x) < 2.0 and abs(fix.y - y) < 2.0
        assert abs(fix.duration - duration) < 0.03
        assert abs(fix.t - onset) < 0.03


def test_minimum_duration_and_threshold_matter():
    samples, _ = synthetic_samples()
    assert len(detect_fixations(samples, px_per_deg=PX_PER_DEG, minimum_duration_ms=280)) == 2  # the 250 ms one goes
    # Samples shuffled in time give the same answer (sorted inside).
    shuffled = samples[np.random.default_rng(1).permutation(len(samples))]
    assert len(detect_fixations(shuffled, method="idt", px_per_deg=PX_PER_DEG)) == 3
    # A 0.1 degree dispersion limit is below the noise: nothing holds still long enough.
    assert detect_fixations(samples, method="idt", px_per_deg=PX_PER_DEG, dispersion_threshold=0.1) == []


def test_gap_splits_a_fixation():
    samples, _ = synthetic_samples()
    middle = (samples[:, 0] > 0.50) & (samples[:, 0] < 0.56)  # 60 ms track loss inside the 2nd fixation
    samples[middle, 1:] = np.nan
    found = detect_fixations(samples, method="ivt", px_per_deg=PX_PER_DEG)
    assert len(found) == 4
    assert all(np.isfinite([f.x, f.y]).all() for f in found)


def test_lower_sampling_rate():
    samples, _ = synthetic_samples(rate=250.0, noise_px=1.0)
    for method in ("ivt", "idt"):
        found = detect_fixations(samples, method=method, px_per_deg=PX_PER_DEG, sampling_rate=250.0)
        assert [round(f.x / 100) for f in found] == [4, 9, 6]


def test_bad_input():
    samples, _ = synthetic_samples()
    with pytest.raises(ValueError, match="method"):
        detect_fixations(samples, method="hmm", px_per_deg=PX_PER_DEG)
    with pytest.raises(ValueError, match="px_per_deg"):
        detect_fixations(samples, px_per_deg=0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        detect_fixations(samples[:, :2], px_per_deg=PX_PER_DEG)
    assert detect_fixations(samples[:2], px_per_deg=PX_PER_DEG) == []


def test_reflacx_gaze_csv():
    for method in ("ivt", "idt"):
        found = fixations_from_gaze_csv(GAZE_CSV, method=method)
        assert len(found) == 2
        assert abs(found[0].x - 1270) < 3 and abs(found[0].y - 1530) < 3
        assert abs(found[1].x - 1205) < 3 and abs(found[1].y - 1012) < 3
        assert found[0].t == pytest.approx(-0.05)  # the file's own clock (seconds from audio start)
