"""SYNTHETIC phantom: generation speed and the simulated radiologist against real gaze statistics.

Speed: ``generate_store`` end to end (render, report, 3 simulated readers, 16-bit PNG and case JSON) in one
process, images per second. Gaze: fixation durations, saccade amplitudes (fraction of image width) and
fixations per reading over ``--images`` images x 3 readers, next to the real radiologists' figures in
``gaze_stats.json`` (GazeSearch, from REFLACX and EGD-CXR); plus inter-reader agreement (Pearson CC of
32 x 32 fixation heatmaps) for two readers of one image vs readings of different images.

A linear probe (logistic regression on 64 x 64 pixels) per finding checks the task is learnable but not
trivial: global findings (heart size) should be easy, focal ones hard for a linear model.

    python benchmarks/phantom.py --n 50 --json benchmarks/results/phantom.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GAZE_STATS = Path("/work/shared/data/gaze_stats.json")


def bench_speed(n: int, size: int) -> dict:
    from models.datasets.phantom import generate_store

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_store(Path(tmp) / "store", n, seed=0, size=size, progress=False)
        elapsed = time.perf_counter() - start
    return {"n": n, "size": size, "seconds": round(elapsed, 2), "images_per_s": round(n / elapsed, 2)}


def bench_gaze(images: int, stats_path: Path) -> dict:
    from models.datasets.phantom import generate_case
    from models.gaze import fixation_heatmap, fixations_to_array, saccade_amplitudes

    size = 256  # the statistics are fractions of the image, so the size only sets the render cost
    durations, amplitudes, counts, maps = [], [], [], []
    for i in range(images):
        case, _ = generate_case(123, i, size=size, readers=3)
        readings = [case.fixations] + [case.readers[k] for k in sorted(case.readers)]
        maps.append([fixation_heatmap(fx, (32, 32), scale=32 / size) for fx in readings])
        for fx in readings:
            durations += list(fixations_to_array(fx)[:, 3])
            amplitudes += list(saccade_amplitudes(fx) / size)
            counts.append(len(fx))

    def cc(a, b):
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    same = [cc(m[i], m[j]) for m in maps for i in range(3) for j in range(i + 1, 3)]
    other = [cc(maps[k][i], maps[(k + 1) % len(maps)][j]) for k in range(len(maps)) for i in range(3) for j in range(3) if i != j]
    sim = {
        "duration_s": {"median": np.median(durations), "mean": np.mean(durations),
                       **{f"p{p}": np.percentile(durations, p) for p in (5, 25, 75, 95)}},
        "amplitude_fraction": {"median": np.median(amplitudes), "mean": np.mean(amplitudes),
                               "p5": np.percentile(amplitudes, 5), "p95": np.percentile(amplitudes, 95)},
        "fixations_per_reading": {"mean": np.mean(counts), "min": int(np.min(counts)), "max": int(np.max(counts))},
        "heatmap_cc_same_image": np.mean(same),
        "heatmap_cc_other_image": np.mean(other),
    }
    real = {}
    if stats_path.exists():
        s = json.loads(stats_path.read_text())
        d, a = s["fixation_duration_s"], s["saccade_amplitude_224px"]
        real = {
            "duration_s": {k: d[k] for k in ("median", "mean", "p5", "p25", "p75", "p95")},
            "amplitude_fraction": {k: a[k] / 224 for k in ("median", "mean", "p5", "p95")},
            "fixations_per_reading": {"mean": 45.0, "note": "EGD-CXR full reading (GazeSearch snippets are capped at 6)"},
        }
    return {"images": images, "readers": 3, "simulated": _round(sim), "real": _round(real)}


def bench_probe(n: int) -> dict:
    """Learnable but not trivial? Test AUC of a linear probe (logistic regression on 64 x 64 pixels) per finding."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from models.datasets.phantom import generate_case
    from models.vocab import FINDINGS

    features, labels = [], []
    for i in range(n):
        case, image = generate_case(77, i, size=128, readers=1)
        features.append(image.reshape(64, 2, 64, 2).mean((1, 3)).ravel())
        labels.append([case.findings[f] != 0 for f in FINDINGS])
    x, y = np.array(features), np.array(labels)
    n_train = int(0.7 * n)
    out = {}
    for j, name in enumerate(FINDINGS):
        if y[:n_train, j].sum() < 5 or y[n_train:, j].sum() < 3:
            continue
        probe = LogisticRegression(C=0.01, max_iter=2000).fit(x[:n_train], y[:n_train, j])
        out[name] = {"prevalence": float(y[:, j].mean()), "auc": float(roc_auc_score(y[n_train:, j], probe.decision_function(x[n_train:])))}
    return {"images": n, "train": n_train, "features": "64x64 pixels", "per_finding": _round(out)}


def _round(obj):
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, (float, np.floating)):
        return round(float(obj), 4)
    return obj


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="images for the speed run")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--images", type=int, default=20, help="images for the gaze statistics (x 3 readers)")
    ap.add_argument("--probe", type=int, default=600, help="images for the linear-probe learnability check (0 = skip)")
    ap.add_argument("--gaze-stats", type=Path, default=GAZE_STATS)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/phantom.json"))
    args = ap.parse_args()

    result = {"dataset": "gazelabel-phantom (SYNTHETIC)", "speed": bench_speed(args.n, args.size),
              "gaze": bench_gaze(args.images, args.gaze_stats)}
    sp = result["speed"]
    print(f"generation: {sp['n']} images of {sp['size']} px in {sp['seconds']} s = {sp['images_per_s']} images/s")
    sim, real = result["gaze"]["simulated"], result["gaze"]["real"]
    print(f"{'statistic':34s} {'simulated':>10s} {'real':>10s}")
    for group in ("duration_s", "amplitude_fraction", "fixations_per_reading"):
        for key, value in sim[group].items():
            ref = real.get(group, {}).get(key, "")
            print(f"{group + '.' + key:34s} {value:>10} {ref:>10}")
    print(f"{'heatmap CC, two readers same image':34s} {sim['heatmap_cc_same_image']:>10}")
    print(f"{'heatmap CC, different images':34s} {sim['heatmap_cc_other_image']:>10}")
    if args.probe:
        result["probe"] = bench_probe(args.probe)
        print(f"linear probe on 64x64 pixels ({args.probe} images, 70/30 split): test AUC per finding")
        for name, r in result["probe"]["per_finding"].items():
            print(f"  {name:28s} prevalence {r['prevalence']:.2f}  AUC {r['auc']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
