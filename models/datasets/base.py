"""A CaseSource: the cases of one dataset with their splits, whatever the on-disk format."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from models.schema import Case


class DatasetError(ValueError):
    """A dataset folder or file is malformed; the message names the file, the row and the problem."""


def hash_split(case_id: str, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> str:
    """Deterministic train/val/test assignment from the id alone (stable across machines and runs)."""
    u = int(hashlib.sha1(case_id.encode(), usedforsecurity=False).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def count_drop(dropped: dict[str, int] | None, reason: str, n: int = 1) -> None:
    """Add ``n`` to ``dropped[reason]`` (readers share one dict per dataset; None = not counted)."""
    if dropped is not None and n:
        dropped[reason] = dropped.get(reason, 0) + n


@dataclass
class CaseSource:
    """Cases read from one dataset.

    Attributes:
        name: dataset name ("phantom", "reflacx", "egd-cxr", "mimic-eye", "iu-xray").
        cases: one Case per image (or per reading); ``case.image.path`` is absolute, or "" when the dataset
            ships no pixels (IU X-ray reports).
        splits: split name -> case ids. Cases missing from every split count as "train".
        synthetic: True for generated data; outputs derived from it must say so.
        warnings: one line per problem met while reading (file, row, what was done about it).
        dropped: what the reader left out on purpose, ``reason -> count`` (calibration screens, off-image
            fixations, discarded readings ...), so that ``gazelabel inspect`` can say what is missing and why.
    """

    name: str
    cases: list[Case]
    splits: dict[str, list[str]] = field(default_factory=dict)
    synthetic: bool = False
    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cases)

    def by_id(self) -> dict[str, Case]:
        return {c.id: c for c in self.cases}

    def split(self, name: str) -> list[Case]:
        """Cases of one split; without explicit splits, a deterministic hash split of the ids."""
        if self.splits:
            ids = set(self.splits.get(name, []))
            if name == "train":
                listed = {i for v in self.splits.values() for i in v}
                return [c for c in self.cases if c.id in ids or c.id not in listed]
            return [c for c in self.cases if c.id in ids]
        return [c for c in self.cases if hash_split(c.id) == name]
