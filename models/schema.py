"""The one record every layer shares: a Case.

A dataset record, a model's prediction and an annotator's label are all a Case (schema ``gazelabel.case/1``).
Coordinates are original-image pixels (x = column, y = row, continuous: pixel ``i`` spans ``[i, i+1)``);
times are seconds. ``findings`` uses the CheXpert convention: 1 positive, 0 negative, -1 uncertain, absent =
not mentioned. Heatmaps travel as images beside the JSON, never inside it.

``Case.from_dict`` validates and raises :class:`CaseError` naming the field and the problem, so a bad label
upload becomes an HTTP 4xx or a CLI error, never a traceback.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.strict_json import JSONValueError, check_value, loads
from models.vocab import FINDINGS, LABEL_VALUES, REGION_NAMES, canonical_finding

SCHEMA = "gazelabel.case/1"
# Points may sit this far outside the image (eye-tracker noise at the border) before they are an error.
EDGE_TOLERANCE_PX = 0.5
# ``extra`` holds dataset fields and model outputs: plain JSON, nested at most this deep.
EXTRA_MAX_DEPTH = 16


class CaseError(ValueError):
    """A case (or part of one) is malformed; the message names the field, e.g. ``fixations[3].duration``."""


def _number(value: Any, where: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CaseError(f"{where}: expected a number, got {value!r}"[:300])
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        raise CaseError(f"{where}: expected a number, got {value!r}"[:300]) from None
    if not math.isfinite(value):
        raise CaseError(f"{where}: must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise CaseError(f"{where}: must be >= {minimum}, got {value}")
    return value


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise CaseError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _text(value: Any, where: str, *, optional: bool = True) -> str | None:
    """A string field (None allowed when ``optional``); numbers and nested values are refused."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise CaseError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise CaseError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _region(value: Any, where: str) -> str | None:
    region = _text(value, where)
    if region is not None and region not in REGION_NAMES:
        raise CaseError(f"{where}: unknown region {region!r}")
    return region


@dataclass
class ImageRef:
    """Where the pixels are and how big they are (original pixels)."""

    path: str = ""
    width: int = 0
    height: int = 0
    spacing_mm: tuple[float, float] | None = None  # (row, column) spacing, as DICOM PixelSpacing
    view: str | None = None  # PA, AP, LATERAL ...
    synthetic: bool = False

    @classmethod
    def from_dict(cls, d: dict, where: str = "image") -> "ImageRef":
        d = _mapping(d, where)
        width = int(_number(d.get("width", 0), f"{where}.width", minimum=0))
        height = int(_number(d.get("height", 0), f"{where}.height", minimum=0))
        spacing = d.get("spacing_mm")
        if spacing is not None:
            if not isinstance(spacing, (list, tuple)) or len(spacing) != 2:
                raise CaseError(f"{where}.spacing_mm: expected [row, column] in mm, got {spacing!r}")
            spacing = tuple(_number(s, f"{where}.spacing_mm", minimum=0) for s in spacing)
        synthetic = d.get("synthetic", False)
        if not isinstance(synthetic, bool):
            raise CaseError(f"{where}.synthetic: expected true or false, got {synthetic!r}")
        return cls(_text(d.get("path", ""), f"{where}.path", optional=False), width, height, spacing,
                   _text(d.get("view"), f"{where}.view"), synthetic)


@dataclass
class Fixation:
    """One fixation: position in original pixels, start time and duration in seconds."""

    x: float
    y: float
    t: float = 0.0
    duration: float = 0.0

    @classmethod
    def from_dict(cls, d: dict, where: str = "fixation") -> "Fixation":
        d = _mapping(d, where)
        for key in ("x", "y"):
            if key not in d:
                raise CaseError(f"{where}: missing '{key}'")
        return cls(
            _number(d["x"], f"{where}.x"),
            _number(d["y"], f"{where}.y"),
            _number(d.get("t", 0.0), f"{where}.t", minimum=0.0),
            _number(d.get("duration", 0.0), f"{where}.duration", minimum=0.0),
        )


