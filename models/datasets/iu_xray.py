"""IU X-ray (Open-i, Indiana University) reports, read at run time from torchxrayvision's wheel.

``torchxrayvision/data/NLMCXR_reports.tgz`` holds 3,955 ``ecgen-radiology/<n>.xml`` reports (licence
CC BY-NC-ND 4.0, so the archive is read in place and never extracted into the repository). Per report:
``AbstractText[@Label]`` COMPARISON / INDICATION / FINDINGS / IMPRESSION, ``MeSH/major`` and
``MeSH/automatic`` terms, and ``parentImage[@id]`` image ids (``CXR<n>_IM-<study>-<img>``). There are no pixels:
cases have ``image.path == ""``.

Case id = study id = the first image id without its trailing ``-NNNN`` (R2Gen's convention), or ``CXR<n>``
for the 104 reports without images.

Selection and split. R2Gen's IU split (train 2,069 / val 296 / test 590) is exactly the 2,955 reports with a
non-empty FINDINGS section and at least two images, but its assignment is random, not derivable from a seed,
and its id lists are not available offline. :func:`read_iu_xray` therefore applies **R2Gen's selection rule**
(``selection="r2gen"``, the default) with a **deterministic 7:1:2 split by hash of the study id**
(:func:`models.datasets.base.hash_split`). The sizes come out close to R2Gen's, but **the assignment is not
R2Gen's**: numbers on this split are not comparable with papers that use R2Gen's ``annotation.json``.

Findings: ``case.findings`` holds positives only, mapped from the first term of each ``MeSH/major`` entry
(:data:`MESH_TO_CHEXPERT`; ``normal`` -> No Finding); unmapped terms stay in ``extra["mesh_major"]``. This is a
keyword mapping, not a CheXpert labeler run, and absent findings mean "not mentioned".
"""

from __future__ import annotations

import importlib.util
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from models.datasets.base import CaseSource, DatasetError, hash_split
from models.schema import Case, ImageRef, Report, Source

NAME = "iu-xray"
ARCHIVE = "NLMCXR_reports.tgz"
SECTIONS = ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")
MESH_TO_CHEXPERT = {
    "normal": "No Finding",
    "Cardiomegaly": "Cardiomegaly",
    "Pulmonary Atelectasis": "Atelectasis",
    "Pleural Effusion": "Pleural Effusion",
    "Opacity": "Lung Opacity",
    "Airspace Disease": "Lung Opacity",
    "Infiltrate": "Lung Opacity",
    "Nodule": "Lung Lesion",
    "Mass": "Lung Lesion",
    "Consolidation": "Consolidation",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Pulmonary Edema": "Edema",
    "Pulmonary Congestion": "Edema",
    "Fractures, Bone": "Fracture",
    "Catheters, Indwelling": "Support Devices",
    "Implanted Medical Device": "Support Devices",
    "Medical Device": "Support Devices",
    "Tube, Inserted": "Support Devices",
    "Stents": "Support Devices",
}
_TRAILING_IMAGE_NUMBER = re.compile(r"-\d+$")


@dataclass
class IUReport:
    uid: str  # "CXR1"
    study_id: str  # "CXR1_1_IM-0001"
    sections: dict[str, str]
    mesh_major: list[str] = field(default_factory=list)
    mesh_automatic: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)

    @property
    def findings(self) -> str:
        return self.sections.get("FINDINGS", "")

    @property
    def impression(self) -> str:
        return self.sections.get("IMPRESSION", "")


