"""What a training returns (:meth:`models.families.ModelFamily.train`).

Its own module so that each family's trainer can return one without importing the family registry (the
registry imports the families' config modules; the reverse would be an import cycle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TrainResult:
    """What a training wrote: the artifact, its numbers and which of them measures the model."""

    path: Path
    metrics: dict[str, float]
    key_metric: str
    info: dict = field(default_factory=dict)

    @property
    def key_value(self) -> float:
        return float(self.metrics.get(self.key_metric, math.nan))


__all__ = ["TrainResult"]
