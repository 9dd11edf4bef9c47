"""Throughput of ``gazelabel predict-store`` (images/s) at batch 1 and batch 16 on this machine.

A SYNTHETIC phantom store (512 x 512 16-bit PNGs, the phantom's default size) and a classifier of the
``tiny`` profile's architecture (:data:`models.quickstart.PROFILES`; seeded random weights unless ``--model``
names a trained ``classifier.pt``: the work per image does not depend on the weights). Each setting runs the
real command in this process into a fresh ``--out`` (so every image is predicted and written atomically),
without an index; settings alternate over ``--repeats`` rounds so that load from other processes hits
them alike, and the median and the best run are reported, with images per process CPU-second (whole
command, start-up included: robust when the shared machine is busy). images/s is the command's own final line (the prediction loop:
reading, letterboxing, network, boxes, Case JSON writes); ``wall_s`` adds model loading and start-up.

    python benchmarks/predict_store_throughput.py --json benchmarks/results/predict_store_throughput.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_inputs(root: Path, images: int, size: int, model: str | None) -> tuple[Path, Path]:
    import torch

    from models.checkpoint import save_checkpoint
    from models.classifier.network import GazeAttentionNet
    from models.datasets.phantom import generate_store
    from models.families import FAMILIES
    from models.quickstart import PROFILES
    from models.vocab import FINDINGS

    store = generate_store(root / "store", n=images, seed=0, size=size, readers=1, progress=False)
    models = root / "models"
    models.mkdir()
    if model:
        shutil.copy(model, models / "classifier.pt")
    else:
        config = FAMILIES["classifier"].make_config(PROFILES["tiny"]["classifier"])["model"]
        torch.manual_seed(0)
        net = GazeAttentionNet(config)
        save_checkpoint(models / "classifier.pt", "classifier", config={"model": net.config.to_dict()},
                        state={"model": net.state_dict(), "thresholds": torch.full((len(FINDINGS),), 0.5, dtype=torch.float64)},
                        info={"synthetic": True})
    return store, models


def run_once(store: Path, models: Path, out: Path, batch: int, mc_samples: int) -> dict:
    from models.cli import main

    shutil.rmtree(out, ignore_errors=True)
    buf = io.StringIO()
    t, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(buf):
        rc = main(["predict-store", str(store), "--models", str(models), "--out", str(out), "--batch-size", str(batch),
                   "--mc-samples", str(mc_samples), "--no-db", "--device", "cpu"])
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    last = buf.getvalue().strip().splitlines()[-1]
    m = re.search(r"(\d+) predicted.* ([\d.]+) images/s", last)
    if rc != 0 or m is None:
        raise RuntimeError(f"predict-store failed (rc {rc}): {buf.getvalue()[-2000:]}")
    return {"images": int(m.group(1)), "images_per_s": float(m.group(2)), "wall_s": wall, "cpu_s": cpu}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--size", type=int, default=512, help="phantom image side in pixels")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--mc-samples", type=int, nargs="+", default=[0, 8],
                   help="MC-dropout passes to time (8 is predict-store's and the server strategy's default)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default=None, help="a trained classifier.pt to time instead of the tiny random one")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    settings = [(b, k) for k in args.mc_samples for b in args.batches]
    runs: dict[tuple[int, int], list[dict]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory(prefix="predict_store_bench_") as tmp:
        store, models = make_inputs(Path(tmp), args.images, args.size, args.model)
        run_once(store, models, Path(tmp) / "warmup", 4, 0)  # imports, first-call allocations
        for _ in range(args.repeats):
            for b, k in settings:
                runs[(b, k)].append(run_once(store, models, Path(tmp) / "out", b, k))
        from models.classifier.predict import ClassifierPredictor

        net_config = ClassifierPredictor.from_checkpoint(models / "classifier.pt").model.config.to_dict()
    results = []
    for (b, k), rs in runs.items():
        rate = statistics.median(r["images_per_s"] for r in rs)
        best = max(r["images_per_s"] for r in rs)
        per_cpu = statistics.median(r["images"] / r["cpu_s"] for r in rs)
        results.append({"batch_size": b, "mc_samples": k, "images_per_s": round(rate, 2), "images_per_s_best": best,
                        "images_per_s_runs": [r["images_per_s"] for r in rs],
                        "images_per_cpu_s_median": round(per_cpu, 2),
                        "wall_s_median": round(statistics.median(r["wall_s"] for r in rs), 3)})
        print(f"batch {b:>3}  mc_samples {k:>2}: {rate:8.2f} images/s median, {best:8.2f} best, "
              f"{per_cpu:6.2f} images per process CPU-second (runs {[r['images_per_s'] for r in rs]})")
    speedup = {}
    for k in args.mc_samples:
        by_batch = {r["batch_size"]: r["images_per_s_best"] for r in results if r["mc_samples"] == k}
        if 1 in by_batch and len(by_batch) > 1:
            speedup[f"mc_samples_{k}"] = {f"batch_{b}_vs_1": round(v / by_batch[1], 2) for b, v in by_batch.items() if b != 1}
    report = {
        "benchmark": "predict_store_throughput", "images": args.images, "image_size": args.size,
        "classifier": {"source": args.model or "tiny profile architecture, seeded random weights", **net_config},
        "results": results, "speedup_of_best_runs": speedup,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "load_average_1_5_15min_at_end": [round(v, 2) for v in os.getloadavg()],
        "note": "SYNTHETIC phantom images; images/s of the prediction loop as predict-store reports it, no index",
    }
    print(f"{report['torch_threads']} torch thread(s), {os.cpu_count()} CPUs; load average at the end: "
          f"{report['load_average_1_5_15min_at_end']}; speedup {speedup}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
