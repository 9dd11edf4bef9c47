"""Slicer's Python cannot import ``models``: the screen mapping and fixation detection the live capture uses
are byte-identical copies of ``models/screen.py`` and ``models/fixation_detection.py``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "slicer_extension" / "GazeLabel" / "GazeLabelLib"


@pytest.mark.parametrize("name", ["screen.py", "fixation_detection.py"])
def test_copies_are_identical(name):
    original, copy = ROOT / "models" / name, LIB / name
    assert original.read_bytes() == copy.read_bytes(), f"{copy} differs from {original}: copy models/{name} over it"


@pytest.mark.parametrize("name", ["screen.py", "fixation_detection.py"])
def test_shared_files_import_no_package_modules(name):
    """Shared files may import the standard library, numpy and (lazily) pymovements only."""
    tree = ast.parse((ROOT / "models" / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import {node.module!r} would differ between the copies"
            modules = [node.module or ""]
        else:
            continue
        for m in modules:
            assert m.split(".")[0] in {"__future__", "math", "dataclasses", "typing", "numpy", "pymovements"}, (name, m)


def _samples(rate: float, seed: int):
    """SYNTHETIC ``(N, 3)`` t, x, y: four fixations, 40 ms linear saccades, 1 px noise, one 50 ms gap."""
    import numpy as np

    rows, t = [], 0.0
    points = [(400.0, 500.0, 0.30), (900.0, 700.0, 0.45), (600.0, 1100.0, 0.25), (620.0, 300.0, 0.5)]
    prev = None
    for x, y, duration in points:
        if prev is not None:
            n = int(round(0.040 * rate))
            for k in range(n):
                f = (k + 1) / (n + 1)
                rows.append((t, prev[0] + f * (x - prev[0]), prev[1] + f * (y - prev[1])))
                t += 1.0 / rate
        for _ in range(int(round(duration * rate))):
            rows.append((t, x, y))
            t += 1.0 / rate
        prev = (x, y)
    samples = np.array(rows)
    samples[:, 1:] += np.random.default_rng(seed).normal(0.0, 1.0, (len(samples), 2))
    samples[(samples[:, 0] > 0.5) & (samples[:, 0] < 0.55), 1:] = np.nan
    return samples


@pytest.mark.parametrize("method", ["ivt", "idt"])
@pytest.mark.parametrize("rate", [120.0, 1000.0])
def test_detection_core_equals_models_gaze_events(method, rate):
    """GazeLabelLib.fixation_detection gives exactly models.gaze_events.detect_fixations' fixations."""
    import sys

    import numpy as np

    sys.path.insert(0, str(ROOT / "slicer_extension" / "GazeLabel"))
    from GazeLabelLib.fixation_detection import detect_fixations_array

    from models.gaze_events import detect_fixations

    samples = _samples(rate, seed=int(rate))
    shuffled = samples[np.random.default_rng(0).permutation(len(samples))]
    for data, kwargs in ((samples, {}), (shuffled, {"sampling_rate": rate}), (samples, {"minimum_duration_ms": 280.0}),
                         (samples, {"velocity_threshold": 30.0, "dispersion_threshold": 0.5, "velocity_window_ms": 30.0})):
        ours = detect_fixations_array(data, method=method, px_per_deg=50.0, **kwargs)
        theirs = detect_fixations(data, method=method, px_per_deg=50.0, **kwargs)
        assert len(theirs) >= 1
        assert ours.shape == (len(theirs), 4)
        assert ours.tolist() == [[f.x, f.y, f.t, f.duration] for f in theirs]
    assert detect_fixations_array(samples[:2], px_per_deg=50.0).shape == (0, 4)
    for bad, match in (({"method": "hmm"}, "method"), ({"px_per_deg": 0}, "px_per_deg")):
        kwargs = {"px_per_deg": 50.0, **bad}
        with pytest.raises(ValueError, match=match):
            detect_fixations_array(samples, **kwargs)
        with pytest.raises(ValueError, match=match):
            detect_fixations(samples, **kwargs)


def test_detection_core_says_how_to_install_pymovements(monkeypatch):
    import sys

    import numpy as np

    sys.path.insert(0, str(ROOT / "slicer_extension" / "GazeLabel"))
    from GazeLabelLib import fixation_detection

    monkeypatch.setitem(sys.modules, "pymovements", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "pymovements.events", None)
    with pytest.raises(ImportError, match="pip install pymovements"):
        fixation_detection.detect_fixations_array(_samples(120.0, 0), px_per_deg=50.0)
    assert fixation_detection.detect_fixations_array(np.zeros((0, 3)), px_per_deg=50.0).shape == (0, 4)


@pytest.mark.parametrize("method", ["ivt", "idt"])
def test_detection_core_takes_gaps_at_the_edges(method):
    """Missing samples in the first or last velocity window (gaze off the image when a reading starts or
    stops) are gaps like any other; scipy's edge fit used to fail on them with 'array must not contain NaNs'."""
    import sys

    import numpy as np

    sys.path.insert(0, str(ROOT / "slicer_extension" / "GazeLabel"))
    from GazeLabelLib.fixation_detection import detect_fixations_array

    samples = _samples(120.0, seed=5)
    samples[:2, 1:] = np.nan
    samples[-3:, 1:] = np.nan
    found = detect_fixations_array(samples, method=method, px_per_deg=50.0)
    assert [round(x / 100) for x in found[:, 0]] == [4, 9, 9, 6, 6]  # the 50 ms gap splits the second
