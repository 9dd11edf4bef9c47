"""Raw gaze samples -> fixations with pymovements' I-VT and I-DT detectors.

Input samples are ``(N, 3)`` rows of ``t`` [s], ``x``, ``y`` [original image pixels] (e.g. REFLACX
``gaze.csv``, read by :func:`models.datasets.reflacx.read_gaze`). Pixels are turned into degrees of visual
angle with the dataset's pixels-per-degree (REFLACX: ``angular_resolution_*_pixels_per_degree``), so the
thresholds keep their usual meaning (20 deg/s, 1 deg).

pymovements (0.28) wants constant-interval integer timesteps, so the samples are put on a uniform grid at the
sampling rate (given, or the median sample interval); missing samples (blinks, track loss) become NaN and
split fixations. Velocities use a Savitzky-Golay derivative over ``velocity_window_ms`` (20 ms by default):
the plain difference methods turn 1-2 px of tracker noise at 1 kHz into velocities above 20 deg/s.

Each detected event becomes a :class:`~models.schema.Fixation`: position = mean of its samples (original
pixels), ``t`` = time of its first sample, ``duration`` = time its samples cover
(``(offset - onset + 1) / sampling_rate``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.fixation_detection import detect_fixations_array
from models.schema import Fixation


def detect_fixations(samples: np.ndarray, **options) -> list[Fixation]:
    """Detect fixations in raw gaze samples: :func:`models.fixation_detection.detect_fixations_array`
    (its keyword options, defaults, units and errors, kept in that one place) as
    :class:`~models.schema.Fixation` objects, in time order."""
    rows = detect_fixations_array(samples, **options)
    return [Fixation(float(x), float(y), float(t), float(d)) for x, y, t, d in rows]


def fixations_from_gaze_csv(path: str | Path, *, method: str = "ivt", px_per_deg: float | None = None, **kwargs) -> list[Fixation]:
    """Fixations from a REFLACX (or MIMIC-Eye) ``gaze.csv``; ``px_per_deg`` defaults to the file's own.

    Raises:
        DatasetError: the file or a required column is missing.
        ValueError: the file has no pixels-per-degree columns and none was given.
    """
    from models.datasets.reflacx import read_gaze

    samples, file_ppd = read_gaze(path)
    ppd = px_per_deg or file_ppd
    if not ppd:
        raise ValueError(f"{path}: no angular_resolution_*_pixels_per_degree columns; pass px_per_deg")
    return detect_fixations(samples, method=method, px_per_deg=ppd, **kwargs)
