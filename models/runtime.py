"""Small runtime helpers shared by trainers and CLIs: device choice, seeding, home folder (checkpoints:
:mod:`models.checkpoint`)."""

from __future__ import annotations

import os
import random
from pathlib import Path


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
