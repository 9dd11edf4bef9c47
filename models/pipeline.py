"""Image -> one Case: findings, heatmap and boxes, predicted scanpath with coverage, draft report with evidence.

A models folder holds whichever models exist::

    <models_dir>/classifier.pt    gazelabel train classifier --out <models_dir>/classifier.pt
    <models_dir>/scanpath.pt      gazelabel train scanpath   --out <models_dir>/scanpath.pt
    <models_dir>/report/          gazelabel train report     --out <models_dir>/report

Missing models are skipped (the report then falls back to templates, which need only the classifier). Each
step takes and returns plain arrays or the Case; nothing reads files behind another step's back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.gaze import fixation_heatmap
from models.imaging import LoadedImage, read_image
from models.schema import Case, ImageRef, Source

MODEL_FILES = {"classifier": "classifier.pt", "scanpath": "scanpath.pt", "report": "report"}
REPORT_MODES = ("auto", "gaze2report", "prompt", "template", "none")
# Shown scanpaths are samples at T=0.3: chosen on the validation split, they reach 0.91 of the human ceiling
# on CC where the deterministic mean path reaches 0.74 (benchmarks/scanpath_benchmark.py, SYNTHETIC phantom).
SCANPATH_TEMPERATURE = 0.3


@dataclass
class PipelineResult:
    """``case``: the prediction as a Case (original pixels); ``heatmap``: ``(H, W)`` float32 in [0, 1]
    (classifier attention, or the predicted fixation map without a classifier); ``timings``: seconds/step."""

    case: Case
    heatmap: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    def __iter__(self):  # allows ``case, heatmap = pipeline.run(image)``
        return iter((self.case, self.heatmap))


def model_paths(models_dir: str | Path) -> dict[str, Path]:
    """The model files/folders that exist in ``models_dir``."""
    root = Path(models_dir)
    found = {}
    for name, rel in MODEL_FILES.items():
        p = root / rel
        if (p.is_file() and p.suffix == ".pt") or (p.is_dir() and (p / "report.pt").exists()):
            found[name] = p
    return found


def models_signature(models_dir: str | Path) -> tuple:
    """Changes whenever a model is (re)published: (name, mtime_ns) of every model file."""
    sig = []
    for name, p in sorted(model_paths(models_dir).items()):
        f = p / "report.pt" if p.is_dir() else p
        sig.append((name, f.stat().st_mtime_ns))
    return tuple(sig)


class Pipeline:
    """The three models chained; any of them may be None."""

    def __init__(self, classifier=None, scanpath=None, report=None, *, trained_on_synthetic: bool = False):
        self.classifier, self.scanpath, self.report = classifier, scanpath, report
        self.trained_on_synthetic = trained_on_synthetic

    @classmethod
    def from_dir(cls, models_dir: str | Path, device: str = "cpu") -> "Pipeline":
        """Load whichever models exist in ``models_dir``; FileNotFoundError when there are none."""
        paths = model_paths(models_dir)
        if not paths:
            raise FileNotFoundError(
                f"{models_dir}: no models found (expected {', '.join(MODEL_FILES.values())}); "
                "train them with `gazelabel train classifier|scanpath|report`"
            )
        classifier = scanpath = report = None
        if "classifier" in paths:
            from models.classifier.predict import ClassifierPredictor

            classifier = ClassifierPredictor.from_checkpoint(paths["classifier"], device=device)
        if "scanpath" in paths:
            from models.scanpath.predict import ScanpathPredictor

            scanpath = ScanpathPredictor.from_checkpoint(paths["scanpath"], device=device)
        if "report" in paths:
            from models.report.generate import ReportGenerator

            report = ReportGenerator.from_checkpoint(paths["report"], device=device)
        return cls.from_predictors(classifier, scanpath, report)

    @classmethod
    def from_predictors(cls, classifier=None, scanpath=None, report=None) -> "Pipeline":
        """Chain already loaded models (a server keeps them cached per family); any may be None."""
        synthetic = bool(getattr(classifier, "synthetic", False))
        if scanpath is not None:
            synthetic |= bool((scanpath.info.get("dataset") or {}).get("synthetic", False))
        if report is not None:
            synthetic |= bool(report.info.get("synthetic", False))
        return cls(classifier, scanpath, report, trained_on_synthetic=synthetic)

    def _report_generator(self):
        if self.report is not None:
            return self.report
        from models.report.generate import ReportGenerator

        return ReportGenerator()  # template mode only

    def run(self, image: LoadedImage | str | Path, *, case_id: str | None = None, n_samples: int = 1, seed: int = 0,
            report_mode: str = "auto", mc_samples: int = 0, temperature: float = SCANPATH_TEMPERATURE) -> PipelineResult:
        """Run every loaded model on one image.

        Args:
            image: a LoadedImage or a path (DICOM, PNG, NIfTI ...).
            case_id: id of the returned case (default: the file name without extension).
            n_samples: scanpaths to draw (seeded, so repeatable); the first becomes ``case.fixations``, all
                of them are in ``case.extra["scanpath_samples"]``.
            temperature: sampling temperature of the scanpaths (0 = the deterministic mean path).
            report_mode: "auto" (gaze2report when a report model is loaded, else templates),
                "gaze2report" or "prompt" (need the report model), "template" or "none".
            mc_samples: MC-dropout passes for the classifier's uncertainty (0 = single pass).
        """
        import time

        if report_mode not in REPORT_MODES:
            raise ValueError(f"report_mode must be one of {', '.join(REPORT_MODES)}, got {report_mode!r}")
        if not isinstance(image, LoadedImage):
            image = read_image(image)
        if case_id is None:
            name = Path(image.path or "image").name
            case_id = name.split(".")[0] or "image"
        ref = ImageRef(image.path or "", image.width, image.height, image.spacing_mm, (image.meta or {}).get("view"))
        timings: dict[str, float] = {}

        t = time.perf_counter()
        result = None
        if self.classifier is not None:
            result = self.classifier(image, mc_samples=mc_samples)
            case = result.to_case(case_id, ref)
            heatmap = result.heatmap()
        else:
            case = Case(id=case_id, image=ref)
            heatmap = np.zeros((image.height, image.width), np.float32)
        timings["classifier"] = time.perf_counter() - t

        t = time.perf_counter()
        if self.scanpath is not None:
            from models.scanpath.coverage import coverage

            paths = self.scanpath(image, n_samples=n_samples, seed=seed, temperature=temperature, include_mean=temperature == 0)
            case.fixations = paths[0]
            if n_samples > 1:
                case.extra["scanpath_samples"] = [[f.__dict__ for f in p] for p in paths]
            case.coverage = coverage(case.fixations, image.width, image.height)
            if result is None and case.fixations:
                heatmap = fixation_heatmap(case.fixations, (image.height, image.width))
        timings["scanpath"] = time.perf_counter() - t

        t = time.perf_counter()
        if result is not None and report_mode != "none":
            # "auto" prefers Gaze2Report: on held-out phantom cases it keeps the templates' clinical efficacy (its
            # sentences are read back against the plan) and reads closer to the references (ROUGE-L +0.03,
            # CI excludes 0; benchmarks/report_benchmark.py). Templates when no report model is trained.
            if report_mode == "auto":
                mode = "gaze2report" if self.report is not None else "template"
            else:
                mode = report_mode
            generator = self._report_generator()
            case.report = generator(image, result, case.fixations, mode=mode, boxes=case.boxes)
            case.extra["report_writer"] = generator.writer_summary()
        timings["report"] = time.perf_counter() - t

        models = [n for n, m in (("classifier", self.classifier), ("scanpath", self.scanpath), ("report", self.report)) if m is not None]
        case.source = Source(dataset=None, ref=None, model="gazelabel " + "+".join(models))
        if self.trained_on_synthetic:
            case.extra["models_trained_on_synthetic_data"] = True
        case.image.synthetic = bool((image.meta or {}).get("synthetic", False)) or case.image.synthetic
        case.validate()
        return PipelineResult(case, heatmap.astype(np.float32), timings)


_CACHE: dict[tuple[str, str], tuple[tuple, Pipeline]] = {}
_CACHE_LOCK = threading.Lock()


def cached_pipeline(models_dir: str | Path, device: str = "cpu") -> Pipeline:
    """A Pipeline for ``models_dir`` that is reloaded whenever a model file is republished (mtime change),
    so a server picks up a finished training without a restart."""
    key = (str(Path(models_dir).resolve()), str(device))
    sig = models_signature(models_dir)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
        pipe = Pipeline.from_dir(models_dir, device=device)
        _CACHE[key] = (sig, pipe)
        return pipe
