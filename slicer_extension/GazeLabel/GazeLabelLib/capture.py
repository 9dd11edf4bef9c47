"""Live gaze capture: the annotator's own eyes, recorded in original image pixels while they annotate.

Why this is more than "read the tracker": the tracker reports where on the *screen* the reader looked,
while the label stores gaze in *original image pixels*, and between the two sits a view the reader keeps
changing (pan, zoom, window/level, layout). A sample taken just before a zoom and delivered just after it
must be mapped through the view that was on screen when the eye was there, not the one on screen when the
sample arrived. So the pieces are:

- a **source** (:class:`GazeSource`: :class:`LslSource`, :class:`GazepointSource`, :class:`TobiiSource`,
  :class:`MouseSource`): ``open()``, ``poll()`` -> ``[Sample(t, x, y, valid)]`` (``t`` seconds on the
  source's clock, ``x, y`` screen pixels), ``close()``, ``clock()`` (now, on that clock), ``connected``,
  ``name``. Sources never block the Qt thread in ``poll()`` and never raise on a lost connection: they set
  ``connected = False`` and keep what arrived.
- a **view timeline** (:class:`ViewTimeline`): each view state ``(t, ViewGeometry, extra)`` stamped on the
  source's clock when the view changes; a sample's geometry is the one in force at its time.
  :func:`view_geometry_from_slice` builds the geometry from a Slicer slice view.
- a **recorder** (:class:`GazeRecorder`): ``start()``, ``pump()`` from a Qt timer (pull, map, count drops,
  reconnect), ``stop()`` -> a :class:`Reading` (fixations ready for a Case's ``readers[<annotator>]``, the
  raw samples, the view states, drop counts, rate, latency) that saves as a small gzip JSON sidecar.

Pixel convention (screen and image): continuous, pixel ``i`` covers ``[i, i + 1)``, y downwards, as in
:mod:`.screen` and the Case schema. Screen pixels are the tracked monitor's *physical* pixels with the
origin at its top-left corner (a tracker's fraction ``f`` of the screen is ``f * screen_px``).

Needs only numpy at import time; pylsl, tobii-research and pymovements are imported when used.
"""

from __future__ import annotations

import collections
import gzip
import io
import json
import math
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .fixation_detection import detect_fixations_array
from .screen import ViewGeometry, px_per_degree

SIDECAR_SCHEMA = "gazelabel.gaze_capture/1"
# The Case schema's tolerance for points on the image's edge (models/schema.py EDGE_TOLERANCE_PX).
EDGE_TOLERANCE_PX = 0.5
# Sample status codes (Reading.samples["status"]): why a sample is, or is not, in the fixations.
OK, INVALID, OFF_SCREEN, OFF_IMAGE, NO_VIEW = 0, 1, 2, 3, 4
STATUS_NAMES = {INVALID: "invalid", OFF_SCREEN: "off_screen", OFF_IMAGE: "off_image", NO_VIEW: "no_view"}
# A decompressed sidecar larger than this is refused (a 1 kHz hour is ~150 MB of JSON).
MAX_SIDECAR_BYTES = 512 * 1024 * 1024


class SourceError(RuntimeError):
    """A gaze source cannot be opened; the message names the source and says what to start or install."""


class ViewError(ValueError):
    """A view cannot be turned into a :class:`ViewGeometry` (rotated, flipped, lightbox, mismatched sizes)."""


class Sample(NamedTuple):
    """One raw gaze sample: ``t`` [s, the source's clock], ``x, y`` [screen px], ``valid`` (tracker says so)."""

    t: float
    x: float
    y: float
    valid: bool


