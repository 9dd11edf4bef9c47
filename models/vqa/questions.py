"""Questions about one radiograph: kinds, phrasings, the slot parser, the answer vocabulary and the QA
generator over Cases (no torch here).

A question has a *kind* (what is asked), *slots* (which findings or region it names) and a phrasing. Kinds, by
the question type they report under:

=============  ============  ==========================================  =====================================
type           kind          slots                                       answers
=============  ============  ==========================================  =====================================
presence       presence      a finding                                   yes / no
location       region        a finding                                   a region of ``models.vocab``, none
location       side          a finding (one with a side)                 right / left / both / none
size           size          a finding                                   small / moderate / large / none
count          count         -                                           0 .. 6 (6 = six or more)
not_inspected  missed        -                                           the set of regions no fixation reached
not_inspected  inspected     a region                                    yes / no
comparison     both          two findings                                yes / no
comparison     larger        two findings                                one of the two findings
=============  ============  ==========================================  =====================================

Every answer is computed from a Case by :func:`answer_from_case`: the generator uses it on dataset records
(ground truth), the rule baseline on the pipeline's predicted Case. What it reads:

- presence, count, both: ``case.findings`` (CheXpert 1 = present; 0 absent; uncertain -1 and unmentioned
  findings are not asked about in ground truth);
- region, side, size, larger: ``case.boxes`` of the finding (phantom boxes, REFLACX ellipses' boxes, MIMIC-Eye
  boxes, whatever the Case holds). Size is the finding's box area over the chest box (``extra.chest_box``, else
  the image), cut at the terciles of that finding on the SYNTHETIC phantom (:data:`SIZE_CUTS`);
- missed, inspected: the fixations (the gaze the question is asked about: a recorded reader's or a predicted
  scanpath) through :func:`models.scanpath.coverage.coverage`, the definition the pipeline's ``case.coverage``
  uses.

Phrasings come in three disjoint groups per kind: ``train`` (the model learns them), ``val`` (chooses the
out-of-vocabulary threshold) and ``test`` (evaluation), so the test measures language generalisation, not
memorised templates. All QA data made here from the phantom is SYNTHETIC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from models.schema import ANSWER_TYPES, Case, Fixation
from models.vocab import FINDINGS, REGION_NAMES, region_box_pixels

CANNOT_ANSWER = "cannot answer"
KINDS = ("presence", "region", "side", "size", "count", "missed", "inspected", "both", "larger")
TYPE_OF_KIND = {"presence": "presence", "region": "location", "side": "location", "size": "size", "count": "count",
                "missed": "not_inspected", "inspected": "not_inspected", "both": "comparison", "larger": "comparison"}
assert set(TYPE_OF_KIND.values()) == set(ANSWER_TYPES)
# Slots each kind takes, in order: "finding" or "region".
SLOTS = {"presence": ("finding",), "region": ("finding",), "side": ("finding",), "size": ("finding",), "count": (),
         "missed": (), "inspected": ("region",), "both": ("finding", "finding"), "larger": ("finding", "finding")}
MAX_SLOTS = 3

SIDES = ("right", "left", "both")
SIZES = ("small", "moderate", "large")
MAX_COUNT = 6
COUNTS = tuple(str(i) for i in range(MAX_COUNT + 1))
NONE = "none"
# The closed answer vocabulary of the answer head (the region set of "missed" has its own head).
ANSWERS: tuple[str, ...] = ("yes", "no", NONE) + FINDINGS + REGION_NAMES + SIDES + SIZES + COUNTS
ANSWER_INDEX = {a: i for i, a in enumerate(ANSWERS)}
SPACES: dict[str, tuple[str, ...]] = {
    "presence": ("yes", "no"), "inspected": ("yes", "no"), "both": ("yes", "no"),
    "region": REGION_NAMES + (NONE,), "side": SIDES + (NONE,), "size": SIZES + (NONE,), "count": COUNTS,
    "larger": FINDINGS, "missed": (),
}
SPATIAL_FINDINGS = tuple(f for f in FINDINGS if f != "No Finding")
LATERAL = {r: ("right" if r.startswith("right ") else "left") for r in REGION_NAMES if r.startswith(("right ", "left "))}
# Findings this model does not lateralise (their boxes sit in midline or whole-image regions).
NO_SIDE = ("Enlarged Cardiomediastinum", "Cardiomegaly", "Fracture", "Support Devices")

# Size words: the finding's total box area over the chest-box area, cut at the finding's terciles. Measured on
# 600 SYNTHETIC phantom images (seed 123, 512 px; ``size_cuts`` below recomputes them). A finding missing here
# uses DEFAULT_SIZE_CUTS.
SIZE_CUTS: dict[str, tuple[float, float]] = {
    "Atelectasis": (0.0065, 0.0085), "Cardiomegaly": (0.1723, 0.1802), "Consolidation": (0.0304, 0.0392),
    "Edema": (0.1479, 0.1527), "Enlarged Cardiomediastinum": (0.1195, 0.1224), "Lung Lesion": (0.0031, 0.0074),
    "Lung Opacity": (0.011, 0.0518), "Pleural Effusion": (0.0085, 0.016), "Pleural Other": (0.0125, 0.0131),
    "Pneumonia": (0.031, 0.0398), "Pneumothorax": (0.0525, 0.0607),
}
DEFAULT_SIZE_CUTS = (0.01, 0.05)
# Findings without a size word: a device has no size to grade, and the phantom draws every fracture the same size.
NO_SIZE = ("Fracture", "Support Devices")

# ------------------------------------------------------------------------------------------ phrasings
PHRASINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "presence": {
        "train": ("Is there any {f}?", "Does the image show {f}?", "Is {f} present?", "Can {f} be seen?",
                  "Do you see {f}?", "Is {f} visible on this radiograph?", "Does this chest X-ray have {f}?"),
        "val": ("Any evidence of {f}?", "Is {f} seen on this film?"),
        "test": ("Are there signs of {f} in this image?", "Would you say {f} is present?",
                 "Does the patient have {f} on this study?"),
    },
    "region": {
        "train": ("Where is the {f}?", "In which region is the {f}?", "Which zone contains the {f}?",
                  "Where is the {f} located?", "In what part of the chest is the {f}?", "Point to the region of the {f}."),
        "val": ("Which anatomical region shows the {f}?", "Where can the {f} be found?"),
        "test": ("Where in the chest do you see the {f}?", "Name the region where the {f} lies.",
                 "What area is affected by the {f}?"),
    },
    "side": {
        "train": ("Which side is the {f} on?", "Is the {f} on the left or the right?", "On which side is the {f}?",
                  "Which lung has the {f}?", "Left, right or both: where is the {f}?", "What side does the {f} affect?"),
        "val": ("Which hemithorax contains the {f}?", "Is the {f} left-sided or right-sided?"),
        "test": ("Tell me the side of the {f}.", "Is the {f} unilateral or bilateral, and on which side?",
                 "Which side of the chest shows the {f}?"),
    },
    "size": {
        "train": ("How large is the {f}?", "What is the size of the {f}?", "How big is the {f}?",
                  "How extensive is the {f}?", "Is the {f} small, moderate or large?", "How severe is the {f}?"),
        "val": ("What is the extent of the {f}?", "Grade the size of the {f}."),
        "test": ("How much of the chest does the {f} occupy?", "Would you call the {f} small or large?",
                 "Describe the size of the {f}."),
    },
    "count": {
        "train": ("How many findings are there?", "How many abnormalities does this image show?", "Count the findings.",
                  "How many abnormal findings are present?", "What is the number of findings?",
                  "How many different findings can you see?"),
        "val": ("How many pathologies are visible?", "Number of abnormalities on this film?"),
        "test": ("How many things are wrong on this radiograph?", "Count the abnormal findings in this study.",
                 "In total, how many findings does this X-ray have?"),
    },
    "missed": {
        "train": ("Which regions were not inspected?", "Which areas were not looked at?", "What regions did the reader miss?",
                  "Which parts of the image were never fixated?", "List the regions that were skipped.",
                  "Which regions got no fixation?"),
        "val": ("What areas were left unexamined?", "Which zones did the gaze not visit?"),
        "test": ("What areas did the reader skip?", "Which anatomical regions were overlooked?",
                 "Were any regions not examined, and which?"),
    },
    "inspected": {
        "train": ("Was the {r} inspected?", "Did the reader look at the {r}?", "Was the {r} looked at?",
                  "Did the gaze visit the {r}?", "Was the {r} fixated?", "Has the {r} been examined?"),
        "val": ("Did anyone check the {r}?", "Was there a fixation on the {r}?"),
        "test": ("Did the reader inspect the {r}?", "Was the {r} reviewed during the reading?",
                 "Did the eyes reach the {r}?"),
    },
    "both": {
        "train": ("Are both {f} and {g} present?", "Does the image show {f} as well as {g}?", "Is there {f} and also {g}?",
                  "Are {f} and {g} both visible?", "Do we see both {f} and {g}?", "Are {f} and {g} present together?"),
        "val": ("Is {f} accompanied by {g}?", "Can both {f} and {g} be seen?"),
        "test": ("Do {f} and {g} both appear?", "Does this film have {f} together with {g}?",
                 "Are {f} and {g} seen at the same time?"),
    },
    "larger": {
        "train": ("Which is larger, the {f} or the {g}?", "Which is bigger: {f} or {g}?",
                  "Which covers more area, the {f} or the {g}?", "Is the {f} or the {g} larger?",
                  "Which finding is larger, {f} or {g}?", "Of the {f} and the {g}, which is bigger?"),
        "val": ("Which takes up more space, the {f} or the {g}?", "Which is more extensive, {f} or {g}?"),
        "test": ("Is the {f} bigger than the {g}, or the other way round?",
                 "Compare the sizes of the {f} and the {g}: which is larger?",
                 "Between the {f} and the {g}, which one is larger?"),
    },
}
PHRASING_SPLITS = ("train", "val", "test")

# How findings and regions are written in questions (both phrasing groups use all of them). The parser
# matches the longest first, on word boundaries.
FINDING_SURFACES: dict[str, tuple[str, ...]] = {
    "No Finding": ("no finding", "normal"),
    "Enlarged Cardiomediastinum": ("enlarged cardiomediastinum", "widened mediastinum"),
    "Cardiomegaly": ("cardiomegaly", "enlarged cardiac silhouette"),
    "Lung Lesion": ("lung lesion", "nodule", "mass"),
    "Lung Opacity": ("lung opacity", "opacity"),
    "Edema": ("edema", "pulmonary edema"),
    "Consolidation": ("consolidation",),
    "Pneumonia": ("pneumonia",),
    "Atelectasis": ("atelectasis",),
    "Pneumothorax": ("pneumothorax",),
    "Pleural Effusion": ("pleural effusion", "effusion"),
    "Pleural Other": ("pleural thickening", "other pleural abnormality"),
    "Fracture": ("fracture",),
    "Support Devices": ("support devices", "support device"),
}
REGION_SURFACES: dict[str, tuple[str, ...]] = {name: (name,) for name in REGION_NAMES}
REGION_SURFACES.update({
    "right costophrenic angle": ("right costophrenic angle", "right cp angle"),
    "left costophrenic angle": ("left costophrenic angle", "left cp angle"),
    "aortic knob": ("aortic knob", "aortic arch"),
    "bones and soft tissues": ("bones and soft tissues", "bones"),
})
SURFACES: tuple[str, ...] = tuple(sorted({s for table in (FINDING_SURFACES, REGION_SURFACES) for v in table.values() for s in v}))


def _lexicon(table: dict[str, tuple[str, ...]]) -> list[tuple[re.Pattern, str, str]]:
    pairs = [(surface, name) for name, surfaces in table.items() for surface in surfaces]
    pairs.sort(key=lambda p: -len(p[0]))
    return [(re.compile(r"(?<![\w-])" + re.escape(s).replace(r"\ ", r"\s+") + r"(?![\w-])", re.IGNORECASE), s, n)
            for s, n in pairs]


_FINDING_LEXICON = _lexicon(FINDING_SURFACES)
_REGION_LEXICON = _lexicon(REGION_SURFACES)


@dataclass(frozen=True)
class Mention:
    """A finding or region named in a question: ``kind`` "finding" or "region", the canonical ``name``, the
    ``surface`` (lexicon spelling) and where it starts in the text."""

    kind: str
    name: str
    surface: str
    start: int


def find_mentions(question: str) -> list[Mention]:
    """Findings and regions the question names, in text order (findings first claim their words)."""
    text = str(question)
    taken = np.zeros(len(text) + 1, dtype=bool)
    out: list[Mention] = []
    for kind, lexicon in (("finding", _FINDING_LEXICON), ("region", _REGION_LEXICON)):
        for pattern, surface, name in lexicon:
            for m in pattern.finditer(text):
                if taken[m.start():m.end()].any():
                    continue
                taken[m.start():m.end()] = True
                out.append(Mention(kind, name, surface, m.start()))
    return sorted(out, key=lambda m: m.start)


SLOT_WORDS = {"finding": "finding", "region": "region"}


def masked(question: str) -> str:
    """The question with every finding and region it names replaced by the word "finding" / "region": what is
    asked without what it is asked about (its kind's template). The nearest-neighbour kind vote, the
    out-of-vocabulary test and the rule baseline's parser compare these."""
    text = " ".join(str(question).split())
    spans = []
    for kind, lexicon in (("finding", _FINDING_LEXICON), ("region", _REGION_LEXICON)):
        for pattern, _, _ in lexicon:
            for m in pattern.finditer(text):
                if not any(a < m.end() and m.start() < b for a, b, _ in spans):
                    spans.append((m.start(), m.end(), kind))
    for start, end, kind in sorted(spans, reverse=True):
        text = text[:start] + SLOT_WORDS[kind] + text[end:]
    return text


# ------------------------------------------------------------------------------------------ answers from a Case
def chest_area(case: Case) -> float:
    box = (case.extra or {}).get("chest_box")
    if isinstance(box, (list, tuple)) and len(box) == 4 and box[2] > box[0] and box[3] > box[1]:
        return float((box[2] - box[0]) * (box[3] - box[1]))
    return float(max(case.image.width, 1) * max(case.image.height, 1))


def finding_boxes(case: Case, finding: str) -> list[tuple[float, float, float, float]]:
    return [b.xyxy for b in case.boxes if b.finding == finding]


def area_fraction(case: Case, finding: str) -> float:
    """The finding's total box area over the chest-box area (0 without boxes)."""
    return sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in finding_boxes(case, finding)) / chest_area(case)


