import numpy as np
import pytest

from models.gaze import array_to_fixations, clip_fixations, fixation_heatmap, resample_scanpath, resolve_sigma, saccade_amplitudes
from models.schema import Fixation


def test_heatmap_peak_at_fixation_and_sigma_conventions():
    fix = [Fixation(30.5, 20.5, 0, 0.3)]
    m = fixation_heatmap(fix, (50, 80), sigma_px=3)
    assert m.shape == (50, 80) and m.max() == pytest.approx(1.0)
    assert np.unravel_index(m.argmax(), m.shape) == (20, 30)
    # 1 degree at 40 px/deg equals sigma 40 px.
    a = fixation_heatmap(fix, (50, 80), sigma_deg=1.0, px_per_deg=40)
    b = fixation_heatmap(fix, (50, 80), sigma_px=40)
    np.testing.assert_allclose(a, b)
    assert resolve_sigma(224, 100) == pytest.approx(16.0)
    with pytest.raises(ValueError, match="px_per_deg"):
        fixation_heatmap(fix, (5, 5), sigma_deg=1.0)


def test_duration_weighting_and_normalisation():
    fix = [Fixation(10, 10, 0, 0.9), Fixation(40, 10, 0.9, 0.1)]
    w = fixation_heatmap(fix, (20, 50), sigma_px=2, duration_weighted=True, normalize="none")
    c = fixation_heatmap(fix, (20, 50), sigma_px=2, duration_weighted=False, normalize="none")
    assert w[10, 10] / w[10, 40] == pytest.approx(9.0, rel=1e-3)
    assert c[10, 10] == pytest.approx(c[10, 40], rel=1e-6)
    s = fixation_heatmap(fix, (20, 50), sigma_px=2, normalize="sum")
    assert s.sum() == pytest.approx(1.0, rel=1e-5)
    assert fixation_heatmap([], (4, 4)).sum() == 0


def test_scaled_rendering_matches_original_positions():
    fix = [Fixation(1040, 528, 0, 0.3)]  # -> (32.5, 16.5), the centre of pixel (32, 16)
    m = fixation_heatmap(fix, (64, 64), scale=64 / 2048)
    assert np.unravel_index(m.argmax(), m.shape) == (16, 32)


def test_scanpath_utilities():
    fix = array_to_fixations(np.array([[0, 0, 0.2], [3, 4, 0.3], [3, 4, 0.1]]))
    assert [f.t for f in fix] == pytest.approx([0, 0.2, 0.5])
    np.testing.assert_allclose(saccade_amplitudes(fix), [5, 0])
    assert len(resample_scanpath(fix, 2)) == 2
    padded = resample_scanpath(fix, 5, pad=True)
    assert len(padded) == 5 and padded[-1].duration == 0
    kept = clip_fixations([Fixation(-5, 1), Fixation(2, 2)], 10, 10)
    assert len(kept) == 1 and clip_fixations([Fixation(-5, 1)], 10, 10, drop=False)[0].x == 0
