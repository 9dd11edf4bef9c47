"""Eye-tracking recordings made elsewhere, read into screen-pixel samples (:class:`Recording`).

One reader per format, all returning the same :class:`Recording` (times in seconds, positions in screen
pixels, a validity mask and counted reasons for invalid samples); :func:`read_recording` picks one by name.
The mapping to image pixels is :mod:`models.screen`'s, fixation detection :mod:`models.gaze_events`'s.

=============  ==============================================================  ===========================
format         what                                                            reader
=============  ==============================================================  ===========================
gazepoint      Gazepoint CSV (EGD-CXR ``eye_gaze.csv``, Gazepoint Analysis)     :func:`read_gazepoint`
xdf            Lab Streaming Layer XDF (LabRecorder), needs ``pyxdf``           :func:`read_xdf`
tobii-csv      Tobii Pro Lab data export, TSV or CSV                            :func:`read_tobii`
=============  ==============================================================  ===========================
"""

from __future__ import annotations

from pathlib import Path

from models.recordings.base import UNITS, Recording, RecordingError, estimate_rate
from models.recordings.gazepoint import read_gazepoint
from models.recordings.tobii_csv import read_tobii
from models.recordings.xdf import read_xdf

FORMATS = ("gazepoint", "xdf", "tobii-csv")

__all__ = ["FORMATS", "UNITS", "Recording", "RecordingError", "estimate_rate", "read_gazepoint", "read_recording",
           "read_tobii", "read_xdf"]


def read_recording(path: str | Path, fmt: str, *, screen_size: tuple[int, int], media_id: str | None = None,
                   stream: str | None = None, stream_type: str = "Gaze", units: str | None = None) -> Recording:
    """Read ``path`` as ``fmt`` (one of :data:`FORMATS`); options a format does not use must be None.

    Raises:
        FileNotFoundError, RecordingError: as the readers; also for an option the format does not take.
    """
    if fmt not in FORMATS:
        raise RecordingError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if units is not None and units not in UNITS:
        raise RecordingError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
    unused = {"--media-id": (media_id, ("gazepoint",)), "--stream": (stream, ("xdf",)),
              "--units": (units, ("xdf", "tobii-csv"))}
    for flag, (value, formats) in unused.items():
        if value is not None and fmt not in formats:
            raise RecordingError(f"{flag} applies to {' and '.join(formats)} recordings, not {fmt}; leave it out")
    if fmt == "gazepoint":
        return read_gazepoint(path, screen_size=screen_size, media_id=media_id)
    if fmt == "xdf":
        return read_xdf(path, screen_size=screen_size, stream=stream, stream_type=stream_type, units=units)
    return read_tobii(path, screen_size=screen_size, units=units)
