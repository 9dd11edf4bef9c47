"""Where the app's models live and a cache that reloads them when training publishes a new file.

A models folder holds ``classifier.pt``, ``scanpath.pt`` and ``report/`` (``report.pt`` + ``lm/``), the
layout ``models.pipeline.Pipeline.from_dir`` reads. Training publishes by an atomic rename, so a changed
``(inode, mtime, size)`` of the checkpoint file means "new model": the next request loads it, no restart.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

MODEL_FILES = {"classifier": "classifier.pt", "scanpath": "scanpath.pt", "report": "report"}
# Model family -> the app's infer/train task name.
TASK_NAMES = {"classifier": "gaze_classifier", "scanpath": "scanpath", "report": "report"}
REPORT_CHECKPOINT = "report.pt"


def model_path(models_dir: str | Path, family: str) -> Path:
    """The published file (classifier, scanpath) or folder (report) of a model family."""
    return Path(models_dir) / MODEL_FILES[family]


def checkpoint_file(models_dir: str | Path, family: str) -> Path:
    """The file whose change means a new model (the report folder's ``report.pt``)."""
    path = model_path(models_dir, family)
    return path / REPORT_CHECKPOINT if family == "report" else path


def stamp(models_dir: str | Path, family: str) -> tuple[int, int, int] | None:
    """``(inode, mtime_ns, size)`` of the family's checkpoint file, or None when there is none."""
    try:
        st = os.stat(checkpoint_file(models_dir, family))
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def stamp_text(value: tuple[int, int, int] | None) -> str | None:
    return None if value is None else "-".join(str(v) for v in value)


class ModelCache:
    """Loaded models keyed by name, each rebuilt when the stamps of the families it depends on change.

    Thread-safe: concurrent requests share one load; a request that started on the old model finishes on it.
    """

    def __init__(self, models_dir: str | Path):
        self.models_dir = Path(models_dir)
        self._entries: dict[str, tuple[tuple, Any]] = {}
        self._lock = threading.Lock()

    def stamps(self, families: tuple[str, ...]) -> tuple:
        return tuple(stamp(self.models_dir, f) for f in families)

    def available(self, families: tuple[str, ...]) -> bool:
        return all(s is not None for s in self.stamps(families))

    def get(self, name: str, families: tuple[str, ...], load: Callable[[Path], Any],
            required: tuple[str, ...] | None = None) -> Any:
        """The cached object ``name``, (re)built with ``load(models_dir)`` when a family's file changed
        (appeared, was republished or removed); ``required`` (default: all ``families``) must exist.

        Raises:
            CheckpointError: a required model file is missing or unreadable (the message names it).
        """
        from models.runtime import CheckpointError

        required = families if required is None else required
        with self._lock:
            current = self.stamps(families)
            missing = [f for f, s in zip(families, current) if s is None and f in required]
            if missing:
                family = missing[0]
                raise CheckpointError(
                    f"{checkpoint_file(self.models_dir, family)}: no {family} model yet; train one with "
                    f"POST /train/{TASK_NAMES[family]} or `gazelabel train {family}`"
                )
            entry = self._entries.get(name)
            if entry is None or entry[0] != current:
                self._entries[name] = (current, load(self.models_dir))
            return self._entries[name][1]
