"""One sentence per plan unit: the LM's training pairs and the read-back check of what it writes.

The language model never writes a whole report. Each unit of the plan (:func:`~models.report.templates.
render_sentences`) has a short control text (``"findings : possible pleural effusion @ left costophrenic
angle"``) and the LM writes one sentence for it. A whole-report prompt of ten keywords was mostly ignored
by our 1 M-parameter LM (CE-F1, micro over 14 findings, positive only: 0.42 against 0.87 for the templates); one short control per sentence is a
mapping it learns (unchecked CE-F1 0.87 on the same test; see README).

Training pairs come from real reports: each reference sentence is read by the labeler, and its control is
built from what the labeler found in it (positive -> "likely", uncertain -> "possible", negated -> "no"),
with a region when the case has an image (:func:`control_region`). A sentence without any CheXpert mention
becomes a "normal <topic>" control when it names an anatomy topic and affirms no other abnormality.

At inference :func:`check_sentence` reads the LM's sentence back with the same labeler and refuses it when
it does not say exactly what its unit says (the generator then samples again, and finally falls back to
the unit's template sentence), so the reports' clinical content is the plan's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from models.report.evidence import named_region
from models.report.prompt import LIKELY, NO, POSSIBLE, ReportPlan, Statement, control_text
from models.vocab import FINDING_REGIONS, FINDINGS, NEGATIVE, POSITIVE, UNCERTAIN

KEYWORD_OF_VALUE = {POSITIVE: LIKELY, UNCERTAIN: POSSIBLE, NEGATIVE: NO}
VALUE_OF_KEYWORD = {v: k for k, v in KEYWORD_OF_VALUE.items()}
# First match wins: "No acute osseous abnormality" is about bones, not the whole chest.
NORMAL_TOPICS: tuple[tuple[str, str], ...] = (
    ("bones", r"\b(osseous|bone|bony|skeletal|spine|thoracic spine|ribs?)\b"),
    ("lungs", r"\b(lungs?|airspace|pulmonary|parenchym\w*)\b"),
    ("pleura", r"\b(pleura\w*|costophrenic)\b"),
    ("heart", r"\b(heart|cardiac|cardiomediastinal|mediastin\w*|hilar|hila|silhouette)\b"),
    ("chest", r"\b(acute|cardiopulmonary|normal chest|active disease|disease)\b"),
)
# Parents CheXpert sets with their children: a sentence about consolidation may read as an opacity too.
IMPLIED = {"Lung Opacity": ("Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis")}


@dataclass
class ReferenceSentence:
    """One sentence of a reference report as the labeler read it."""

    section: str  # "findings" | "impression"
    text: str
    labels: dict[str, int] = field(default_factory=dict)  # mentioned findings only
    other_abnormal: bool = False

    @property
    def topic(self) -> str | None:
        """The normal topic of a sentence without CheXpert mentions, or None (not usable as "normal")."""
        if self.labels or self.other_abnormal:
            return None
        return topic_of(self.text)


def topic_of(text: str) -> str | None:
    """The first :data:`NORMAL_TOPICS` entry ``text`` names, or None."""
    low = text.lower()
    return next((name for name, pattern in NORMAL_TOPICS if re.search(pattern, low)), None)


def read_references(reports: Sequence[tuple[str, str]], labeler) -> list[list[ReferenceSentence]]:
    """``[(findings, impression), ...]`` -> per report, its sentences with their labels (batched)."""
    texts = [t for pair in reports for t in pair]
    read = labeler.sentences_many([t or "" for t in texts])
    out = []
    for i in range(len(reports)):
        sents = []
        for section, labelled in (("findings", read[2 * i]), ("impression", read[2 * i + 1])):
            sents += [ReferenceSentence(section, s.text.strip(), dict(s.labels), s.other_abnormal)
                      for s in labelled if s.text.strip()]
        out.append(sents)
    return out


def side_of(text: str) -> str | None:
    """"left" or "right" when the text names exactly one side."""
    sides = {w for w in ("left", "right") if re.search(rf"\b{w}\b", text.lower())}
    return sides.pop() if len(sides) == 1 else None


def control_region(finding: str, sentence: str, plan_region: str | None) -> str | None:
    """The region a training control gives a finding: the one the sentence names, else the plan's (from
    boxes or gaze) when it is on the side the sentence names, else the finding's usual region on that side.
    A control that contradicts its sentence would teach the LM to ignore the region."""
    named = named_region(sentence)
    if named:
        return named
    side = side_of(sentence)
    if side is None or (plan_region and plan_region.startswith(side)):
        return plan_region
    return next((r for r in FINDING_REGIONS.get(finding, ()) if r.startswith(side)), None)


def training_pairs(sentences: Sequence[ReferenceSentence], plan: ReportPlan | None = None) -> list[tuple[str, str]]:
    """``(control, sentence)`` pairs of one report; with ``plan`` (from the case's labels, boxes and gaze)
    positive and uncertain statements get regions (:func:`control_region`). Sentences that fit no control
    are left out."""
    regions = {s.finding: s.region for s in plan.statements} if plan is not None else None
    pairs = []
    for ref in sentences:
        if ref.labels:
            statements = [Statement(f, KEYWORD_OF_VALUE[v], 0.0) for f, v in ref.labels.items() if f in FINDINGS]
            for st in statements:
                if regions is not None and st.keyword != NO:
                    st.region = control_region(st.finding, ref.text, regions.get(st.finding))
            pairs.append((control_text(ref.section, statements), ref.text))
        elif ref.topic is not None:
            pairs.append((control_text(ref.section, (), ref.topic), ref.text))
    return pairs


def check_sentence(text: str, statements: Sequence[Statement], labeler, topic: str | None = None) -> str | None:
    """None when the labeler reads ``text`` as saying exactly ``statements`` (a normal unit: nothing
    abnormal, and about ``topic``); otherwise the reason it does not."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    # One word is a sentence only as a terse impression item ("Cardiomegaly.", as the templates write them).
    if not words or (len(words) == 1 and not re.fullmatch(r"[A-Z][a-z]+\.", text.strip())):
        return "not a sentence"
    if any(a == b for a, b in zip(words, words[1:])):
        return "a word repeated"
    if not statements and topic is not None and topic_of(text) != topic:
        return f"not about the {topic}"
    labels = labeler.label(text)  # report-level rules too (CHF -> uncertain cardiomegaly, No Finding)
    wanted = {s.finding: VALUE_OF_KEYWORD[s.keyword] for s in statements}
    for finding, value in wanted.items():
        if labels.get(finding) != value:
            return f"{finding}: wanted {value}, read {labels.get(finding)}"
    affirmed = {f for f, v in wanted.items() if v != NEGATIVE}
    for finding, value in labels.items():
        if finding == "No Finding" or finding in wanted or value == NEGATIVE:
            continue
        if not affirmed & set(IMPLIED.get(finding, ())):
            return f"{finding}: not in the plan, read {value}"
    if not affirmed - {"Support Devices"} and labels.get("No Finding") != POSITIVE:
        return "an abnormality the plan does not have"
    said, named = side_of(text), named_region(text)
    for s in statements:
        if not s.region or s.keyword == NO:
            continue
        if named and named != s.region:  # the evidence would point elsewhere than the sentence
            return f"{s.finding}: the plan says {s.region}, the sentence says {named}"
        side = side_of(s.region)
        if side and said and said != side:
            return f"{s.finding}: the plan says {side}, the sentence says {said}"
        if side and re.search(r"\bbilateral", text.lower()):
            return f"{s.finding}: the plan says {side}, the sentence says bilateral"
    return None
