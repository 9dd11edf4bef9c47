"""Deterministic report text from a :class:`~models.report.prompt.ReportPlan`: the floor and the fallback.

No language model: one fixed sentence per statement, so the same plan always gives the same report and
every sentence is known to come from one statement (its evidence). The wording is chosen so that our
labeler reads back exactly the plan's keywords (likely -> positive, possible -> uncertain, no -> negative).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.report.prompt import LIKELY, NO, POSSIBLE, ReportPlan, Statement

# finding -> (likely, possible, no); "{where}" becomes " in the <region>" (or "" without a region).
SENTENCES: dict[str, tuple[str, str, str | None]] = {
    "Enlarged Cardiomediastinum": ("The mediastinum is widened.", "The mediastinum may be widened.",
                                   "The mediastinal contour is normal."),
    "Cardiomegaly": ("The heart is enlarged.", "The heart may be mildly enlarged.", "The heart size is normal."),
    "Lung Lesion": ("There is a nodule{where}.", "There is a possible nodule{where}.", "No suspicious nodule."),
    "Lung Opacity": ("There is an opacity{where}.", "There is a possible opacity{where}.", "No focal opacity."),
    "Edema": ("There is pulmonary edema.", "There may be mild pulmonary edema.", "No pulmonary edema."),
    "Consolidation": ("There is consolidation{where}.", "There is possible consolidation{where}.",
                      "No focal consolidation."),
    "Pneumonia": ("There is pneumonia{where}.", "Pneumonia{where} cannot be excluded.", "No pneumonia."),
    "Atelectasis": ("There is atelectasis{where}.", "There is possible atelectasis{where}.", "No atelectasis."),
    "Pneumothorax": ("There is a pneumothorax{where}.", "There is a possible small pneumothorax{where}.",
                     "No pneumothorax."),
    "Pleural Effusion": ("There is a pleural effusion{where}.", "There is a possible small pleural effusion{where}.",
                         "No pleural effusion."),
    "Pleural Other": ("There is pleural thickening{where}.", "There is possible pleural thickening{where}.",
                      "No pleural thickening."),
    "Fracture": ("There is a fracture{where}.", "There is a possible fracture{where}.", "No acute fracture."),
    "Support Devices": ("A support device is present{where}.", "There is a possible support device{where}.",
                        "No support devices."),
}
IMPRESSION_NAMES = {"Lung Lesion": "pulmonary nodule", "Support Devices": "support device in place",
                    "Enlarged Cardiomediastinum": "widened mediastinum", "Lung Opacity": "lung opacity",
                    "Pleural Other": "pleural thickening"}
NORMAL_FINDINGS = ("The heart size is normal.", "The lungs are clear.", "No pleural effusion or pneumothorax.")
NORMAL_IMPRESSION = "No acute cardiopulmonary abnormality."


@dataclass
class RenderedSentence:
    """One sentence, the section it sits in and the plan statement it says (None for generic text)."""

    text: str
    section: str  # "findings" | "impression"
    statement: Statement | None


def _where(st: Statement) -> str:
    if not st.region or st.region == "bones and soft tissues":
        return ""
    return f" in the {st.region}"


def statement_sentence(st: Statement) -> str:
    likely, possible, no = SENTENCES[st.finding]
    text = {LIKELY: likely, POSSIBLE: possible, NO: no}[st.keyword]
    return text.format(where=_where(st))


def render_sentences(plan: ReportPlan) -> list[RenderedSentence]:
    """FINDINGS sentences then IMPRESSION sentences, each tied to its statement."""
    abnormal = plan.abnormal
    findings: list[RenderedSentence] = []
    if not abnormal:
        findings = [RenderedSentence(t, "findings", None) for t in NORMAL_FINDINGS]
        return findings + [RenderedSentence(NORMAL_IMPRESSION, "impression", None)]
    findings = [RenderedSentence(statement_sentence(s), "findings", s) for s in plan.statements]
    impression = []
    for s in abnormal:
        name = IMPRESSION_NAMES.get(s.finding, s.finding.lower())
        text = f"{name[0].upper()}{name[1:]}." if s.keyword == LIKELY else f"Possible {name}."
        impression.append(RenderedSentence(text, "impression", s))
    return findings + impression


def render(plan: ReportPlan) -> tuple[str, str, list[RenderedSentence]]:
    """``(findings text, impression text, sentences)``."""
    sentences = render_sentences(plan)
    findings = " ".join(s.text for s in sentences if s.section == "findings")
    impression = " ".join(s.text for s in sentences if s.section == "impression")
    return findings, impression, sentences


__all__ = ["render", "render_sentences", "statement_sentence", "RenderedSentence", "SENTENCES", "NO", "POSSIBLE"]
