"""Coded concepts for GazeLabel's DICOM SR: CheXpert-14 findings, the 17 chest regions, and the few names
that have no standard code.

Every entry states where its code comes from:

- ``PS3.16``: the concept appears with this code and meaning in the DICOM standard's context groups (part 16;
  checked against the copy shipped in pydicom's ``pydicom.sr`` code dictionary by ``tests/unit/test_dicom_sr.py``);
- ``TID 1500``: the one concept the Measurement Report template itself defines (its Qualitative Evaluations
  container), which is not in a context group;
- ``SNOMED CT``: a SNOMED CT International concept id not listed in PS3.16 (the code and its fully specified
  name were looked up, not guessed; the DICOM table pairs "Cardiomegaly" with 287272002, which SNOMED CT
  names "Enlarged septal foramen of heart", so the SNOMED CT concept 8186001 is used instead);
- ``local``: no concept that means exactly the CheXpert label was found, so a code of GazeLabel's own coding
  scheme ``99GAZELABEL`` is used (DICOM reserves designators starting with "99" for local schemes; the SR
  declares it in its Coding Scheme Identification Sequence). A PACS shows its meaning text.

Regions with a side (``right upper zone``) are a location code plus a laterality modifier (SNOMED CT Right /
Left), as DICOM finding sites are written.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.sr.coding import Code

LOCAL_SCHEME = "99GAZELABEL"
LOCAL_SCHEME_NAME = "GazeLabel local codes"


@dataclass(frozen=True)
class Coded:
    """A code, and where it comes from (``PS3.16``, ``SNOMED CT`` or ``local``)."""

    value: str
    scheme: str
    meaning: str
    source: str

    @property
    def code(self) -> Code:
        return Code(self.value, self.scheme, self.meaning)

    @property
    def key(self) -> tuple[str, str]:
        return self.value, self.scheme


def _sct(value: str, meaning: str, source: str = "PS3.16") -> Coded:
    return Coded(value, "SCT", meaning, source)


def _dcm(value: str, meaning: str) -> Coded:
    return Coded(value, "DCM", meaning, "PS3.16")


def _local(value: str, meaning: str) -> Coded:
    return Coded(value, LOCAL_SCHEME, meaning, "local")


FINDING_CODES: dict[str, Coded] = {
    "No Finding": _sct("17621005", "Normal"),
    "Enlarged Cardiomediastinum": _local("GZL-F01", "Enlarged cardiomediastinum"),
    "Cardiomegaly": _sct("8186001", "Cardiomegaly", "SNOMED CT"),
    "Lung Lesion": _local("GZL-F03", "Lung lesion"),
    "Lung Opacity": _dcm("112001", "Opacity"),
    "Edema": _sct("19242006", "Pulmonary edema"),
    "Consolidation": _sct("95436008", "Lung consolidation", "SNOMED CT"),
    "Pneumonia": _sct("233604007", "Pneumonia", "SNOMED CT"),
    "Atelectasis": _sct("46621007", "Atelectasis", "SNOMED CT"),
    "Pneumothorax": _sct("36118008", "Pneumothorax"),
    "Pleural Effusion": _sct("60046008", "Pleural effusion"),
    "Pleural Other": _local("GZL-F11", "Other pleural abnormality"),
    "Fracture": _sct("125605004", "Fracture of bone", "SNOMED CT"),
    "Support Devices": _local("GZL-F13", "Support devices"),
}

RIGHT, LEFT = _sct("24028007", "Right"), _sct("7771000", "Left")
UPPER_ZONE = _sct("281392002", "Upper zone of lung")
MIDDLE_ZONE = _sct("281393007", "Middle zone of lung")
LOWER_ZONE = _sct("281394001", "Lower zone of lung")
HILUM = _sct("46750007", "Hilum of lung")
DIAPHRAGM = _sct("5798000", "Diaphragm")
COSTOPHRENIC = _local("GZL-R01", "Costophrenic angle")

# region name -> (location, laterality or None)
REGION_CODES: dict[str, tuple[Coded, Coded | None]] = {
    "trachea": (_sct("44567001", "Trachea"), None),
    "right upper zone": (UPPER_ZONE, RIGHT),
    "left upper zone": (UPPER_ZONE, LEFT),
    "right hilum": (HILUM, RIGHT),
    "left hilum": (HILUM, LEFT),
    "right mid zone": (MIDDLE_ZONE, RIGHT),
    "left mid zone": (MIDDLE_ZONE, LEFT),
    "right lower zone": (LOWER_ZONE, RIGHT),
    "left lower zone": (LOWER_ZONE, LEFT),
    "mediastinum": (_sct("72410000", "Mediastinum"), None),
    "aortic knob": (_dcm("112102", "Aortic knob"), None),
    "heart": (_sct("80891009", "Heart"), None),
    "right costophrenic angle": (COSTOPHRENIC, RIGHT),
    "left costophrenic angle": (COSTOPHRENIC, LEFT),
    "right hemidiaphragm": (DIAPHRAGM, RIGHT),
    "left hemidiaphragm": (DIAPHRAGM, LEFT),
    "bones and soft tissues": (_sct("78904004", "Chest wall"), None),
}

# CheXpert label value -> qualitative evaluation value (CID 240 "Present-Absent")
PRESENCE: dict[int, Coded] = {
    1: _sct("52101004", "Present"),
    0: _sct("272519000", "Absent"),
    -1: _sct("373068000", "Undetermined"),
}

# Names of the items GazeLabel writes.
FINDING = _dcm("121071", "Finding")
FINDINGS_TEXT = _dcm("121070", "Findings")
IMPRESSION_TEXT = _dcm("121073", "Impression")
FINDING_SITE = _sct("363698007", "Finding Site")
LATERALITY = _sct("272741003", "Laterality")
PROBABILITY = _dcm("122157", "Probability")
START_TIME = _sct("398201009", "Start time", "PS3.16")
DURATION = _sct("103335007", "Duration")
YES, NO = _sct("373066001", "Yes"), _sct("373067005", "No")
# The container TID 1500 names itself; not in PS3.16's context groups, so not in pydicom's tables.
QUALITATIVE_EVALUATIONS = Coded("C0034375", "UMLS", "Qualitative Evaluations", "TID 1500")
IMAGING_PROCEDURE = _sct("363679005", "Imaging procedure")

CASE_ID = _local("GZL-001", "GazeLabel case id")
SYNTHETIC_IMAGE = _local("GZL-002", "Synthetic image")
IMAGE_VIEW = _local("GZL-003", "View position")
SOURCE_DATASET = _local("GZL-004", "Source dataset")
SOURCE_REF = _local("GZL-005", "Source reference")
SOURCE_MODEL = _local("GZL-006", "Source model")
SENTENCE_INDEX = _local("GZL-007", "Report sentence index")
LABEL_TAG = _local("GZL-008", "Label tag")
COVERAGE = _local("GZL-009", "Gaze coverage")
UNCERTAINTY = _local("GZL-010", "Mean binary entropy of the findings")
MODEL_STAMP = _local("GZL-011", "Model checkpoint")
SYNTHETIC_MODELS = _local("GZL-012", "Models trained on synthetic data")

SECONDS = Code("s", "UCUM", "second")
PROBABILITY_UNIT = Code("{probability}", "UCUM", "probability")
INDEX_UNIT = Code("{index}", "UCUM", "index")
BITS_UNIT = Code("bit", "UCUM", "bit")

FINDING_BY_CODE = {c.key: name for name, c in FINDING_CODES.items()}
REGION_BY_CODE = {(loc.key, lat.key if lat else None): name for name, (loc, lat) in REGION_CODES.items()}
PRESENCE_BY_CODE = {c.key: v for v, c in PRESENCE.items()}
def all_codes() -> list[Coded]:
    """Every code this module defines (for the provenance test): the tables' and the named ones."""
    named = [v for v in globals().values() if isinstance(v, Coded)]
    tables = [*FINDING_CODES.values(), *PRESENCE.values(), *(loc for loc, _ in REGION_CODES.values())]
    return list({c.key: c for c in (*tables, *named)}.values())
