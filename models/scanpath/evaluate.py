"""Evaluation protocol for scanpath generators against human readers, and the human-consistency ceiling.

Per test image, a system's paths (one mean path, or several samples) are each compared with every human
reader's path; the image's score is the mean over those pairs (NaN pairs skipped). The **human ceiling**
compares each reader with every other reader of the same image (ordered pairs), i.e. how well one human
predicts another. Images with fewer than two readers have no ceiling.

Fixation durations are judged as a distribution: the two-sample KS statistic between a system's pooled
durations and the readers' pooled durations (ceiling: each reader's pooled durations against the other
readers', averaged over readers). Bootstrap CIs resample images.

Report-text conditioning (models trained with ``--text``) is an explicit choice, ``report_text`` in
:func:`run_evaluation` / :func:`predictor_systems`, recorded in the summary as ``"report_text"`` with a note:
``"none"`` (default: no text, as in the deployed pipeline, which predicts gaze before any report is
written), ``"generated"`` (reports you supply, e.g. the report generator's) or ``"ground_truth"`` (each
test case's own reference report: an **oracle** setting, an upper bound that the deployed system cannot
reach, though it is the task definition of report-guided scanpath prediction). Models without text
ignore it either way (``"report_text_used_by_model": false``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from models.metrics import scanpath as sm
from models.schema import Case, Fixation
from models.scanpath.paths import image_size_of, reader_paths

CEILING = "human_ceiling"
# Metrics where higher is better and a predictor/ceiling ratio is meaningful.
RATIO_METRICS = ("cc", "iou_topk", "nss", "iou_binarised_medgaze", "cc_binarised_medgaze", "scanmatch",
                 "sequence_score", "mm_mean", "mm_mean_spatial", "mm_vector", "mm_direction", "mm_length",
                 "mm_position", "mm_duration")

Scanpath = list[Fixation]
System = Callable[[Case], Sequence[Scanpath]]
ReportTexts = Mapping[str, str] | Callable[[Case], "str | None"]

REPORT_TEXT_DEFAULT = "none"
REPORT_TEXT_NOTES = {
    "none": "no report text: the predictor gets its empty-report (zero) text input, as in the deployed "
            "pipeline, which predicts gaze before any report exists",
    "generated": "generated report text supplied by the caller (generated_reports), not the ground truth",
    "ground_truth": "ORACLE: each test case's own ground-truth report conditions its scanpath; the deployed "
                    "pipeline never has it, so this is an upper bound, not comparable with image-only rows",
}


@dataclass
class MetricSettings:
    """Every parameter the numbers depend on; stored beside the results.

    ``sigma_fraction``: Gaussian sigma as a fraction of the image's longer side (16/224 = GazeSearch).
    ``truncate``: MedGaze-style footprint radius in sigmas. ``topk``: area fraction for ``iou_topk``.
    ``bandwidth_fraction``: mean-shift bandwidth for the Sequence Score clusters."""

    sigma_fraction: float = 16.0 / 224.0
    map_size: int = sm.DEFAULT_MAP_SIZE
    truncate: float = sm.DEFAULT_TRUNCATE
    topk: float = 0.1
    bandwidth_fraction: float = 0.1
    scanmatch_xbins: int = sm.SCANMATCH_DEFAULTS["xbins"]
    scanmatch_ybins: int = sm.SCANMATCH_DEFAULTS["ybins"]
    scanmatch_temp_bin: float = sm.SCANMATCH_DEFAULTS["temp_bin"]
    scanmatch_threshold: float = sm.SCANMATCH_DEFAULTS["threshold"]

    def to_dict(self) -> dict:
        return asdict(self)


def _pair_scores(pred: Scanpath, human: Scanpath, width: int, height: int, clusters: np.ndarray, s: MetricSettings) -> dict[str, float]:
    return sm.compare_scanpaths(
        pred, human, width, height, sigma_px=s.sigma_fraction * max(width, height), map_size=s.map_size, truncate=s.truncate,
        k=s.topk, clusters=clusters,
        scanmatch_params={"xbins": s.scanmatch_xbins, "ybins": s.scanmatch_ybins, "temp_bin": s.scanmatch_temp_bin,
                          "threshold": s.scanmatch_threshold})


def _mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {k: float("nan") for k in sm.PAIR_METRICS}
    out = {}
    for key in rows[0]:
        v = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return out


def image_scores(paths: Sequence[Scanpath], humans: Sequence[Scanpath], width: int, height: int, settings: MetricSettings,
                 clusters: np.ndarray | None = None) -> dict[str, float]:
    """Mean pairwise scores of ``paths`` against ``humans`` on one image (``clusters``: mean-shift centres of
    all readers of the image; computed from ``humans`` if None)."""
    if clusters is None:
        clusters = sm.gaze_clusters(humans, width, height, bandwidth_fraction=settings.bandwidth_fraction)
    return _mean_dicts([_pair_scores(p, h, width, height, clusters, settings) for p in paths for h in humans])


def ceiling_scores(humans: Sequence[Scanpath], width: int, height: int, settings: MetricSettings,
                   clusters: np.ndarray | None = None) -> dict[str, float] | None:
    """Mean scores of every reader against every other reader (ordered pairs); None with < 2 readers."""
    if len(humans) < 2:
        return None
    if clusters is None:
        clusters = sm.gaze_clusters(humans, width, height, bandwidth_fraction=settings.bandwidth_fraction)
    rows = [_pair_scores(a, b, width, height, clusters, settings) for i, a in enumerate(humans) for j, b in enumerate(humans) if i != j]
    return _mean_dicts(rows)


@dataclass
class EvalResult:
    """Per-image scores of every system (``None`` where a system has no value for an image, e.g. the
    ceiling with one reader) and the durations needed for the KS statistic."""

    case_ids: list[str]
    scores: dict[str, list[dict[str, float] | None]]
    durations: dict[str, list[np.ndarray]]  # system -> per-image pooled durations
    reader_durations: list[list[np.ndarray]]  # per image, per reader
    settings: MetricSettings


def _size_known(case: Case) -> bool:
    return (case.image.width > 0 and case.image.height > 0) or bool(case.image.path and Path(case.image.path).is_file())


def _with_size(case: Case) -> Case:
    """The case with its image width/height filled in (EGD-CXR records know it only from the image)."""
    if case.image.width > 0 and case.image.height > 0:
        return case
    width, height = image_size_of(case)
    return replace(case, image=replace(case.image, width=width, height=height))


def evaluate_systems(cases: Sequence[Case], systems: dict[str, System], *, settings: MetricSettings | None = None,
                     ceiling: bool = True, progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Score every system on every case that has a human scanpath.

    Args:
        cases: test cases; each needs image width/height and at least one reader with fixations.
        systems: name -> function ``case -> list of paths`` (original pixels).
        ceiling: also compute the human-consistency ceiling as system :data:`CEILING`.
        progress: called with (done, total) after each case.
    """
    settings = settings or MetricSettings()
    usable = [_with_size(c) for c in cases if reader_paths(c)]
    if not usable:
        raise ValueError("no test case has human fixations to compare with")
    names = list(systems) + ([CEILING] if ceiling else [])
    result = EvalResult([c.id for c in usable], {n: [] for n in names}, {n: [] for n in systems}, [], settings)
    for i, case in enumerate(usable):
        width, height = image_size_of(case)
        humans = list(reader_paths(case).values())
        clusters = sm.gaze_clusters(humans, width, height, bandwidth_fraction=settings.bandwidth_fraction)
        for name, system in systems.items():
            paths = [p for p in system(case) if p]
            result.scores[name].append(image_scores(paths, humans, width, height, settings, clusters) if paths else None)
            result.durations[name].append(np.array([f.duration for p in paths for f in p]))
        if ceiling:
            result.scores[CEILING].append(ceiling_scores(humans, width, height, settings, clusters))
        result.reader_durations.append([np.array([f.duration for f in h]) for h in humans])
        if progress:
            progress(i + 1, len(usable))
    return result


