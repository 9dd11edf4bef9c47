"""Does a prediction agree with itself? Its findings against its report, read back by our labeler.

One answer holds ``case.findings`` (the decision rule's 1 / -1 / 0, :mod:`models.decision`) and a report
drafted from the same rule. :func:`contradictions` reads the report (whole, and sentence by sentence for
the evidence links) with the CheXpert-style labeler and lists every place where they disagree:

- a finding the answer calls positive that the report negates, or does not mention;
- an uncertain finding that the report negates (it must hedge: "possible ...");
- a negative finding that the report affirms;
- an evidence link whose sentence says the opposite of its finding's decision.

"No Finding" and "Support Devices" are left out: reports speak of them indirectly ("normal chest").
"""

from __future__ import annotations

from models.decision import NEGATIVE, NOT_ABNORMAL, POSITIVE, UNCERTAIN
from models.schema import Case


def contradictions(case: Case, labeler=None) -> list[str]:
    """Human-readable disagreements between ``case.findings`` and ``case.report`` (empty: consistent)."""
    from models.report.evidence import report_sentences
    from models.labeling.labeler import default_labeler

    if case.report is None:
        return []
    labeler = labeler or default_labeler()
    said = labeler.label(case.report.text)
    problems = []
    for finding, decision in case.findings.items():
        if finding in NOT_ABNORMAL:
            continue
        reported = said.get(finding)
        if decision == POSITIVE and reported in (None, NEGATIVE):
            problems.append(f"{finding} is positive but the report {'negates it' if reported == NEGATIVE else 'does not mention it'}")
        elif decision == UNCERTAIN and reported == NEGATIVE:
            problems.append(f"{finding} is uncertain but the report negates it instead of hedging")
        elif decision == NEGATIVE and reported == POSITIVE:
            problems.append(f"{finding} is negative but the report affirms it")
    sentences = report_sentences(case.report)
    for i, link in enumerate(case.report.evidence):
        if link.finding is None or link.finding in NOT_ABNORMAL or link.sentence >= len(sentences):
            continue
        value = labeler.label(sentences[link.sentence]).get(link.finding)
        decision = case.findings.get(link.finding, NEGATIVE)
        if (decision != NEGATIVE and value == NEGATIVE) or (decision == NEGATIVE and value == POSITIVE):
            problems.append(f"evidence[{i}] links {sentences[link.sentence]!r} to {link.finding}, decided {decision}")
    return problems