@dataclass
class Box:
    """A finding's box in original pixels; ``region`` is a name from ``models.vocab.REGIONS``."""

    finding: str
    x1: float
    y1: float
    x2: float
    y2: float
    region: str | None = None
    score: float | None = None

    @classmethod
    def from_dict(cls, d: dict, where: str = "box") -> "Box":
        d = _mapping(d, where)
        try:
            finding = canonical_finding(d.get("finding", ""))
        except KeyError as e:
            raise CaseError(f"{where}.finding: {e.args[0]}") from None
        x1, y1, x2, y2 = (_number(d.get(k), f"{where}.{k}") for k in ("x1", "y1", "x2", "y2"))
        if x2 <= x1 or y2 <= y1:
            raise CaseError(f"{where}: needs x1 < x2 and y1 < y2, got ({x1}, {y1}, {x2}, {y2})")
        region = _region(d.get("region"), f"{where}.region")
        score = d.get("score")
        return cls(finding, x1, y1, x2, y2, region, None if score is None else _number(score, f"{where}.score"))

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return self.x1, self.y1, self.x2, self.y2


@dataclass
class Evidence:
    """Links one report sentence to what supports it."""

    sentence: int
    finding: str | None = None
    region: str | None = None
    box: int | None = None  # index into Case.boxes
    fixations: list[int] = field(default_factory=list)  # indices into Case.fixations

    @classmethod
    def from_dict(cls, d: dict, where: str = "evidence") -> "Evidence":
        d = _mapping(d, where)
        finding = d.get("finding")
        if finding is not None:
            try:
                finding = canonical_finding(finding)
            except KeyError as e:
                raise CaseError(f"{where}.finding: {e.args[0]}") from None
        box = d.get("box")
        fix = _list(d.get("fixations") or [], f"{where}.fixations")
        return cls(
            int(_number(d.get("sentence", 0), f"{where}.sentence", minimum=0)),
            finding,
            _region(d.get("region"), f"{where}.region"),
            None if box is None else int(_number(box, f"{where}.box", minimum=0)),
            [int(_number(i, f"{where}.fixations", minimum=0)) for i in fix],
        )


@dataclass
class Report:
    findings: str = ""
    impression: str = ""
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def text(self) -> str:
        """FINDINGS then IMPRESSION, as one string."""
        return " ".join(s for s in (self.findings.strip(), self.impression.strip()) if s)

    @classmethod
    def from_dict(cls, d: Any, where: str = "report") -> "Report":
        if isinstance(d, str):  # a bare string is the findings section
            return cls(findings=d)
        d = _mapping(d, where)
        ev = _list(d.get("evidence") or [], f"{where}.evidence")
        return cls(
            _text(d.get("findings"), f"{where}.findings") or "",
            _text(d.get("impression"), f"{where}.impression") or "",
            [Evidence.from_dict(e, f"{where}.evidence[{i}]") for i, e in enumerate(ev)],
        )


# What an answered question is about (``Answer.type``); the kinds within them are ``models.vqa.questions.KINDS``.
ANSWER_TYPES = ("presence", "location", "size", "count", "not_inspected", "comparison")
MAX_QUESTION_CHARS = 300


