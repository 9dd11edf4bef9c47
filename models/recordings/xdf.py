"""XDF (Lab Streaming Layer's recording format, LabRecorder's ``.xdf``/``.xdfz``) read with ``pyxdf``.

- stream: by name (``stream``), else by type (``stream_type``, default ``"Gaze"``); none or several
  matches is an error listing every stream's name and type.
- x/y channels: by label in the stream header's ``desc/channels/channel/label``, first matching pair in
  this order: ``x``/``y``, ``gaze_x``/``gaze_y``, ``gazex``/``gazey``, ``screen_x``/``screen_y``,
  ``gaze_point_x``/``gaze_point_y``, ``x_px``/``y_px`` (units from the channel's ``unit``, or ``units``),
  ``BPOGX``/``BPOGY`` then ``FPOGX``/``FPOGY`` (Gazepoint, fractions), ``norm_pos_x``/``norm_pos_y``
  (Pupil Labs, fractions with y *up*, so y is flipped). Labels are compared lower-case with spaces and
  hyphens as underscores. Without labels: the first two channels.
- units: ``px`` or ``fraction``, from the label (above), else the channels' ``unit`` (``pixels``, ``px`` /
  ``normalized``, ``fraction``, ``norm``), else ``units``; if none says, it is an error asking for
  ``--units``. A given ``units`` that contradicts the stream's own is an error too.
- validity: a channel labelled ``valid``, ``is_valid``, ``validity``, ``BPOGV`` or ``FPOGV`` (non-zero =
  valid), or ``confidence`` (Pupil Labs, >= 0.6 = valid); NaN positions are "no gaze position".
- time: ``time_stamps`` (seconds, LSL clock, after pyxdf's clock synchronisation and de-jittering) made
  relative to the stream's first sample.

``pyxdf`` is imported only here, so the rest of GazeLabel works without it. A damaged file (a recording cut
short) is read as far as pyxdf can; what it skipped is listed in ``meta["warnings"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.recordings.base import UNITS, Recording, RecordingError, check_file, check_units, finish

# (x label, y label, units or None = from the channel's unit / --units, flip y)
PAIRS: tuple[tuple[str, str, str | None, bool], ...] = (
    ("x", "y", None, False),
    ("gaze_x", "gaze_y", None, False),
    ("gazex", "gazey", None, False),
    ("screen_x", "screen_y", None, False),
    ("gaze_point_x", "gaze_point_y", None, False),
    ("x_px", "y_px", "px", False),
    ("bpogx", "bpogy", "fraction", False),
    ("fpogx", "fpogy", "fraction", False),
    ("norm_pos_x", "norm_pos_y", "fraction", True),
)
VALID_LABELS = ("valid", "is_valid", "validity", "bpogv", "fpogv")
CONFIDENCE_LABEL = "confidence"
CONFIDENCE_MIN = 0.6
UNIT_WORDS = {"px": "px", "pixel": "px", "pixels": "px", "screen_px": "px", "fraction": "fraction",
              "fractions": "fraction", "normalized": "fraction", "normalised": "fraction", "norm": "fraction",
              "normalized_screen": "fraction"}


def _norm(label: Any) -> str:
    return str(label or "").strip().lower().replace(" ", "_").replace("-", "_")


def _first(d: Any, key: str) -> Any:
    """pyxdf's XML dicts hold each child as a one-element list; None when absent."""
    if not isinstance(d, dict):
        return None
    value = d.get(key)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _channels(info: dict) -> list[dict[str, str]]:
    """``[{"label", "unit", "type"}]`` per channel from ``desc/channels/channel`` (empty when absent)."""
    desc = _first(info, "desc")
    channels = _first(desc, "channels")
    if not isinstance(channels, dict):
        return []
    out = []
    for ch in channels.get("channel") or []:
        out.append({k: _norm(_first(ch, k)) for k in ("label", "unit", "type")})
    return out


