"""Path (a), step 1: classifier probabilities + boxes + scanpath -> a structured plan -> prompt text.

A :class:`ReportPlan` holds one :class:`Statement` per finding the report should speak about: a
confidence keyword from the one decision rule (:mod:`models.decision`: positive -> "likely", uncertain ->
"possible", negative -> "no"), so the report agrees with the findings of the same answer; the anatomical
region (from the
finding's best box, else the finding's usual region the reader looked at longest), the box index and the
indices of the fixations that support it (inside the box, else inside the region; for a negative, those on
the finding's usual regions: the search that found nothing). The same plan is cut
into one-sentence units (:mod:`models.report.templates`), each with a short control text for the language
model (:func:`control_text`) and a deterministic template sentence, and it carries the evidence links of
both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from models.decision import NEGATIVE, POSITIVE, UNCERTAIN, DecisionRule
from models.schema import Box, Fixation
from models.vocab import FINDING_REGIONS, FINDINGS, canonical_finding, region_at, region_box_pixels

LIKELY, POSSIBLE, NO = "likely", "possible", "no"
KEYWORDS = {POSITIVE: LIKELY, UNCERTAIN: POSSIBLE, NEGATIVE: NO}
# Findings a normal report states as absent; other negatives are left out of the plan (reports don't list them).
ROUTINE_NEGATIVES = ("Pneumothorax", "Pleural Effusion", "Consolidation", "Cardiomegaly")
# Boxes are widened by this fraction of their size when collecting supporting fixations (gaze lands on edges).
BOX_MARGIN = 0.15


@dataclass
class Statement:
    """What the report will say about one finding, and what supports it."""

    finding: str
    keyword: str  # "likely" | "possible" | "no"
    probability: float
    region: str | None = None
    box: int | None = None  # index into the boxes given to build_plan
    fixations: list[int] = field(default_factory=list)  # indices into the fixations given to build_plan

    def prompt_words(self) -> str:
        words = f"{self.keyword} {self.finding.lower()}"
        return f"{words} @ {self.region}" if self.region and self.keyword != NO else words


@dataclass
class ReportPlan:
    """Ordered statements: positives (likely, then possible; by probability), then routine negatives."""

    statements: list[Statement]
    visited_regions: list[str] = field(default_factory=list)

    @property
    def abnormal(self) -> list[Statement]:
        return [s for s in self.statements if s.keyword != NO]



def control_text(section: str, statements: Sequence[Statement] = (), topic: str | None = None) -> str:
    """What the LM reads before writing one sentence: ``"findings : likely pleural effusion @ left
    costophrenic angle"``, ``"findings : no pneumothorax ; no pleural effusion"``, ``"findings : normal
    lungs"``, ``"impression : normal"`` (topic ``"chest"``). Statements go in vocabulary order."""
    if statements:
        ordered = sorted(statements, key=lambda s: FINDINGS.index(s.finding))
        body = " ; ".join(s.prompt_words() for s in ordered)
    else:
        body = "normal" if topic in (None, "chest") else f"normal {topic}"
    return f"{section} : {body}"


def keyword_for(finding: str, probability: float, rule: DecisionRule | None = None) -> str:
    """"likely", "possible" or "no": the decision rule's positive, uncertain or negative."""
    return KEYWORDS[(rule or DecisionRule.uniform()).label(finding, probability)]


def _inside(f: Fixation, box: tuple[float, float, float, float], margin: float = 0.0) -> bool:
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    return x1 - mx <= f.x <= x2 + mx and y1 - my <= f.y <= y2 + my


def _validate_scores(scores: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(scores, Mapping):
        raise ValueError(f"classifier scores must be a mapping finding -> probability, got {type(scores).__name__}")
    out = {}
    for name, p in scores.items():
        try:
            finding = canonical_finding(name)
        except KeyError as e:
            raise ValueError(f"classifier scores: {e.args[0]}") from None
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"classifier scores[{name!r}]: a probability in [0, 1] is required, got {p}")
        out[finding] = p
    return out