# ============================================================================================== sources
class GazeSource:
    """What a gaze source provides (subclass it; the recorder uses nothing else).

    Attributes:
        name: human-readable, shown in the live indicator ("LSL Gaze 'Tobii'").
        connected: True while samples can arrive; ``poll`` sets it False on a lost connection.
        screen_px: ``(W, H)`` physical pixels of the tracked screen, for sources that report fractions of
            it; the recorder fills it in when None.
        nominal_rate_hz: the tracker's advertised rate, or None (the recorder then measures it).
    """

    name = "gaze source"
    connected = False
    screen_px: tuple[int, int] | None = None
    nominal_rate_hz: float | None = None

    def open(self) -> None:
        """Connect (may block briefly; call it from a button, not a timer). Raises SourceError."""
        raise NotImplementedError

    def poll(self) -> list[Sample]:
        """Samples that arrived since the last call, oldest first. Never blocks; never raises on a lost
        connection (sets ``connected = False`` and returns what came before it)."""
        raise NotImplementedError

    def close(self) -> None:
        """Disconnect and free the connection; ``open()`` may be called again."""
        self.connected = False

    def clock(self) -> float | None:
        """Now on the samples' clock (seconds), or None while it is not known (no sample yet)."""
        return time.monotonic()

    def reconnect(self) -> bool:
        """One quick attempt to reconnect after a loss (the recorder calls it now and then). True on success."""
        try:
            self.open()
        except SourceError:
            return False
        return self.connected

    def _to_pixels(self, fx: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.screen_px is None:
            raise SourceError(f"{self.name}: reports fractions of the screen but screen_px is not set; pass "
                              f"screen_px=(width, height) in physical pixels (or give the recorder screen_px)")
        return np.asarray(fx, np.float64) * self.screen_px[0], np.asarray(fy, np.float64) * self.screen_px[1]


def _samples(t, x, y, valid) -> list[Sample]:
    return [Sample(float(a), float(b), float(c), bool(d)) for a, b, c, d in zip(t, x, y, valid)]


# ---------------------------------------------------------------------------------------------- LSL
# Channel labels that name gaze x / y (lower case), most specific first; a label ending in these also counts.
_X_LABELS = ("bpogx", "fpogx", "gaze_x", "gazex", "norm_pos_x", "screen_x", "pos_x", "x")
_Y_LABELS = ("bpogy", "fpogy", "gaze_y", "gazey", "norm_pos_y", "screen_y", "pos_y", "y")
_VALID_LABELS = ("bpogv", "fpogv", "valid", "gaze_valid")
_FRACTION_LABEL_HINTS = ("bpog", "fpog", "norm")
_FRACTION_UNIT_HINTS = ("norm", "fraction", "relative", "ratio")
_PIXEL_UNIT_HINTS = ("pix", "px")


def _import_pylsl():
    try:
        import pylsl
    except (ImportError, RuntimeError, OSError) as error:  # RuntimeError/OSError: liblsl failed to load
        raise ImportError(f"LslSource needs pylsl (with its liblsl): pip install pylsl==1.18.6 ({error})") from error
    return pylsl


def _find_channel(labels: list[str], wanted: tuple[str, ...]) -> int | None:
    low = [str(label or "").strip().lower() for label in labels]
    for name in wanted:
        if name in low:
            return low.index(name)
    for name in wanted:
        if len(name) > 1:
            for i, label in enumerate(low):
                if label.endswith(name):
                    return i
    return None


class LslSource(GazeSource):
    """Gaze from a Lab Streaming Layer stream (Tobii, Pupil, SR, Gazepoint and others publish one).

    Args:
        stream_name: resolve the stream with this name; None: by ``stream_type``.
        stream_type: the LSL type to resolve when no name is given ("Gaze", the LSL convention).
        units: "pixels", "fractions" (of the screen, origin top-left) or "auto": the channels' unit
            metadata, else label hints (BPOG*, norm_pos_*: fractions), else the data (all of the first valid
            samples within [-0.5, 1.5]: fractions).
        screen_px: the tracked screen in physical pixels, needed for fractions (the recorder fills it in).
        x_channel, y_channel: channel indices to use; default: found by label (x, gaze_x, norm_pos_x, BPOGX ...),
            else the first two channels.
        y_up: fractions whose y grows upwards (Pupil's ``norm_pos``); "auto": True for norm_pos labels.
        open_timeout_s: how long ``open()`` waits for the stream to resolve and to accept the subscription.

    Timestamps are the stream's LSL timestamps plus ``inlet.time_correction()``: the samples' clock is
    ``pylsl.local_clock()`` of this machine, whichever machine the tracker runs on. The first correction
    estimate takes liblsl about half a second; ``poll`` holds the samples until it is known (so the first
    ones of a reading arrive late, none is lost and the Qt thread never waits for it). Non-finite x or y, or
    a validity channel (BPOGV, valid) of 0, make a sample invalid. A lost stream (its outlet closed) is
    noticed by ``poll``; :meth:`reconnect` then picks up a stream of the same name/type that a background
    resolver has seen (not the lost one), without blocking.
    """

    def __init__(self, stream_name: str | None = None, stream_type: str = "Gaze", *, units: str = "auto",
                 screen_px: tuple[int, int] | None = None, x_channel: int | None = None,
                 y_channel: int | None = None, y_up: bool | str = "auto", open_timeout_s: float = 2.0,
                 max_chunk: int = 4096):
        if units not in ("auto", "pixels", "fractions"):
            raise ValueError(f"units: expected 'auto', 'pixels' or 'fractions', got {units!r}")
        if not stream_name and not stream_type:
            raise ValueError("stream_name or stream_type: give one (e.g. stream_type='Gaze')")
        self.stream_name, self.stream_type = stream_name, stream_type
        self.units_option, self.units = units, None if units == "auto" else units
        self.screen_px = None if screen_px is None else (int(screen_px[0]), int(screen_px[1]))
        self.x_channel, self.y_channel, self.y_up_option = x_channel, y_channel, y_up
        self.open_timeout_s, self.max_chunk = float(open_timeout_s), int(max_chunk)
        self.name = f"LSL {'name ' + repr(stream_name) if stream_name else 'type ' + repr(stream_type)}"
        self.connected = False
        self._pylsl = None
        self._inlet = None
        self._resolver = None
        self._uid = None
        self._lost: dict[str, float] = {}  # uid -> when it was lost
        self._mapping = None  # (channel_count, ix, iy, ivalid, units_hint, y_up)
        self._correction = None  # seconds to add to the stream's timestamps; None: not known yet
        self._pending: list[np.ndarray] = []  # (n, 4) t_raw, x, y, valid held until correction and units are known

    # -------------------------------------------------------------- connection
    def _prop(self) -> tuple[str, str]:
        return ("name", self.stream_name) if self.stream_name else ("type", self.stream_type)

    def open(self) -> None:
        pylsl = self._pylsl = _import_pylsl()
        prop, value = self._prop()
        infos = pylsl.resolve_byprop(prop, value, minimum=1, timeout=self.open_timeout_s)
        infos = [i for i in infos if i.uid() not in self._lost] or infos
        if not infos:
            raise SourceError(f"{self.name}: no LSL stream with {prop} {value!r} found within {self.open_timeout_s:g} s; "
                              f"start the tracker's LSL streamer, or pass stream_name=/stream_type= as "
                              f"pylsl.resolve_streams() lists them")
        if self._resolver is None:
            self._resolver = pylsl.ContinuousResolver(prop=prop, value=value, forget_after=3.0)
        self._connect(max(infos, key=lambda i: i.created_at()), timeout=self.open_timeout_s)

    def _connect(self, info, timeout: float) -> None:
        pylsl = self._pylsl
        inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False)
        if self._mapping is None or self._mapping[0] != info.channel_count():
            try:
                full = inlet.info(timeout=max(timeout, 0.2))
            except Exception as error:  # noqa: BLE001 - pylsl raises its own TimeoutError / LostError
                raise SourceError(f"{self.name}: the stream {info.name()!r} did not send its description ({error})") from error
            self._mapping = self._channels(full)
        self._inlet, self._uid = inlet, info.uid()
        self.nominal_rate_hz = float(info.nominal_srate()) or None
        self.name = f"LSL {info.type()} {info.name()!r}"
        self._correction = None
        if timeout > 0:  # open(): subscribe now, so no sample pushed after open() returns is missed
            try:
                inlet.open_stream(timeout=timeout)
            except Exception as error:  # noqa: BLE001 - pylsl raises its own TimeoutError / LostError
                raise SourceError(f"{self.name}: could not subscribe to {info.name()!r} within {timeout:g} s ({error})") from error
        try:  # the first estimate takes ~0.5 s: not waited for here (the Qt thread), poll() holds samples till then
            self._correction = float(inlet.time_correction(timeout=0.0))
        except Exception:  # noqa: BLE001 - pylsl's TimeoutError: not known yet
            self._correction = None
        self.connected = True

    def _channels(self, info) -> tuple:
        count = info.channel_count()
        if count < 2:
            raise SourceError(f"{self.name}: stream {info.name()!r} has {count} channel(s); gaze needs x and y")
        labels = info.get_channel_labels() or [None] * count
        units = info.get_channel_units() or [None] * count
        ix = self.x_channel if self.x_channel is not None else _find_channel(labels, _X_LABELS)
        iy = self.y_channel if self.y_channel is not None else _find_channel(labels, _Y_LABELS)
        if ix is None or iy is None or ix == iy:
            ix, iy = 0, 1
        for name, index in (("x_channel", ix), ("y_channel", iy)):
            if not 0 <= index < count:
                raise SourceError(f"{self.name}: {name}={index} but the stream has {count} channels (0-{count - 1})")
        ivalid = _find_channel(labels, _VALID_LABELS)
        label = str(labels[ix] or "").lower()
        unit = str(units[ix] or "").lower()
        hint = None
        if any(h in unit for h in _FRACTION_UNIT_HINTS):
            hint = "fractions"
        elif any(h in unit for h in _PIXEL_UNIT_HINTS):
            hint = "pixels"
        elif any(h in label for h in _FRACTION_LABEL_HINTS):
            hint = "fractions"
        y_up = ("norm_pos" in label) if self.y_up_option == "auto" else bool(self.y_up_option)
        return count, ix, iy, ivalid, hint, y_up

    def reconnect(self) -> bool:
        """Connect to a stream the background resolver has seen, other than the ones lost; never blocks long."""
        if self.connected:
            return True
        if self._resolver is None:
            return super().reconnect()
        now = time.monotonic()
        self._lost = {uid: when for uid, when in self._lost.items() if now - when < 10.0}
        infos = [i for i in self._resolver.results() if i.uid() not in self._lost]
        if not infos:
            return False
        try:
            self._connect(max(infos, key=lambda i: i.created_at()), timeout=0.0)
        except SourceError:
            return False
        return True

    def close(self) -> None:
        self._inlet = None
        self._resolver = None
        self._pending = []
        self.connected = False

    def clock(self) -> float:
        return float((self._pylsl or _import_pylsl()).local_clock())

    # -------------------------------------------------------------- data
    def poll(self) -> list[Sample]:
        if self._inlet is None:
            return self._release()
        pylsl = self._pylsl
        chunks = []
        try:
            while True:
                data, stamps = self._inlet.pull_chunk(timeout=0.0, max_samples=self.max_chunk, as_numpy=True)
                if not len(stamps):
                    break
                chunks.append((np.asarray(data, np.float64).reshape(len(stamps), -1), np.asarray(stamps, np.float64)))
                if len(stamps) < self.max_chunk:
                    break
            if self._correction is None:
                try:
                    self._correction = float(self._inlet.time_correction(timeout=0.0))
                except pylsl.util.TimeoutError:
                    pass
        except pylsl.util.LostError:
            self._lose()
        for data, stamps in chunks:
            _, ix, iy, ivalid, _, _ = self._mapping
            valid = np.isfinite(data[:, ix]) & np.isfinite(data[:, iy])
            if ivalid is not None:
                valid &= data[:, ivalid] > 0
            self._pending.append(np.column_stack([stamps, data[:, ix], data[:, iy], valid]))
        return self._release()

    def _lose(self) -> None:
        if self._uid is not None:
            self._lost[self._uid] = time.monotonic()
        self._inlet, self.connected = None, False

    def _release(self) -> list[Sample]:
        """Pending samples, once the clock correction and units are known (then always at once)."""
        if not self._pending:
            return []
        if self._correction is None and self.connected:
            return []
        rows = np.concatenate(self._pending)
        if self.units is None:
            hint = self._mapping[4]
            if hint is None:
                good = rows[rows[:, 3] > 0]
                if len(good) < 10 and len(rows) < 1000 and self.connected:
                    return []  # too few valid samples to tell; decided by the data once there are
                hint = "fractions" if len(good) and np.all(np.abs(good[:, 1:3] - 0.5) <= 1.0) else "pixels"
            self.units = hint
        self._pending = []
        t = rows[:, 0] + (self._correction or 0.0)
        x, y = rows[:, 1], rows[:, 2]
        if self.units == "fractions":
            if self._mapping[5]:
                y = 1.0 - y
            x, y = self._to_pixels(x, y)
        return _samples(t, x, y, rows[:, 3] > 0)


