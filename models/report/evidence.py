"""Evidence links: every report sentence -> its finding, region, box index and supporting fixation indices.

Sentence indices count over ``report_sentences(report)``: the FINDINGS sentences, then the IMPRESSION
sentences. Template sentences come with their plan statement; generated sentences are read back with the
labeler (which findings they mention) and matched to the plan's statement of that finding; a region named
in the sentence ("in the left lower zone") wins over the plan's. A sentence that mentions no finding ("The
lungs are clear.") is linked to the anatomy it names and the fixations that landed there.
"""

from __future__ import annotations

import re
from typing import Sequence

from models.report.prompt import BOX_MARGIN, ReportPlan, Statement, _inside
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


def link_generated(sentences: Sequence[str], plan: ReportPlan, fixations: Sequence[Fixation], boxes, width: int,
                   height: int) -> list[Evidence]:
    """Evidence for free text: at least one :class:`Evidence` per sentence (one per finding it mentions)."""
    from models.report.labeler import default_labeler

    by_finding = {s.finding: s for s in plan.statements}
    labeler = default_labeler()
    out: list[Evidence] = []
    for i, sentence in enumerate(sentences):
        mentioned = []
        for sl in labeler.sentences(sentence):
            mentioned += [f for f in sl.labels if f not in mentioned]
        if not mentioned:
            out.append(anatomy_evidence(i, sentence, fixations, width, height))
            continue
        region_in_text = named_region(sentence)
        for finding in mentioned:
            st = by_finding.get(finding)
            ev = statement_evidence(i, st) if st else Evidence(sentence=i, finding=finding)
            if region_in_text and region_in_text != ev.region:
                ev.region = region_in_text
                own = [j for j, b in enumerate(boxes) if b.finding == finding
                       and region_at((b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2, width, height) == region_in_text]
                ev.box = own[0] if own else None
                box = boxes[ev.box].xyxy if ev.box is not None else None
                ev.fixations = ([j for j, f in enumerate(fixations) if _inside(f, box, BOX_MARGIN)] if box
                                else fixations_in_regions(fixations, [region_in_text], width, height))
            out.append(ev)
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
