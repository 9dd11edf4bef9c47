"""Where the app's models live and a cache that reloads them when training publishes a new file.

A models folder holds ``classifier.pt``, ``scanpath.pt`` and ``report/`` (``report.pt`` + ``lm/``), the
layout ``models.pipeline.Pipeline.from_dir`` reads. Training publishes by an atomic rename, so a changed
``(inode, mtime, size)`` of the checkpoint file means "new model": the next request loads it, no restart.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

MODEL_FILES = {"classifier": "classifier.pt", "scanpath": "scanpath.pt", "report": "report"}
# Model family -> the app's infer/train task name.
TASK_NAMES = {"classifier": "gaze_classifier", "scanpath": "scanpath", "report": "report"}
REPORT_CHECKPOINT = "report.pt"
logger = logging.getLogger(__name__)


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
    A published file that fails to load (corrupt, or not a GazeLabel checkpoint) leaves the previous model
    serving, with a logged warning, until a loadable file is published; it is not retried on every request.
    """

    def __init__(self, models_dir: str | Path):
        self.models_dir = Path(models_dir)
        self._entries: dict[str, tuple[tuple, Any]] = {}
        self._failed: dict[str, tuple] = {}  # name -> stamps whose load failed
        self._served: dict[str, tuple[int, int, int] | None] = {}  # family -> stamp of the model in use
        self._lock = threading.Lock()

    def stamps(self, families: tuple[str, ...]) -> tuple:
        return tuple(stamp(self.models_dir, f) for f in families)

    def served(self, families: tuple[str, ...]) -> tuple:
        """The stamps of the models answering now (the previous file's while a new one fails to load)."""
        with self._lock:
            return tuple(self._served.get(f, stamp(self.models_dir, f)) for f in families)

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
            if entry is not None and (entry[0] == current or self._failed.get(name) == current):
                return entry[1]
            try:
                loaded = load(self.models_dir)
            except CheckpointError as e:
                if entry is None:
                    raise
                if self._failed.get(name) != current:
                    logger.warning(f"{name}: the new model file does not load ({e}); the previous model keeps serving")
                self._failed[name] = current
                return entry[1]
            self._failed.pop(name, None)
            self._entries[name] = (current, loaded)
            self._served.update(zip(families, current))
            return loaded