# ---------------------------------------------------------------------------------------------- Gazepoint
# One XML attribute: NAME="value" (no entities, nesting or DTDs: regex, not an XML parser, on network input).
_ATTRIBUTE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="([^"<>]*)"')
_REC = re.compile(r"^<REC\b((?:\s+[A-Za-z_][A-Za-z0-9_]*=\"[^\"<>]*\")*)\s*/>$")
GAZEPOINT_COMMANDS = ('<SET ID="ENABLE_SEND_POG_BEST" STATE="1" />', '<SET ID="ENABLE_SEND_TIME" STATE="1" />',
                      '<SET ID="ENABLE_SEND_DATA" STATE="1" />')


def parse_gazepoint_record(line: str | bytes) -> dict[str, str] | None:
    """The attributes of one ``<REC ... />`` line of the Open Gaze API, or None for any other line.

    A strict pattern over the attributes (``NAME="value"`` only): no XML parser touches network input, so
    entity expansion and the like cannot happen.
    """
    if isinstance(line, bytes):
        line = line.decode("ascii", errors="replace")
    m = _REC.match(line.strip())
    if m is None:
        return None
    return dict(_ATTRIBUTE.findall(m.group(1)))


class GazepointSource(GazeSource):
    """Gaze from Gazepoint Control's Open Gaze API server (TCP, default 127.0.0.1:4242).

    On connect it sends ``ENABLE_SEND_POG_BEST``, ``ENABLE_SEND_TIME`` and ``ENABLE_SEND_DATA`` (``\\r\\n``
    terminated) and then reads ``<REC TIME="s" BPOGX="f" BPOGY="f" BPOGV="1" />`` lines from a non-blocking
    socket through a line buffer. ``BPOG*`` is the best point of gaze in fractions of the screen (times
    ``screen_px`` = screen pixels); ``BPOGV == 1`` means valid.

    The samples' clock is the server's ``TIME`` (seconds since Gazepoint Control started or calibrated),
    so replayed or bursty data keeps its own timing. ``clock()`` estimates "TIME now" from arrivals (the
    least-delayed sample so far), which makes latencies relative to that sample. If ``TIME`` jumps backwards
    (a recalibration), later samples are shifted to continue after the last one (``clock_resets`` counts it).

    Args:
        host, port: the server (Gazepoint Control: Open Gaze API, port 4242).
        screen_px: the tracked screen in physical pixels (the recorder fills it in).
        connect_timeout_s: for ``open()``; reconnects use at most ``reconnect_timeout_s``.
    """

    MAX_LINE = 64 * 1024  # a line longer than this without a newline is not Open Gaze API: dropped

    def __init__(self, host: str = "127.0.0.1", port: int = 4242, *, screen_px: tuple[int, int] | None = None,
                 connect_timeout_s: float = 2.0, reconnect_timeout_s: float = 0.2):
        self.host, self.port = str(host), int(port)
        self.screen_px = None if screen_px is None else (int(screen_px[0]), int(screen_px[1]))
        self.connect_timeout_s, self.reconnect_timeout_s = float(connect_timeout_s), float(reconnect_timeout_s)
        self.name = f"Gazepoint {self.host}:{self.port}"
        self.connected = False
        self.malformed = 0  # REC lines without a usable TIME / BPOGX / BPOGY, and overlong lines
        self.clock_resets = 0
        self._sock = None
        self._buffer = b""
        self._offset = None  # max(TIME - arrival) over samples: clock() = monotonic() + offset
        self._base = 0.0  # added to TIME after a backward jump
        self._last_raw = None
        self._last_t = None
        self._steps: collections.deque = collections.deque(maxlen=64)

    def open(self, timeout: float | None = None) -> None:
        timeout = self.connect_timeout_s if timeout is None else timeout
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
            sock.sendall("".join(c + "\r\n" for c in GAZEPOINT_COMMANDS).encode("ascii"))
            sock.setblocking(False)
        except OSError as error:
            raise SourceError(f"{self.name}: cannot connect ({error}); start Gazepoint Control (its Open Gaze API "
                              f"server listens on port 4242) or pass host=/port=") from error
        self._sock, self._buffer, self.connected = sock, b"", True

    def reconnect(self) -> bool:
        try:
            self.open(timeout=self.reconnect_timeout_s)
        except SourceError:
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock, self.connected = None, False

    def clock(self) -> float | None:
        return None if self._offset is None else time.monotonic() + self._offset

    def poll(self) -> list[Sample]:
        if self._sock is None:
            return []
        data = []
        while True:
            try:
                chunk = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                break
            if not chunk:  # the server closed the connection
                self.close()
                break
            data.append(chunk)
        arrival = time.monotonic()
        self._buffer += b"".join(data)
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > self.MAX_LINE:
            self._buffer, self.malformed = b"", self.malformed + 1
        out = []
        for line in lines:
            rec = parse_gazepoint_record(line)
            if rec is None:
                continue  # ACK, NACK, CAL and the like
            sample = self._sample(rec)
            if sample is None:
                self.malformed += 1
                continue
            out.append(sample)
            offset = sample.t - arrival
            self._offset = offset if self._offset is None else max(self._offset, offset)
        return out

    def _sample(self, rec: dict[str, str]) -> Sample | None:
        try:
            raw = float(rec["TIME"])
            fx, fy = float(rec.get("BPOGX", "nan")), float(rec.get("BPOGY", "nan"))
        except (KeyError, ValueError):
            return None
        if not math.isfinite(raw):
            return None
        if self._last_raw is not None and raw < self._last_raw - 0.5:  # TIME restarted (recalibration)
            step = float(np.median(self._steps)) if self._steps else 0.0
            self._base = self._last_t + step - raw
            self.clock_resets += 1
        elif self._last_raw is not None and raw > self._last_raw:
            self._steps.append(raw - self._last_raw)
        self._last_raw = raw
        t = raw + self._base
        self._last_t = t
        x, y = self._to_pixels(fx, fy)
        valid = rec.get("BPOGV", "0").strip() == "1" and math.isfinite(float(x)) and math.isfinite(float(y))
        return Sample(t, float(x), float(y), valid)


