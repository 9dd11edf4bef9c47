"""Evaluate the report generator on a case store's test split.

The generator needs a classifier result per image. With ``classifier=<checkpoint>`` the trained
classifier runs on each image; without one, :func:`simulated_classifier` turns the case's ground-truth
CheXpert values into noisy probabilities (no boxes) - a stand-in that isolates the report generator and is
labelled as such in every output. Gaze comes from the recorded fixations (``gaze="recorded"``), the scanpath
predictor (``gaze="predicted"``) or nowhere (``gaze="none"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from models.report.prompt import noisy_scores
from models.schema import Box, Case

SIMULATED_NOTE = ("simulated classifier: ground-truth labels + Gaussian noise (sd {noise}) as probabilities, no "
                  "boxes; a stand-in that isolates the report generator, not a trained classifier")


@dataclass
class StandInResult:
    """Duck-typed classifier result: ``.scores`` and ``.boxes`` are all the generator reads."""

    scores: dict[str, float]
    boxes: list[Box] = field(default_factory=list)


def simulated_classifier(case: Case, rng: np.random.Generator, noise: float = 0.15) -> StandInResult:
    """Ground truth 1 -> 0.85, -1 -> 0.55, else 0.1, plus N(0, noise), clipped to [0, 1]; no boxes."""
    return StandInResult(noisy_scores(case.findings, rng, noise))


def generate_reports(generator, cases: Sequence[Case], *, mode: str, classifier=None, gaze: str = "recorded",
                     scanpath=None, use_gaze: bool = True, seed: int = 0, noise: float = 0.15, check: bool = True) -> dict:
    """Run the generator on ``cases``; returns hypotheses, references, reports and timing."""
    from models.imaging import read_image

    if gaze not in ("recorded", "predicted", "none"):
        raise ValueError(f"gaze must be 'recorded', 'predicted' or 'none', got {gaze!r}")
    if gaze == "predicted" and scanpath is None:
        raise ValueError("gaze='predicted' needs a scanpath predictor (--scanpath CHECKPOINT)")
    rng = np.random.default_rng(seed)
    hyps, refs, reports, seconds, tokens, fallbacks, lm_sentences, sentences = [], [], [], [], [], 0, 0, 0
    for case in cases:
        image = read_image(case.image.path)
        result = classifier(image) if classifier is not None else simulated_classifier(case, rng, noise)
        if gaze == "recorded":
            fixations = list(case.fixations)
        elif gaze == "predicted":
            fixations = scanpath(image)[0]
        else:
            fixations = []
        t0 = time.perf_counter()
        report, stats = generator.write(image, result, fixations, mode=mode, use_gaze=use_gaze, check=check)
        seconds.append(time.perf_counter() - t0)
        tokens.append(stats.get("tokens", 0))
        fallbacks += stats.get("fallback", 0)
        lm_sentences += stats.get("lm_sentences", 0)
        sentences += stats.get("sentences", 0)
        hyps.append(report.text)
        refs.append(case.report.text)
        reports.append(report)
    return {"hypotheses": hyps, "references": refs, "reports": reports, "seconds": seconds, "tokens": tokens,
            "fallbacks": fallbacks, "lm_sentences": lm_sentences, "sentences": sentences}


def timing_summary(run: dict) -> dict:
    secs, toks = np.array(run["seconds"]), np.array(run["tokens"])
    return {"report_latency_s_mean": float(secs.mean()), "report_latency_s_p95": float(np.percentile(secs, 95)),
            "tokens_per_s": float(toks.sum() / secs.sum()) if toks.sum() else None,
            "sentences": int(run["sentences"]), "lm_sentences": int(run["lm_sentences"]),
            "template_fallback_sentences": int(run["fallbacks"])}
