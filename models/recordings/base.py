"""What every recording reader returns (:class:`Recording`) and the checks they share.

A reader turns one tracker's file into raw samples in *screen* pixels with a validity mask; mapping to the
image (:mod:`models.screen`) and fixation detection (:mod:`models.gaze_events`) come after, the same for
every format. Invalid samples stay in the arrays (``valid`` False) so the time line keeps its gaps;
``dropped`` says how many were marked invalid and why, each sample counted once, under the first reason
that applies.

A malformed file raises :class:`RecordingError` (a ``ValueError``, so the CLI prints it as one line and
exits with status 2) whose message starts with the file name and says what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

UNITS = ("px", "fraction")


class RecordingError(ValueError):
    """A recording is missing, empty or malformed; the one-line message names the file and the problem."""


@dataclass
class Recording:
    """Raw gaze samples of one recording, in screen pixels.

    Attributes:
        t: ``(N,)`` float64 seconds, increasing; from the recording's start, or as the file gives them
            (EGD-CXR: from the image's onset). See the reader.
        x, y: ``(N,)`` float64 screen pixels (continuous, :mod:`models.screen`'s convention); NaN where the
            tracker gave no position.
        valid: ``(N,)`` bool, the samples to use.
        source: a one-line description (format, file, stream or image selected).
        sampling_rate: Hz, estimated from the time stamps (:func:`estimate_rate`).
        dropped: reason -> number of samples marked invalid for it.
        meta: format-specific facts for provenance (plain JSON values).
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    valid: np.ndarray
    source: str
    sampling_rate: float
    dropped: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.t))

    @property
    def n_valid(self) -> int:
        return int(np.count_nonzero(self.valid))

    def valid_samples(self) -> np.ndarray:
        """``(M, 3)`` float64 rows t [s], x, y [screen px] of the valid samples."""
        keep = self.valid
        return np.stack([self.t[keep], self.x[keep], self.y[keep]], axis=1)


def estimate_rate(t: np.ndarray) -> float:
    """Sampling rate in Hz from ``(N,)`` time stamps in seconds.

    The median interval alone is biased when stamps are rounded (a 150 Hz tracker logged in whole
    milliseconds has 6 and 7 ms intervals, median 7 ms = 143 Hz, which would misplace samples on the
    detector's uniform grid by 5 % per second), so the rate is the mean of the intervals within 0.5-1.5x the
    median: rounding averages out, gaps (track loss, pauses) are left out.

    Returns 0.0 when fewer than two distinct time stamps exist.
    """
    t = np.asarray(t, np.float64)
    steps = np.diff(t)
    steps = steps[steps > 0]
    if not len(steps):
        return 0.0
    median = float(np.median(steps))
    regular = steps[(steps >= 0.5 * median) & (steps <= 1.5 * median)]
    return 1.0 / float(regular.mean())


def finish(path: Path, t: np.ndarray, x: np.ndarray, y: np.ndarray, reasons: list[tuple[str, np.ndarray]],
           source: str, meta: dict[str, Any] | None = None) -> Recording:
    """Sort by time, apply the invalid-sample ``reasons`` (in order) and build the :class:`Recording`.

    Args:
        reasons: ``(reason, mask)`` pairs, ``mask`` True where the sample is invalid for that reason; a sample
            is counted under its first reason. Non-finite positions are added last ("no gaze position").

    Raises:
        RecordingError: no samples, or times that are not finite.
    """
    t = np.asarray(t, np.float64)
    if not len(t):
        raise RecordingError(f"{path}: no gaze samples in the file")
    if not np.isfinite(t).all():
        bad = int(np.flatnonzero(~np.isfinite(t))[0])
        raise RecordingError(f"{path}: sample {bad + 1} has no time stamp; every sample needs a finite time")
    order = np.argsort(t, kind="stable")
    t, x, y = t[order], np.asarray(x, np.float64)[order], np.asarray(y, np.float64)[order]
    valid = np.ones(len(t), bool)
    dropped: dict[str, int] = {}
    masks = [(reason, np.asarray(mask, bool)[order]) for reason, mask in reasons]
    for reason, mask in masks + [("no gaze position", ~(np.isfinite(x) & np.isfinite(y)))]:
        hit = valid & mask
        if hit.any():
            dropped[reason] = dropped.get(reason, 0) + int(hit.sum())
        valid &= ~mask
    rate = estimate_rate(t)
    return Recording(t, x, y, valid, source, rate, dropped, dict(meta or {}))


def check_units(path: Path, x: np.ndarray, y: np.ndarray, valid: np.ndarray, units: str, where: str,
                screen: tuple[int, int] | None) -> None:
    """Refuse positions whose size contradicts their declared units (the usual mix-up of px and fractions).

    ``fraction`` with a median above 2 is pixels; ``px`` whose every value lies in [-0.5, 1.5] on a screen
    wider than 100 px is fractions. ``where`` names the columns/channels in the message.
    """
    keep = valid & np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        return
    xs, ys = np.abs(x[keep]), np.abs(y[keep])
    if units == "fraction":
        big = max(float(np.median(xs)), float(np.median(ys)))
        if big > 2.0:
            raise RecordingError(f"{path}: {where} should be fractions of the screen (0-1) but have a median of "
                                 f"{big:.4g}; they look like pixels (give the units as px, e.g. --units px)")
    elif units == "px":
        if screen is not None and min(screen) > 100 and float(max(xs.max(), ys.max())) <= 1.5:
            raise RecordingError(f"{path}: {where} should be screen pixels but all lie within 0-1.5; they look "
                                 f"like fractions of the screen (give the units as fraction, e.g. --units fraction)")
    else:
        raise RecordingError(f"units must be one of {', '.join(UNITS)}, got {units!r}")


def check_file(path: str | Path) -> Path:
    """The path, if it is an existing non-empty file; FileNotFoundError / RecordingError naming it otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such recording file")
    if path.is_dir():
        raise RecordingError(f"{path}: is a folder; give the recording file")
    if path.stat().st_size == 0:
        raise RecordingError(f"{path}: the file is empty (0 bytes); export the recording again")
    return path