# ---------------------------------------------------------------------------------------------- Tobii
class TobiiSource(GazeSource):
    """Gaze from a Tobii Pro tracker through the Tobii Pro SDK (``pip install tobii-research``; optional).

    Subscribes to ``EYETRACKER_GAZE_DATA`` as dictionaries; the SDK calls back on its own thread, so
    samples go through a thread-safe deque. Position: ``*_gaze_point_on_display_area`` (normalised
    display-area coordinates, origin top-left) averaged over the valid eyes, times ``screen_px`` (the
    display area must be the tracked screen, as set in Tobii Pro Eye Tracker Manager). Time:
    ``system_time_stamp`` (microseconds on the SDK's system clock, :func:`tobii_research.get_system_time_stamp`).
    Connection lost / restored notifications set ``connected``; the SDK reconnects by itself.

    Args:
        address: the tracker's address (``tobii-prp://...``); None: the first one found.
    """

    def __init__(self, address: str | None = None, *, screen_px: tuple[int, int] | None = None):
        self.address = address
        self.screen_px = None if screen_px is None else (int(screen_px[0]), int(screen_px[1]))
        self.name = "Tobii Pro"
        self.connected = False
        self._tr = None
        self._tracker = None
        self._queue: collections.deque = collections.deque(maxlen=1_000_000)

    def open(self) -> None:
        try:
            import tobii_research as tr
        except ImportError as error:
            raise SourceError(f"TobiiSource needs the Tobii Pro SDK: pip install tobii-research ({error})") from error
        self._tr = tr
        trackers = [tr.EyeTracker(self.address)] if self.address else list(tr.find_all_eyetrackers())
        if not trackers:
            raise SourceError("Tobii Pro: no eye tracker found; connect it and check Tobii Pro Eye Tracker Manager, "
                              "or pass address='tobii-prp://...'")
        self._tracker = trackers[0]
        self.name = f"Tobii {self._tracker.model} {self._tracker.serial_number}"
        try:
            self.nominal_rate_hz = float(self._tracker.get_gaze_output_frequency())
        except Exception:  # noqa: BLE001 - informative only
            self.nominal_rate_hz = None
        self._tracker.subscribe_to(tr.EYETRACKER_GAZE_DATA, self._on_gaze, as_dictionary=True)
        self._tracker.subscribe_to(tr.EYETRACKER_NOTIFICATION_CONNECTION_LOST, self._on_lost, as_dictionary=True)
        self._tracker.subscribe_to(tr.EYETRACKER_NOTIFICATION_CONNECTION_RESTORED, self._on_restored, as_dictionary=True)
        self.connected = True

    def _on_gaze(self, data: dict) -> None:  # SDK thread
        self._queue.append(data)

    def _on_lost(self, _data: dict) -> None:  # SDK thread
        self.connected = False

    def _on_restored(self, _data: dict) -> None:  # SDK thread
        self.connected = True

    def reconnect(self) -> bool:
        return self.connected and self._tracker is not None

    def poll(self) -> list[Sample]:
        out = []
        while self._queue:
            d = self._queue.popleft()
            points = [d[f"{eye}_gaze_point_on_display_area"] for eye in ("left", "right")
                      if d.get(f"{eye}_gaze_point_validity") == 1]
            t = float(d["system_time_stamp"]) / 1e6
            if points:
                fx, fy = float(np.mean([p[0] for p in points])), float(np.mean([p[1] for p in points]))
                x, y = self._to_pixels(fx, fy)
                out.append(Sample(t, float(x), float(y), bool(np.isfinite([x, y]).all())))
            else:
                out.append(Sample(t, math.nan, math.nan, False))
        return out

    def close(self) -> None:
        if self._tracker is not None and self._tr is not None:
            tr = self._tr
            for kind, callback in ((tr.EYETRACKER_GAZE_DATA, self._on_gaze),
                                   (tr.EYETRACKER_NOTIFICATION_CONNECTION_LOST, self._on_lost),
                                   (tr.EYETRACKER_NOTIFICATION_CONNECTION_RESTORED, self._on_restored)):
                try:
                    self._tracker.unsubscribe_from(kind, callback)
                except Exception:  # noqa: BLE001 - closing anyway
                    pass
        self._tracker, self.connected = None, False

    def clock(self) -> float | None:
        return None if self._tr is None else float(self._tr.get_system_time_stamp()) / 1e6