def build_plan(scores: Mapping[str, float], boxes: Sequence[Box], fixations: Sequence[Fixation],
               width: int, height: int, *, rule: DecisionRule | None = None,
               routine_negatives: Sequence[str] = ROUTINE_NEGATIVES, with_regions: bool = True) -> ReportPlan:
    """Turn one image's classifier output and scanpath into a :class:`ReportPlan`.

    Args:
        scores: finding -> probability (missing findings count as 0).
        boxes: predicted (or annotated) boxes in original pixels.
        fixations: the scanpath (recorded or predicted) in original pixels and seconds.
        width, height: original image size in pixels.
        rule: the decision rule of the scores (a classifier's validated thresholds); default
            :meth:`DecisionRule.uniform` for scores that have none.
        with_regions: False leaves regions out (text-only data such as IU X-ray reports has no image).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    probs = _validate_scores(scores)
    dwell: dict[str, float] = {}
    for f in fixations:
        name = region_at(f.x, f.y, width, height)
        dwell[name] = dwell.get(name, 0.0) + max(f.duration, 1e-3)
    visited = [r for r, _ in sorted(dwell.items(), key=lambda kv: -kv[1])]

    statements = []
    for finding in FINDINGS:
        if finding == "No Finding":
            continue
        p = probs.get(finding, 0.0)
        kw = keyword_for(finding, p, rule)
        if kw == NO:
            if finding in routine_negatives:
                # A negative is supported by the search: the fixations on the finding's usual regions.
                looked_at = [] if not with_regions else [
                    j for j, f in enumerate(fixations)
                    if any(_inside(f, region_box_pixels(r, width, height)) for r in FINDING_REGIONS.get(finding, ()))]
                statements.append(Statement(finding, NO, p, fixations=looked_at))
            continue
        st = Statement(finding, kw, p)
        if not with_regions:
            statements.append(st)
            continue
        own = [(i, b) for i, b in enumerate(boxes) if b.finding == finding]
        if own:
            st.box, box = max(own, key=lambda ib: ib[1].score if ib[1].score is not None else 0.0)
            cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
            st.region = box.region or region_at(cx, cy, width, height)
            st.fixations = [j for j, f in enumerate(fixations) if _inside(f, box.xyxy, BOX_MARGIN)]
        else:
            usual = FINDING_REGIONS.get(finding, ())
            if usual:
                # The usual region the reader dwelt on longest; the first usual one if none was looked at.
                looked = [r for r in visited if r in usual]
                st.region = looked[0] if looked else usual[0]
                rb = region_box_pixels(st.region, width, height)
                st.fixations = [j for j, f in enumerate(fixations) if _inside(f, rb)]
        statements.append(st)
    order = {LIKELY: 0, POSSIBLE: 1, NO: 2}
    statements.sort(key=lambda s: (order[s.keyword], -s.probability if s.keyword != NO else FINDINGS.index(s.finding)))
    return ReportPlan(statements, visited)


def noisy_scores(labels: Mapping[str, int], rng, noise: float = 0.15) -> dict[str, float]:
    """Classifier-like probabilities from CheXpert labels: 1 -> 0.85, -1 -> 0.55, else 0.1, plus N(0, noise),
    clipped to [0, 1]. ``rng`` is a ``numpy.random.Generator``. Used to train the LM on prompts as imperfect as
    a classifier's, and as the simulated classifier of the benchmark."""
    out = {}
    for f in FINDINGS:
        if f == "No Finding":
            continue
        v = labels.get(f, 0)
        base = 0.85 if v == 1 else 0.55 if v == -1 else 0.1
        out[f] = float(min(max(base + rng.normal(0.0, noise), 0.0), 1.0))
    return out


def plan_from_labels(labels: Mapping[str, int], boxes: Sequence[Box] = (), fixations: Sequence[Fixation] = (),
                     width: int = 1, height: int = 1, **kwargs) -> ReportPlan:
    """A plan from CheXpert labels (training prompts): 1 -> "likely", -1 -> "possible", else "no"."""
    as_scores = {f: 0.9 if v == 1 else 0.55 if v == -1 else 0.05 for f, v in labels.items() if f != "No Finding"}
    return build_plan(as_scores, boxes, fixations, width, height, **kwargs)
