"""The app's models: one cached predictor per model family, reloaded when training publishes a new file.

Where each family's artifact lives and how it loads come from :mod:`models.families` (the layout
``models.pipeline.Pipeline.from_dir`` reads too). Training publishes by an atomic rename, so a changed
``(inode, mtime, size)`` of the checkpoint file means "new model": the next request loads it, no restart.
The infer tasks get a :class:`~models.pipeline.Pipeline` chained from these cached predictors.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from models.checkpoint import CheckpointError
from models.families import FAMILIES

logger = logging.getLogger(__name__)


def stamp_text(value: tuple[int, int, int] | None) -> str | None:
    return None if value is None else "-".join(str(v) for v in value)


class ModelCache:
    """Loaded predictors by family, each rebuilt when its checkpoint's stamp changes.

    Thread-safe: concurrent requests share one load; a request that started on the old model finishes on it.
    A published file that fails to load (corrupt, or not a GazeLabel checkpoint) leaves the previous model
    serving, with a logged warning, until a loadable file is published; it is not retried on every request.
    """

    def __init__(self, models_dir: str | Path, device: str = "cpu"):
        self.models_dir = Path(models_dir)
        self.device = device
        self._entries: dict[str, tuple[Any, Any]] = {}  # family -> (stamp, predictor)
        self._failed: dict[str, Any] = {}  # family -> stamp whose load failed
        self._lock = threading.Lock()

    def preload(self) -> None:
        """Import every family's predictor code and libraries in this thread (see
        :attr:`models.families.ModelFamily.runtime_imports`); the server calls it once at start-up."""
        for spec in FAMILIES.values():
            spec.import_predictor()

    def stamp(self, family: str):
        return FAMILIES[family].stamp(self.models_dir)

    def available(self, families) -> bool:
        return all(self.stamp(f) is not None for f in families)

    def served(self, families) -> tuple:
        """The stamps of the models answering now (the previous file's while a new one fails to load)."""
        with self._lock:
            return tuple(self._entries[f][0] if f in self._entries else self.stamp(f) for f in families)

    def predictor(self, family: str):
        """The cached predictor of ``family``, (re)loaded when its checkpoint changed.

        Raises:
            CheckpointError: there is no model file, or it does not load and no earlier model is cached.
        """
        spec = FAMILIES[family]
        with self._lock:
            current = spec.stamp(self.models_dir)
            entry = self._entries.get(family)
            if current is None:
                if entry is not None:  # removed while serving: keep answering with what is loaded
                    return entry[1]
                raise CheckpointError(f"{spec.checkpoint(self.models_dir)}: no {family} model yet; train one with "
                                      f"POST /train/{spec.task} or `gazelabel train {family}`")
            if entry is not None and (entry[0] == current or self._failed.get(family) == current):
                return entry[1]
            try:
                loaded = spec.load(spec.path(self.models_dir), device=self.device)
            except CheckpointError as e:
                if entry is None:
                    raise
                if self._failed.get(family) != current:
                    logger.warning(f"{family}: the new model file does not load ({e}); the previous model keeps serving")
                self._failed[family] = current
                return entry[1]
            self._failed.pop(family, None)
            self._entries[family] = (current, loaded)
            return loaded

    def pipeline(self, families, required=()):
        """A Pipeline of the cached predictors of ``families``; those in ``required`` must exist (else
        CheckpointError), the others are left out when they have no model file."""
        from models.pipeline import Pipeline

        chosen = {f: self.predictor(f) for f in families if f in required or self.stamp(f) is not None}
        return Pipeline.from_predictors(**chosen)