def _column(rows: list[dict | None], key: str) -> np.ndarray:
    return np.array([r[key] if r is not None else np.nan for r in rows], dtype=np.float64)


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return float("nan")
    den = b[ok].mean()
    return float(a[ok].mean() / den) if abs(den) > 1e-12 else float("nan")


def _pooled_ks(durations: list[np.ndarray], reader_durations: list[list[np.ndarray]], idx: np.ndarray) -> float:
    pred = [durations[i] for i in idx]
    human = [d for i in idx for d in reader_durations[i]]
    if not pred or not human:
        return float("nan")
    return sm.duration_ks(np.concatenate(pred), np.concatenate(human))


def _ceiling_ks(reader_durations: list[list[np.ndarray]], idx: np.ndarray) -> float:
    """Mean over reader slots r of KS(reader r's pooled durations, the other readers' pooled durations)."""
    n_readers = max((len(r) for r in reader_durations), default=0)
    values = []
    for r in range(n_readers):
        own = [reader_durations[i][r] for i in idx if len(reader_durations[i]) > 1 and r < len(reader_durations[i])]
        rest = [d for i in idx if len(reader_durations[i]) > 1 and r < len(reader_durations[i])
                for j, d in enumerate(reader_durations[i]) if j != r]
        if own and rest:
            values.append(sm.duration_ks(np.concatenate(own), np.concatenate(rest)))
    return float(np.mean(values)) if values else float("nan")


