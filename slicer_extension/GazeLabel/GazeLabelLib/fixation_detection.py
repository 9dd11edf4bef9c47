"""Raw gaze samples -> fixations with pymovements' I-VT and I-DT detectors (numpy in, numpy out).

One file in two places, byte for byte: ``models/fixation_detection.py`` (used by :mod:`models.gaze_events`
for recordings) and ``slicer_extension/GazeLabel/GazeLabelLib/fixation_detection.py`` (used by the live
capture in Slicer, whose Python cannot import ``models``). So it imports nothing but numpy at load time, and
pymovements only when a detection runs (Slicer installs it on demand: ``slicer.util.pip_install``).

Input samples are ``(N, 3)`` rows of ``t`` [s], ``x``, ``y`` [pixels of whatever plane the gaze is in,
usually original image pixels]. Pixels become degrees of visual angle through ``px_per_deg`` (pixels of that
plane per degree), so the thresholds keep their usual meaning (20 deg/s, 1 deg).

pymovements (0.28) wants constant-interval integer timesteps, so the samples are put on a uniform grid at the
sampling rate (given, or the median sample interval); missing samples (blinks, track loss, gaze off the
image) become NaN and split fixations. Velocities use a Savitzky-Golay derivative over ``velocity_window_ms``
(20 ms by default): the plain difference methods turn 1-2 px of tracker noise at 1 kHz into velocities above
20 deg/s.

Each detected event is a row ``x, y, t, duration``: position = mean of its samples, ``t`` = time of its first
sample, ``duration`` = time its samples cover (``(offset - onset + 1) / sampling_rate``).
"""

from __future__ import annotations

import numpy as np

METHODS = ("ivt", "idt")
INSTALL_HINT = "fixation detection needs pymovements: pip install pymovements==0.28.0"


def _pymovements():
    """pymovements' detectors and velocity transform, or an ImportError that says how to install it."""
    try:
        from pymovements.events import idt, ivt
        from pymovements.transforms.numpy import pos2vel
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} (import failed: {error})") from error
    return idt, ivt, pos2vel


def _grid(samples: np.ndarray, sampling_rate: float | None) -> tuple[np.ndarray, float, float]:
    """Uniform-grid ``(M, 2)`` x, y (NaN where no sample), the first time and the sample interval (s)."""
    t = samples[:, 0]
    if sampling_rate is None:
        steps = np.diff(t)
        steps = steps[steps > 0]
        if not len(steps):
            raise ValueError("samples: cannot infer the sampling rate (all timestamps equal); pass sampling_rate")
        dt = float(np.median(steps))
    else:
        if sampling_rate <= 0:
            raise ValueError(f"sampling_rate must be > 0 Hz, got {sampling_rate}")
        dt = 1.0 / float(sampling_rate)
    index = np.rint((t - t[0]) / dt).astype(np.int64)
    grid = np.full((int(index[-1]) + 1, 2), np.nan)
    grid[index] = samples[:, 1:3]
    return grid, float(t[0]), dt


def _velocity(positions_deg: np.ndarray, rate: float, window_ms: float, pos2vel) -> np.ndarray:
    """Savitzky-Golay velocities [deg/s]; NaN wherever the filter's window holds a missing sample.

    scipy's filter fits a polynomial to the first and last windows (``mode="interp"``) and fails on NaN
    there, so missing samples are zero-filled for the call and every output whose window (or edge fit)
    touches one is set back to NaN: where the filter worked before, the values are the same numbers.
    """
    window = max(3, int(round(window_ms / 1000.0 * rate)) | 1)  # odd, at least 3 samples
    window = min(window, len(positions_deg) - (1 - len(positions_deg) % 2))
    if window < 3:
        return np.full_like(positions_deg, np.nan)
    missing = ~np.isfinite(positions_deg).all(axis=1)
    filled = np.where(missing[:, None], 0.0, positions_deg) if missing.any() else positions_deg
    velocities = pos2vel(filled, sampling_rate=rate, method="savitzky_golay", window_length=window, polyorder=min(2, window - 1))
    if missing.any():
        half = window // 2
        touched = np.convolve(missing.astype(np.float64), np.ones(window), mode="same") > 0.5
        touched[:half] = missing[:window].any()  # the edge fits use the whole first / last window
        touched[len(touched) - half:] = missing[len(missing) - window:].any()
        velocities[touched] = np.nan
    return velocities


def detect_fixations_array(
    samples: np.ndarray,
    *,
    method: str = "ivt",
    px_per_deg: float,
    velocity_threshold: float = 20.0,
    dispersion_threshold: float = 1.0,
    minimum_duration_ms: float = 100.0,
    sampling_rate: float | None = None,
    velocity_window_ms: float = 20.0,
) -> np.ndarray:
    """Detect fixations in raw gaze samples.

    Args:
        samples: ``(N, 3)`` array of t [s], x, y [px]; rows with non-finite time are dropped, non-finite
            positions are gaps. Order does not matter (sorted by time here).
        method: "ivt" (velocity threshold) or "idt" (dispersion threshold).
        px_per_deg: pixels (of the samples' plane) per degree of visual angle (> 0).
        velocity_threshold: I-VT threshold in deg/s.
        dispersion_threshold: I-DT threshold in degrees ((max x - min x) + (max y - min y)).
        minimum_duration_ms: shortest fixation kept, in milliseconds.
        sampling_rate: Hz; default: 1 / median sample interval.
        velocity_window_ms: Savitzky-Golay window for I-VT velocities.

    Returns:
        ``(F, 4)`` float64 array, one row per fixation in time order: x, y [px, the samples' plane],
        t [s, the samples' clock], duration [s]. ``(0, 4)`` when there is none.

    Raises:
        ValueError: bad shape, method or parameter (the message names it).
        ImportError: pymovements is not installed (the message says how to install it).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not px_per_deg or px_per_deg <= 0:
        raise ValueError(f"px_per_deg must be > 0, got {px_per_deg}")
    if minimum_duration_ms <= 0:
        raise ValueError(f"minimum_duration_ms must be > 0, got {minimum_duration_ms}")
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] != 3:
        raise ValueError(f"samples must be an (N, 3) array of t, x, y; got shape {samples.shape}")
    samples = samples[np.isfinite(samples[:, 0])]
    samples = samples[np.argsort(samples[:, 0], kind="stable")]
    if np.isfinite(samples[:, 1:]).all(axis=1).sum() < 3:
        return np.zeros((0, 4))
    idt, ivt, pos2vel = _pymovements()
    grid, t0, dt = _grid(samples, sampling_rate)
    rate = 1.0 / dt
    min_samples = max(2, int(round(minimum_duration_ms / 1000.0 / dt)))
    steps = np.arange(len(grid), dtype=np.int64)
    positions_deg = grid / float(px_per_deg)

    if method == "ivt":
        velocities = _velocity(positions_deg, rate, velocity_window_ms, pos2vel)
        events = ivt(velocities, timesteps=steps, minimum_duration=min_samples - 1, velocity_threshold=velocity_threshold)
    else:
        events = idt(positions_deg, timesteps=steps, minimum_duration=min_samples, dispersion_threshold=dispersion_threshold)

    rows = []
    for onset, offset in events.frame.select(["onset", "offset"]).iter_rows():
        block = grid[int(onset) : int(offset) + 1]
        valid = block[np.isfinite(block).all(axis=1)]
        if not len(valid):
            continue
        x, y = valid.mean(axis=0)
        rows.append((float(x), float(y), t0 + int(onset) * dt, (int(offset) - int(onset) + 1) * dt))
    return np.array(rows, dtype=np.float64).reshape(-1, 4)
