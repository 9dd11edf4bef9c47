"""``gazelabel train scanpath`` and ``gazelabel evaluate scanpath``.

Heavy imports (torch) happen inside the functions so ``gazelabel --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def open_dataset(path: str, images: str | None = None):
    """A CaseSource for a case store or a dataset folder (REFLACX, EGD-CXR, MIMIC-Eye); ``images`` is the
    MIMIC-CXR(-JPG) root for the datasets that ship gaze without pixels."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such dataset folder")
    from models.datasets import open_source

    return open_source(p, images=images)


def with_images(cases, data: str, what: str):
    """The cases that have an image file and fixations; a clear error when there are none."""
    from models.scanpath.train import reader_paths

    gazed = [c for c in cases if reader_paths(c)]
    usable = [c for c in gazed if c.image.path and Path(c.image.path).is_file()]
    if not usable:
        raise ValueError(f"{data}: none of the {len(gazed)} {what} cases with fixations has an image file "
                         f"(REFLACX and EGD-CXR ship gaze only: pass --images <MIMIC-CXR or MIMIC-CXR-JPG root>)")
    if len(usable) < len(gazed):
        print(f"{what}: skipping {len(gazed) - len(usable)} of {len(gazed)} cases without an image file")
    return usable


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder (case store, REFLACX, EGD-CXR, MIMIC-Eye)")
    p.add_argument("--images", default=None, help="MIMIC-CXR(-JPG) root for datasets without pixels (REFLACX, EGD-CXR)")
    p.add_argument("--out", required=True, help="checkpoint file to write, e.g. models/scanpath.pt")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--size", type=int, default=128, help="model input side in pixels (multiple of 16)")
    p.add_argument("--slots", type=int, default=50, help="maximum fixations per predicted path")
    p.add_argument("--decoding", choices=("autoregressive", "parallel"), default="autoregressive")
    p.add_argument("--mixtures", type=int, default=3, help="Gaussian components of the x, y head (1 = one Gaussian)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step (each brings all its readers)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--l1-weight", type=float, default=0.0, help="extra L1 loss on the x, y means")
    p.add_argument("--text", action="store_true", help="condition on the report text (frozen MiniLM)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (torchrun for several GPUs)")
    p.add_argument("--max-images", type=int, default=None, help="train on at most N training images")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy machine)")


def _check_positive(args, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def train(args: argparse.Namespace) -> int:
    from models.scanpath.network import ScanpathConfig
    from models.scanpath.train import reader_paths, train_scanpath

    _check_positive(args, "epochs", "size", "slots", "mixtures", "batch_size", "lr", "max_images", "threads")
    _set_threads(args.threads)
    source = open_dataset(args.data, args.images)
    train_cases = with_images(source.split("train"), args.data, "training")
    val_cases = [c for c in source.split("val") if reader_paths(c) and c.image.path and Path(c.image.path).is_file()]
    if args.max_images:
        train_cases = train_cases[: args.max_images]
        val_cases = val_cases[: max(1, args.max_images // 5)]
    if source.synthetic and os.environ.get("RANK", "0") == "0":
        print(f"training on SYNTHETIC data ({source.name})")
    cfg = ScanpathConfig(size=args.size, slots=args.slots, decoding=args.decoding, mixtures=args.mixtures)
    train_scanpath(train_cases, args.out, cfg=cfg, val_cases=val_cases, epochs=args.epochs, batch_size=args.batch_size,
                   lr=args.lr, l1_weight=args.l1_weight, seed=args.seed, device=args.device, text=args.text,
                   dataset_info={"name": source.name, "synthetic": source.synthetic, "path": str(args.data)})
    return 0


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--images", default=None, help="MIMIC-CXR(-JPG) root for datasets without pixels (REFLACX, EGD-CXR)")
    p.add_argument("--model", required=True, help="scanpath checkpoint")
    p.add_argument("--json", required=True, help="where to write the metrics JSON")
    p.add_argument("--split", default="test")
    p.add_argument("--samples", type=int, default=1, help="also score K sampled paths per image (K > 1)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates for the CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy machine)")


def evaluate(args: argparse.Namespace) -> int:
    from models.scanpath.evaluate import format_table, run_evaluation
    from models.scanpath.predict import ScanpathPredictor

    _check_positive(args, "samples", "max_images", "bootstrap", "threads")
    _set_threads(args.threads)
    predictor = ScanpathPredictor.from_checkpoint(args.model, device=args.device)
    source = open_dataset(args.data, args.images)
    summary = run_evaluation(source, predictor, split=args.split, samples=args.samples, temperature=args.temperature,
                             max_images=args.max_images, n_boot=args.bootstrap, seed=args.seed)
    summary["model"] = str(args.model)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, allow_nan=True))
    if summary["synthetic"]:
        print(f"SYNTHETIC data ({summary['dataset']}): numbers describe the phantom, not real radiologists")
    print(format_table(summary))
    print(f"wrote {out}")
    return 0