def size_word(finding: str, fraction: float) -> str:
    low, high = SIZE_CUTS.get(finding, DEFAULT_SIZE_CUTS)
    return SIZES[0] if fraction < low else SIZES[1] if fraction < high else SIZES[2]


def size_cuts(cases: Sequence[Case]) -> dict[str, tuple[float, float]]:
    """Terciles of :func:`area_fraction` per finding over the present findings with boxes (how
    :data:`SIZE_CUTS` was made)."""
    values: dict[str, list[float]] = {}
    for case in cases:
        for f in SPATIAL_FINDINGS:
            if case.findings.get(f) == 1 and finding_boxes(case, f):
                values.setdefault(f, []).append(area_fraction(case, f))
    return {f: tuple(round(float(q), 4) for q in np.quantile(v, [1 / 3, 2 / 3])) for f, v in sorted(values.items()) if len(v) >= 3}


def coverage_of(fixations: Sequence[Fixation], width: float, height: float) -> dict[str, list[str]]:
    """The pipeline's coverage of a scanpath (visited and missed regions)."""
    from models.scanpath.coverage import coverage

    return coverage(list(fixations), width, height)


@dataclass(frozen=True)
class Spec:
    """What a question asks: its kind and slots (canonical finding names, a region)."""

    kind: str
    findings: tuple[str, ...] = ()
    region: str | None = None

    @property
    def type(self) -> str:
        return TYPE_OF_KIND[self.kind]


