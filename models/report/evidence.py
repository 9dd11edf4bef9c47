"""Evidence links: every report sentence -> its finding, region, box index and supporting fixation indices.

Sentence indices count over ``report_sentences(report)``: the FINDINGS sentences, then the IMPRESSION
sentences. Every sentence comes from a plan unit that says which statements it makes (a generated sentence
was read back by the labeler before it was kept), so it is linked to those statements' finding, region, box
and fixations. A normal sentence ("The lungs are clear.") is linked to the anatomy it names and the
fixations that landed there.
"""

from __future__ import annotations

import re
from typing import Sequence

from models.report.prompt import Statement, _inside
from models.schema import Evidence, Fixation, Report
from models.vocab import REGION_NAMES, region_at, region_box_pixels

LUNG_ZONES = ("right upper zone", "left upper zone", "right mid zone", "left mid zone", "right lower zone",
              "left lower zone")
# Anatomy words of sentences without a finding -> the regions whose fixations support them.
ANATOMY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lung", LUNG_ZONES), ("pulmonary", LUNG_ZONES), ("airspace", LUNG_ZONES),
    ("heart", ("heart",)), ("cardiac", ("heart",)), ("mediastin", ("mediastinum", "aortic knob")),
    ("hil", ("right hilum", "left hilum")), ("pleura", ("right costophrenic angle", "left costophrenic angle")),
    ("costophrenic", ("right costophrenic angle", "left costophrenic angle")), ("pneumothorax", LUNG_ZONES[:2]),
    ("bone", ("bones and soft tissues",)), ("osseous", ("bones and soft tissues",)),
    ("diaphragm", ("right hemidiaphragm", "left hemidiaphragm")), ("trachea", ("trachea",)),
)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s.strip()]


def report_sentences(report: Report) -> list[str]:
    """The sentences evidence indices refer to: FINDINGS sentences then IMPRESSION sentences."""
    return split_sentences(report.findings) + split_sentences(report.impression)


def named_region(sentence: str) -> str | None:
    """The longest region name written in the sentence, if any."""
    low = sentence.lower()
    hits = [r for r in REGION_NAMES if r in low]
    return max(hits, key=len) if hits else None


def fixations_in_regions(fixations: Sequence[Fixation], regions: Sequence[str], width: int, height: int) -> list[int]:
    wanted = set(regions)
    return [i for i, f in enumerate(fixations) if region_at(f.x, f.y, width, height) in wanted
            or any(_inside(f, region_box_pixels(r, width, height)) for r in wanted if r != "bones and soft tissues")]


def statement_evidence(index: int, st: Statement) -> Evidence:
    return Evidence(sentence=index, finding=st.finding, region=st.region, box=st.box, fixations=list(st.fixations))


def anatomy_evidence(index: int, sentence: str, fixations, width: int, height: int) -> Evidence:
    low = sentence.lower()
    regions: tuple[str, ...] = ()
    for word, regs in ANATOMY_WORDS:
        if word in low:
            regions = regs
            break
    region = named_region(sentence) or (regions[0] if len(regions) == 1 else None)
    support = fixations_in_regions(fixations, [region] if region else regions, width, height) if regions or region else []
    return Evidence(sentence=index, finding=None, region=region, box=None, fixations=support)


def unit_evidence(units, fixations: Sequence[Fixation], width: int, height: int) -> list[Evidence]:
    """Evidence of a report made of plan units (:func:`~models.report.templates.render_sentences`), whoever
    wrote each sentence: one link per statement the unit says, or its anatomy for a normal sentence."""
    out: list[Evidence] = []
    index = 0
    for unit in units:
        for _ in split_sentences(unit.text):
            if unit.statements:
                out += [statement_evidence(index, st) for st in unit.statements]
            else:
                out.append(anatomy_evidence(index, unit.text, fixations, width, height))
            index += 1
    return out


def check_evidence(report: Report, n_boxes: int, n_fixations: int) -> None:
    """ValueError when an evidence index points outside the report's sentences, the boxes or the fixations."""
    n_sent = len(report_sentences(report))
    for k, ev in enumerate(report.evidence):
        if not 0 <= ev.sentence < n_sent:
            raise ValueError(f"evidence[{k}].sentence: {ev.sentence} but the report has {n_sent} sentences")
        if ev.box is not None and not 0 <= ev.box < n_boxes:
            raise ValueError(f"evidence[{k}].box: {ev.box} but there are {n_boxes} boxes")
        bad = [j for j in ev.fixations if not 0 <= j < n_fixations]
        if bad:
            raise ValueError(f"evidence[{k}].fixations: {bad[0]} but there are {n_fixations} fixations")
