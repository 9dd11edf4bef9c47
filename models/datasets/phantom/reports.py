"""Radiology-style reports for phantom images that agree with their CheXpert values.

One sentence speaks about one finding (positive, hedged or negated) or states a normal observation, so
the labels can be read back from the text: positives are plain statements, uncertain ones are hedged
("Possible ...", "... cannot be excluded", "borderline"), negatives are negated ("No pneumothorax.") or
folded into normal statements ("The lungs are clear."). FINDINGS runs devices, lungs, pleura, heart and
mediastinum, bones; IMPRESSION lists the positive and hedged findings, most urgent first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.datasets.phantom.findings import Drawn

LUNG_CHILDREN = ("Lung Lesion", "Consolidation", "Pneumonia", "Edema", "Atelectasis", "Lung Opacity")
IMPRESSION_ORDER = ("Pneumothorax", "Consolidation", "Pneumonia", "Edema", "Pleural Effusion", "Cardiomegaly",
                    "Enlarged Cardiomediastinum", "Lung Lesion", "Atelectasis", "Lung Opacity", "Pleural Other",
                    "Fracture", "Support Devices")


@dataclass
class Statement:
    """One report sentence; ``finding``/``value`` say what it asserts, ``drawn`` indexes the drawn records."""

    text: str
    finding: str | None = None
    value: int | None = None
    drawn: int | None = None


def _pick(rng, options) -> str:
    return options[int(rng.integers(0, len(options)))]


def _zone(d: Drawn) -> str:
    return d.region


def _positive_sentence(d: Drawn, rng) -> str:
    det = d.details
    side = det.get("side", "")
    if d.name == "Lung Lesion":
        kind = "mass" if det["size_mm"] >= 30 else "nodule"
        return _pick(rng, [f"A {det['size_mm']} mm rounded {kind} is seen in the {_zone(d)}.",
                           f"There is a {det['size_mm']} mm well-circumscribed nodular opacity in the {_zone(d)}, consistent with a {kind}."])
    if d.name == "Consolidation":
        return _pick(rng, [f"Patchy airspace opacity with air bronchograms in the {_zone(d)}, consistent with consolidation.",
                           f"There is focal consolidation in the {_zone(d)} with air bronchograms."])
    if d.name == "Pneumonia":
        return _pick(rng, ["The findings are compatible with pneumonia.", f"Findings in the {_zone(d)} represent pneumonia."])
    if d.name == "Lung Opacity":
        return _pick(rng, [f"Hazy opacity in the {_zone(d)}.", f"There is an ill-defined opacity in the {_zone(d)}."])
    if d.name == "Edema":
        return _pick(rng, ["Bilateral perihilar haziness with interstitial opacities and Kerley B lines, consistent with pulmonary edema.",
                           "There is pulmonary edema with perihilar opacities and septal lines."])
    if d.name == "Atelectasis":
        return _pick(rng, [f"Linear plate-like opacity at the {side} lung base with mild elevation of the {side} hemidiaphragm, consistent with atelectasis.",
                           f"Subsegmental atelectasis in the {_zone(d)}."])
    if d.name == "Pneumothorax":
        return f"There is a {det['size']} {side} apical pneumothorax with a visible pleural line."
    if d.name == "Pleural Effusion":
        if det.get("bilateral"):
            return f"Bilateral {det['size']} pleural effusions blunting the costophrenic angles."
        return _pick(rng, [f"{det['size'].capitalize()} {side} pleural effusion blunting the {side} costophrenic angle.",
                           f"There is a {det['size']} {side} pleural effusion with a meniscus."])
    if d.name == "Pleural Other":
        return f"Smooth {side} lateral pleural thickening."
    if d.name == "Cardiomegaly":
        return _pick(rng, ["The heart is enlarged.", "Cardiomegaly.", "The cardiac silhouette is enlarged."])
    if d.name == "Enlarged Cardiomediastinum":
        return "The superior mediastinum is widened."
    if d.name == "Fracture":
        return f"Acute fracture of the {side} {_ordinal(det['rib'])} posterior rib."
    if d.name == "Support Devices":
        dev = det["device"]
        if dev == "endotracheal tube":
            return f"Endotracheal tube terminates {det['tip_cm']} cm above the carina."
        if dev == "nasogastric tube":
            return "Nasogastric tube courses below the diaphragm into the stomach."
        if dev == "central venous catheter":
            return f"{det['side'].capitalize()} subclavian central venous catheter terminates in the superior vena cava."
        return "Left chest wall pacemaker with leads in the right atrium and right ventricle."
    raise KeyError(d.name)


def _uncertain_sentence(d: Drawn, rng) -> str:
    side = d.details.get("side", "")
    if d.name == "Lung Lesion":
        return f"Possible small nodule in the {_zone(d)}."
    if d.name == "Consolidation":
        return f"Subtle opacity in the {_zone(d)}; early consolidation cannot be excluded."
    if d.name == "Pneumonia":
        return _pick(rng, ["Pneumonia cannot be excluded.", "This may represent pneumonia in the appropriate clinical setting."])
    if d.name == "Lung Opacity":
        return f"Possible faint opacity in the {_zone(d)}."
    if d.name == "Edema":
        return "Possible mild interstitial edema."
    if d.name == "Atelectasis":
        return f"Possible minimal atelectasis at the {side} base."
    if d.name == "Pneumothorax":
        return f"Possible tiny {side} apical pneumothorax."
    if d.name == "Pleural Effusion":
        return f"Possible small {side} pleural effusion." if not d.details.get("bilateral") else "Possible small bilateral pleural effusions."
    if d.name == "Pleural Other":
        return f"Possible {side} pleural thickening."
    if d.name == "Cardiomegaly":
        return "The heart size is borderline enlarged."
    if d.name == "Enlarged Cardiomediastinum":
        return "Possible mild widening of the mediastinum, which may be technical."
    if d.name == "Fracture":
        return f"Possible nondisplaced fracture of the {side} {_ordinal(d.details['rib'])} rib."
    raise KeyError(d.name)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _impression(name: str, value: int, records: list[Drawn]) -> str:
    d = records[0]
    side = d.details.get("side", "")
    hedge = "Possible " if value == -1 else ""
    text = {
        "Pneumothorax": f"{side} pneumothorax.",
        "Consolidation": f"consolidation in the {d.region}.",
        "Pneumonia": "findings concerning for pneumonia." if value == -1 else "pneumonia.",
        "Edema": "pulmonary edema.",
        "Pleural Effusion": ("bilateral pleural effusions." if d.details.get("bilateral") or len(records) > 1 else f"{side} pleural effusion."),
        "Cardiomegaly": "cardiomegaly.",
        "Enlarged Cardiomediastinum": "widened mediastinum.",
        "Lung Lesion": f"{side} lung nodule; CT recommended for further evaluation.",
        "Atelectasis": f"{side} basilar atelectasis.",
        "Lung Opacity": f"opacity in the {d.region}.",
        "Pleural Other": f"{side} pleural thickening.",
        "Fracture": f"{side} rib fracture.",
        "Support Devices": "support devices as described.",
    }[name]
    if name == "Pneumonia" and value == -1:
        return text[0].upper() + text[1:]
    out = hedge + text
    return out[0].upper() + out[1:]


def write_report(values: dict[str, int], drawn: list[Drawn], rng: np.random.Generator) -> tuple[list[Statement], list[Statement]]:
    """FINDINGS and IMPRESSION statements for one image.

    Args:
        values: all 14 CheXpert values of the image.
        drawn: the drawn finding records (Lung Opacity duplicates of opacity children excluded).
    """
    by_name: dict[str, list[int]] = {}
    for i, d in enumerate(drawn):
        by_name.setdefault(d.name, []).append(i)

    def about(name: str) -> list[Statement]:
        out = []
        idx = by_name.get(name, [])
        if not idx or values.get(name, 0) == 0:
            return out
        if name in ("Edema", "Pleural Effusion") and (name == "Edema" or drawn[idx[0]].details.get("bilateral")):
            idx = idx[:1]  # one sentence for a bilateral finding
        for i in idx:
            d = drawn[i]
            text = _positive_sentence(d, rng) if d.value == 1 else _uncertain_sentence(d, rng)
            out.append(Statement(text, name, d.value, i))
        return out

    findings: list[Statement] = []
    for i in by_name.get("Support Devices", []):
        findings.append(Statement(_positive_sentence(drawn[i], rng), "Support Devices", 1, i))

    lung = [s for n in LUNG_CHILDREN for s in about(n)]
    findings += lung
    if not lung:
        findings.append(Statement(_pick(rng, ["The lungs are clear.", "The lungs are clear without focal consolidation.",
                                              "No focal consolidation, edema or mass."])))
    elif values["Consolidation"] == 0 and values["Pneumonia"] == 0 and rng.random() < 0.5:
        findings.append(Statement("No focal consolidation.", "Consolidation", 0))

    pleural = about("Pneumothorax") + about("Pleural Effusion") + about("Pleural Other")
    findings += pleural
    if values["Pleural Effusion"] == 0 and values["Pneumothorax"] == 0:
        findings.append(Statement(_pick(rng, ["No pleural effusion or pneumothorax.", "There is no pleural effusion or pneumothorax."])))
    elif values["Pneumothorax"] == 0:
        findings.append(Statement("No pneumothorax.", "Pneumothorax", 0))
    elif values["Pleural Effusion"] == 0:
        findings.append(Statement("No pleural effusion.", "Pleural Effusion", 0))

    heart = about("Cardiomegaly") + about("Enlarged Cardiomediastinum")
    findings += heart
    if not heart:
        findings.append(Statement(_pick(rng, ["The cardiomediastinal silhouette is within normal limits.",
                                              "Heart size and mediastinal contours are normal."])))
    elif values["Enlarged Cardiomediastinum"] == 0:
        findings.append(Statement("The mediastinal contours are unremarkable.", "Enlarged Cardiomediastinum", 0))
    elif values["Cardiomegaly"] == 0:
        findings.append(Statement("The heart size is normal.", "Cardiomegaly", 0))

    bones = about("Fracture")
    findings += bones
    if not bones:
        findings.append(Statement(_pick(rng, ["No acute osseous abnormality.", "The visualized osseous structures are intact."])))

    impression: list[Statement] = []
    for name in IMPRESSION_ORDER:
        if values.get(name, 0) != 0 and name in by_name:
            records = [drawn[i] for i in by_name[name]]
            impression.append(Statement(_impression(name, values[name], records), name, values[name]))
    if values["No Finding"] == 1:
        impression.insert(0, Statement(_pick(rng, ["No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality."]), "No Finding", 1))
    elif values["Pneumothorax"] == 0 and "Support Devices" in by_name:
        impression.append(Statement("No pneumothorax.", "Pneumothorax", 0))
    return findings, impression