@dataclass
class Truth:
    """The answer a Case gives to a :class:`Spec`: ``answer`` (a word of :data:`ANSWERS`, or for "missed" the
    regions joined by ", " or "none"), ``regions`` (the missed set), ``boxes`` (the evidence in original pixels:
    the asked finding's boxes, or the asked region's box)."""

    answer: str
    regions: tuple[str, ...] = ()
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)


def missed_text(regions: Sequence[str]) -> str:
    return ", ".join(regions) if regions else NONE


def _present(value, strict: bool) -> bool | None:
    if value == 1:
        return True
    if value == 0 or (value is None and not strict):
        return False
    if value == -1 and not strict:
        return True  # the rule treats an uncertain call as present (it has a box)
    return None  # uncertain or unmentioned: no ground truth


def answer_from_case(spec: Spec, case: Case, fixations: Sequence[Fixation] | None = None, *,
                     strict: bool = True) -> Truth | None:
    """The answer ``case`` gives to ``spec``.

    Args:
        fixations: the gaze "missed"/"inspected" are about (default ``case.fixations``).
        strict: ground truth (None whenever the Case does not settle the answer: an uncertain finding, boxes in
            two regions, a size without boxes ...); ``strict=False`` is the rule baseline, which always answers
            from what a predicted Case holds (uncertain = present, the highest-scoring box, the box centre's
            side).
    """
    w, h = case.image.width, case.image.height
    if spec.kind == "count":
        values = [case.findings.get(f) for f in SPATIAL_FINDINGS]
        if strict and -1 in values:
            return None  # an uncertain finding: the count is not settled
        n = sum(1 for v in values if v == 1 or (v == -1 and not strict))
        return Truth(COUNTS[min(n, MAX_COUNT)])
    if spec.kind in ("missed", "inspected"):
        fix = case.fixations if fixations is None else fixations
        if not fix or not (w and h):
            return None
        cov = coverage_of(fix, w, h)
        if spec.kind == "missed":
            return Truth(missed_text(cov["missed"]), tuple(cov["missed"]))
        return Truth("yes" if spec.region in cov["visited"] else "no", boxes=[region_box_pixels(spec.region, w, h)])
    if spec.kind == "both":
        a, b = (_present(case.findings.get(f), strict) for f in spec.findings)
        if a is None or b is None:
            return None
        return Truth("yes" if a and b else "no")
    finding = spec.findings[0]
    value = case.findings.get(finding)
    present = _present(value, strict)
    boxes = sorted((b for b in case.boxes if b.finding == finding), key=lambda b: -(b.score or 0.0))
    if spec.kind == "presence":
        return None if present is None else Truth("yes" if present else "no", boxes=[b.xyxy for b in boxes] if present else [])
    if spec.kind == "larger":
        g = spec.findings[1]
        pf, pg = present, _present(case.findings.get(g), strict)
        af, ag = area_fraction(case, finding), area_fraction(case, g)
        if strict:
            if not (pf and pg) or not af or not ag or max(af, ag) < 1.5 * min(af, ag):
                return None
        winner = finding if (af, bool(pf)) >= (ag, bool(pg)) else g
        return Truth(winner, boxes=finding_boxes(case, winner))
    if present is None or (strict and ((spec.kind == "side" and finding in NO_SIDE) or
                                       (spec.kind == "size" and finding in NO_SIZE))):
        return None
    if not present:
        return Truth(NONE)
    if not boxes:
        return None if strict else Truth(NONE)
    xyxy = [b.xyxy for b in boxes]
    if spec.kind == "region":
        regions = {b.region for b in boxes}
        if strict and (len(regions) != 1 or None in regions):
            return None
        return Truth(boxes[0].region or NONE, boxes=xyxy if strict else xyxy[:1])
    if spec.kind == "side":
        sides = {LATERAL.get(b.region) for b in boxes}
        if strict:
            if None in sides:
                return None
        else:
            sides = {LATERAL.get(b.region) or ("right" if (b.x1 + b.x2) / 2 < w / 2 else "left") for b in boxes}
        return Truth("both" if len(sides) > 1 else sides.pop(), boxes=xyxy)
    if spec.kind == "size":
        return Truth(size_word(finding, area_fraction(case, finding)), boxes=xyxy)
    raise ValueError(f"unknown question kind {spec.kind!r}")