def _float(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if np.isfinite(v) else 0.0


def _streams_listed(streams: list[dict]) -> str:
    return ", ".join(f"{_first(s['info'], 'name')!r} (type {_first(s['info'], 'type')!r})" for s in streams) or "none"


def _choose(path: Path, streams: list[dict], name: str | None, stream_type: str) -> dict:
    if name is not None:
        matches = [s for s in streams if _first(s["info"], "name") == name]
        if not matches:
            matches = [s for s in streams if str(_first(s["info"], "name") or "").lower() == name.lower()]
        what = f"named {name!r}"
        hint = "give one of their names with --stream"
    else:
        matches = [s for s in streams if str(_first(s["info"], "type") or "").lower() == stream_type.lower()]
        what = f"of type {stream_type!r}"
        hint = "choose one with --stream NAME"
    if len(matches) != 1:
        how = f"{len(matches)} streams" if matches else "no stream"
        raise RecordingError(f"{path}: {how} {what} (streams: {_streams_listed(streams)}); {hint}")
    return matches[0]


def _columns(path: Path, stream_name: str, channels: list[dict[str, str]], n: int, units: str | None
             ) -> tuple[int, int, str, bool, str]:
    """Indices of x and y, their units, whether y is flipped, and a description of how they were found."""
    labels = [c["label"] for c in channels] if len(channels) == n else []
    chosen = None
    for xl, yl, pair_units, flip in PAIRS:
        if xl in labels and yl in labels:
            chosen = (labels.index(xl), labels.index(yl), pair_units, flip, f"channels labelled {xl}/{yl}")
            break
    if chosen is None:
        chosen = (0, 1, None, False, "the first two channels (no x/y labels)")
    ix, iy, found, flip, how = chosen
    if found is None and channels and len(channels) == n:
        words = {UNIT_WORDS.get(channels[i]["unit"]) for i in (ix, iy)} - {None}
        if len(words) == 1:
            found = words.pop()
    if found is not None and units is not None and units != found:
        raise RecordingError(f"{path}: stream {stream_name!r}: {how} are in {found}, not {units}; leave out --units "
                             f"or give --units {found}")
    kind = found or units
    if kind is None:
        raise RecordingError(f"{path}: stream {stream_name!r}: cannot tell whether {how} are pixels or fractions "
                             f"of the screen; pass --units px or --units fraction")
    if kind not in UNITS:
        raise RecordingError(f"units must be one of {', '.join(UNITS)}, got {kind!r}")
    return ix, iy, kind, flip, how


def read_xdf(path: str | Path, *, screen_size: tuple[int, int], stream: str | None = None,
             stream_type: str = "Gaze", units: str | None = None) -> Recording:
    """Read the gaze stream of an XDF file into screen-pixel samples.

    Args:
        path: the ``.xdf`` (or gzip-ed ``.xdfz``) file.
        screen_size: ``(width, height)`` of the screen in pixels (fractions are scaled by it).
        stream: the stream's name; default: the one stream of ``stream_type``.
        stream_type: the LSL content type to look for when no name is given.
        units: "px" or "fraction" when the stream does not say.

    Raises:
        FileNotFoundError: no such file.
        RecordingError: not an XDF file, pyxdf missing, no/several matching streams, a string stream, fewer
            than two channels, no samples, unknown or contradicting units.
    """
    path = check_file(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"XDF:" and not (magic[:2] == b"\x1f\x8b" and path.suffix.lower() in (".xdfz", ".gz")):
        raise RecordingError(f"{path}: not an XDF file (it does not start with 'XDF:'); record with LabRecorder "
                             f"or give the right --format")
    try:
        import pyxdf
    except ImportError:
        raise RecordingError(f"{path}: reading XDF needs pyxdf, which is not installed: pip install pyxdf") from None
    import logging

    # pyxdf logs damaged chunks (and skips them) instead of raising: collect those lines as warnings rather
    # than let them reach the terminal unasked.
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("pyxdf.pyxdf")
    saved = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        streams, _header = pyxdf.load_xdf(str(path))
    except Exception as e:  # pyxdf raises bare Exceptions, struct and XML errors on damaged files
        raise RecordingError(f"{path}: not a readable XDF file ({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
    finally:
        logger.removeHandler(handler)
        logger.propagate, level = saved
        logger.setLevel(level)
    warnings = [f"{path}: pyxdf: {' '.join(r.getMessage().split())[:200]}" for r in records
                if r.levelno >= logging.ERROR]
    if not streams:
        raise RecordingError(f"{path}: holds no streams")
    s = _choose(path, streams, stream, stream_type)
    info = s["info"]
    name = str(_first(info, "name"))
    fmt = str(_first(info, "channel_format"))
    if fmt == "string":
        raise RecordingError(f"{path}: stream {name!r} holds strings (a marker stream?), not gaze numbers; "
                             f"choose the gaze stream with --stream (streams: {_streams_listed(streams)})")
    series = np.asarray(s["time_series"], dtype=np.float64)
    stamps = np.asarray(s["time_stamps"], dtype=np.float64)
    if series.ndim != 2 or len(stamps) == 0 or series.shape[0] == 0:
        damaged = f" (the file looks damaged or cut short; {warnings[0].split(': ', 1)[1]})" if warnings else ""
        raise RecordingError(f"{path}: stream {name!r} has no samples{damaged}")
    n = series.shape[1]
    if n < 2:
        raise RecordingError(f"{path}: stream {name!r} has {n} channel; gaze needs x and y")
    channels = _channels(info)
    ix, iy, kind, flip, how = _columns(path, name, channels, n, units)
    x, y = series[:, ix].copy(), series[:, iy].copy()
    if flip:
        y = 1.0 - y
    reasons = []
    labels = [c["label"] for c in channels] if len(channels) == n else []
    valid_ch = next((labels.index(v) for v in VALID_LABELS if v in labels), None)
    if valid_ch is not None:
        v = series[:, valid_ch]
        reasons.append((f"invalid ({labels[valid_ch]} = 0)", ~(np.isfinite(v) & (v != 0))))
    elif CONFIDENCE_LABEL in labels:
        c = series[:, labels.index(CONFIDENCE_LABEL)]
        reasons.append((f"low confidence (< {CONFIDENCE_MIN})", ~(c >= CONFIDENCE_MIN)))
    t = stamps - stamps[np.isfinite(stamps)].min() if np.isfinite(stamps).any() else stamps
    meta = {"format": "xdf", "file": str(path), "stream": name, "stream_type": str(_first(info, "type")),
            "channels": how, "units": kind, "y_flipped": flip, "nominal_srate": _float(_first(info, "nominal_srate")), "warnings": warnings}
    rec = finish(path, t, x, y, reasons, f"xdf {path.name} stream {name!r}", meta)
    check_units(path, rec.x, rec.y, rec.valid, kind, f"stream {name!r} {how}", screen_size)
    if kind == "fraction":
        rec.x = rec.x * screen_size[0]
        rec.y = rec.y * screen_size[1]
    return rec
