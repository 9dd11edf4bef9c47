"""`gazelabel overlay IMAGE --out OUT.png`: the windowed image with a case's boxes, fixations and heatmap."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="radiograph: DICOM, PNG/JPG or NIfTI")
    p.add_argument("--case", help="case JSON to draw (boxes, fixations, heatmap); without it the image alone")
    p.add_argument("--heatmap", help="optional heatmap (.npy (H, W) array or greyscale image) instead of the fixation map")
    p.add_argument("--out", required=True, help="output PNG path")
    p.add_argument("--max-side", type=int, default=1024, help="longest output side in pixels (default 1024)")
    p.add_argument("--no-fixations", action="store_true", help="do not draw fixations or their heatmap")


def _read_heatmap(path: str):
    import numpy as np

    from models.imaging import read_image

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such heatmap file")
    if p.suffix == ".npy":
        try:
            arr = np.load(p)
        except (ValueError, OSError) as e:
            raise ValueError(f"{p}: not a readable .npy array ({e})") from None
        if arr.ndim != 2:
            raise ValueError(f"{p}: heatmap must be a 2D (H, W) array, got shape {arr.shape}")
        return arr.astype("float32")
    return read_image(p).array


def run(args: argparse.Namespace) -> int:
    from models.imaging import read_image
    from models.render import render_overlay
    from models.schema import load_case

    image = read_image(args.image)
    case = load_case(args.case) if args.case else None
    heatmap = _read_heatmap(args.heatmap) if args.heatmap else None
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: expected a .png path")
    rendered = render_overlay(image, case, heatmap, max_side=args.max_side, show_fixations=not args.no_fixations)
    out.parent.mkdir(parents=True, exist_ok=True)
    rendered.save(out)
    note = " (SYNTHETIC case)" if case is not None and case.image.synthetic else ""
    print(f"Wrote {out} ({rendered.width}x{rendered.height}){note}")
    return 0