# ------------------------------------------------------------------------------------------ the generator
@dataclass
class QAItem:
    """One generated question about one image (before phrasing).

    ``gaze``: index into the image's gaze sources for "missed"/"inspected" (their truth depends on it), None for
    the others. ``surfaces``: how each slot is written. ``truth``: the answer and its evidence."""

    case_id: str
    spec: Spec
    truth: Truth
    surfaces: tuple[str, ...] = ()
    gaze: int | None = None

    @property
    def kind(self) -> str:
        return self.spec.kind


def render(item: QAItem, phrasing: str) -> str:
    """The question text of ``item`` in one phrasing (a template of :data:`PHRASINGS`)."""
    slots = {}
    if item.spec.kind == "inspected":
        slots["r"] = item.surfaces[0]
    else:
        for key, surface in zip(("f", "g"), item.surfaces):
            slots[key] = surface
    text = phrasing.format(**slots)
    return text[0].upper() + text[1:]


def phrasings(kind: str, split: str) -> tuple[str, ...]:
    if split not in PHRASING_SPLITS:
        raise ValueError(f"phrasing split must be one of {', '.join(PHRASING_SPLITS)}, got {split!r}")
    return PHRASINGS[kind][split]


def _surface(name: str, rng: np.random.Generator, table) -> str:
    options = table[name]
    return options[int(rng.integers(len(options)))]


