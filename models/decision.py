"""The one decision rule: a finding's probability -> positive (1), uncertain (-1) or negative (0).

Every output that says whether a finding is there reads this rule: the findings of a prediction
(``Case.findings``), which findings get boxes, the report plan (positive -> "likely", uncertain -> "possible",
negative -> "no" or left out), its evidence links, the Slicer checklist (it shows ``Case.findings``) and
VQA. So the report can never negate a finding that the same answer calls positive: both come from here.

Per finding there are two thresholds: ``positive[f]`` and ``uncertain[f] <= positive[f]``.

- A trained classifier brings its ``positive`` thresholds, chosen on the validation split (F1-optimal), and
  the uncertain band is ``[UNCERTAIN_FRACTION * t, t)`` below each one: a score within 15% below the
  validated threshold is hedged ("possible ...") rather than denied. A wider band hedges more findings that
  are not there: with the quick demo classifier (SYNTHETIC phantom, 80 images), 0.6 made 6.0 findings per
  image uncertain, 0.85 makes 3.7, and 8-9% of them were present either way.
- Scores without validated thresholds (simulated classifiers, tests) use :meth:`DecisionRule.uniform`,
  the report's historical 0.7 / 0.4.

"No Finding" is not thresholded on its own score: as in the CheXpert labeler it is positive exactly when no
other finding but Support Devices is positive or uncertain, so it always agrees with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from models.vocab import FINDINGS, canonical_finding

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
# The uncertain band is [UNCERTAIN_FRACTION * t, t) below a finding's validated positive threshold t.
UNCERTAIN_FRACTION = 0.85
UNIFORM = (0.7, 0.4)  # (positive, uncertain) for scores that come without validated thresholds
NO_FINDING = "No Finding"
# Findings that do not make an image abnormal (CheXpert: "No Finding" may be positive with support devices).
NOT_ABNORMAL = ("No Finding", "Support Devices")


@dataclass(frozen=True)
class DecisionRule:
    """``positive`` and ``uncertain``: finding -> threshold, over ``FINDINGS`` (see module docstring)."""

    positive: Mapping[str, float]
    uncertain: Mapping[str, float]

    def __post_init__(self):
        for f in FINDINGS:
            p, u = self.positive.get(f), self.uncertain.get(f)
            if p is None or u is None:
                raise ValueError(f"decision rule: no thresholds for {f!r}")
            if not 0.0 <= u <= p <= 1.0:
                raise ValueError(f"decision rule for {f!r}: need 0 <= uncertain <= positive <= 1, got {u}, {p}")

    @classmethod
    def uniform(cls, positive: float = UNIFORM[0], uncertain: float = UNIFORM[1]) -> "DecisionRule":
        return cls({f: positive for f in FINDINGS}, {f: uncertain for f in FINDINGS})

    @classmethod
    def from_thresholds(cls, thresholds: Mapping[str, float] | Sequence[float],
                        fraction: float = UNCERTAIN_FRACTION) -> "DecisionRule":
        """A rule from validated positive thresholds (a mapping, or one value per ``FINDINGS`` in order)."""
        if not isinstance(thresholds, Mapping):
            values = [float(t) for t in thresholds]
            if len(values) != len(FINDINGS):
                raise ValueError(f"thresholds: expected {len(FINDINGS)} values, got {len(values)}")
            thresholds = dict(zip(FINDINGS, values))
        positive = {f: min(max(float(thresholds[f]), 0.0), 1.0) for f in FINDINGS}
        return cls(positive, {f: fraction * t for f, t in positive.items()})

    def label(self, finding: str, probability: float) -> int:
        """1, -1 or 0 for one finding's probability (``No Finding`` too, on its own score)."""
        f = canonical_finding(finding)
        if probability >= self.positive[f]:
            return POSITIVE
        return UNCERTAIN if probability >= self.uncertain[f] else NEGATIVE

    def decide(self, scores: Mapping[str, float]) -> dict[str, int]:
        """finding -> 1/-1/0 for every finding in ``scores``; ``No Finding`` derived from the others."""
        out = {canonical_finding(f): self.label(f, p) for f, p in scores.items() if canonical_finding(f) != NO_FINDING}
        abnormal = any(v != NEGATIVE for f, v in out.items() if f not in NOT_ABNORMAL)
        out[NO_FINDING] = NEGATIVE if abnormal else POSITIVE
        return {f: out[f] for f in FINDINGS if f in out}

    def to_dict(self) -> dict:
        return {"positive": dict(self.positive), "uncertain": dict(self.uncertain)}


__all__ = ["DecisionRule", "POSITIVE", "NEGATIVE", "UNCERTAIN", "UNCERTAIN_FRACTION", "UNIFORM", "NOT_ABNORMAL"]