@dataclass
class Answer:
    """A question about the image answered by the ``vqa`` family (``Prediction.answer``).

    Attributes:
        question: the question as asked (at most :data:`MAX_QUESTION_CHARS` characters).
        answer: a word of the closed vocabulary (yes / no / none, a finding, a region, right / left / both,
            small / moderate / large, a count 0-6 where 6 means six or more), for "which regions were not
            inspected" the regions joined by ", " (or "none"); "cannot answer" when ``answerable`` is false.
        answerable: false when the model refuses; ``reason`` then says why (an unknown finding, a question unlike
            any it was trained on, a finding with no place on the image, no gaze to answer from ...).
        type: the question type (:data:`ANSWER_TYPES`); ``kind`` the finer kind (presence, region, side, size,
            count, missed, inspected, both, larger).
        confidence: the answer's probability in [0, 1] (softmax over the kind's answers; with MC dropout the
            mean over passes; for a region set the product over regions); None when not answerable.
        alternatives: the next answers, ``[{"answer": str, "p": float}]``, most likely first.
        findings: the findings the question names (CheXpert-14 spelling); regions: the region it names, or
            for "missed" the regions answered.
        box: the evidence ``[x1, y1, x2, y2]`` in original pixels (the grounding map's box, or the asked
            region's box), or None.
        fixations: indices into ``Case.fixations`` on the evidence (the gaze the answer rests on).
        gaze_source: "recorded", "predicted" or "none": the fixations the model was given.
        similarity: cosine similarity of the question to the nearest training question (frozen MiniLM).
        mc_samples: MC-dropout passes behind ``confidence`` (0 = one deterministic pass).
    """

    question: str
    answer: str
    answerable: bool = True
    reason: str | None = None
    type: str | None = None
    kind: str | None = None
    confidence: float | None = None
    alternatives: list[dict] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    box: list[float] | None = None
    fixations: list[int] = field(default_factory=list)
    gaze_source: str | None = None
    similarity: float | None = None
    mc_samples: int = 0

    @classmethod
    def from_dict(cls, d: Any, where: str = "prediction.answer") -> "Answer":
        d = _mapping(d, where)
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise CaseError(f"{where}.{unknown[0]}: not an answer field")
        question = _text(d.get("question"), f"{where}.question", optional=False)
        if len(question) > MAX_QUESTION_CHARS:
            raise CaseError(f"{where}.question: at most {MAX_QUESTION_CHARS} characters, got {len(question)}")
        answerable = d.get("answerable", True)
        if not isinstance(answerable, bool):
            raise CaseError(f"{where}.answerable: expected true or false, got {answerable!r}")
        kind_of = d.get("type")
        if kind_of is not None and kind_of not in ANSWER_TYPES:
            raise CaseError(f"{where}.type: expected one of {', '.join(ANSWER_TYPES)}, got {kind_of!r}"[:300])
        confidence = d.get("confidence")
        if confidence is not None:
            confidence = _number(confidence, f"{where}.confidence", minimum=0.0)
            if confidence > 1.0:
                raise CaseError(f"{where}.confidence: a probability in [0, 1] is required, got {confidence}")
        alternatives = []
        for i, a in enumerate(_list(d.get("alternatives") or [], f"{where}.alternatives")):
            a = _mapping(a, f"{where}.alternatives[{i}]")
            p = _number(a.get("p"), f"{where}.alternatives[{i}].p", minimum=0.0)
            if p > 1.0:
                raise CaseError(f"{where}.alternatives[{i}].p: a probability in [0, 1] is required, got {p}")
            alternatives.append({"answer": _text(a.get("answer"), f"{where}.alternatives[{i}].answer", optional=False), "p": p})
        findings = []
        for i, f in enumerate(_list(d.get("findings") or [], f"{where}.findings")):
            try:
                findings.append(canonical_finding(_text(f, f"{where}.findings[{i}]", optional=False)))
            except KeyError as e:
                raise CaseError(f"{where}.findings[{i}]: {e.args[0]}") from None
        regions = [_region(r, f"{where}.regions[{i}]") for i, r in enumerate(_list(d.get("regions") or [], f"{where}.regions"))]
        box = d.get("box")
        if box is not None:
            box = [_number(v, f"{where}.box[{i}]") for i, v in enumerate(_list(box, f"{where}.box"))]
            if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
                raise CaseError(f"{where}.box: expected [x1, y1, x2, y2] with x1 < x2 and y1 < y2, got {box}"[:300])
        fixations = [int(_number(i, f"{where}.fixations", minimum=0)) for i in _list(d.get("fixations") or [], f"{where}.fixations")]
        similarity = d.get("similarity")
        return cls(
            question=question,
            answer=_text(d.get("answer"), f"{where}.answer", optional=False),
            answerable=answerable,
            reason=_text(d.get("reason"), f"{where}.reason"),
            type=kind_of,
            kind=_text(d.get("kind"), f"{where}.kind"),
            confidence=confidence,
            alternatives=alternatives,
            findings=findings,
            regions=[r for r in regions if r is not None],
            box=box,
            fixations=fixations,
            gaze_source=_text(d.get("gaze_source"), f"{where}.gaze_source"),
            similarity=None if similarity is None else _number(similarity, f"{where}.similarity"),
            mc_samples=int(_number(d.get("mc_samples", 0), f"{where}.mc_samples", minimum=0)),
        )


