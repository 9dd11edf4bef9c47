"""Small runtime helpers shared by trainers and CLIs: device choice, seeding, home folder (checkpoints:
:mod:`models.checkpoint`)."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path


def home() -> Path:
    """Where generated data and default models live: ``$GAZELABEL_HOME`` or ``./.gazelabel``."""
    return Path(os.environ.get("GAZELABEL_HOME", ".gazelabel")).resolve()


DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:\d{1,2})?")


def check_device_name(name) -> str:
    """``name`` if it is a device a config may hold (auto, cpu, mps, cuda, cuda:N), else ValueError naming it;
    configs check it when built so that a bad value is refused before a training starts (no torch import)."""
    if not isinstance(name, str) or not DEVICE_NAME.fullmatch(name):
        raise ValueError(f"device must be auto, cpu, mps, cuda or cuda:N, got {name!r}")
    return name


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
