"""Tobii Pro Lab data export (TSV, or CSV), one row per sample.

Columns read (names matched without regard to case; the delimiter is sniffed; a decimal comma is fine):

- time: ``Recording timestamp`` with an optional unit suffix ``[μs]``/``[µs]``/``[us]``/``[ms]``/``[s]``;
  without one it is microseconds (Pro Lab's unit), or milliseconds for Tobii Studio's
  ``RecordingTimestamp``. Seconds from the recording's start, as given. A recording whose microsecond
  stamps would mean a rate above 10 kHz is refused: its stamps are milliseconds under a bare header.
- position: ``Gaze point X``/``Gaze point Y`` in screen pixels of the display area (``[DACS px]``, also
  Tobii Studio's ``GazePointX (ADCSpx)``), or ``[DACS norm]`` fractions of it. ``[MCS ...]`` (media
  coordinates, already relative to the shown image) is refused with a message: this import maps screen
  pixels itself.
- validity: ``Validity left``/``Validity right``: ``Valid``/``Invalid`` (Tobii Studio codes 0-4: 0 or 1 =
  valid). A sample is valid when at least one eye is (the gaze point is then that eye's, or both eyes'
  mean); both invalid = "both eyes invalid". Without these columns every sample with a gaze point is valid.
- ``Sensor``: rows of other sensors (``Mouse``, ``Keyboard``) and event rows (an ``Event`` and no sensor)
  are not gaze samples and are skipped (counted in ``meta["skipped_rows"]``).
- ``Recording resolution width``/``height``, when present, must equal the screen size given. ``Eye movement type`` (Tobii's own filter) is not used: fixations
  are detected here, the same way for every tracker.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from models.recordings.base import Recording, RecordingError, check_units, finish
from models.recordings.table import read_text_table

WHAT = "a Tobii Pro Lab data export"
NEEDS = "a Tobii export needs Recording timestamp, Gaze point X and Gaze point Y"
TIME_RE = re.compile(r"^(recording ?timestamp)\s*(?:\[([^\]]*)\]|\(([^)]*)\))?$", re.IGNORECASE)
GAZE_RE = re.compile(r"^gaze ?point ?([xy])\s*(?:\[([^\]]*)\]|\(([^)]*)\))?$", re.IGNORECASE)
TIME_UNITS = {"μs": 1e-6, "µs": 1e-6, "us": 1e-6, "microseconds": 1e-6, "ms": 1e-3, "milliseconds": 1e-3,
              "s": 1.0, "seconds": 1.0}
MAX_RATE_HZ = 10_000.0


def _time(path: Path, columns: list[str]) -> tuple[str, float]:
    for c in columns:
        m = TIME_RE.match(c)
        if m:
            unit = (m.group(2) or m.group(3) or "").strip().lower()
            if not unit:
                return c, 1e-3 if " " not in m.group(1) else 1e-6
            if unit not in TIME_UNITS:
                raise RecordingError(f"{path}: column {c!r}: unknown time unit {unit!r}; use [μs], [ms] or [s]")
            return c, TIME_UNITS[unit]
    raise RecordingError(f"{path}: missing column Recording timestamp ({NEEDS})")


def _gaze(path: Path, columns: list[str], units: str | None) -> tuple[str, str, str]:
    """The X and Y columns and their units ("px" or "fraction")."""
    found: dict[str, dict[str, str]] = {"x": {}, "y": {}}
    for c in columns:
        m = GAZE_RE.match(c)
        if m:
            unit = (m.group(2) or m.group(3) or "").strip().lower()
            found[m.group(1).lower()].setdefault(unit, c)
    for axis in ("x", "y"):
        if not found[axis]:
            raise RecordingError(f"{path}: missing column Gaze point {axis.upper()} ({NEEDS})")
    for unit, kind in (("", None), ("dacs px", "px"), ("adcspx", "px"), ("px", "px"), ("dacs norm", "fraction"),
                       ("adcsnorm", "fraction"), ("norm", "fraction")):
        if unit in found["x"] and unit in found["y"]:
            kind = kind or units or "px"
            if units and units != kind:
                raise RecordingError(f"{path}: {found['x'][unit]} is in {kind}, not {units}; leave out --units "
                                     f"or give --units {kind}")
            return found["x"][unit], found["y"][unit], kind
    names = ", ".join(found["x"].values())
    if any("mcs" in u for u in found["x"]):
        raise RecordingError(f"{path}: only media-coordinate gaze columns ({names}); export Gaze point X/Y in "
                             f"display-area pixels ([DACS px]) so the screen mapping applies")
    raise RecordingError(f"{path}: gaze columns {names} have units this reader does not know; export Gaze "
                         f"point X/Y [DACS px]")


def _lower(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.Series(values, dtype=object).astype(str).str.strip().str.lower().to_numpy(dtype=object)


def _validity(values: np.ndarray) -> np.ndarray:
    """True where an eye is valid: ``Valid`` (Pro Lab) or a Tobii Studio code 0/1."""
    import pandas as pd

    text = _lower(values)
    codes = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return (text == "valid") | (codes <= 1.0)


def _column(columns: list[str], name: str) -> str | None:
    for c in columns:
        if c.lower().replace(" ", "") == name.lower().replace(" ", ""):
            return c
    return None


def _check_resolution(path: Path, table, rows: np.ndarray, screen_size: tuple[int, int]) -> None:
    """Pro Lab's ``Recording resolution width/height`` is the recorded screen's size: it must match ``--screen``."""
    w_col, h_col = _column(table.columns, "Recording resolution width"), _column(table.columns, "Recording resolution height")
    if w_col is None or h_col is None:
        return
    w, h = table.number(w_col)[rows], table.number(h_col)[rows]
    w, h = w[np.isfinite(w)], h[np.isfinite(h)]
    if len(w) and len(h) and (int(w[0]), int(h[0])) != tuple(int(v) for v in screen_size):
        raise RecordingError(f"{path}: recorded on a {int(w[0])}x{int(h[0])} screen (Recording resolution width/height) "
                             f"but the screen given is {screen_size[0]}x{screen_size[1]}; give --screen "
                             f"{int(w[0])}x{int(h[0])}")


def read_tobii(path: str | Path, *, screen_size: tuple[int, int], units: str | None = None) -> Recording:
    """Read a Tobii Pro Lab TSV/CSV data export into screen-pixel samples.

    Args:
        path: the export file.
        screen_size: ``(width, height)`` of the screen in pixels (for ``[DACS norm]`` fractions and the
            pixels-vs-fractions check).
        units: "px" or "fraction" for a bare ``Gaze point X`` header (default px).

    Raises:
        FileNotFoundError: no such file.
        RecordingError: empty file, missing column, non-numeric cell, unknown units, stamps in the wrong unit.
    """
    table = read_text_table(path, WHAT)
    path = table.path
    time_col, scale = _time(path, table.columns)
    x_col, y_col, kind = _gaze(path, table.columns, units)
    rows = np.ones(len(table), bool)
    sensor = _column(table.columns, "Sensor")
    sensors = _lower(table.text(sensor)) if sensor is not None else np.full(len(table), "", dtype=object)
    rows &= (sensors == "") | (sensors == "eye tracker") | (sensors == "eyetracker")
    event = _column(table.columns, "Event")
    if event is not None:  # event rows (RecordingStart, ImageStimulusStart ...) carry no sensor and no gaze
        rows &= ~((_lower(table.text(event)) != "") & (sensors == ""))
    skipped = int((~rows).sum())
    if not rows.any():
        raise RecordingError(f"{path}: no Eye Tracker rows (only other sensors and events)")
    _check_resolution(path, table, rows, screen_size)
    raw_t = table.number(time_col)[rows]
    finite = raw_t[np.isfinite(raw_t)]
    if scale == 1e-6 and len(finite) > 2:
        steps = np.diff(np.sort(finite))
        steps = steps[steps > 0]
        if len(steps) and 1.0 / (np.median(steps) * 1e-6) > MAX_RATE_HZ:
            raise RecordingError(f"{path}: {time_col} read as microseconds would mean "
                                 f"{1.0 / (np.median(steps) * 1e-6):.0f} Hz; the stamps look like milliseconds "
                                 f"(name the column 'Recording timestamp [ms]')")
    t = raw_t * scale
    x, y = table.number(x_col)[rows], table.number(y_col)[rows]
    reasons = []
    left, right = _column(table.columns, "Validity left"), _column(table.columns, "Validity right")
    if left is not None or right is not None:
        ok = np.zeros(int(rows.sum()), bool)
        for c in (left, right):
            if c is not None:
                ok |= _validity(table.text(c)[rows])
        reasons.append(("both eyes invalid", ~ok))
    source = f"tobii-csv {path.name}"
    meta = {"format": "tobii-csv", "file": str(path), "time_column": time_col, "position_columns": [x_col, y_col],
            "units": kind, "skipped_rows": skipped}
    rec = finish(path, t, x, y, reasons, source, meta)
    check_units(path, rec.x, rec.y, rec.valid, kind, f"{x_col}/{y_col}", screen_size)
    if kind == "fraction":
        rec.x = rec.x * screen_size[0]
        rec.y = rec.y * screen_size[1]
    return rec
