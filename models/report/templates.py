"""Deterministic report text from a :class:`~models.report.prompt.ReportPlan`: the floor and the fallback.

The plan is cut into one-sentence units (:func:`render_sentences`); each has a fixed template sentence and
the control text the language-model paths write their own sentence from. No language model here: the same
plan always gives the same report and every sentence is known to come from its statements (its
evidence). The wording is chosen so that our labeler reads back exactly the plan's keywords (likely ->
positive, possible -> uncertain, no -> negative).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.report.prompt import LIKELY, NO, POSSIBLE, ReportPlan, Statement, control_text

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
NORMAL_IMPRESSION = "No acute cardiopulmonary abnormality."
# Two negatives reports say in one sentence, in normal and abnormal reports alike.
PAIRED_NEGATIVES = ("Pneumothorax", "Pleural Effusion")
PAIRED_SENTENCE = "No pleural effusion or pneumothorax."
# A normal report: (topic, findings of the plan's negatives the sentence states, sentence).
NORMAL_FINDINGS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("lungs", (), "The lungs are clear."),
    ("pleura", PAIRED_NEGATIVES, PAIRED_SENTENCE),
    ("heart", ("Cardiomegaly",), "The heart size is normal."),
    ("bones", (), "No acute osseous abnormality."),
)


@dataclass
class RenderedSentence:
    """One report sentence: its template text, section and what it says - plan statements, or for a
    normal sentence with no statement a topic ("lungs", "pleura", "heart", "bones", "chest"). The
    language-model paths write their own sentence from :attr:`control` and keep the rest."""

    text: str
    section: str  # "findings" | "impression"
    statements: list[Statement] = field(default_factory=list)
    topic: str | None = None

    @property
    def control(self) -> str:
        return control_text(self.section, self.statements, self.topic)


def _where(st: Statement) -> str:
    if not st.region or st.region == "bones and soft tissues":
        return ""
    return f" in the {st.region}"


def statement_sentence(st: Statement) -> str:
    likely, possible, no = SENTENCES[st.finding]
    text = {LIKELY: likely, POSSIBLE: possible, NO: no}[st.keyword]
    return text.format(where=_where(st))


def impression_sentence(st: Statement) -> str:
    name = IMPRESSION_NAMES.get(st.finding, st.finding.lower())
    return f"{name[0].upper()}{name[1:]}." if st.keyword == LIKELY else f"Possible {name}."


def render_sentences(plan: ReportPlan) -> list[RenderedSentence]:
    """FINDINGS sentences then IMPRESSION sentences: one per statement (abnormal ones again in the
    IMPRESSION), or the normal report when nothing is abnormal."""
    abnormal = plan.abnormal
    if not abnormal:
        negatives = {s.finding: s for s in plan.statements}
        findings = []
        for topic, names, text in NORMAL_FINDINGS:
            said = [negatives[n] for n in names if n in negatives]
            findings.append(RenderedSentence(text, "findings", said, None if said else topic))
        return findings + [RenderedSentence(NORMAL_IMPRESSION, "impression", [], "chest")]
    findings = [RenderedSentence(statement_sentence(s), "findings", [s]) for s in plan.statements
                if s.finding not in PAIRED_NEGATIVES or s.keyword != NO]
    paired = [s for s in plan.statements if s.finding in PAIRED_NEGATIVES and s.keyword == NO]
    if len(paired) == len(PAIRED_NEGATIVES):  # one sentence, as reports say it
        findings.append(RenderedSentence(PAIRED_SENTENCE, "findings", paired))
    else:
        findings += [RenderedSentence(statement_sentence(s), "findings", [s]) for s in paired]
    impression = [RenderedSentence(impression_sentence(s), "impression", [s]) for s in abnormal]
    return findings + impression


def join_sections(sentences: list[RenderedSentence]) -> tuple[str, str]:
    """``(findings text, impression text)``."""
    findings = " ".join(s.text for s in sentences if s.section == "findings")
    impression = " ".join(s.text for s in sentences if s.section == "impression")
    return findings, impression


def render(plan: ReportPlan) -> tuple[str, str, list[RenderedSentence]]:
    """``(findings text, impression text, sentences)``."""
    sentences = render_sentences(plan)
    return (*join_sections(sentences), sentences)


__all__ = ["render", "render_sentences", "join_sections", "statement_sentence", "impression_sentence",
           "RenderedSentence", "SENTENCES", "NO", "POSSIBLE"]
