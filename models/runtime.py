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


def save_checkpoint(path: str | Path, kind: str, config: dict, state_dict: dict, **extra: Any) -> Path:
    """Save ``{"format", "kind", "config", "state_dict", ...extra}``; written atomically (tmp + rename) so
    a server that polls the file never loads a half-written model."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "kind": kind, "config": config, "state_dict": state_dict, **extra}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """Load a checkpoint of ``kind`` onto the CPU; CheckpointError names the file and the problem."""
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such model file (train one with `gazelabel train {kind}`)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable model file ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a GazeLabel checkpoint (expected format {CHECKPOINT_FORMAT})")
    if ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {ckpt.get('kind')!r} model, expected {kind!r}")
    return ckpt
