"""CheXpert-14 labels from report text: mention matching plus medspaCy ConText negation and uncertainty.

Pipeline (a blank spaCy English pipeline, no model download): ``sentencizer`` -> ``medspacy_target_matcher``
(the mention phrases of :mod:`models.labeling.phrases`, longest match wins, so "pericardial effusion" hides
"effusion") -> ``medspacy_context`` (medspaCy's default English rules plus CXR hedges and negations).

Each mention gets a value: 0 when negated, -1 when uncertain, else 1; when both a negation and a hedge
modify a mention the nearer cue decides ("no effusion; possible atelectasis"). Anatomy words that only name
a structure ("heart", "mediastinum") count only when the sentence calls it enlarged/widened (positive) or
normal (negative). Aggregation follows CheXpert: per finding positive beats uncertain beats negative;
"heart failure"/"CHF" makes Cardiomegaly uncertain when it is otherwise unmentioned; "No Finding" is 1 when no
finding other than Support Devices is positive or uncertain and no other abnormality ("emphysema",
"granuloma", ...) is affirmed.

Validated on a 120-sentence IU X-ray gold set labelled by one annotator (see tests/fixtures); not validated
against the original CheXpert labeler or CheXbert.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from models.labeling import phrases
from models.vocab import FINDINGS, NEGATIVE, POSITIVE, UNCERTAIN

OTHER = "OTHER"
IGNORE = "IGNORE"
ANATOMY_SUFFIX = "__ANATOMY"
HEDGED_SUFFIX = "__HEDGED"
NEGATED, POSSIBLE = "NEGATED_EXISTENCE", "POSSIBLE_EXISTENCE"
LABELLED = tuple(f for f in FINDINGS if f != "No Finding")


def _label_of(finding: str) -> str:
    return finding.upper().replace(" ", "_")


_FINDING_OF_LABEL = {_label_of(f): f for f in LABELLED}


@dataclass(frozen=True)
class Mention:
    """One finding mention: character span in the report, sentence index and its CheXpert value."""

    finding: str
    text: str
    start: int
    end: int
    sentence: int
    value: int


@dataclass
class SentenceLabels:
    """Labels of one sentence (only the findings it mentions) and its mentions."""

    index: int
    text: str
    start: int
    end: int
    labels: dict[str, int] = field(default_factory=dict)
    mentions: list[Mention] = field(default_factory=list)
    other_abnormal: bool = False


def _token_pattern(tokenizer, phrase: str) -> list[dict]:
    """``"enlarged cardiomediastin*"`` -> spaCy token pattern; ``*`` makes the last word a prefix."""
    pattern = []
    for word in phrase.split():
        prefix = word.endswith("*")
        toks = [t.lower_ for t in tokenizer(word.rstrip("*"))]
        for i, tok in enumerate(toks):
            if prefix and i == len(toks) - 1:
                pattern.append({"LOWER": {"REGEX": "^" + re.escape(tok)}})
            else:
                pattern.append({"LOWER": tok})
    return pattern


def _closest_modifier(ent, categories: tuple[str, ...]):
    """The ConText modifier of a category in ``categories`` nearest to ``ent`` (in tokens), or None."""
    best, best_dist = None, None
    for mod in ent._.modifiers:
        if mod.category not in categories:
            continue
        m_start, m_end = mod.modifier_span
        dist = ent.start - m_end if m_end <= ent.start else m_start - ent.end
        if best is None or dist < best_dist:
            best, best_dist = mod, dist
    return best


class CheXpertLabeler:
    """Rule-based CheXpert-14 labeler (see module docstring). Build once; the pipeline takes ~1 s."""

    def __init__(self):
        import spacy
        from loguru import logger

        logger.remove()  # medspaCy's PyRuSH logs every sentence at DEBUG otherwise
        from medspacy.context import ConText, ConTextRule  # noqa: F401  (ConText registers the factory)
        from medspacy.ner import TargetRule

        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        matcher = nlp.add_pipe("medspacy_target_matcher")
        tok = nlp.tokenizer
        rules = []
        for finding, words in phrases.MENTIONS.items():
            anatomy = set(phrases.ANATOMY_MENTIONS.get(finding, ()))
            hedged = set(phrases.HEDGED_MENTIONS.get(finding, ()))
            for w in words:
                suffix = ANATOMY_SUFFIX if w in anatomy else HEDGED_SUFFIX if w in hedged else ""
                label = _label_of(finding) + suffix
                rules.append(TargetRule(w, label, pattern=_token_pattern(tok, w)))
        for words in phrases.UNMENTIONS.values():
            rules += [TargetRule(w, IGNORE, pattern=_token_pattern(tok, w)) for w in words]
        rules += [TargetRule(w, OTHER, pattern=_token_pattern(tok, w)) for w in phrases.OTHER_FINDINGS]
        matcher.add(rules)

        anatomy_labels = {_label_of(f) + ANATOMY_SUFFIX for f in phrases.ANATOMY_MENTIONS}

        # A cue listed for both directions becomes one BIDIRECTIONAL rule: two rules on the same span would
        # overlap and ConText keeps only one of them.
        specs: dict[tuple, set[str]] = {}

        def add(words, category, direction, allowed=None):
            for w in words:
                specs.setdefault((w, category, frozenset(allowed) if allowed else None), set()).add(direction)

        add(phrases.UNCERTAINTY_FORWARD, POSSIBLE, "FORWARD")
        add(phrases.UNCERTAINTY_BACKWARD, POSSIBLE, "BACKWARD")
        add(phrases.UNCERTAINTY_BIDIRECTIONAL, POSSIBLE, "BIDIRECTIONAL")
        add(phrases.NEGATION_FORWARD, NEGATED, "FORWARD")
        add(phrases.NEGATION_BACKWARD, NEGATED, "BACKWARD")
        add(phrases.ANATOMY_NEGATIONS_BACKWARD, NEGATED, "BACKWARD", anatomy_labels)
        add(phrases.ANATOMY_NEGATIONS_FORWARD, NEGATED, "FORWARD", anatomy_labels)
        add(phrases.PSEUDO, "PSEUDO_NEGATED_EXISTENCE", "PSEUDO")
        add(phrases.TERMINATE, "TERMINATE", "TERMINATE")
        cx = []
        for (w, category, allowed), directions in specs.items():
            direction = directions.pop() if len(directions) == 1 else "BIDIRECTIONAL"
            cx.append(ConTextRule(w, category, direction=direction, pattern=_token_pattern(tok, w),
                                  allowed_types=set(allowed) if allowed else None))
        # Our rules only: medspaCy's defaults shadow some hedges (its "might be" also matches "may be", FORWARD).
        context = nlp.add_pipe("medspacy_context", config={"rules": None})
        context.add(cx)
        self.nlp = nlp

    # ------------------------------------------------------------------ per sentence
    def _mention_value(self, ent, sentence_lower_tokens: set[str]) -> int | None:
        mod = _closest_modifier(ent, (NEGATED, POSSIBLE))
        value = POSITIVE if mod is None else (NEGATIVE if mod.category == NEGATED else UNCERTAIN)
        if ent.label_.endswith(HEDGED_SUFFIX) and value == POSITIVE:
            return UNCERTAIN
        if ent.label_.endswith(ANATOMY_SUFFIX) and value != NEGATIVE:
            if not sentence_lower_tokens & phrases.ABNORMAL_SIZE_WORDS:
                return None  # "the heart and mediastinum" says nothing about size
        return value

    def sentences(self, text: str) -> list[SentenceLabels]:
        """Split ``text`` into sentences and label each (only mentioned findings appear)."""
        if not isinstance(text, str):
            raise ValueError(f"report text must be a string, got {type(text).__name__}")
        doc = self.nlp(" ".join(text.split()))
        return self._from_doc(doc)

    def _from_doc(self, doc) -> list[SentenceLabels]:
        out = []
        for si, sent in enumerate(doc.sents):
            sl = SentenceLabels(si, sent.text, sent.start_char, sent.end_char)
            lower = {t.lower_ for t in sent}
            for ent in sent.ents:
                if ent.label_ == IGNORE:
                    continue
                if ent.label_ == OTHER:
                    if _closest_modifier(ent, (NEGATED,)) is None:
                        sl.other_abnormal = True
                    continue
                finding = _FINDING_OF_LABEL[ent.label_.removesuffix(ANATOMY_SUFFIX).removesuffix(HEDGED_SUFFIX)]
                value = self._mention_value(ent, lower)
                if value is None:
                    continue
                sl.mentions.append(Mention(finding, ent.text, ent.start_char, ent.end_char, si, value))
            sl.labels = aggregate(sl.mentions)
            out.append(sl)
        return out

    # ------------------------------------------------------------------ per report
    def label(self, text: str) -> dict[str, int]:
        """CheXpert values of one report: finding -> 1 / 0 / -1; unmentioned findings are absent."""
        sents = self.sentences(text)
        return finalize([m for s in sents for m in s.mentions], any(s.other_abnormal for s in sents))

    def sentences_many(self, texts: list[str]) -> list[list[SentenceLabels]]:
        """:meth:`sentences` over many texts, batched through spaCy."""
        return [self._from_doc(doc) for doc in self.nlp.pipe(" ".join(str(t).split()) for t in texts)]

    def label_many(self, texts: list[str]) -> list[dict[str, int]]:
        """:meth:`label` over many reports, batched through spaCy."""
        out = []
        for doc in self.nlp.pipe(" ".join(str(t).split()) for t in texts):
            sents = self._from_doc(doc)
            out.append(finalize([m for s in sents for m in s.mentions], any(s.other_abnormal for s in sents)))
        return out


def aggregate(mentions: list[Mention]) -> dict[str, int]:
    """Per finding: positive beats uncertain beats negative (CheXpert)."""
    rank = {POSITIVE: 3, UNCERTAIN: 2, NEGATIVE: 1}
    best: dict[str, int] = {}
    for m in mentions:
        if m.finding not in best or rank[m.value] > rank[best[m.finding]]:
            best[m.finding] = m.value
    return {f: best[f] for f in LABELLED if f in best}


def finalize(mentions: list[Mention], other_abnormal: bool = False) -> dict[str, int]:
    """Report-level CheXpert rules over all mentions: aggregation, CHF implies uncertain Cardiomegaly,
    No Finding."""
    labels = aggregate(mentions)
    chf = any(m.text.lower() in phrases.HEART_FAILURE and m.value != NEGATIVE for m in mentions)
    if chf and "Cardiomegaly" not in labels:
        labels["Cardiomegaly"] = UNCERTAIN
    abnormal = any(v in (POSITIVE, UNCERTAIN) for f, v in labels.items() if f != "Support Devices")
    if not abnormal and not other_abnormal:
        labels["No Finding"] = POSITIVE
    return {f: labels[f] for f in FINDINGS if f in labels}


@lru_cache(maxsize=1)
def default_labeler() -> CheXpertLabeler:
    """One shared labeler per process (building the pipeline costs about a second)."""
    return CheXpertLabeler()


def label_report(text: str) -> dict[str, int]:
    """CheXpert values (1 / 0 / -1, unmentioned absent) of one report, with the shared labeler."""
    return default_labeler().label(text)


def label_sentences(text: str) -> list[SentenceLabels]:
    """Per-sentence labels of one report, with the shared labeler."""
    return default_labeler().sentences(text)


# ---------------------------------------------------------------------------------------------- gold set
def read_gold(path) -> list[dict]:
    """Gold sentences ``{"id", "text", "labels"}`` from a JSONL file (a first ``{"_meta": ...}`` line is skipped)."""
    import json
    from pathlib import Path

    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e})") from None
        if "_meta" in rec:
            continue
        if not isinstance(rec.get("text"), str) or not isinstance(rec.get("labels"), dict):
            raise ValueError(f"{path}:{n}: needs 'text' (string) and 'labels' (object)")
        out.append(rec)
    return out


def score_against_gold(gold: list[dict], labeler: CheXpertLabeler | None = None) -> dict:
    """Sentence-level agreement with hand labels, per finding and pooled.

    For each value class (``mention`` = any label, ``positive`` 1, ``negative`` 0, ``uncertain`` -1) and each
    finding: precision and recall of the labeler's (sentence, finding) decisions against the gold ones. The
    labeler's value for a gold item is its aggregate over the item's sentences ("No Finding" is not scored).
    """
    lab = labeler or default_labeler()
    pred = [aggregate([m for s in lab.sentences(g["text"]) for m in s.mentions]) for g in gold]
    classes = {"mention": None, "positive": POSITIVE, "negative": NEGATIVE, "uncertain": UNCERTAIN}

    def counts(findings):
        out = {}
        for cname, val in classes.items():
            tp = fp = fn = 0
            for g, p in zip(gold, pred):
                for f in findings:
                    gv, pv = g["labels"].get(f), p.get(f)
                    ghit = gv is not None if val is None else gv == val
                    phit = pv is not None if val is None else pv == val
                    tp += ghit and phit
                    fp += phit and not ghit
                    fn += ghit and not phit
            out[cname] = {"precision": tp / (tp + fp) if tp + fp else None,
                          "recall": tp / (tp + fn) if tp + fn else None, "support": tp + fn}
        return out

    errors = [{"id": g["id"], "text": g["text"], "gold": g["labels"], "labeler": p}
              for g, p in zip(gold, pred) if {k: v for k, v in g["labels"].items()} != p]
    return {"n_sentences": len(gold), "pooled": counts(LABELLED),
            "per_finding": {f: counts([f]) for f in LABELLED}, "errors": errors}