def default_archive() -> Path:
    """Path of ``NLMCXR_reports.tgz`` inside the installed torchxrayvision (found without importing it)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"iu-xray: torchxrayvision is not installed, so {ARCHIVE} is unavailable (pip install torchxrayvision==1.5.7)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / ARCHIVE
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (this torchxrayvision build lacks the IU X-ray reports)")
    return path


def _text(element) -> str:
    return " ".join((element.text or "").split()) if element is not None else ""


def parse_report(xml_bytes: bytes, where: str) -> IUReport:
    try:
        root = SafeET.fromstring(xml_bytes)  # no entity expansion or external entities
    except (SafeET.ParseError, DefusedXmlException) as e:
        raise DatasetError(f"{where}: not valid XML ({e})") from None
    uid_el = root.find("uId")
    uid = uid_el.get("id", "") if uid_el is not None else ""
    if not uid:
        raise DatasetError(f"{where}: no <uId id=...>")
    sections = {}
    for el in root.iter("AbstractText"):
        label = el.get("Label", "")
        if label in SECTIONS:
            sections[label] = _text(el)
    images = [p.get("id") for p in root.findall("parentImage") if p.get("id")]
    study = _TRAILING_IMAGE_NUMBER.sub("", images[0]) if images else uid
    return IUReport(
        uid, study, sections,
        [_text(m) for m in root.findall("MeSH/major") if _text(m)],
        [_text(m) for m in root.findall("MeSH/automatic") if _text(m)],
        images,
    )


def read_reports(path: str | Path | None = None) -> list[IUReport]:
    """All reports of the archive, ordered by report number (``CXR1``, ``CXR2``, ...)."""
    path = Path(path) if path is not None else default_archive()
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (expected torchxrayvision's {ARCHIVE})")
    reports = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".xml"):
                    reports.append(parse_report(tar.extractfile(member).read(), f"{path}:{member.name}"))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read the archive ({type(e).__name__}: {e})") from None
    if not reports:
        raise DatasetError(f"{path}: no ecgen-radiology/*.xml reports in the archive")

    def number(r: IUReport) -> int:
        digits = re.sub(r"\D", "", r.uid)
        return int(digits) if digits else 0

    return sorted(reports, key=number)


def r2gen_selected(report: IUReport) -> bool:
    """R2Gen's IU X-ray rule: non-empty FINDINGS and at least two images."""
    return bool(report.findings) and len(report.image_ids) >= 2


def report_counts(reports: list[IUReport]) -> dict[str, int]:
    return {
        "reports": len(reports),
        "findings_non_empty": sum(1 for r in reports if r.findings),
        "impression_non_empty": sum(1 for r in reports if r.impression),
        "r2gen_selected": sum(1 for r in reports if r2gen_selected(r)),
        "images": sum(len(r.image_ids) for r in reports),
        "mesh_normal_only": sum(1 for r in reports if r.mesh_major == ["normal"]),
    }


def mesh_findings(mesh_major: list[str]) -> dict[str, int]:
    """Positive CheXpert findings named by MeSH major terms (first term before '/')."""
    found = {MESH_TO_CHEXPERT[t.split("/")[0].strip()] for t in mesh_major if t.split("/")[0].strip() in MESH_TO_CHEXPERT}
    if len(found) > 1:
        found.discard("No Finding")
    return {name: 1 for name in sorted(found)}


def read_iu_xray(path: str | Path | None = None, *, selection: str = "r2gen") -> CaseSource:
    """IU X-ray reports as pixel-less cases with a deterministic 7:1:2 hash split (NOT R2Gen's assignment).

    Args:
        path: the ``NLMCXR_reports.tgz`` archive; default: the one inside the installed torchxrayvision.
        selection: "r2gen" (non-empty FINDINGS and >= 2 images: 2,955 reports) or "all" (3,955).
    """
    if selection not in ("r2gen", "all"):
        raise ValueError(f"selection must be 'r2gen' or 'all', got {selection!r}")
    reports = read_reports(path)
    kept = [r for r in reports if selection == "all" or r2gen_selected(r)]
    cases, splits = [], {"train": [], "val": [], "test": []}
    for r in kept:
        cases.append(
            Case(
                id=r.study_id,
                image=ImageRef(path=""),
                findings=mesh_findings(r.mesh_major),
                report=Report(findings=r.findings, impression=r.impression),
                source=Source(dataset=NAME, ref=r.uid),
                extra={
                    "comparison": r.sections.get("COMPARISON", ""),
                    "indication": r.sections.get("INDICATION", ""),
                    "mesh_major": r.mesh_major,
                    "mesh_automatic": r.mesh_automatic,
                    "image_ids": r.image_ids,
                },
            )
        )
        splits[hash_split(r.study_id)].append(r.study_id)
    return CaseSource(NAME, cases, splits, False, [])
