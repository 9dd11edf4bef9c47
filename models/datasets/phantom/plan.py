"""Which findings a phantom image gets: plausible co-occurrence through a few clinical scenarios.

About 30 % of images are normal ("No Finding"); the others get one or two scenarios (heart failure,
pneumonia, a nodule, trauma, an ICU film ...), each bringing its usual companions. Some findings are drawn
subtle and reported with hedging; they carry the CheXpert value -1 (uncertain).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.vocab import FINDINGS

NORMAL_FRACTION = 0.30
# Findings whose presence turns "Lung Opacity" on (CheXpert's parent-child hierarchy).
OPACITY_CHILDREN = ("Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis")
RIGHT, LEFT, BOTH = 0, 1, 2


@dataclass
class Planned:
    """One finding to draw: CheXpert value (1 or -1), side (RIGHT, LEFT, BOTH) and severity in (0, 1]."""

    name: str
    value: int
    side: int
    severity: float
    details: dict = field(default_factory=dict)


def _side(rng) -> int:
    return int(rng.integers(0, 2))


def _scenario_heart_failure(rng, out):
    out["Cardiomegaly"] = Planned("Cardiomegaly", 1, BOTH, rng.uniform(0.3, 1))
    if rng.random() < 0.7:
        out["Edema"] = Planned("Edema", 1, BOTH, rng.uniform(0.3, 1))
    if rng.random() < 0.5:
        out["Pleural Effusion"] = Planned("Pleural Effusion", 1, BOTH if rng.random() < 0.5 else _side(rng), rng.uniform(0.3, 1))


def _scenario_pneumonia(rng, out):
    side = _side(rng)
    out["Consolidation"] = Planned("Consolidation", 1, side, rng.uniform(0.3, 1))
    r = rng.random()
    if r < 0.45:
        out["Pneumonia"] = Planned("Pneumonia", 1, side, 1.0)
    elif r < 0.75:
        out["Pneumonia"] = Planned("Pneumonia", -1, side, 1.0)
    if rng.random() < 0.25:
        out["Pleural Effusion"] = Planned("Pleural Effusion", 1, side, rng.uniform(0.2, 0.6))


def _scenario_nodule(rng, out):
    out["Lung Lesion"] = Planned("Lung Lesion", 1, _side(rng), rng.uniform(0.2, 1))


def _scenario_pneumothorax(rng, out):
    side = _side(rng)
    out["Pneumothorax"] = Planned("Pneumothorax", 1, side, rng.uniform(0.3, 1))
    if rng.random() < 0.3:
        out["Fracture"] = Planned("Fracture", 1, side, rng.uniform(0.5, 1))


def _scenario_atelectasis(rng, out):
    side = _side(rng)
    out["Atelectasis"] = Planned("Atelectasis", 1, side, rng.uniform(0.3, 1))
    if rng.random() < 0.35:
        out["Pleural Effusion"] = Planned("Pleural Effusion", 1, side, rng.uniform(0.2, 0.7))


def _scenario_trauma(rng, out):
    side = _side(rng)
    out["Fracture"] = Planned("Fracture", 1, side, rng.uniform(0.5, 1))
    if rng.random() < 0.3:
        out["Pneumothorax"] = Planned("Pneumothorax", 1, side, rng.uniform(0.3, 0.8))


def _scenario_icu(rng, out):
    out["Support Devices"] = Planned("Support Devices", 1, BOTH, 1.0)
    if rng.random() < 0.4:
        out["Atelectasis"] = Planned("Atelectasis", 1, _side(rng), rng.uniform(0.3, 0.8))
    if rng.random() < 0.3:
        out["Pleural Effusion"] = Planned("Pleural Effusion", 1, _side(rng), rng.uniform(0.2, 0.8))
    if rng.random() < 0.2:
        out["Edema"] = Planned("Edema", 1, BOTH, rng.uniform(0.3, 0.8))


def _scenario_mediastinum(rng, out):
    out["Enlarged Cardiomediastinum"] = Planned("Enlarged Cardiomediastinum", 1, BOTH, rng.uniform(0.4, 1))


def _scenario_opacity(rng, out):
    out["Lung Opacity"] = Planned("Lung Opacity", 1, _side(rng), rng.uniform(0.3, 1))


def _scenario_pleural_other(rng, out):
    out["Pleural Other"] = Planned("Pleural Other", 1, _side(rng), rng.uniform(0.4, 1))


def _scenario_effusion(rng, out):
    out["Pleural Effusion"] = Planned("Pleural Effusion", 1, BOTH if rng.random() < 0.3 else _side(rng), rng.uniform(0.3, 1))


SCENARIOS = (
    (0.15, _scenario_heart_failure),
    (0.14, _scenario_pneumonia),
    (0.11, _scenario_nodule),
    (0.08, _scenario_pneumothorax),
    (0.10, _scenario_atelectasis),
    (0.06, _scenario_trauma),
    (0.11, _scenario_icu),
    (0.06, _scenario_mediastinum),
    (0.08, _scenario_opacity),
    (0.04, _scenario_pleural_other),
    (0.07, _scenario_effusion),
)
# Chance that a drawn pathology is subtle and hedged in the report (CheXpert -1).
UNCERTAIN_FRACTION = 0.12


def sample_plan(rng: np.random.Generator) -> dict[str, Planned]:
    """Findings to draw for one image, keyed by CheXpert name (only positive or uncertain ones)."""
    out: dict[str, Planned] = {}
    if rng.random() < NORMAL_FRACTION:
        if rng.random() < 0.08:  # a device on an otherwise normal film is still "No Finding"
            out["Support Devices"] = Planned("Support Devices", 1, BOTH, 1.0)
        return out
    weights = np.array([w for w, _ in SCENARIOS])
    n = 2 if rng.random() < 0.3 else 1
    for k in rng.choice(len(SCENARIOS), size=n, replace=False, p=weights / weights.sum()):
        SCENARIOS[k][1](rng, out)
    for name, p in out.items():
        if name not in ("Support Devices", "Pneumonia") and rng.random() < UNCERTAIN_FRACTION:
            p.value = -1
            p.severity = min(p.severity, 0.35)
    return out


def chexpert_values(plan: dict[str, Planned]) -> dict[str, int]:
    """All 14 CheXpert values implied by a plan (derived "Lung Opacity" and "No Finding" included)."""
    values = {name: 0 for name in FINDINGS}
    for name, p in plan.items():
        values[name] = p.value
    children = [values[c] for c in OPACITY_CHILDREN] + [values["Lung Opacity"]]
    values["Lung Opacity"] = 1 if 1 in children else (-1 if -1 in children else 0)
    pathology = [v for k, v in values.items() if k not in ("No Finding", "Support Devices")]
    values["No Finding"] = 0 if any(v != 0 for v in pathology) else 1
    return values