def summarise(result: EvalResult, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Means with bootstrap CIs per system and metric, predictor / ceiling ratios (paired bootstrap over
    images) and the pooled-duration KS statistic.

    Returns ``{"n_images", "settings", "systems": {name: {metric: {"mean", "low", "high", "n"}}},
    "ratio_to_ceiling": {name: {metric: {...}}}, "duration_ks": {name: {...}}}``."""
    from models.metrics.classification import bootstrap_ci

    def interval(fn, *arrays) -> dict:
        iv = bootstrap_ci(fn, *arrays, n=n_boot, seed=seed, level=level)
        return {"mean": iv.estimate, "low": iv.low, "high": iv.high}

    out = {"n_images": len(result.case_ids), "settings": result.settings.to_dict(), "systems": {}, "ratio_to_ceiling": {},
           "duration_ks": {}}
    ceiling_rows = result.scores.get(CEILING)
    for name, rows in result.scores.items():
        table = {}
        for key in sm.PAIR_METRICS:
            col = _column(rows, key)
            table[key] = {**interval(_nanmean, col), "n": int(np.isfinite(col).sum())}
        out["systems"][name] = table
        if ceiling_rows is not None and name != CEILING:
            out["ratio_to_ceiling"][name] = {
                key: interval(_ratio, _column(rows, key), _column(ceiling_rows, key)) for key in RATIO_METRICS}
    idx = np.arange(len(result.case_ids))
    for name, durations in result.durations.items():
        out["duration_ks"][name] = interval(lambda i: _pooled_ks(durations, result.reader_durations, i), idx)
    if ceiling_rows is not None:
        out["duration_ks"][CEILING] = interval(lambda i: _ceiling_ks(result.reader_durations, i), idx)
    return out


def format_table(summary: dict, metrics: Sequence[str] = ("mm_mean", "cc", "iou_binarised_medgaze", "cc_binarised_medgaze",
                                                          "iou_topk", "nss", "scanmatch", "sequence_score")) -> str:
    """A plain-text table: one row per system, ``mean [low, high]`` per metric, then ratios to the ceiling;
    headed by the report-text conditioning when the summary records it (so an oracle row is never unlabelled)."""
    lines = []
    if "report_text" in summary:
        used = summary.get("report_text_used_by_model")
        lines.append(f"report text: {summary['report_text']} ({summary.get('report_text_note', '')})"
                     + ("; the predictor ignores text" if used is False else ""))
    lines.append(f"{'system':<22}" + "".join(f"{m:>24}" for m in metrics) + f"{'duration_ks':>24}")

    def cell(d):
        return f"{d['mean']:.3f} [{d['low']:.3f},{d['high']:.3f}]"

    for name, table in summary["systems"].items():
        ks = summary["duration_ks"].get(name)
        lines.append(f"{name:<22}" + "".join(f"{cell(table[m]):>24}" for m in metrics) + (f"{cell(ks):>24}" if ks else ""))
    if summary["ratio_to_ceiling"]:
        lines.append("ratio to human ceiling")
        for name, table in summary["ratio_to_ceiling"].items():
            lines.append(f"{name:<22}" + "".join(f"{cell(table[m]):>24}" if m in table else f"{'':>24}" for m in metrics))
    return "\n".join(lines)


def _case_rng(case_id: str, seed: int) -> np.random.Generator:
    import hashlib

    return np.random.default_rng([seed, int(hashlib.sha1(case_id.encode(), usedforsecurity=False).hexdigest()[:8], 16)])


def baseline_systems(train_cases: Sequence[Case], *, slots: int | None = None, seed: int = 0, classifier=None) -> dict[str, System]:
    """Centre bias and mean-training-map sampling fitted on ``train_cases`` (lengths capped at ``slots``),
    plus sampling from the classifier's attention when a ``ClassifierPredictor`` is given."""
    from models.imaging import read_image
    from models.scanpath.baselines import CentreBias, MapSampler, PathStatistics, mean_fixation_map

    centre = CentreBias.fit(train_cases, slots)
    stats = PathStatistics.fit(train_cases, slots)
    saliency = MapSampler(stats, mean_fixation_map(train_cases))
    systems: dict[str, System] = {
        "centre_bias": lambda c: [centre(*image_size_of(c), _case_rng(c.id, seed))],
        "mean_map_sampling": lambda c: [saliency(*image_size_of(c), _case_rng(c.id, seed))],
    }
    if classifier is not None:
        attention = MapSampler(stats, name="classifier_attention_sampling")
        systems["classifier_attention_sampling"] = lambda c: [
            attention(*image_size_of(c), _case_rng(c.id, seed), classifier(read_image(c.image.path)).heatmap())]
    return systems


def check_report_text(report_text: str, generated_reports: ReportTexts | None = None) -> None:
    """ValueError naming the argument when ``report_text`` / ``generated_reports`` do not fit together."""
    if not isinstance(report_text, str) or report_text not in REPORT_TEXT_NOTES:
        raise ValueError(f"report_text must be one of {', '.join(repr(k) for k in REPORT_TEXT_NOTES)}, got "
                         f"{report_text!r} ('ground_truth' is the oracle setting, 'none' the deployed one)")
    if report_text == "generated" and generated_reports is None:
        raise ValueError("report_text='generated' needs generated_reports: a mapping case id -> report text, or a "
                         "function case -> text")
    if report_text != "generated" and generated_reports is not None:
        raise ValueError(f"generated_reports is only read with report_text='generated' (got report_text="
                         f"{report_text!r}): pass report_text='generated' or drop generated_reports")


def report_text_source(report_text: str = REPORT_TEXT_DEFAULT,
                       generated_reports: ReportTexts | None = None) -> Callable[[Case], "str | None"]:
    """``case -> text`` that conditions the predictor under ``report_text`` (see the module docstring)."""
    check_report_text(report_text, generated_reports)
    if report_text == "none":
        return lambda case: None
    if report_text == "ground_truth":
        return lambda case: case.report.text if case.report else None
    if callable(generated_reports):
        return generated_reports

    def lookup(case: Case) -> str:
        if case.id not in generated_reports:
            raise ValueError(f"generated_reports has no report for case {case.id!r}: give one per test case")
        return generated_reports[case.id]

    return lookup


def report_text_record(report_text: str, predictor=None) -> dict:
    """What the summary says about text conditioning: the mode, its note, whether the model reads text."""
    uses = getattr(predictor, "uses_text", None) if predictor is not None else None
    return {"report_text": report_text, "report_text_note": REPORT_TEXT_NOTES[report_text],
            "report_text_used_by_model": None if uses is None else bool(uses)}


def predictor_systems(predictor, *, samples: int = 1, temperature: float = 1.0, seed: int = 0,
                      report_text: str = REPORT_TEXT_DEFAULT, generated_reports: ReportTexts | None = None
                      ) -> dict[str, System]:
    """``predictor`` (mean path) and, with ``samples`` > 1, ``predictor_samples`` (that many sampled paths;
    their scores are averaged per image).

    Args:
        report_text: what conditions a text model: "none" (default, as deployed), "generated" (from
            ``generated_reports``) or "ground_truth" (the case's own report: an oracle setting).
        generated_reports: case id -> report text, or ``case -> text``; only with ``report_text="generated"``.
    """
    from models.imaging import read_image

    text_of = report_text_source(report_text, generated_reports)
    systems: dict[str, System] = {"predictor": lambda c: predictor(read_image(c.image.path), report_text=text_of(c))}
    if samples > 1:
        systems["predictor_samples"] = lambda c: predictor(read_image(c.image.path), n_samples=samples, report_text=text_of(c),
                                                           seed=seed, temperature=temperature, include_mean=False)
    return systems


def run_evaluation(source, predictor=None, *, split: str = "test", samples: int = 1, temperature: float = 1.0,
                   max_images: int | None = None, n_boot: int = 1000, seed: int = 0, classifier=None,
                   baselines: bool = True, settings: MetricSettings | None = None, progress=None,
                   report_text: str = REPORT_TEXT_DEFAULT, generated_reports: ReportTexts | None = None) -> dict:
    """Evaluate a predictor, the baselines and the human ceiling on one split of a CaseSource.

    Args:
        report_text: text conditioning of the predictor, "none" (default: as deployed), "generated" (needs
            ``generated_reports``) or "ground_truth" (each case's own report: an ORACLE setting, an upper
            bound). Recorded as ``report_text``, ``report_text_note`` and ``report_text_used_by_model``.

    Returns the :func:`summarise` dict plus ``dataset``, ``synthetic``, ``split``, ``case_ids`` and the
    report-text record."""
    check_report_text(report_text, generated_reports)
    test = [c for c in source.split(split) if reader_paths(c)]
    if predictor is not None or classifier is not None:
        test = [c for c in test if c.image.path and Path(c.image.path).is_file()]
    if max_images:
        test = test[:max_images]
    if not test:
        raise ValueError(f"dataset {source.name!r}: split {split!r} has no case with fixations"
                         + (" and an image file (pass --images for REFLACX / EGD-CXR)" if predictor is not None else ""))
    systems: dict[str, System] = {}
    if predictor is not None:
        systems.update(predictor_systems(predictor, samples=samples, temperature=temperature, seed=seed,
                                         report_text=report_text, generated_reports=generated_reports))
    if baselines:
        train_cases = [_with_size(c) for c in source.split("train") if reader_paths(c) and _size_known(c)]
        if not train_cases:
            raise ValueError(f"dataset {source.name!r}: no training case with fixations to fit the baselines")
        slots = predictor.cfg.slots if predictor is not None else None
        systems.update(baseline_systems(train_cases, slots=slots, seed=seed, classifier=classifier))
    result = evaluate_systems(test, systems, settings=settings, progress=progress)
    summary = summarise(result, n_boot=n_boot, seed=seed)
    summary.update({"dataset": source.name, "synthetic": bool(source.synthetic), "split": split, "samples": samples,
                    "temperature": temperature, "case_ids": result.case_ids})
    summary.update(report_text_record(report_text, predictor))
    return summary
