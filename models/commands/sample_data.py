"""`gazelabel sample-data OUT`: write the SYNTHETIC phantom case store (images, cases, simulated gaze)."""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="folder to create (must be new or hold no images)")
    p.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    p.add_argument("--size", type=int, default=512, help="image side in pixels (default 512, 0.7 mm spacing)")
    p.add_argument("--readers", type=int, default=3, help="simulated radiologists per image (default 3)")
    p.add_argument("--dicom", action="store_true", help="write CR DICOM files instead of 16-bit PNG")
    p.add_argument("--spurious-marker", metavar="FINDING", default=None,
                   help="burn a corner token correlated with FINDING in train/val and independent of it in test")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from models.datasets.phantom import generate_store
    from models.datasets.store import CaseStore

    start = time.perf_counter()
    root = generate_store(args.out, args.n, args.seed, size=args.size, readers=args.readers, dicom=args.dicom,
                          spurious_marker=args.spurious_marker, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    splits = CaseStore(root).manifest.get("splits", {})
    counts = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    print(f"Wrote {args.n} SYNTHETIC phantom cases (not real patients) to {root} ({counts}) "
          f"in {elapsed:.1f} s: {args.n / max(elapsed, 1e-9):.1f} images/s")
    return 0