def generate(case: Case, gaze_sources: Sequence[Sequence[Fixation]] = (), *, seed: int = 0,
             negatives: float = 1.0) -> list[QAItem]:
    """Questions about one Case with their answers (:func:`answer_from_case`, strict).

    Per image: presence of every present finding and of about ``negatives`` times as many absent ones (at least
    two), region / side / size of every present finding whose boxes settle it (and of one absent finding:
    "none"), the count, two comparisons of each kind when the findings allow, and per gaze source one "missed"
    and up to two "inspected" questions (one missed region when there is one, one visited region).

    Args:
        gaze_sources: the scanpaths (recorded readers, predicted samples) the gaze questions are asked about.
        seed: picks the absent findings, the pairs and the spellings (with the case id, so reproducible).
    """
    rng = np.random.default_rng([int(seed), *[ord(c) for c in case.id[-12:]]])
    items: list[QAItem] = []

    def add(spec: Spec, gaze: int | None = None, fixations=None) -> None:
        truth = answer_from_case(spec, case, fixations)
        if truth is None:
            return
        if spec.kind == "inspected":
            surfaces = (_surface(spec.region, rng, REGION_SURFACES),)
        else:
            surfaces = tuple(_surface(f, rng, FINDING_SURFACES) for f in spec.findings)
        items.append(QAItem(case.id, spec, truth, surfaces, gaze))

    present = [f for f in SPATIAL_FINDINGS if case.findings.get(f) == 1]
    absent = [f for f in SPATIAL_FINDINGS if case.findings.get(f) == 0]
    n_neg = min(len(absent), max(2, int(round(negatives * len(present)))))
    chosen_absent = [absent[i] for i in rng.permutation(len(absent))[:n_neg]]
    for f in present + chosen_absent:
        add(Spec("presence", (f,)))
    for kind in ("region", "side", "size"):
        for f in present:
            add(Spec(kind, (f,)))
        if absent:
            add(Spec(kind, (absent[int(rng.integers(len(absent)))],)))
    add(Spec("count"))
    known = present + absent
    for _ in range(2):
        if len(known) >= 2:
            a, b = rng.choice(len(known), 2, replace=False)
            # half the pairs lean on a present finding, so "yes" is not rare
            if present and rng.random() < 0.5:
                a = known.index(present[int(rng.integers(len(present)))])
                if a == b:
                    b = (b + 1) % len(known)
            add(Spec("both", (known[a], known[b])))
    pairs = [(f, g) for i, f in enumerate(present) for g in present[i + 1:]]
    for k in rng.permutation(len(pairs))[:2]:
        f, g = pairs[k]
        add(Spec("larger", (f, g) if rng.random() < 0.5 else (g, f)))
    w, h = case.image.width, case.image.height
    for s, fixations in enumerate(gaze_sources):
        if not fixations or not (w and h):
            continue
        add(Spec("missed"), s, fixations)
        cov = coverage_of(fixations, w, h)
        for pool in (cov["missed"], [r for r in cov["visited"] if r != "bones and soft tissues"]):
            if pool:
                add(Spec("inspected", region=pool[int(rng.integers(len(pool)))]), s, fixations)
    return items


__all__ = ["ANSWERS", "ANSWER_INDEX", "CANNOT_ANSWER", "COUNTS", "FINDING_SURFACES", "KINDS", "Mention", "NONE",
           "NO_SIDE", "NO_SIZE", "PHRASINGS", "PHRASING_SPLITS", "QAItem", "REGION_SURFACES", "SIDES", "SIZES", "SIZE_CUTS", "SLOTS",
           "SPACES", "SURFACES", "Spec", "TYPE_OF_KIND", "Truth", "answer_from_case", "area_fraction", "find_mentions",
           "generate", "masked", "missed_text", "phrasings", "render", "size_cuts", "size_word"]
