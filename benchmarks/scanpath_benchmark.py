"""Scanpath predictor vs baselines vs the human-consistency ceiling, sampling diversity and CPU latency.

    python benchmarks/scanpath_benchmark.py --data /tmp/phantom800 --model /tmp/scanpath.pt \
        [--classifier /tmp/classifier.pt] [--samples 5] [--json benchmarks/results/scanpath_benchmark.json]

Prints the metric table (mean [95% CI] over held-out images) and the predictor / ceiling ratios (paired
bootstrap over images), then writes everything to JSON. The goal checked at the end: predictor >= 90% of
the ceiling on MultiMatch (mean of 5) and CC, and above every baseline. Outputs say SYNTHETIC when the
data are the phantom.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_METRICS = ("mm_mean", "cc")
GOAL_RATIO = 0.9
BASELINES = ("centre_bias", "mean_map_sampling", "classifier_attention_sampling")


def diversity(predictor, cases, *, samples: int, temperature: float, seed: int) -> dict:
    """How different a predictor's samples are from each other, next to how different two readers are.

    For each image: all pairs of ``samples`` sampled paths are compared with the pairwise metrics (CC,
    ScanMatch, MultiMatch mean, Sequence Score); lower similarity = more diverse. ``identical_pairs`` counts
    pairs with the same fixations (should be 0)."""
    from models.imaging import read_image
    from models.metrics import scanpath as sm
    from models.scanpath.paths import image_size_of, reader_paths

    pair_rows, human_rows, identical, lengths = [], [], 0, []
    for i, case in enumerate(cases):
        w, h = image_size_of(case)
        paths = predictor(read_image(case.image.path), n_samples=samples, seed=seed + i, temperature=temperature, include_mean=False)
        lengths += [len(p) for p in paths]
        humans = list(reader_paths(case).values())
        clusters = sm.gaze_clusters(humans, w, h)
        for a, b in itertools.combinations(paths, 2):
            identical += int([(f.x, f.y) for f in a] == [(f.x, f.y) for f in b])
            pair_rows.append(sm.compare_scanpaths(a, b, w, h, clusters=clusters))
        for a, b in itertools.combinations(humans, 2):
            human_rows.append(sm.compare_scanpaths(a, b, w, h, clusters=clusters))
    keys = ("cc", "scanmatch", "mm_mean", "sequence_score")

    def mean_of(rows, k):
        v = np.array([r[k] for r in rows], dtype=np.float64)
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    return {
        "samples_per_image": samples, "temperature": temperature, "n_images": len(cases),
        "sample_vs_sample": {k: mean_of(pair_rows, k) for k in keys},
        "reader_vs_reader": {k: mean_of(human_rows, k) for k in keys},
        "identical_pairs": identical, "n_pairs": len(pair_rows),
        "sample_length_mean": float(np.mean(lengths)), "sample_length_sd": float(np.std(lengths)),
    }


def latency(predictor, cases, *, samples: int, repeats: int = 3) -> dict:
    """Median seconds per call on the predictor's device: the mean path alone, and ``samples`` sampled
    paths in one call (letterboxing included, file reading excluded)."""
    import torch

    from models.imaging import read_image

    images = [read_image(c.image.path) for c in cases]
    predictor(images[0])  # warm-up
    mean_t, sample_t = [], []
    for image in images:
        for _ in range(repeats):
            t0 = time.perf_counter()
            predictor(image)
            mean_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            predictor(image, n_samples=samples, seed=0, include_mean=False)
            sample_t.append(time.perf_counter() - t0)
    return {"device": str(predictor.device), "torch_threads": torch.get_num_threads(), "n_images": len(images),
            "mean_path_s": statistics.median(mean_t), f"{samples}_samples_s": statistics.median(sample_t),
            "per_sampled_path_s": statistics.median(sample_t) / samples, "slots": predictor.cfg.slots}


def goal_check(summary: dict) -> dict:
    out = {}
    for system in ("predictor", "predictor_samples"):
        if system not in summary["ratio_to_ceiling"]:
            continue
        out[system] = {}
        for metric in GOAL_METRICS:
            ratio = summary["ratio_to_ceiling"][system][metric]
            mine = summary["systems"][system][metric]
            base = {b: summary["systems"][b][metric] for b in BASELINES if b in summary["systems"]}
            out[system][metric] = {
                "ratio": ratio["mean"], "ratio_ci": [ratio["low"], ratio["high"]],
                "meets_90pct": bool(ratio["mean"] >= GOAL_RATIO),
                "above_every_baseline": bool(all(mine["mean"] > b["mean"] for b in base.values())),
                "ci_above_every_baseline": bool(all(mine["low"] > b["high"] for b in base.values())),
            }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder (e.g. a phantom store from `gazelabel sample-data`)")
    p.add_argument("--model", required=True, help="scanpath checkpoint")
    p.add_argument("--classifier", default=None, help="classifier checkpoint for the attention-sampling baseline")
    p.add_argument("--split", default="test")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--diversity-images", type=int, default=20)
    p.add_argument("--latency-images", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-text", choices=("none", "ground_truth"), default="none",
                   help="conditioning of a text-trained model: none (deployed) or ground-truth reports (oracle)")
    p.add_argument("--json", default="benchmarks/results/scanpath_benchmark.json")
    args = p.parse_args(argv)

    import torch

    from models.scanpath.cli import open_dataset
    from models.scanpath.evaluate import format_table, run_evaluation
    from models.scanpath.predict import ScanpathPredictor
    from models.scanpath.paths import reader_paths

    torch.set_num_threads(args.threads)
    source = open_dataset(args.data)
    predictor = ScanpathPredictor.from_checkpoint(args.model, device=args.device)
    classifier, classifier_note = None, "not run: no --classifier checkpoint given"
    if args.classifier:
        from models.classifier.predict import ClassifierPredictor

        classifier = ClassifierPredictor.from_checkpoint(args.classifier, device=args.device)
        classifier_note = f"attention of {args.classifier}"

    t0 = time.time()
    summary = run_evaluation(source, predictor, split=args.split, samples=args.samples, temperature=args.temperature,
                             max_images=args.max_images, n_boot=args.bootstrap, seed=args.seed, classifier=classifier,
                             report_text=args.report_text)
    summary["evaluation_seconds"] = time.time() - t0
    test = [c for c in source.split(args.split) if reader_paths(c)]
    summary["classifier_attention_baseline"] = classifier_note
    summary["diversity"] = diversity(predictor, test[: args.diversity_images], samples=args.samples,
                                     temperature=args.temperature, seed=args.seed)
    if args.latency_images > 0:
        summary["latency"] = latency(predictor, test[: args.latency_images], samples=args.samples)
    summary["goal"] = goal_check(summary)
    summary.update({"model": args.model, "model_info": predictor.info, "classifier": args.classifier})

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    tag = "SYNTHETIC phantom data" if summary["synthetic"] else "real data"
    print(f"{summary['dataset']} ({tag}), split {args.split}: {summary['n_images']} images; sigma "
          f"{summary['settings']['sigma_fraction']:.4f} x longer side; classifier baseline: {classifier_note}")
    print(format_table(summary))
    print("diversity (pairwise similarity; lower = more diverse):", json.dumps(summary["diversity"]))
    if "latency" in summary:
        print("latency:", json.dumps(summary["latency"]))
    print("goal (>= 90% of ceiling, above every baseline):", json.dumps(summary["goal"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
