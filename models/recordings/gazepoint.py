"""Gazepoint CSV: EGD-CXR's raw ``eye_gaze.csv`` and plain Gazepoint Analysis / API exports.

EGD-CXR's file has, in this order: ``SESSION_ID, MEDIA_ID, DICOM_ID, CNT, Time (in secs),
TIMETICK(f=10000000), FPOGX, FPOGY, FPOGS, FPOGD, FPOGID, FPOGV, BPOGX, BPOGY, BPOGV, LPCX, ... BKID, BKDUR,
BKPMIN, ..., X_ORIGINAL, Y_ORIGINAL``; a Gazepoint Analysis export has a subset. What is read:

- position: ``BPOGX``/``BPOGY``, Gazepoint's *best* point of gaze (the mean of both eyes, or the one
  tracked eye), as **fractions of the screen** (0-1; off-screen gaze goes a little beyond) times the screen
  size = screen pixels. The fixation filter's ``FPOG*`` columns are not used: fixations are detected here,
  the same way for every tracker. ``X_ORIGINAL``/``Y_ORIGINAL`` (EGD-CXR's own mapping) are not used either.
- validity: ``BPOGV == 1``; other rows are "invalid (BPOGV != 1)"; rows inside a blink (``BKID != 0``, when
  the column exists) are "blink" (counted first).
- time, seconds: ``TIME`` (also ``TIME(<date>)`` as Gazepoint Analysis names it) or ``Time (in secs)``
  as given (EGD-CXR: from the image's onset, so fixations line up with its transcripts); else
  ``TIMETICK(f=10000000)`` ticks of 10 MHz (the ``f=`` frequency is read), from the first row.
- images: with ``MEDIA_ID``/``DICOM_ID`` columns holding several images (EGD-CXR: one session file,
  calibration first), ``media_id`` chooses one, by either column.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from models.recordings.base import Recording, RecordingError, check_units, finish
from models.recordings.table import read_text_table

WHAT = "a Gazepoint CSV export"
NEEDS = "a Gazepoint export needs BPOGX, BPOGY, BPOGV and TIME (or Time (in secs) or TIMETICK(f=10000000))"
TICK_RE = re.compile(r"^TIMETICK\(f=(\d+(?:\.\d*)?)\)$", re.IGNORECASE)
TIME_RE = re.compile(r"^TIME(\(.*\))?$", re.IGNORECASE)
ID_COLUMNS = ("MEDIA_ID", "DICOM_ID")
MAX_LISTED = 12


def _column(columns: list[str], name: str) -> str | None:
    for c in columns:
        if c.upper() == name.upper():
            return c
    return None


def _time_column(path: Path, columns: list[str]) -> tuple[str, float | None]:
    """The time column and, for a tick column, its frequency in Hz (None for seconds)."""
    for c in columns:
        if c.lower() == "time (in secs)" or (TIME_RE.match(c) and not c.upper().startswith("TIMETICK")):
            return c, None
    for c in columns:
        m = TICK_RE.match(c)
        if m:
            return c, float(m.group(1))
    raise RecordingError(f"{path}: missing column TIME ({NEEDS})")


def _select(path: Path, table, media_id: str | None) -> tuple[np.ndarray, str | None]:
    """Rows of the chosen image (all rows when the file holds one) and a label for it."""
    id_cols = [c for c in (_column(table.columns, n) for n in ID_COLUMNS) if c]
    if not id_cols:
        if media_id is not None:
            raise RecordingError(f"{path}: has no MEDIA_ID or DICOM_ID column to choose {media_id!r} by; "
                                 f"leave out --media-id")
        return np.ones(len(table), bool), None
    import pandas as pd

    parts = [pd.Series(table.text(c), dtype=object).astype(str).str.strip() for c in id_cols]
    joined = parts[0] if len(parts) == 1 else parts[0] + "\x1f" + parts[1]
    codes, uniques = pd.factorize(joined, sort=False)  # images in order of appearance
    images = [tuple(u.split("\x1f")) for u in uniques]
    label = lambda k: " / ".join(f"{c}={v}" for c, v in zip(id_cols, k))  # noqa: E731
    if media_id is None:
        if len(images) == 1:
            return np.ones(len(table), bool), label(images[0])
        listed = ", ".join(" ".join(k) for k in images[:MAX_LISTED]) + (" ..." if len(images) > MAX_LISTED else "")
        raise RecordingError(f"{path}: holds {len(images)} images ({', '.join(id_cols)}: {listed}); choose one "
                             f"with --media-id")
    wanted = str(media_id).strip()

    def same(value: str) -> bool:
        if value == wanted:
            return True
        try:  # MEDIA_ID "1" written as "1.0"
            return float(value) == float(wanted)
        except ValueError:
            return False

    # Exact ids only: in EGD-CXR an id that is another one minus its last 5 characters is not a truncated copy
    # but the calibration screen shown before that image (see models.datasets.egd_cxr), so never match prefixes.
    chosen = [k for k in images if any(same(v) for v in k)]
    if len(chosen) != 1:
        listed = ", ".join(" ".join(k) for k in images[:MAX_LISTED]) + (" ..." if len(images) > MAX_LISTED else "")
        how = "matches several images" if chosen else "matches no image"
        raise RecordingError(f"{path}: --media-id {wanted!r} {how}; the file holds ({', '.join(id_cols)}): {listed}")
    rows = np.asarray(codes) == images.index(chosen[0])
    return rows, label(chosen[0])


def read_gazepoint(path: str | Path, *, screen_size: tuple[int, int], media_id: str | None = None) -> Recording:
    """Read a Gazepoint CSV export into screen-pixel samples.

    Args:
        path: the CSV file.
        screen_size: ``(width, height)`` of the screen in pixels (BPOG fractions are scaled by it).
        media_id: the ``MEDIA_ID`` or ``DICOM_ID`` to keep when the file holds several images.

    Raises:
        FileNotFoundError: no such file.
        RecordingError: empty file, missing column, non-numeric cell, several images and none chosen, or
            positions that are not fractions of the screen.
    """
    table = read_text_table(path, WHAT)
    path = table.path
    for name in ("BPOGX", "BPOGY", "BPOGV"):
        if _column(table.columns, name) is None:
            raise RecordingError(f"{path}: missing column {name} ({NEEDS})")
    time_col, tick_hz = _time_column(path, table.columns)
    rows, image = _select(path, table, media_id)

    def col(name: str) -> np.ndarray:
        return table.number(_column(table.columns, name))[rows]

    t = table.number(time_col)[rows]
    if tick_hz is not None:
        if tick_hz <= 0:
            raise RecordingError(f"{path}: column {time_col}: the tick frequency must be > 0")
        finite = t[np.isfinite(t)]
        t = (t - (finite.min() if len(finite) else 0.0)) / tick_hz
    bx, by, bv = col("BPOGX"), col("BPOGY"), col("BPOGV")
    reasons = []
    if _column(table.columns, "BKID") is not None:
        bk = col("BKID")
        reasons.append(("blink", np.isfinite(bk) & (bk != 0)))
    reasons.append(("invalid (BPOGV != 1)", ~(bv == 1)))
    sw, sh = screen_size
    source = f"gazepoint {path.name}" + (f" [{image}]" if image else "")
    meta = {"format": "gazepoint", "file": str(path), "time_column": time_col, "image": image,
            "position_columns": ["BPOGX", "BPOGY"]}
    rec = finish(path, t, bx, by, reasons, source, meta)
    check_units(path, rec.x, rec.y, rec.valid, "fraction", "BPOGX/BPOGY", screen_size)
    rec.x = rec.x * sw
    rec.y = rec.y * sh
    return rec