# ---------------------------------------------------------------------------------------------- mouse
class MouseSource(GazeSource):
    """The mouse pointer as a stand-in for an eye tracker (demos, and trying the loop without one).

    Args:
        position: returns the pointer in screen pixels ``(x, y)``, or None when it is unknown (counted
            invalid). In Slicer: ``lambda: (qt.QCursor.pos().x() * dpr, qt.QCursor.pos().y() * dpr)``.
        rate_hz: at most this many samples per second; a pointer is only known "now", so one sample per
            ``poll`` at most and the real rate is ``min(rate_hz, pump rate)``.
        clock: the samples' clock (default ``time.monotonic``).
    """

    def __init__(self, position: Callable[[], tuple[float, float] | None], rate_hz: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        if not rate_hz or rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        self.position, self.rate_hz, self._clock = position, float(rate_hz), clock
        self.nominal_rate_hz = float(rate_hz)
        self.name = "Mouse (stand-in)"
        self.connected = False
        self._last = -math.inf

    def open(self) -> None:
        self.connected = True

    def clock(self) -> float:
        return float(self._clock())

    def poll(self) -> list[Sample]:
        if not self.connected:
            return []
        now = self.clock()
        if now - self._last < 1.0 / self.rate_hz * 0.999:
            return []
        self._last = now
        p = self.position()
        if p is None:
            return [Sample(now, math.nan, math.nan, False)]
        x, y = float(p[0]), float(p[1])
        return [Sample(now, x, y, math.isfinite(x) and math.isfinite(y))]


# ============================================================================================== views
def _matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def view_geometry_from_slice(slice_node, volume_node, view_rect_on_screen: Sequence[float],
                             device_pixel_ratio: float = 1.0) -> ViewGeometry:
    """The :class:`ViewGeometry` of a 2D image shown in a Slicer slice view, now.

    Composes the slice node's XYToRAS (view pixel -> RAS mm) with the volume's RASToIJK (RAS -> voxel;
    2D image: IJK ``i`` = column, ``j`` = row). VTK's view pixel ``(xv, yv)`` counts from the view's
    *bottom*-left and the resliced image's pixel index ``xv`` is drawn in view pixel ``xv`` (covering
    ``[xv, xv + 1)``), so the continuous screen point ``(sx, sy)`` (top-down) is
    ``xv = sx - X0 - 0.5``, ``yv = (H - 0.5) - (sy - Y0)``; a voxel index ``i`` is image coordinate ``i + 0.5``.

    Args:
        slice_node: ``vtkMRMLSliceNode`` of the view (its dimensions are the view's size in device pixels).
        volume_node: the image's ``vtkMRMLScalarVolumeNode``.
        view_rect_on_screen: ``(x0, y0, x1, y1)`` of the slice *view* widget (the VTK render area, not the
            slice controller bar above it) in Qt logical pixels relative to the tracked screen's top-left:
            ``view.mapToGlobal(qt.QPoint(0, 0)) - view.screen().geometry().topLeft()`` and its width/height.
        device_pixel_ratio: physical per logical pixel (``view.devicePixelRatioF()``); screen pixels here
            are physical, as the tracker's are.

    Returns:
        A ViewGeometry with ``screen_rect`` = the view's rectangle in physical screen pixels and
        ``visible`` = the image pixels at its edges (it may reach past the image).

    Raises:
        ViewError: a rotated or flipped view, a view not showing the image plane, a lightbox, or a
            ``view_rect_on_screen`` whose size does not match the slice node's dimensions.
    """
    import vtk

    try:
        dpr = float(device_pixel_ratio)
    except (TypeError, ValueError):
        raise ViewError(f"device_pixel_ratio: expected a number > 0, got {device_pixel_ratio!r}") from None
    if not math.isfinite(dpr) or dpr <= 0:
        raise ViewError(f"device_pixel_ratio: expected a number > 0, got {device_pixel_ratio!r}")
    try:
        x0, y0, x1, y1 = (float(v) * dpr for v in view_rect_on_screen)
    except (TypeError, ValueError):
        raise ViewError(f"view_rect_on_screen: expected (x0, y0, x1, y1) in screen pixels, got {view_rect_on_screen!r}") from None
    width, height = (int(d) for d in slice_node.GetDimensions()[:2])
    if abs((x1 - x0) - width) > 1.0 or abs((y1 - y0) - height) > 1.0:
        raise ViewError(f"view_rect_on_screen: {x1 - x0:g}x{y1 - y0:g} physical px (logical x device_pixel_ratio "
                        f"{dpr:g}) but the slice node {slice_node.GetName()!r} is {width}x{height}; pass the slice "
                        f"view widget's own rectangle and its devicePixelRatioF()")
    if hasattr(slice_node, "GetLayoutGridRows") and (slice_node.GetLayoutGridRows() != 1 or slice_node.GetLayoutGridColumns() != 1):
        raise ViewError(f"slice node {slice_node.GetName()!r}: lightbox layout; gaze capture needs a single-pane view")
    ras_to_ijk = vtk.vtkMatrix4x4()
    volume_node.GetRASToIJKMatrix(ras_to_ijk)
    m = _matrix(ras_to_ijk) @ _matrix(slice_node.GetXYToRAS())  # view pixel (xv, yv, 0, 1) -> IJK
    a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
    scale = max(abs(a) + abs(b), abs(c) + abs(d), 1e-300)
    if abs(b) > 1e-6 * scale or abs(c) > 1e-6 * scale:
        raise ViewError(f"slice node {slice_node.GetName()!r}: the view is rotated relative to the image "
                        f"(view x -> image (i, j) = ({a:.4g}, {c:.4g}), view y -> ({b:.4g}, {d:.4g})); gaze capture "
                        f"maps axis-aligned views only: reset the slice orientation (Reset field of view / Axial)")
    if abs(a) < 1e-12 or abs(d) < 1e-12:
        raise ViewError(f"slice node {slice_node.GetName()!r}: the view does not show the image plane (set it to Axial)")
    if a < 0 or d > 0:
        raise ViewError(f"slice node {slice_node.GetName()!r}: the view is flipped relative to the image "
                        f"(columns grow {'left' if a < 0 else 'right'}wards, rows grow {'up' if d > 0 else 'down'}wards "
                        f"on screen); gaze capture maps unflipped views only")
    dims = volume_node.GetImageData().GetDimensions()

    def image_x(sx: float) -> float:
        return a * (sx - x0 - 0.5) + m[0, 3] + 0.5

    def image_y(sy: float) -> float:
        return d * ((height - 0.5) - (sy - y0)) + m[1, 3] + 0.5

    sx1, sy1 = x0 + width, y0 + height
    return ViewGeometry((int(dims[0]), int(dims[1])), (x0, y0, sx1, sy1), (image_x(x0), image_y(y0), image_x(sx1), image_y(sy1)))


def _window_level(volume_node) -> dict:
    display = volume_node.GetDisplayNode() if volume_node is not None else None
    if display is None or not hasattr(display, "GetWindow"):
        return {}
    return {"window": round(float(display.GetWindow()), 6), "level": round(float(display.GetLevel()), 6)}


@dataclass(frozen=True)
class ViewState:
    """The view from time ``t`` on (source clock, s; ``-inf``: from the start): geometry (None: the image
    is not on screen) and extra display state (window/level, layout, why there is no geometry)."""

    t: float
    geometry: ViewGeometry | None
    extra: dict = field(default_factory=dict)


class ViewTimeline:
    """View states over time; the geometry of a sample is the one in force at its time.

    States are appended when the view changes (identical consecutive states are not repeated), stamped on
    the gaze source's clock: the recorder sets ``clock`` to its source's ``clock`` when none is given. A
    state recorded before that clock is known (no sample yet) gets ``t = -inf``: in force from the start.

    Ways to feed it: :meth:`record` (a geometry you built), :meth:`record_slice_view` (from a slice view),
    or :meth:`observe_slice_view` (VTK observers on the slice node and the image's display node record every
    pan, zoom, resize and window/level change as it happens; :meth:`update` re-reads the observed view, which
    the recorder calls on every pump to catch what fires no event, such as a moved widget).
    """

    def __init__(self, clock: Callable[[], float | None] | None = None):
        self.clock = clock
        self.states: list[ViewState] = []
        self._times: np.ndarray | None = None
        self._observed: list[tuple] = []

    def __len__(self) -> int:
        return len(self.states)

    def _now(self, t: float | None) -> float:
        if t is None:
            t = self.clock() if self.clock is not None else None
        t = -math.inf if t is None else float(t)
        if self.states and t < self.states[-1].t:
            t = self.states[-1].t  # clocks do not run backwards here: keep the order
        return t

    def record(self, geometry: ViewGeometry | None, extra: dict | None = None, t: float | None = None,
               force: bool = False) -> int:
        """Append a state (unless it equals the last one and ``force`` is False); returns its index.

        Args:
            geometry: the view now, or None when the image is not on screen.
            extra: JSON-able display state (window/level, layout name ...).
            t: its time on the source clock; None: ``clock()`` now.
        """
        if geometry is not None and not isinstance(geometry, ViewGeometry):
            raise TypeError(f"geometry: expected a ViewGeometry or None, got {type(geometry).__name__}")
        extra = dict(extra or {})
        if self.states and not force:
            last = self.states[-1]
            if last.geometry == geometry and last.extra == extra:
                return len(self.states) - 1
        self.states.append(ViewState(self._now(t), geometry, extra))
        self._times = None
        return len(self.states) - 1

    def record_slice_view(self, slice_node, volume_node, view_rect_on_screen, device_pixel_ratio: float = 1.0,
                          t: float | None = None, extra: dict | None = None) -> int:
        """Record the slice view's state now (or at ``t``): a view that cannot be mapped (rotated ...) is
        recorded with no geometry and the reason in ``extra["unmapped"]`` (its samples count as no_view)."""
        rect = view_rect_on_screen() if callable(view_rect_on_screen) else view_rect_on_screen
        dpr = device_pixel_ratio() if callable(device_pixel_ratio) else device_pixel_ratio
        info = {**_window_level(volume_node), **(extra or {})}
        try:
            geometry = view_geometry_from_slice(slice_node, volume_node, rect, dpr)
        except ViewError as error:
            geometry, info["unmapped"] = None, str(error)
        return self.record(geometry, info, t=t)

    def observe_slice_view(self, slice_node, volume_node, view_rect_on_screen, device_pixel_ratio=1.0) -> Callable[[], None]:
        """Record the slice view now and on every change of the slice node or the image's display node.

        ``view_rect_on_screen`` and ``device_pixel_ratio`` may be callables (re-read at each change), so a
        layout change that moves or resizes the view is picked up. Returns a function that stops observing.
        """
        import vtk

        args = (slice_node, volume_node, view_rect_on_screen, device_pixel_ratio)

        def changed(*_):
            self.record_slice_view(*args)

        tags = [(slice_node, slice_node.AddObserver(vtk.vtkCommand.ModifiedEvent, changed))]
        display = volume_node.GetDisplayNode()
        if display is not None:
            tags.append((display, display.AddObserver(vtk.vtkCommand.ModifiedEvent, changed)))
        self._observed.append(args)
        changed()

        def stop() -> None:
            for node, tag in tags:
                node.RemoveObserver(tag)
            if args in self._observed:
                self._observed.remove(args)

        return stop

    def update(self) -> None:
        """Re-read every observed view (cheap: two matrix products); records only what changed."""
        for args in self._observed:
            self.record_slice_view(*args)

    @property
    def observing(self) -> bool:
        return bool(self._observed)

    def index_at(self, t) -> np.ndarray:
        """Index of the state in force at each time ``t`` (array); -1 where no state exists yet."""
        if self._times is None:
            self._times = np.array([s.t for s in self.states], dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        if not len(self._times):
            return np.full(t.shape, -1, dtype=np.int64)
        return np.maximum(np.searchsorted(self._times, t, side="right") - 1, 0).astype(np.int64)


# ============================================================================================== reading
def _stats_ms(values_s: np.ndarray) -> dict:
    v = np.asarray(values_s, np.float64)
    v = v[np.isfinite(v)] * 1000.0
    if not len(v):
        return {"n": 0, "median": None, "p95": None, "max": None}
    return {"n": int(len(v)), "median": round(float(np.median(v)), 3), "p95": round(float(np.percentile(v, 95)), 3),
            "max": round(float(v.max()), 3)}


def sample_interval(t: np.ndarray) -> float | None:
    """Mean interval between consecutive samples (s), robust to gaps: intervals are counted in whole
    steps of the median interval, so a 100 ms outage counts as 12 steps at 120 Hz, not as one."""
    t = np.sort(np.asarray(t, np.float64)[np.isfinite(t)])
    d = np.diff(t)
    d = d[d > 0]
    if not len(d):
        return None
    step = float(np.median(d))
    counts = np.maximum(np.rint(d / step), 1.0)
    near = counts <= 3  # ordinary intervals; long gaps would carry rounding error
    return float(d[near].sum() / counts[near].sum()) if near.any() else step


def missing_samples(t: np.ndarray, interval: float | None) -> int:
    """Samples the source should have sent but did not: each interval longer than 1.5 steps counts its
    missing steps (``round(d / interval) - 1``)."""
    if not interval:
        return 0
    d = np.diff(np.sort(np.asarray(t, np.float64)[np.isfinite(t)]))
    long = d > 1.5 * interval
    return int(np.maximum(np.rint(d[long] / interval) - 1, 0).sum())


@dataclass
class Reading:
    """One recorded reading of one image.

    Attributes:
        fixations: ``[{"x", "y", "t", "duration"}]``: original image pixels, seconds from the reading's start.
        samples: column arrays over all received samples, in time order: ``t`` [s from start], ``x, y``
            [image px; NaN for invalid / unmapped samples; off-image samples keep where they fell],
            ``valid`` (bool: on the image, used for fixations), ``status`` (0 ok, see ``STATUS_NAMES``),
            ``view`` (index into ``views``), ``latency_ms`` (sample time -> mapped).
        views: the view states of the reading, ``t`` relative to its start (``-inf``: from the start).
        dropped: counts by reason: invalid, off_screen, off_image, no_view, gap (samples never received).
        sampling_rate_hz, latency_ms (``n``, ``median``, ``p95``, ``max``), disconnects, events
            (``[{"t", "event"}]``: disconnect / reconnect), t0 (the start on the source clock), source,
            image_size, settings (screen, distance, detection parameters), before_start (samples taken
            before ``start()``, left out).
    """

    fixations: list[dict]
    samples: dict[str, np.ndarray]
    views: list[ViewState]
    dropped: dict[str, int]
    sampling_rate_hz: float | None
    latency_ms: dict
    disconnects: int
    events: list[dict]
    t0: float | None
    source: str
    image_size: tuple[int, int] | None
    settings: dict
    before_start: int = 0

    @property
    def n_samples(self) -> int:
        return int(len(self.samples["t"]))

    @property
    def dropped_rate(self) -> float:
        """Share of the samples the tracker took (received + gap) that are not in the fixation input."""
        total = self.n_samples + self.dropped.get("gap", 0)
        return (sum(self.dropped.values())) / total if total else 0.0

    def reader_fixations(self, decimals: int = 3) -> list[dict]:
        """Fixations ready for a Case's ``readers[<annotator id>]`` (schema Fixation: x, y, t, duration).

        Points are means of on-image samples, so inside ``[0, W] x [0, H]``; they are clamped there anyway
        (the schema allows ``EDGE_TOLERANCE_PX`` beyond the edge, nothing more).
        """
        w, h = self.image_size or (math.inf, math.inf)
        out = []
        for f in self.fixations:
            x = min(max(float(f["x"]), 0.0), float(w))
            y = min(max(float(f["y"]), 0.0), float(h))
            out.append({"x": round(x, decimals), "y": round(y, decimals), "t": round(float(f["t"]), 4),
                        "duration": round(float(f["duration"]), 4)})
        return out

    # -------------------------------------------------------------- sidecar
    def sidecar_bytes(self) -> bytes:
        """The reading as gzip-compressed JSON: samples, view states, counts and fixations.

        Deterministic (sorted keys, no gzip timestamp) and small: times as integer microseconds from the
        start, positions to 0.01 px, latencies to 0.01 ms, NaN as null.
        """
        s = self.samples

        def num(values, decimals):
            return [None if not math.isfinite(v) else round(float(v), decimals) for v in np.asarray(values, np.float64)]

        doc = {
            "schema": SIDECAR_SCHEMA,
            "source": self.source, "t0": self.t0, "image_size": list(self.image_size) if self.image_size else None,
            "sampling_rate_hz": self.sampling_rate_hz, "latency_ms": self.latency_ms, "dropped": self.dropped,
            "disconnects": self.disconnects, "events": self.events, "settings": self.settings,
            "before_start": self.before_start,
            "fixations": self.fixations,
            "views": [{"t": None if not math.isfinite(v.t) else round(v.t, 6),
                       "screen_rect": None if v.geometry is None else [round(c, 6) for c in v.geometry.screen_rect],
                       "visible": None if v.geometry is None else [round(c, 6) for c in v.geometry.visible],
                       "extra": v.extra} for v in self.views],
            "samples": {"t_us": [int(round(v * 1e6)) for v in np.asarray(s["t"], np.float64)],
                        "x": num(s["x"], 2), "y": num(s["y"], 2), "status": [int(v) for v in s["status"]],
                        "view": [int(v) for v in s["view"]], "latency_ms": num(s["latency_ms"], 2)},
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)

    @classmethod
    def from_sidecar(cls, data: bytes) -> "Reading":
        """Read :meth:`sidecar_bytes` back. Raises ValueError naming the field when it is not a sidecar."""
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
                raw = f.read(MAX_SIDECAR_BYTES + 1)
        except (OSError, EOFError) as error:
            raise ValueError(f"gaze sidecar: not gzip data ({error})") from None
        if len(raw) > MAX_SIDECAR_BYTES:
            raise ValueError(f"gaze sidecar: more than {MAX_SIDECAR_BYTES} bytes of JSON once decompressed")
        try:
            doc = json.loads(raw)
        except ValueError as error:
            raise ValueError(f"gaze sidecar: not JSON ({error})") from None
        if not isinstance(doc, dict) or doc.get("schema") != SIDECAR_SCHEMA:
            got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"gaze sidecar: schema must be {SIDECAR_SCHEMA!r}, got {got!r}")
        try:
            size = tuple(int(v) for v in doc["image_size"]) if doc.get("image_size") else None
            views = []
            for i, v in enumerate(doc["views"]):
                geometry = None if v["screen_rect"] is None else ViewGeometry(size, tuple(v["screen_rect"]), tuple(v["visible"]))
                views.append(ViewState(-math.inf if v["t"] is None else float(v["t"]), geometry, dict(v.get("extra") or {})))
            s = doc["samples"]
            n = len(s["t_us"])
            for key in ("x", "y", "status", "view", "latency_ms"):
                if len(s[key]) != n:
                    raise ValueError(f"samples.{key} has {len(s[key])} values, samples.t_us {n}")

            def arr(values):
                return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)

            status = np.array(s["status"], dtype=np.int8)
            samples = {"t": np.array(s["t_us"], dtype=np.float64) / 1e6, "x": arr(s["x"]), "y": arr(s["y"]),
                       "valid": status == OK, "status": status, "view": np.array(s["view"], dtype=np.int64),
                       "latency_ms": arr(s["latency_ms"])}
            return cls(fixations=[dict(f) for f in doc["fixations"]], samples=samples, views=views,
                       dropped={k: int(v) for k, v in doc["dropped"].items()}, sampling_rate_hz=doc["sampling_rate_hz"],
                       latency_ms=dict(doc["latency_ms"]), disconnects=int(doc["disconnects"]),
                       events=list(doc["events"]), t0=doc["t0"], source=str(doc["source"]), image_size=size,
                       settings=dict(doc["settings"]), before_start=int(doc.get("before_start", 0)))
        except (KeyError, TypeError, IndexError) as error:
            raise ValueError(f"gaze sidecar: missing or malformed field ({error!r})") from None