@dataclass
class Prediction:
    """What the models say beside the findings, boxes, fixations and report of a predicted Case; None on
    dataset records and annotators' labels.

    Attributes:
        models: family -> the checkpoint that answered (its stamp, or the model name).
        synthetic: a model behind this answer was trained on SYNTHETIC data.
        uncertainty: mean binary entropy over the findings in bits, [0, 1] (MC dropout: of the mean).
        decision: the rule behind ``Case.findings``: ``{"positive": {finding: t}, "uncertain": {...}}``.
        scanpath_samples: every sampled scanpath (original pixels, seconds); ``Case.fixations`` is the first.
        temperature: the scanpaths' sampling temperature (0 = the deterministic mean path).
        gaze_source: the gaze the report was drafted from: "recorded", "predicted" or "none".
        report_writer: ``{"mode", "lm_sentences", "template_sentences"}``: who wrote the report's sentences.
        timings: seconds per step (classifier, scanpath, report, vqa).
        answer: the asked question's :class:`Answer` (the ``vqa`` family), or None when nothing was asked.
    """

    models: dict[str, str] = field(default_factory=dict)
    synthetic: bool = False
    uncertainty: float | None = None
    decision: dict | None = None
    scanpath_samples: list[list[Fixation]] = field(default_factory=list)
    temperature: float | None = None
    gaze_source: str | None = None
    report_writer: dict | None = None
    timings: dict[str, float] = field(default_factory=dict)
    answer: Answer | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str = "prediction") -> "Prediction":
        d = _mapping(d, where)
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CaseError(f"{where}.{unknown[0]}: not a prediction field")
        models = {str(k): _text(v, f"{where}.models[{k!r}]", optional=False) for k, v in _mapping(d.get("models") or {}, f"{where}.models").items()}
        synthetic = d.get("synthetic", False)
        if not isinstance(synthetic, bool):
            raise CaseError(f"{where}.synthetic: expected true or false, got {synthetic!r}")
        samples = [[Fixation.from_dict(f, f"{where}.scanpath_samples[{i}][{j}]") for j, f in enumerate(_list(path, f"{where}.scanpath_samples[{i}]"))]
                   for i, path in enumerate(_list(d.get("scanpath_samples") or [], f"{where}.scanpath_samples"))]
        extras = {}
        for key in ("decision", "report_writer"):
            if d.get(key) is not None:
                try:
                    extras[key] = check_value(dict(_mapping(d[key], f"{where}.{key}")), f"{where}.{key}", max_depth=4)
                except JSONValueError as e:
                    raise CaseError(str(e)) from None
        uncertainty = d.get("uncertainty")
        temperature = d.get("temperature")
        return cls(
            models=models, synthetic=synthetic,
            uncertainty=None if uncertainty is None else _number(uncertainty, f"{where}.uncertainty", minimum=0.0),
            scanpath_samples=samples,
            temperature=None if temperature is None else _number(temperature, f"{where}.temperature", minimum=0.0),
            gaze_source=_text(d.get("gaze_source"), f"{where}.gaze_source"),
            timings={str(k): _number(v, f"{where}.timings[{k!r}]", minimum=0.0)
                     for k, v in _mapping(d.get("timings") or {}, f"{where}.timings").items()},
            answer=None if d.get("answer") is None else Answer.from_dict(d["answer"], f"{where}.answer"),
            **extras)


@dataclass
class Source:
    dataset: str | None = None
    ref: str | None = None
    model: str | None = None


