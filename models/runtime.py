"""Small runtime helpers shared by trainers and CLIs: device choice, seeding, checkpoints, home folder."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

CHECKPOINT_FORMAT = "gazelabel.checkpoint/1"


class CheckpointError(ValueError):
    """A model file is missing, corrupt or of the wrong kind; the message names the file."""


def home() -> Path:
    """Where generated data and default models live: ``$GAZELABEL_HOME`` or ``./.gazelabel``."""
    return Path(os.environ.get("GAZELABEL_HOME", ".gazelabel")).resolve()


def resolve_device(name: str = "auto"):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"--device {name!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: CUDA is not available on this machine")
    return dev


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


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


def save_checkpoint(path: str | Path, kind: str, config: dict, state_dict: dict, **extra: Any) -> Path:
    """Save ``{"format", "kind", "config", "state_dict", ...extra}`` with tensors and plain values only (so it
    loads with ``weights_only=True``), atomically (:func:`models.files.atomic_path`) so a server that polls the
    file never loads a half-written model."""
    import torch

    from models.files import atomic_path

    payload = plain({"format": CHECKPOINT_FORMAT, "kind": kind, "config": config, "state_dict": state_dict, **extra})
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """Load a checkpoint of ``kind`` onto the CPU; CheckpointError names the file and the problem.

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
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a GazeLabel checkpoint (expected format {CHECKPOINT_FORMAT})")
    if ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {ckpt.get('kind')!r} model, expected {kind!r}")
    return ckpt
