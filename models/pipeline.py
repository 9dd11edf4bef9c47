"""Image -> one Case: findings, heatmap and boxes, scanpath with coverage, draft report with evidence.

:meth:`Pipeline.run` is the one place where the models are put together; the CLI (``gazelabel predict``)
and every server infer task call it, so the same request gets the same answer everywhere. A task is a
*preset* (:data:`TASKS`): which families run and the defaults of the options; the options themselves are
the same for all of them (:data:`OPTIONS`).

A models folder holds whichever models exist (the layout of :mod:`models.families`)::

    <models_dir>/classifier.pt    gazelabel train classifier --out <models_dir>/classifier.pt
    <models_dir>/scanpath.pt      gazelabel train scanpath   --out <models_dir>/scanpath.pt
    <models_dir>/report/          gazelabel train report     --out <models_dir>/report
    <models_dir>/vqa.pt           gazelabel train vqa        --out <models_dir>/vqa.pt

A ``question`` (:class:`RunOptions`) makes the ``vqa`` family answer it about the image with the fixations the
Case carries (recorded or predicted); the answer, its confidence, evidence box and fixations go into
``case.prediction.answer`` (:class:`models.schema.Answer`).

Missing models are skipped (the report then falls back to templates, which need only the classifier). Each
step takes and returns plain arrays or the Case; nothing reads files behind another step's back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from models.gaze import fixation_heatmap
from models.imaging import LoadedImage, read_image
from models.report.config import INFERENCE_SAMPLES, check_samples
from models.schema import MAX_QUESTION_CHARS, Case, Fixation, ImageRef, Prediction, Source

FAMILY_ORDER = ("classifier", "scanpath", "report", "vqa")
# What the report and pipeline tasks run (the vqa family runs only when a question is asked).
READING_FAMILIES = ("classifier", "scanpath", "report")
REPORT_MODES = ("auto", "gaze2report", "prompt", "template", "none")
GAZE_CHOICES = ("auto", "recorded", "predicted", "none")
# Shown scanpaths are samples at T=0.3: chosen on the validation split, they reach 0.91 of the human ceiling
# on CC where the deterministic mean path reaches 0.74 (benchmarks/scanpath_benchmark.py, SYNTHETIC phantom).
SCANPATH_TEMPERATURE = 0.3


class RunError(ValueError):
    """A run the loaded models cannot do (an unknown family, recorded gaze that is not there ...)."""


@dataclass(frozen=True)
class RunOptions:
    """What one run does besides choosing the families (see :meth:`Pipeline.run`)."""

    n_samples: int = 1
    seed: int = 0
    temperature: float = SCANPATH_TEMPERATURE
    mc_samples: int = 0
    report_mode: str = "auto"
    gaze: str = "auto"
    finding: str | None = None  # the heatmap of one finding instead of the score-weighted mean
    question: str | None = None  # a question for the vqa family (at most MAX_QUESTION_CHARS characters)
    report_samples: int = INFERENCE_SAMPLES  # seeded samples of a report sentence the labeler refused

    def __post_init__(self):
        if not 1 <= self.n_samples <= 64:
            raise ValueError(f"n_samples must be in 1..64, got {self.n_samples}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.mc_samples < 0:
            raise ValueError(f"mc_samples must be >= 0, got {self.mc_samples}")
        check_samples(self.report_samples, "report_samples")
        if self.report_mode not in REPORT_MODES:
            raise ValueError(f"report_mode must be one of {', '.join(REPORT_MODES)}, got {self.report_mode!r}")
        if self.gaze not in GAZE_CHOICES:
            raise ValueError(f"gaze must be one of {', '.join(GAZE_CHOICES)}, got {self.gaze!r}")
        if self.question is not None:
            if not isinstance(self.question, str):
                raise ValueError(f"question must be text, got {type(self.question).__name__}")
            if not self.question.strip():
                raise ValueError("question is empty; ask something, e.g. 'Is there a pleural effusion?'")
            if len(self.question) > MAX_QUESTION_CHARS:
                raise ValueError(f"question is {len(self.question)} characters long; at most {MAX_QUESTION_CHARS} are accepted")


OPTIONS = tuple(RunOptions.__dataclass_fields__)


@dataclass(frozen=True)
class Task:
    """A preset over :meth:`Pipeline.run`: the families it runs and its option defaults."""

    name: str
    families: tuple[str, ...]
    defaults: RunOptions
    description: str
    required: tuple[str, ...] = ()  # families without which the task cannot run (default: its first)
    needs_question: bool = False  # the request must carry a ``question``

    @property
    def required_families(self) -> tuple[str, ...]:
        return self.required or self.families[:1]


TASKS = {t.name: t for t in (
    Task("gaze_classifier", ("classifier",), RunOptions(), "CheXpert-14 scores, findings, boxes and the attention heatmap"),
    Task("scanpath", ("scanpath",), RunOptions(gaze="predicted"),
         "Ordered fixations (x, y, duration), sampled at T=0.3, and the regions they cover"),
    Task("report", READING_FAMILIES, RunOptions(gaze="auto"),
         "Findings and a report drafted from recorded gaze when the store has it, else the predicted scanpath"),
    Task("pipeline", READING_FAMILIES, RunOptions(gaze="predicted"),
         "Findings, boxes, heatmap, predicted scanpath and report with evidence in one call"),
    Task("vqa", ("classifier", "scanpath", "vqa"), RunOptions(gaze="auto"),
         "Answer a question about the image (params.question) with confidence, evidence box and fixations, "
         "on the recorded gaze when the store has it, else the predicted scanpath",
         required=("vqa",), needs_question=True),
)}


@dataclass
class PipelineResult:
    """``case``: the prediction as a Case (original pixels; ``case.prediction`` holds what the models add);
    ``heatmap``: ``(H, W)`` float32 in [0, 1] (classifier attention, or the fixation map without a
    classifier); ``timings``: seconds per step."""

    case: Case
    heatmap: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    def __iter__(self):  # allows ``case, heatmap = pipeline.run(image)``
        return iter((self.case, self.heatmap))


def _model_id(predictor, family: str) -> str:
    info = getattr(predictor, "info", {}) or {}
    return str(info.get("stamp") or getattr(predictor, "name", None) or family)


def _synthetic(predictor) -> bool:
    info = getattr(predictor, "info", {}) or {}
    return bool(info.get("synthetic", getattr(predictor, "synthetic", False)))


class Pipeline:
    """The model families chained; any of them may be None."""

    def __init__(self, classifier=None, scanpath=None, report=None, vqa=None):
        self.predictors = {"classifier": classifier, "scanpath": scanpath, "report": report, "vqa": vqa}

    @property
    def classifier(self):
        return self.predictors["classifier"]

    @property
    def scanpath(self):
        return self.predictors["scanpath"]

    @property
    def report(self):
        return self.predictors["report"]

    @property
    def vqa(self):
        return self.predictors["vqa"]

    @property
    def trained_on_synthetic(self) -> bool:
        return any(_synthetic(p) for p in self.predictors.values() if p is not None)

    @classmethod
    def from_dir(cls, models_dir: str | Path, device: str = "cpu") -> "Pipeline":
        """Load whichever families' models exist in ``models_dir``; FileNotFoundError when there are none."""
        from models.families import FAMILIES

        found = {name: f for name, f in FAMILIES.items() if f.exists(models_dir)}
        if not found:
            expected = ", ".join(f.artifact for f in FAMILIES.values())
            raise FileNotFoundError(f"{models_dir}: no models found (expected {expected}); "
                                    "train them with `gazelabel train classifier|scanpath|report|vqa`")
        return cls(**{name: f.load(f.path(models_dir), device=device) for name, f in found.items()})

    @classmethod
    def from_predictors(cls, classifier=None, scanpath=None, report=None, vqa=None) -> "Pipeline":
        """Chain already loaded models (a server keeps them cached per family); any may be None."""
        return cls(classifier, scanpath, report, vqa)

    def _report_generator(self):
        if self.report is not None:
            return self.report
        from models.report.generate import ReportGenerator

        return ReportGenerator()  # template mode only

    def run(self, image: LoadedImage | str | Path, *, case_id: str | None = None,
            families: Sequence[str] = FAMILY_ORDER, options: RunOptions | None = None,
            recorded_gaze: Sequence[Fixation] | None = None, **overrides) -> PipelineResult:
        """Run the chosen families on one image.

        Args:
            image: a LoadedImage or a path (DICOM, PNG, NIfTI ...).
            case_id: id of the returned case (default: the file name without extension).
            families: which families run (of those loaded); the report needs the classifier's findings.
            options: :class:`RunOptions`; keyword ``overrides`` replace single fields:
                ``n_samples`` scanpaths are drawn (seeded by ``seed``, at ``temperature``; 0 = the mean path),
                the first becomes ``case.fixations``, all are in ``case.prediction.scanpath_samples``;
                ``report_mode`` "auto" (gaze2report when a report model is loaded, else templates),
                "gaze2report", "prompt", "template" or "none"; ``report_samples`` seeded samples of a
                sentence the labeler refused, before its template (default 0); ``mc_samples`` MC-dropout passes of the
                classifier; ``gaze`` which fixations the case and the report carry: "recorded" (the
                ``recorded_gaze`` given), "predicted" (the scanpath family), "auto" (recorded when given,
                else predicted) or "none"; ``question`` a question the vqa family answers (needs "vqa" in
                ``families`` and a loaded vqa model) from those fixations, into ``case.prediction.answer``
                (``mc_samples`` also sets its MC-dropout passes).
            recorded_gaze: a radiologist's fixations for this image (original pixels), e.g. from the store.

        Raises:
            RunError: an unknown family, ``gaze="recorded"`` without recorded gaze, the heatmap of a finding
                that has no place on the image, a question without the vqa family or model. ValueError: an
                option out of range (:class:`RunOptions`).
        """
        import torch

        with torch.inference_mode():  # no autograd bookkeeping: ~8% of a CPU answer (benchmarks/pipeline_latency.py)
            return self._run(image, case_id=case_id, families=families, options=options, recorded_gaze=recorded_gaze,
                             **overrides)

    def _run(self, image, *, case_id, families, options, recorded_gaze, **overrides) -> PipelineResult:
        opts = replace(options or RunOptions(), **overrides)
        unknown = [f for f in families if f not in FAMILY_ORDER]
        if unknown:
            raise RunError(f"families: unknown {unknown[0]!r}; choose from {', '.join(FAMILY_ORDER)}")
        run = [f for f in FAMILY_ORDER if f in families and (self.predictors[f] is not None or f == "report")]
        if "report" in run and (opts.report_mode == "none" or self.classifier is None or "classifier" not in families):
            run.remove("report")
        if opts.question is not None:
            if "vqa" not in families:
                raise RunError("question: only a run with the vqa family answers questions (the vqa task, `gazelabel ask`)")
            if self.vqa is None:
                raise RunError("question: no vqa model is loaded; train one with `gazelabel train vqa`")
        elif "vqa" in run:
            run.remove("vqa")  # nothing was asked
        if opts.gaze == "recorded" and not recorded_gaze:
            raise RunError("gaze=recorded: there are no recorded fixations for this image")
        if not isinstance(image, LoadedImage):
            image = read_image(image)
        if case_id is None:
            case_id = Path(image.path or "image").name.split(".")[0] or "image"
        ref = ImageRef(image.path or "", image.width, image.height, image.spacing_mm, (image.meta or {}).get("view"),
                       bool((image.meta or {}).get("synthetic", False)))
        prediction = Prediction(models={f: _model_id(self.predictors[f], f) for f in run if self.predictors[f] is not None},
                                synthetic=any(_synthetic(self.predictors[f]) for f in run if self.predictors[f] is not None))
        case = Case(id=case_id, image=ref, prediction=prediction)
        heatmap = None

        t = time.perf_counter()
        result = None
        if "classifier" in run:
            from models.classifier.predict import NON_SPATIAL

            result = self.classifier(image, mc_samples=opts.mc_samples)
            found = result.to_case(case_id, ref)
            case.findings, case.scores, case.boxes = found.findings, found.scores, found.boxes
            prediction.uncertainty = result.uncertainty
            prediction.decision = result.rule.to_dict()
            if opts.finding is not None and opts.finding in NON_SPATIAL:
                raise RunError(f"finding: {opts.finding!r} has no place on the image; choose a spatial finding")
            heatmap = result.heatmap(opts.finding)
        prediction.timings["classifier"] = time.perf_counter() - t

        t = time.perf_counter()
        use_recorded = bool(recorded_gaze) and opts.gaze in ("auto", "recorded")
        if "scanpath" in run and opts.gaze != "none":
            paths = self.scanpath(image, n_samples=opts.n_samples, seed=opts.seed, temperature=opts.temperature,
                                  include_mean=opts.temperature == 0)
            prediction.temperature = opts.temperature
            if opts.n_samples > 1:
                prediction.scanpath_samples = [list(p) for p in paths]
            if not use_recorded:
                case.fixations = list(paths[0])
        if use_recorded:
            case.fixations = list(recorded_gaze)
        prediction.gaze_source = "recorded" if use_recorded else "predicted" if case.fixations else "none"
        if case.fixations:
            from models.scanpath.coverage import coverage

            case.coverage = coverage(case.fixations, image.width, image.height)
        if heatmap is None:
            heatmap = (fixation_heatmap(case.fixations, (image.height, image.width)) if case.fixations
                       else np.zeros((image.height, image.width), np.float32))
        prediction.timings["scanpath"] = time.perf_counter() - t

        t = time.perf_counter()
        if "report" in run:
            from models.report.generate import writer_summary

            # "auto" prefers Gaze2Report: on held-out phantom cases it keeps the templates' clinical efficacy (its
            # sentences are read back against the plan) and reads closer to the references (ROUGE-L +0.03,
            # CI excludes 0; benchmarks/report_benchmark.py). Templates when no report model is trained.
            mode = ("gaze2report" if self.report is not None else "template") if opts.report_mode == "auto" else opts.report_mode
            case.report, stats = self._report_generator().write(image, result, case.fixations, mode=mode, boxes=case.boxes,
                                                                samples=opts.report_samples)
            prediction.report_writer = writer_summary(stats)
        prediction.timings["report"] = time.perf_counter() - t

        if "vqa" in run:
            t = time.perf_counter()
            prediction.answer = self.vqa.ask(image, opts.question, case.fixations, gaze_source=prediction.gaze_source,
                                             mc_samples=opts.mc_samples)
            prediction.timings["vqa"] = time.perf_counter() - t

        case.source = Source(dataset=None, ref=None, model="gazelabel " + "+".join(prediction.models))
        case.validate()
        return PipelineResult(case, heatmap.astype(np.float32), dict(prediction.timings))


__all__ = ["FAMILY_ORDER", "READING_FAMILIES", "GAZE_CHOICES", "OPTIONS", "Pipeline", "PipelineResult", "REPORT_MODES", "RunError", "RunOptions",
           "SCANPATH_TEMPERATURE", "TASKS", "Task"]