# ============================================================================================== recorder
@dataclass
class LiveStatus:
    """What the widget shows while recording: ``recording``, ``connected``, ``samples_per_s`` (received over
    the last second), ``samples`` (so far), ``dropped`` (so far, not counting gaps), ``disconnects``."""

    recording: bool
    connected: bool
    samples_per_s: float
    samples: int
    dropped: int
    disconnects: int
    source: str

    def __str__(self) -> str:
        if not self.recording:
            return f"gaze: not recording ({self.source})"
        state = "connected" if self.connected else "DISCONNECTED, retrying"
        return (f"gaze: recording from {self.source}, {state}, {self.samples_per_s:.0f} samples/s, "
                f"{self.samples} samples, {self.dropped} dropped, {self.disconnects} disconnects")


class GazeRecorder:
    """Records one reading: pulls gaze from a source, maps it through the view in force, detects fixations.

    Args:
        source: a :class:`GazeSource`.
        view: a :class:`ViewTimeline` (fed by the widget: :meth:`ViewTimeline.observe_slice_view`), or a
            callable returning the view now (a ViewGeometry, ``(ViewGeometry, extra)`` or None), polled on
            each pump: simpler, but a change is then stamped up to one pump late.
        screen_px: ``(W, H)`` physical pixels of the tracked screen.
        screen_mm: ``(w, h)`` its visible size in mm.
        distance_mm: eye to screen, mm.
        method: "ivt" or "idt"; velocity_threshold [deg/s], dispersion_threshold [deg],
            minimum_duration_ms, velocity_window_ms: as in :mod:`.fixation_detection`.
        sampling_rate_hz: the grid rate for detection; None: measured from the samples.
        reconnect_interval_s: how often a lost source is retried from ``pump``.

    Fixations are detected in original image pixels per stretch of unchanged geometry (a pan or zoom ends a
    fixation: the eye may hold still on screen while the image moves under it), with image pixels per degree
    = the screen's pixels per degree x that stretch's image pixels per screen pixel.
    """

    def __init__(self, source: GazeSource, view: ViewTimeline | Callable[[], Any], *, screen_px: tuple[int, int],
                 screen_mm: tuple[float, float], distance_mm: float = 650.0, method: str = "ivt",
                 velocity_threshold: float = 20.0, dispersion_threshold: float = 1.0,
                 minimum_duration_ms: float = 100.0, velocity_window_ms: float = 20.0,
                 sampling_rate_hz: float | None = None, reconnect_interval_s: float = 1.0):
        if method not in ("ivt", "idt"):
            raise ValueError(f"method: expected 'ivt' or 'idt', got {method!r}")
        try:
            w, h = (int(v) for v in screen_px)
            wmm, hmm = (float(v) for v in screen_mm)
        except (TypeError, ValueError):
            raise ValueError(f"screen_px / screen_mm: expected (width, height) pairs, got {screen_px!r} / {screen_mm!r}") from None
        ppd_x = px_per_degree(w, wmm, distance_mm)
        ppd_y = px_per_degree(h, hmm, distance_mm)
        self.source = source
        if isinstance(view, ViewTimeline):
            self.timeline, self._view_callback = view, None
        elif callable(view):
            self.timeline, self._view_callback = ViewTimeline(), view
        else:
            raise TypeError(f"view: expected a ViewTimeline or a callable returning a ViewGeometry, got {type(view).__name__}")
        self.screen_px, self.screen_mm, self.distance_mm = (w, h), (wmm, hmm), float(distance_mm)
        self.screen_px_per_deg = math.sqrt(ppd_x * ppd_y)
        self.detection = {"method": method, "velocity_threshold": float(velocity_threshold),
                          "dispersion_threshold": float(dispersion_threshold),
                          "minimum_duration_ms": float(minimum_duration_ms),
                          "velocity_window_ms": float(velocity_window_ms)}
        self.sampling_rate_hz = sampling_rate_hz
        self.reconnect_interval_s = float(reconnect_interval_s)
        self.recording = False
        self._reset()

    def _reset(self) -> None:
        self._chunks: list[dict] = []
        self._received = 0
        self._before_start = 0
        self._dropped_live = 0
        self.disconnects = 0
        self.events: list[dict] = []
        self._t0 = None
        self._first_view = None
        self._was_connected = False
        self._last_attempt = -math.inf
        self._arrivals: collections.deque = collections.deque()

    # -------------------------------------------------------------- control
    def start(self) -> None:
        """Open the source (raises SourceError if it cannot) and start a new reading."""
        if self.source.screen_px is None:
            self.source.screen_px = self.screen_px
        self._reset()
        try:  # the reading starts now: samples that arrive while open() waits for the stream are part of it
            t_start = self.source.clock()
        except ImportError:
            t_start = None  # open() says what to install
        if not self.source.connected:
            self.source.open()
        if self.timeline.clock is None:
            self.timeline.clock = self.source.clock
        self._t0 = t_start if t_start is not None else self.source.clock()
        self._poll_view()
        if self.timeline.states:  # the view in force at the start: the reading's first view state
            self._first_view = int(self.timeline.index_at(self._t0 if self._t0 is not None else -math.inf))
        self._was_connected = self.source.connected
        self.recording = True

    def _poll_view(self) -> None:
        if self._view_callback is not None:
            state = self._view_callback()
            geometry, extra = state if isinstance(state, tuple) else (state, None)
            self.timeline.record(geometry, extra)
        elif self.timeline.observing:
            self.timeline.update()

    def pump(self) -> int:
        """Pull what arrived, map it, count drops; reconnect a lost source now and then. Call it from a Qt
        timer (every 10-20 ms). Returns the number of samples taken in."""
        if not self.recording:
            return 0
        now = time.monotonic()
        if not self.source.connected and now - self._last_attempt >= self.reconnect_interval_s:
            self._last_attempt = now
            if self.source.reconnect():
                self.events.append({"t": self._rel(self.source.clock()), "event": "reconnect"})
                self._was_connected = True
        self._poll_view()
        samples = self.source.poll()
        if self._was_connected and not self.source.connected:
            self.disconnects += 1
            self.events.append({"t": self._rel(self.source.clock()), "event": "disconnect"})
            self._last_attempt = now
        self._was_connected = self.source.connected
        if samples:
            self._take(samples)
        return len(samples)

    def _rel(self, t: float | None) -> float | None:
        if t is None or self._t0 is None:
            return None if t is None else round(float(t), 6)
        return round(float(t) - self._t0, 6)

    def _take(self, samples: list[Sample]) -> None:
        arr = np.array(samples, dtype=np.float64).reshape(-1, 4)
        if self._t0 is not None:  # taken before the reading started (in flight at start): not part of it
            early = arr[:, 0] < self._t0
            self._before_start += int(early.sum())
            arr = arr[~early]
            if not len(arr):
                return
        t, x, y = arr[:, 0], arr[:, 1], arr[:, 2]
        status = np.where((arr[:, 3] > 0) & np.isfinite(x) & np.isfinite(y), OK, INVALID).astype(np.int8)
        w, h = self.screen_px
        status[(status == OK) & ~((x >= 0) & (x < w) & (y >= 0) & (y < h))] = OFF_SCREEN
        view = self.timeline.index_at(t)
        ix, iy = np.full(len(t), np.nan), np.full(len(t), np.nan)
        for v in np.unique(view):
            sel = view == v
            geometry = self.timeline.states[v].geometry if v >= 0 else None
            if geometry is None:
                status[sel & (status == OK)] = NO_VIEW
                continue
            gx, gy = geometry.screen_to_image(x[sel], y[sel])
            ix[sel], iy[sel] = gx, gy
            on = np.asarray(geometry.contains_screen(x[sel], y[sel])) & np.asarray(geometry.contains_image(gx, gy))
            sub = status[sel]
            sub[(sub == OK) & ~on] = OFF_IMAGE
            status[sel] = sub
        ix[status == INVALID] = np.nan
        iy[status == INVALID] = np.nan
        mapped_at = self.source.clock()
        latency = np.full(len(t), np.nan) if mapped_at is None else mapped_at - t
        self._chunks.append({"t": t, "x": ix, "y": iy, "status": status, "view": view, "latency": latency})
        self._received += len(t)
        self._dropped_live += int((status != OK).sum())
        now = time.monotonic()
        self._arrivals.append((now, len(t)))
        while self._arrivals and now - self._arrivals[0][0] > 1.0:
            self._arrivals.popleft()

    @property
    def t0(self) -> float | None:
        """The reading's start on the source clock (None until known: a source whose clock starts with its
        first sample; the reading then starts at that sample)."""
        return self._t0

    @property
    def live(self) -> LiveStatus:
        """The live indicator: recording, connected, samples/s over the last second, totals."""
        now = time.monotonic()
        recent = sum(n for when, n in self._arrivals if now - when <= 1.0)
        return LiveStatus(self.recording, bool(self.source.connected), float(recent), self._received,
                          self._dropped_live, self.disconnects, self.source.name)

    def stop(self, close_source: bool = True) -> Reading:
        """End the reading: a last pump, then fixations and the :class:`Reading`."""
        if self.recording:
            self.pump()
        self.recording = False
        if close_source:
            self.source.close()
        return self._reading()

    # -------------------------------------------------------------- result
    def _reading(self) -> Reading:
        if self._chunks:
            cat = {k: np.concatenate([c[k] for c in self._chunks]) for k in self._chunks[0]}
        else:
            cat = {"t": np.zeros(0), "x": np.zeros(0), "y": np.zeros(0), "status": np.zeros(0, np.int8),
                   "view": np.zeros(0, np.int64), "latency": np.zeros(0)}
        order = np.argsort(cat["t"], kind="stable")
        cat = {k: v[order] for k, v in cat.items()}
        t0 = self._t0 if self._t0 is not None else (float(cat["t"][0]) if len(cat["t"]) else 0.0)
        first = self._first_view if self._first_view is not None else 0
        if len(cat["view"]):
            first = min(first, int(cat["view"].min()))
        states = self.timeline.states[first:]
        views = [ViewState(max(s.t - t0, 0.0) if i == 0 else s.t - t0, s.geometry, s.extra) for i, s in enumerate(states)]
        view = np.maximum(cat["view"] - first, 0)
        sizes = {s.geometry.image_size for s in states if s.geometry is not None}
        if len(sizes) > 1:
            raise ViewError(f"views: the reading spans images of different sizes {sorted(sizes)}; record one "
                            f"reading per image (stop and start the recorder when the case changes)")
        image_size = next(iter(sizes)) if sizes else None

        rel_t = cat["t"] - t0
        interval = (1.0 / self.sampling_rate_hz) if self.sampling_rate_hz else sample_interval(rel_t)
        status = cat["status"]
        dropped = {name: int((status == code).sum()) for code, name in STATUS_NAMES.items()}
        dropped["gap"] = missing_samples(rel_t, interval)
        fixations = self._fixations(rel_t, cat["x"], cat["y"], status, view, views, interval)
        settings = {"screen_px": list(self.screen_px), "screen_mm": list(self.screen_mm),
                    "distance_mm": self.distance_mm, "screen_px_per_deg": round(self.screen_px_per_deg, 6),
                    "detection": self.detection}
        samples = {"t": rel_t, "x": cat["x"], "y": cat["y"], "valid": status == OK, "status": status, "view": view,
                   "latency_ms": cat["latency"] * 1000.0}
        return Reading(fixations=fixations, samples=samples, views=views, dropped=dropped,
                       sampling_rate_hz=None if not interval else round(1.0 / interval, 6),
                       latency_ms=_stats_ms(cat["latency"]), disconnects=self.disconnects, events=list(self.events),
                       t0=None if self._t0 is None and not len(cat["t"]) else float(t0), source=self.source.name,
                       image_size=image_size, settings=settings, before_start=self._before_start)

    def _fixations(self, t, x, y, status, view, views: list[ViewState], interval: float | None) -> list[dict]:
        """Detect per stretch of unchanged geometry (consecutive view states with equal geometry)."""
        if not len(t) or not interval:
            return []
        segment = np.zeros(len(views), dtype=np.int64)
        for i in range(1, len(views)):
            segment[i] = segment[i - 1] + (views[i].geometry != views[i - 1].geometry)
        sample_segment = segment[view] if len(views) else np.zeros(len(t), np.int64)
        ok = status == OK
        fixations = []
        for seg in np.unique(sample_segment[ok]):
            geometry = views[int(np.flatnonzero(segment == seg)[0])].geometry
            sel = sample_segment == seg
            xs, ys = np.where(ok[sel], x[sel], np.nan), np.where(ok[sel], y[sel], np.nan)
            rows = detect_fixations_array(
                np.column_stack([t[sel], xs, ys]), method=self.detection["method"],
                px_per_deg=self.screen_px_per_deg * geometry.image_px_per_screen_px,
                velocity_threshold=self.detection["velocity_threshold"],
                dispersion_threshold=self.detection["dispersion_threshold"],
                minimum_duration_ms=self.detection["minimum_duration_ms"],
                sampling_rate=1.0 / interval, velocity_window_ms=self.detection["velocity_window_ms"])
            fixations += [{"x": float(fx), "y": float(fy), "t": float(ft), "duration": float(fd)} for fx, fy, ft, fd in rows]
        fixations.sort(key=lambda f: f["t"])
        return fixations
