"""A simulated eye tracker: a known scanpath as raw gaze samples on the screen, streamed over Lab Streaming Layer.

For demos without a tracker, the active-learning benchmark and the end-to-end tests: the samples take the
same path as a real tracker's (LSL outlet -> :class:`.capture.LslSource` -> :class:`.capture.GazeRecorder`
-> view mapping -> fixation detection), so what comes out is what the capture makes of them. Everything it
produces is SYNTHETIC.

LSL must be configured for loopback before pylsl loads (:func:`loopback_lsl`): nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from .screen import ViewGeometry

LSL_LOOPBACK_CFG = """[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
MachineAddresses = {127.0.0.1}
ListenAddress = 127.0.0.1
[lab]
KnownPeers = {127.0.0.1}
"""


def loopback_lsl(folder: str | Path | None = None) -> Path:
    """Write a loopback-only ``lsl_api.cfg`` and point ``LSLAPICFG`` at it (call before importing pylsl)."""
    folder = Path(folder or tempfile.mkdtemp(prefix="gazelabel-lsl-"))
    path = folder / "lsl_api.cfg"
    path.write_text(LSL_LOOPBACK_CFG)
    os.environ["LSLAPICFG"] = str(path)
    return path


def raw_samples(fixations: list[dict], view: ViewGeometry, rate: float, rng: np.random.Generator, *,
                saccade_s: float = 0.03, noise_px: float = 0.2) -> np.ndarray:
    """``(N, 3)`` t [s from 0], x, y [screen px] of a reader holding each fixation for its duration and
    moving in a straight line between them in ``saccade_s``; ``fixations`` in image pixels (x, y, duration),
    drawn on screen through ``view``; Gaussian noise of ``noise_px`` screen pixels."""
    if rate <= 0:
        raise ValueError(f"rate: must be > 0 Hz, got {rate}")
    points, t = [], 0.0
    dt = 1.0 / rate
    previous = None
    for f in fixations:
        sx, sy = view.image_to_screen(float(f["x"]), float(f["y"]))
        if previous is not None:
            n = max(int(round(saccade_s * rate)), 1)
            for k in range(1, n + 1):
                a = k / (n + 1)
                points.append((t, previous[0] + a * (sx - previous[0]), previous[1] + a * (sy - previous[1])))
                t += dt
        for _ in range(max(int(round(float(f["duration"]) * rate)), 1)):
            points.append((t, sx + rng.normal(0, noise_px), sy + rng.normal(0, noise_px)))
            t += dt
        previous = (sx, sy)
    return np.asarray(points, dtype=np.float64).reshape(-1, 3)


def simulate_reading(fixations: list[dict], image_size: tuple[int, int], screen_px: tuple[int, int] = (1920, 1080), *,
                     rate: float = 120.0, rng: np.random.Generator | None = None,
                     screen_mm: tuple[float, float] = (527.0, 296.0), distance_mm: float = 650.0):
    """One reading of ``fixations`` (image pixels; the image letterboxed on the screen) through the real
    capture path; returns ``(reader fixations, info)`` with ``info`` = samples, dropped, rate, fixations.

    Samples carry explicit LSL timestamps just after the recording's start and are pushed at once (the
    capture maps each by its own timestamp), so a reading takes milliseconds, not its duration.
    """
    import pylsl

    from .capture import GazeRecorder, LslSource, ViewTimeline

    rng = rng or np.random.default_rng(0)
    view = ViewGeometry.letterbox(tuple(image_size), tuple(screen_px))
    samples = raw_samples([{"x": f.x, "y": f.y, "duration": f.duration} if not isinstance(f, dict) else f
                           for f in fixations], view, rate, rng)
    name = f"gazelabel-simulated-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name, "Gaze", 2, rate, "float32", name)
    info.set_channel_labels(["x", "y"])
    info.set_channel_units(["pixels", "pixels"])
    outlet = pylsl.StreamOutlet(info, max_buffered=max(int(len(samples) / rate) + 10, 60))
    timeline = ViewTimeline()
    timeline.record(view, {"simulated": True}, t=None)
    recorder = GazeRecorder(LslSource(stream_name=name), timeline, screen_px=screen_px, screen_mm=screen_mm,
                            distance_mm=distance_mm)
    recorder.start()
    deadline = time.monotonic() + 5.0
    while not outlet.have_consumers() and time.monotonic() < deadline:  # an inlet gets only what follows its connection
        recorder.pump()
        time.sleep(0.005)
    t0 = pylsl.local_clock() + 0.01
    for i in range(0, len(samples), 256):
        chunk = samples[i:i + 256]
        outlet.push_chunk(chunk[:, 1:3].astype(np.float32), timestamp=[float(t0 + v) for v in chunk[:, 0]])
    deadline = time.monotonic() + 10.0
    while recorder.live.samples < len(samples) and time.monotonic() < deadline:
        recorder.pump()
        time.sleep(0.002)
    reading = recorder.stop()
    del outlet
    return reading.reader_fixations(), {"samples": reading.n_samples, "sent": int(len(samples)),
                                        "dropped": dict(reading.dropped), "sampling_rate_hz": reading.sampling_rate_hz,
                                        "fixations": len(reading.fixations), "truth": len(fixations)}
