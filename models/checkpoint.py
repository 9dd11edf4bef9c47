"""One checkpoint layout for every model family, written atomically and read without unpickling code.

A checkpoint is a ``torch.save`` of plain values and tensors only::

    {"format": "gazelabel.checkpoint/2",
     "kind":    "classifier" | "scanpath" | "report",
     "config":  {section: {field: value}},   # the family's config dataclasses (models/<family>/config.py)
     "state":   {name: {param: tensor}},      # e.g. {"model": state_dict, "thresholds": tensor}
     "info":    {"synthetic": bool, "dataset": str, "trained": ISO time, ...},
     "metrics": {name: float}}                # flat numbers; the family's key metric among them

:func:`load_checkpoint` reads it with ``torch.load(weights_only=True)`` and checks format and kind;
checkpoints of the first layout (``gazelabel.checkpoint/1``: ``state_dict``, per-family extra keys) go through
:func:`migrate` once, in memory, so a models folder from an earlier version keeps working.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

FORMAT = "gazelabel.checkpoint/2"
LEGACY_FORMAT = "gazelabel.checkpoint/1"
SECTIONS = ("format", "kind", "config", "state", "info", "metrics")


class CheckpointError(ValueError):
    """A model file is missing, corrupt or of the wrong kind; the message names the file."""


def plain(value: Any) -> Any:
    """``value`` as the plain types ``torch.load(weights_only=True)`` accepts: numpy scalars and arrays become
    Python numbers and lists, tuples lists, paths strings (dict keys become strings); tensors stay tensors."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor) or value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int)) else str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"checkpoint field of type {type(value).__name__} cannot be stored without pickling")


def numbers(metrics: dict) -> dict[str, float]:
    """The finite numbers of a (flat) metrics dict, as floats."""
    out = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


def save_checkpoint(path: str | Path, kind: str, *, config: dict, state: dict, info: dict | None = None,
                    metrics: dict | None = None) -> Path:
    """Write a checkpoint of the layout above, atomically (:func:`models.files.atomic_path`), so a server
    that polls the file never loads a half-written model."""
    import torch

    from models.files import atomic_path

    info = {"trained": time.strftime("%Y-%m-%dT%H:%M:%S"), **(info or {})}
    payload = plain({"format": FORMAT, "kind": kind, "config": config, "state": state, "info": info,
                     "metrics": numbers(metrics or {})})
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """Load a checkpoint of ``kind`` onto the CPU in the current layout; CheckpointError names the file.

    Never unpickles code: ``weights_only=True`` admits tensors and plain containers only, so a model file
    replaced by a crafted pickle is refused instead of run."""
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such model file (train one with `gazelabel train {kind}`)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable model file (only tensors and plain values are loaded; "
                              f"retrain it with `gazelabel train {kind}`): {reason}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (FORMAT, LEGACY_FORMAT):
        raise CheckpointError(f"{path}: not a GazeLabel checkpoint (expected format {FORMAT})")
    if ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {ckpt.get('kind')!r} model, expected {kind!r}")
    if ckpt["format"] == LEGACY_FORMAT:
        ckpt = migrate(ckpt, path)
    missing = [k for k in SECTIONS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)} (retrain it with `gazelabel train {kind}`)")
    return ckpt


def _last(history: Any) -> dict:
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        return history[-1]
    return history if isinstance(history, dict) else {}


def migrate(ckpt: dict, path: str | Path = "checkpoint") -> dict:
    """A ``gazelabel.checkpoint/1`` checkpoint in the current layout (see module docstring).

    The first layout kept the weights under ``state_dict`` and family facts at the top level: the
    classifier its ``thresholds``, ``synthetic``, ``dataset`` and ``summary``; the scanpath model a flat
    network config, ``dataset`` (a dict) and ``training``; the report model its flat train config plus
    ``prefix``, ``lora_targets`` and ``lm_dir``, ``history``, ``synthetic`` and ``dataset``."""
    import torch

    kind, state = ckpt.get("kind"), ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: old checkpoint without weights (retrain it with `gazelabel train {kind}`)")
    if kind == "classifier":
        summary = ckpt.get("summary") or {}
        thresholds = ckpt.get("thresholds")
        return {"format": FORMAT, "kind": kind, "config": ckpt.get("config") or {},
                "state": {"model": state, **({"thresholds": torch.tensor(thresholds, dtype=torch.float64)}
                                             if thresholds is not None else {})},
                "info": {"synthetic": bool(ckpt.get("synthetic", summary.get("synthetic", False))),
                         "dataset": ckpt.get("dataset", summary.get("dataset")), "migrated_from": LEGACY_FORMAT},
                "metrics": numbers({**_last(summary.get("history")), **summary})}
    if kind == "scanpath":
        dataset = ckpt.get("dataset") or {}
        training = ckpt.get("training") or {}
        train_keys = ("epochs", "batch_size", "lr", "l1_weight", "seed", "text")
        return {"format": FORMAT, "kind": kind,
                "config": {"model": ckpt.get("config") or {}, "train": {k: training[k] for k in train_keys if k in training}},
                "state": {"model": state},
                "info": {"synthetic": bool(dataset.get("synthetic", False)), "dataset": dataset.get("name"),
                         "migrated_from": LEGACY_FORMAT},
                "metrics": numbers({"train_loss": training.get("final_loss"), "val_loss": training.get("val_loss"),
                                    "seconds": training.get("seconds")})}
    if kind == "report":
        config = dict(ckpt.get("config") or {})
        derived = {k: config.pop(k) for k in ("prefix", "lora_targets", "lm_dir") if k in config}
        history = ckpt.get("history") or {}
        g2r, lm = history.get("gaze2report") or {}, history.get("lm") or {}
        return {"format": FORMAT, "kind": kind, "config": {"train": config, **derived}, "state": state,
                "info": {"synthetic": bool(ckpt.get("synthetic", False)), "dataset": ckpt.get("dataset"),
                         "iu_reports": ckpt.get("iu_reports"), "migrated_from": LEGACY_FORMAT},
                "metrics": numbers({"lm_val_loss": (lm.get("val_loss") or [None])[-1],
                                    "gaze2report_val_loss": (g2r.get("val_loss") or [None])[-1]})}
    raise CheckpointError(f"{path}: old checkpoint of unknown kind {kind!r}")


def config_of(cls, values: dict | None, path: str | Path, section: str):
    """A config dataclass from a checkpoint section; CheckpointError names a field it does not know (a file
    from a newer version) instead of dropping it."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(cls.__dataclass_fields__))
    if unknown:
        raise CheckpointError(f"{path}: config.{section} has fields this version does not know ({', '.join(unknown)}); "
                              "update GazeLabel or retrain the model")
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: config.{section} is not valid ({e})") from None


__all__ = ["CheckpointError", "FORMAT", "config_of", "load_checkpoint", "migrate", "numbers", "plain", "save_checkpoint"]
