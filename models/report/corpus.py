"""Report text for training and evaluating the LM: IU X-ray reports and a case store's reports.

IU X-ray reports come from the readers' :func:`models.datasets.iu_xray.read_iu_xray` (R2Gen's selection
rule, 2,955 reports, deterministic 7:1:2 hash split by study id: not R2Gen's random assignment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from models.schema import Case


@dataclass(frozen=True)
class TextReport:
    """One report: id, FINDINGS and IMPRESSION text, split name."""

    id: str
    findings: str
    impression: str
    split: str

    @property
    def text(self) -> str:
        return " ".join(s for s in (self.findings, self.impression) if s)


def iu_reports() -> list[TextReport]:
    """The 2,955 R2Gen-rule IU X-ray reports with their hash split; DatasetError when unavailable."""
    from models.datasets.iu_xray import read_iu_xray

    source = read_iu_xray()
    split_of = {cid: name for name, ids in source.splits.items() for cid in ids}
    return [TextReport(c.id, c.report.findings, c.report.impression, split_of.get(c.id, "train"))
            for c in source.cases]


def case_reports(cases: Iterable[Case], split: str) -> list[TextReport]:
    """Reports of the cases that have one, tagged with ``split``."""
    return [TextReport(c.id, c.report.findings, c.report.impression, split)
            for c in cases if c.report is not None and c.report.text.strip()]


def split_cases(cases: Sequence[Case], splits: dict) -> dict[str, list[Case]]:
    """Store cases with a report, by split (train / val / test)."""
    out = {"train": [], "val": [], "test": []}
    where = {cid: name for name, ids in (splits or {}).items() for cid in ids}
    from models.datasets.base import hash_split

    for c in cases:
        if c.report is None or not c.report.text.strip():
            continue
        out.setdefault(where.get(c.id) or hash_split(c.id), []).append(c)
    return out
