"""CPU latency of the gaze-guided classifier vs torchvision DenseNet-121 (CheXNet's backbone), batch 1.

Ours is timed end to end through ``ClassifierPredictor.__call__`` (letterbox, forward, 14 attention maps
upsampled to the input, boxes for every spatial finding: thresholds forced to 0 so all 13 boxes are made,
the worst case) and as the bare network forward. DenseNet-121 (random init, 14 outputs, 3-channel input) is
the bare forward only, so the comparison is conservative. Measurements alternate between the two models
so that load from other processes hits both alike; the median of ``--repeats`` runs is reported, as wall
time and as process CPU time (robust on a shared machine; the load average is recorded too).

    python benchmarks/classifier_latency.py --json benchmarks/results/classifier_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_RATIO = 0.5


def _time(fn) -> tuple[float, float]:
    """(wall ms, process CPU ms) of one call; CPU time is what the call costs, even on a busy machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0


def bench_size(size: int, repeats: int, warmup: int, width: int, model: str | None = None) -> dict:
    import torch
    import torchvision

    from models.classifier.network import ClassifierConfig, GazeAttentionNet
    from models.classifier.predict import ClassifierPredictor
    from models.imaging import LoadedImage
    from models.vocab import FINDINGS

    torch.manual_seed(0)
    if model:  # a trained checkpoint: its own network, timed at the requested input size
        predictor = ClassifierPredictor.from_checkpoint(model)
        net = predictor.model.eval()
        predictor.thresholds = np.zeros(len(FINDINGS))  # every spatial finding gets a box: the worst case
    else:
        net = GazeAttentionNet(ClassifierConfig(size=size, width=width)).eval()
        predictor = ClassifierPredictor(net, [0.0] * len(FINDINGS))
    image = LoadedImage(np.random.default_rng(0).random((size, size)).astype(np.float32))
    x1 = torch.rand(1, 1, predictor.size, predictor.size)  # the network's own input size (letterboxed to it)
    densenet = torchvision.models.densenet121(weights=None, num_classes=len(FINDINGS)).eval()
    x3 = torch.rand(1, 3, size, size)

    calls = {"ours_end_to_end": lambda: predictor(image), "ours_network": lambda: net(x1),
             "densenet121": lambda: densenet(x3)}
    wall = {k: [] for k in calls}
    cpu = {k: [] for k in calls}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for name, call in calls.items():
                w, c = _time(call)
                if i >= warmup:
                    wall[name].append(w)
                    cpu[name].append(c)
        boxes = len(predictor(image).boxes)
    med = {k: float(np.median(v)) for k, v in wall.items()}
    med_cpu = {k: float(np.median(v)) for k, v in cpu.items()}
    return {
        "median_ms": med,
        "p90_ms": {k: float(np.percentile(v, 90)) for k, v in wall.items()},
        "median_cpu_ms": med_cpu,
        "ratio_end_to_end_vs_densenet": med["ours_end_to_end"] / med["densenet121"],
        "ratio_network_vs_densenet": med["ours_network"] / med["densenet121"],
        "cpu_ratio_end_to_end_vs_densenet": med_cpu["ours_end_to_end"] / med_cpu["densenet121"],
        "boxes_per_image": boxes, "network_input_size": predictor.size,
        "heatmaps": len(FINDINGS),
        "params": {"ours": sum(p.numel() for p in net.parameters()),
                   "densenet121": sum(p.numel() for p in densenet.parameters())},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default="benchmarks/results/classifier_latency.json")
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--width", type=int, default=16, help="encoder width of our network (the CLI default)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default=None,
                   help="a trained classifier checkpoint: time it and pair its validation AUC with the latency "
                        "(default: an untrained network of --width, which has no accuracy to pair)")
    args = p.parse_args(argv)

    if args.model and not Path(args.model).is_file():
        p.error(f"--model {args.model}: no such checkpoint file")

    import torch

    torch.set_num_threads(args.threads)
    results = {str(s): bench_size(s, args.repeats, args.warmup, args.width, args.model) for s in args.sizes}
    accuracy = {"model": None, "note": "untrained random-init network: latency only, no accuracy to pair"}
    if args.model:
        from models.classifier.predict import ClassifierPredictor

        info = ClassifierPredictor.from_checkpoint(args.model).info  # what its checkpoint recorded
        metrics = info.get("metrics") or {}
        accuracy = {"model": args.model, "val_macro_auc": metrics.get("val_macro_auc"),
                    "val_cases": metrics.get("val_cases"), "synthetic": bool(info.get("synthetic")),
                    "note": "validation macro AUC as the checkpoint recorded it"}
    report = {
        "what": "CPU batch-1 latency, gaze-guided classifier (with 14 heatmaps + boxes) vs DenseNet-121 forward",
        "goal": f"end-to-end ratio <= {GOAL_RATIO}",
        "met": all(r["ratio_end_to_end_vs_densenet"] <= GOAL_RATIO for r in results.values()),
        "results": results,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(), "repeats": args.repeats,
        "load_average_1min": os.getloadavg()[0], "accuracy": accuracy,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"{'size':>5s} {'ours e2e ms':>12s} {'ours net ms':>12s} {'DenseNet ms':>12s} {'ratio e2e':>10s} "
          f"{'ratio net':>10s} {'CPU-time ratio e2e':>19s}")
    for s, r in results.items():
        m = r["median_ms"]
        print(f"{s:>5s} {m['ours_end_to_end']:12.1f} {m['ours_network']:12.1f} {m['densenet121']:12.1f} "
              f"{r['ratio_end_to_end_vs_densenet']:10.3f} {r['ratio_network_vs_densenet']:10.3f} "
              f"{r['cpu_ratio_end_to_end_vs_densenet']:19.3f}")
    print(f"{report['threads']} torch thread(s); load average (1 min) at the end: {report['load_average_1min']:.1f} "
          f"on {os.cpu_count()} CPUs")
    if accuracy["model"]:
        auc = accuracy["val_macro_auc"]
        print(f"accuracy: validation macro AUC {'n/a' if auc is None else f'{auc:.3f}'} over "
              f"{accuracy['val_cases']} cases{' (SYNTHETIC)' if accuracy['synthetic'] else ''} ({args.model})")
    else:
        print("accuracy: none to pair (untrained network of --width); pass --model CKPT to time a trained one")
    print(f"goal {report['goal']}: {'met' if report['met'] else 'NOT met'}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