@dataclass
class Case:
    """Image, fixations, boxes, findings and report of one chest radiograph."""

    id: str
    image: ImageRef = field(default_factory=ImageRef)
    findings: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    boxes: list[Box] = field(default_factory=list)
    fixations: list[Fixation] = field(default_factory=list)
    readers: dict[str, list[Fixation]] = field(default_factory=dict)
    report: Report | None = None
    coverage: dict[str, list[str]] = field(default_factory=dict)
    source: Source = field(default_factory=Source)
    prediction: Prediction | None = None  # what the models add; None on records and labels
    extra: dict[str, Any] = field(default_factory=dict)  # dataset-specific fields kept verbatim

    # ---------------------------------------------------------------- conversion
    def to_dict(self) -> dict:
        d = {"schema": SCHEMA, **asdict(self)}
        if d["image"]["spacing_mm"] is not None:
            d["image"]["spacing_mm"] = list(d["image"]["spacing_mm"])
        if not d["extra"]:
            d.pop("extra")
        if d["prediction"] is None:
            d.pop("prediction")
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "Case":
        """Build and validate a case; raises :class:`CaseError` with the offending field."""
        d = _mapping(d, "case")
        schema = d.get("schema", SCHEMA)
        if schema != SCHEMA:
            raise CaseError(f"schema: expected {SCHEMA!r}, got {schema!r}")
        case_id = d.get("id")
        if not isinstance(case_id, str) or not case_id.strip():
            raise CaseError("id: a non-empty string is required")
        image = ImageRef.from_dict(d.get("image") or {})

        findings = {}
        for name, value in _mapping(d.get("findings") or {}, "findings").items():
            try:
                canon = canonical_finding(name)
            except KeyError as e:
                raise CaseError(f"findings: {e.args[0]}") from None
            if value is None:
                continue
            v = _number(value, f"findings[{name!r}]")
            if v not in LABEL_VALUES:
                raise CaseError(f"findings[{name!r}]: must be 1 (positive), 0 (negative) or -1 (uncertain), got {value!r}")
            findings[canon] = int(v)

        scores = {}
        for name, value in _mapping(d.get("scores") or {}, "scores").items():
            try:
                canon = canonical_finding(name)
            except KeyError as e:
                raise CaseError(f"scores: {e.args[0]}") from None
            s = _number(value, f"scores[{name!r}]")
            if not 0.0 <= s <= 1.0:
                raise CaseError(f"scores[{name!r}]: a probability in [0, 1] is required, got {s}")
            scores[canon] = s

        def fixation_list(items: Any, where: str) -> list[Fixation]:
            if not isinstance(items, list):
                raise CaseError(f"{where}: expected a list")
            return [Fixation.from_dict(f, f"{where}[{i}]") for i, f in enumerate(items)]

        boxes = d.get("boxes") or []
        if not isinstance(boxes, list):
            raise CaseError("boxes: expected a list")
        readers = {str(k): fixation_list(v, f"readers[{k!r}]") for k, v in _mapping(d.get("readers") or {}, "readers").items()}
        report = d.get("report")
        coverage = {
            str(k): [_text(r, f"coverage[{k!r}][{i}]", optional=False) for i, r in enumerate(_list(v, f"coverage[{k!r}]"))]
            for k, v in _mapping(d.get("coverage") or {}, "coverage").items()
        }
        src = _mapping(d.get("source") or {}, "source")
        source = Source(*(_text(src.get(k), f"source.{k}") for k in ("dataset", "ref", "model")))
        extra = _mapping(d.get("extra") or {}, "extra")
        try:
            check_value(extra, "extra", max_depth=EXTRA_MAX_DEPTH)
        except JSONValueError as e:
            raise CaseError(str(e)) from None
        case = cls(
            id=case_id,
            image=image,
            findings=findings,
            scores=scores,
            boxes=[Box.from_dict(b, f"boxes[{i}]") for i, b in enumerate(boxes)],
            fixations=fixation_list(d.get("fixations") or [], "fixations"),
            readers=readers,
            report=None if report is None else Report.from_dict(report),
            coverage=coverage,
            source=source,
            prediction=None if d.get("prediction") is None else Prediction.from_dict(d["prediction"]),
            extra=dict(extra),
        )
        case.validate()
        return case

    # ---------------------------------------------------------------- checks
    def validate(self) -> "Case":
        """Check points lie inside the image and cross-references resolve; returns self."""
        w, h = self.image.width, self.image.height
        if w and h:
            def inside(x: float, y: float, where: str) -> None:
                if not (-EDGE_TOLERANCE_PX <= x <= w + EDGE_TOLERANCE_PX and -EDGE_TOLERANCE_PX <= y <= h + EDGE_TOLERANCE_PX):
                    raise CaseError(f"{where}: point ({x:.1f}, {y:.1f}) lies outside the {w}x{h} image")

            for i, f in enumerate(self.fixations):
                inside(f.x, f.y, f"fixations[{i}]")
            for reader, fixes in self.readers.items():
                for i, f in enumerate(fixes):
                    inside(f.x, f.y, f"readers[{reader!r}][{i}]")
            for k, path in enumerate(self.prediction.scanpath_samples if self.prediction else []):
                for i, f in enumerate(path):
                    inside(f.x, f.y, f"prediction.scanpath_samples[{k}][{i}]")
            for i, b in enumerate(self.boxes):
                inside(b.x1, b.y1, f"boxes[{i}] (x1, y1)")
                inside(b.x2, b.y2, f"boxes[{i}] (x2, y2)")
            answer = self.prediction.answer if self.prediction else None
            if answer is not None and answer.box is not None:
                inside(answer.box[0], answer.box[1], "prediction.answer.box (x1, y1)")
                inside(answer.box[2], answer.box[3], "prediction.answer.box (x2, y2)")
        answer = self.prediction.answer if self.prediction else None
        if answer is not None:
            bad = [j for j in answer.fixations if j >= len(self.fixations)]
            if bad:
                raise CaseError(f"prediction.answer.fixations: index {bad[0]} but the case has {len(self.fixations)} fixations")
        if self.report is not None:
            for i, e in enumerate(self.report.evidence):
                if e.box is not None and e.box >= len(self.boxes):
                    raise CaseError(f"report.evidence[{i}].box: index {e.box} but the case has {len(self.boxes)} boxes")
                bad = [j for j in e.fixations if j >= len(self.fixations)]
                if bad:
                    raise CaseError(f"report.evidence[{i}].fixations: index {bad[0]} but the case has {len(self.fixations)} fixations")
        return self

    # ---------------------------------------------------------------- helpers
    def label_vector(self, uncertain_as: float = 1.0) -> tuple[list[float], list[float]]:
        """Targets and mask over ``FINDINGS`` (mask 0 = not mentioned): ``([14], [14])``."""
        target, mask = [0.0] * len(FINDINGS), [0.0] * len(FINDINGS)
        for i, name in enumerate(FINDINGS):
            if name in self.findings:
                v = self.findings[name]
                target[i] = uncertain_as if v == -1 else float(v)
                mask[i] = 1.0
        return target, mask

    def synthetic_notes(self) -> list[str]:
        """What is synthetic about this case, for captions: the image, and/or the models behind a prediction."""
        notes = ["SYNTHETIC image"] if self.image.synthetic else []
        if self.prediction is not None and self.prediction.synthetic:
            notes.append("models trained on SYNTHETIC data")
        return notes

    def positive_findings(self) -> list[str]:
        return [f for f in FINDINGS if self.findings.get(f) == 1]


def load_case(path: str | Path) -> Case:
    """Read a case JSON file; CaseError names the file and the field on failure."""
    path = Path(path)
    try:
        data = loads(path.read_bytes(), str(path), max_bytes=None, expect=None)
    except FileNotFoundError:
        raise CaseError(f"{path}: no such file") from None
    except JSONValueError as e:
        raise CaseError(str(e)) from None
    try:
        return Case.from_dict(data)
    except CaseError as e:
        raise CaseError(f"{path}: {e}") from None


def save_case(case: Case, path: str | Path) -> Path:
    """Write a case JSON file atomically (a crash leaves the previous version, never a torn file)."""
    from models.files import atomic_json

    return atomic_json(path, case.to_dict())
