"""One short check of training on a GPU machine (issue 16): each family trained for one epoch on a SYNTHETIC
phantom store at 512 px, with images/s and peak memory written to JSON. Run it when a GPU is available:

    bash benchmarks/gpu_check.sh                       # cuda, 512 px, 64 images -> benchmarks/results/gpu_check.json
    bash benchmarks/gpu_check.sh --device cpu --size 128 --images 16 --json /tmp/gpu_check_cpu.json   # smoke

The classifier trains with bf16 autocast and channels-last on CUDA, every family with ``--workers`` DataLoader
processes and pinned memory (``models.training``). images/s = training images x epochs / wall seconds of the
family's ``train`` call (data preparation and validation included, so a lower bound on the step rate).
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the process's peak resident set elsewhere. No test
depends on a GPU; tests run this script on the CPU at a small size.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _peak(device) -> dict:
    import torch

    if device.type == "cuda":
        return {"peak_gpu_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20}
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    from models.argtypes import nonnegative_int, positive_int
    from models.files import atomic_json

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    p.add_argument("--size", type=positive_int, default=512, help="image side of the phantom and the models")
    p.add_argument("--images", type=positive_int, default=64, help="phantom images (70%% train)")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--workers", type=nonnegative_int, default=4)
    p.add_argument("--work", default=".gazelabel/benchmarks/gpu_check")
    p.add_argument("--json", default="benchmarks/results/gpu_check.json")
    args = p.parse_args(argv)

    import torch

    from models.datasets.phantom import generate_store
    from models.datasets.store import CaseStore
    from models.families import FAMILIES
    from models.runtime import resolve_device

    device = resolve_device(args.device)
    if args.size % 32 or args.size < 128:
        raise SystemExit(f"--size must be a multiple of 32 and >= 128 (the phantom's smallest), got {args.size}")
    work = Path(args.work).resolve()
    store = work / f"store_{args.size}_{args.images}"
    if not (store / "dataset.json").exists():
        generate_store(store, n=args.images, seed=0, size=args.size, progress=False)
    source = CaseStore(store).source()
    n_train = len(source.split("train"))
    common = {"device": str(device), "workers": args.workers}
    configs = {
        "classifier": {"epochs": 1, "size": args.size, "batch_size": args.batch_size, **common},
        "scanpath": {"epochs": 1, "size": args.size, "batch_size": args.batch_size, **common},
        "report": {"lm_epochs": 1, "g2r_epochs": 1, "image_size": args.size, **common},
    }
    out = {"synthetic": True, "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "torch": torch.__version__, "platform": platform.platform(), "size": args.size, "images": args.images,
           "train_images": n_train, "batch_size": args.batch_size, "workers": args.workers,
           "bf16": bool(device.type == "cuda" and torch.cuda.is_bf16_supported()), "families": {}}
    models = work / "models"
    models.mkdir(parents=True, exist_ok=True)
    artifacts = {"classifier": "classifier.pt", "scanpath": "scanpath.pt", "report": "report"}
    for name, options in configs.items():
        family = FAMILIES[name]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        family.train(source, models / artifacts[name], family.make_config(options), log=None)
        seconds = time.perf_counter() - start
        out["families"][name] = {"seconds": seconds, "images_per_s": n_train / seconds, **_peak(device)}
        row = out["families"][name]
        memory = ", ".join(f"{k} {v:.0f}" for k, v in row.items() if k.startswith("peak"))
        print(f"{name:10s} 1 epoch, {n_train} images at {args.size} px on {device}: {seconds:.1f} s, "
              f"{row['images_per_s']:.1f} images/s, {memory}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    print(f"wrote {atomic_json(args.json, out)}")  # strict JSON, written atomically
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
