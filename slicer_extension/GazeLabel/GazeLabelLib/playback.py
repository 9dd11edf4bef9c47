"""Fixation playback: step through a scanpath in reading order, one fixation at a time.

Pure state, no timers: the widget asks :meth:`FixationPlayback.step` for the next fixation and waits its
``duration`` (scaled by ``speed``) before asking again, so a reader's gaze replays in real time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PlaybackFrame:
    """One shown fixation: its 0-based index, label ("1", "2", ...), pixel position, and how long to show it."""

    index: int
    label: str
    x: float
    y: float
    t: float
    duration: float
    wait_ms: int


class FixationPlayback:
    """Cursor over ``fixations`` (dicts with x, y, t, duration in pixels and seconds).

    Args:
        speed: playback speed factor (2 = twice as fast as the reader).
        min_wait_ms: shortest time a fixation stays on screen, so very short ones remain visible.
    """

    def __init__(self, fixations: list[dict], speed: float = 1.0, min_wait_ms: int = 80):
        if speed <= 0:
            raise ValueError(f"playback speed must be > 0, got {speed}")
        self.fixations = list(fixations)
        self.speed = speed
        self.min_wait_ms = min_wait_ms
        self.index = -1  # nothing shown yet

    def __len__(self) -> int:
        return len(self.fixations)

    @property
    def finished(self) -> bool:
        return self.index >= len(self.fixations) - 1

    def frame(self, index: int) -> PlaybackFrame:
        f = self.fixations[index]
        duration = float(f.get("duration", 0.0))
        wait = max(self.min_wait_ms, int(round(1000.0 * duration / self.speed)))
        return PlaybackFrame(index, str(index + 1), float(f["x"]), float(f["y"]), float(f.get("t", 0.0)), duration, wait)

    def step(self) -> PlaybackFrame | None:
        """Advance to the next fixation; None once the scanpath is over."""
        if self.finished:
            return None
        self.index += 1
        return self.frame(self.index)

    def back(self) -> PlaybackFrame | None:
        """Go to the previous fixation; None before the first."""
        if self.index <= 0:
            self.index = -1
            return None
        self.index -= 1
        return self.frame(self.index)

    def seek(self, index: int) -> PlaybackFrame:
        if not 0 <= index < len(self.fixations):
            raise IndexError(f"fixation {index + 1} does not exist (the scanpath has {len(self.fixations)})")
        self.index = index
        return self.frame(index)

    def reset(self) -> None:
        self.index = -1

    def visible(self) -> list[bool]:
        """Which fixations are shown so far (all of them before playback starts)."""
        if self.index < 0:
            return [True] * len(self.fixations)
        return [i <= self.index for i in range(len(self.fixations))]

    def total_duration(self) -> float:
        """Seconds of gaze in the scanpath (sum of fixation durations)."""
        return sum(float(f.get("duration", 0.0)) for f in self.fixations)
