"""``gazelabel train scanpath`` and ``gazelabel evaluate scanpath``.

Heavy imports (torch) happen inside the functions so ``gazelabel --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.argtypes import nonnegative_int
from models.classifier.config import BACKBONE_STRIDES
from models.families import SCANPATH
from models.scanpath.config import DECODINGS


def open_dataset(path: str, images: str | None = None):
    """A CaseSource for a case store or a dataset folder (REFLACX, EGD-CXR, MIMIC-Eye); ``images`` is the
    MIMIC-CXR(-JPG) root for the datasets that ship gaze without pixels."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such dataset folder")
    from models.datasets import open_source

    return open_source(p, images=images)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder (case store, REFLACX, EGD-CXR, MIMIC-Eye)")
    p.add_argument("--images", default=None, help="MIMIC-CXR(-JPG) root for datasets without pixels (REFLACX, EGD-CXR)")
    p.add_argument("--out", required=True, help="checkpoint file to write, e.g. models/scanpath.pt")
    p.add_argument("--epochs", type=int, default=SCANPATH.default("epochs"))
    p.add_argument("--size", type=int, default=SCANPATH.default("size"), help="model input side in pixels (multiple of 16)")
    p.add_argument("--slots", type=int, default=SCANPATH.default("slots"), help="maximum fixations per predicted path")
    p.add_argument("--decoding", choices=DECODINGS, default=SCANPATH.default("decoding"))
    p.add_argument("--mixtures", type=int, default=SCANPATH.default("mixtures"),
                   help="Gaussian components of the x, y head (1 = one Gaussian)")
    p.add_argument("--batch-size", type=int, default=SCANPATH.default("batch_size"),
                   help="images per step (each brings all its readers)")
    p.add_argument("--lr", type=float, default=SCANPATH.default("lr"))
    p.add_argument("--l1-weight", type=float, default=SCANPATH.default("l1_weight"), help="extra L1 loss on the x, y means")
    p.add_argument("--text", action="store_true", help="condition on the report text (frozen MiniLM)")
    p.add_argument("--seed", type=int, default=SCANPATH.default("seed"))
    p.add_argument("--device", default=SCANPATH.default("device"), help="auto, cpu, cuda (torchrun for several GPUs)")
    p.add_argument("--max-images", type=int, default=None, help="train on at most N training images")
    p.add_argument("--backbone", default=None, choices=tuple(BACKBONE_STRIDES),
                   help="image encoder: gazelabel (our CNN, default) or a torchvision trunk, as for the classifier")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="weights for --backbone (a torchvision state_dict, timm checkpoint or torchxrayvision DenseNet)")
    p.add_argument("--workers", type=nonnegative_int, default=None,
                   help="DataLoader worker processes (default 0: decode in the training process)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy machine)")


OPTIONS = ("epochs", "size", "slots", "decoding", "mixtures", "batch_size", "lr", "l1_weight", "text", "seed",
           "device", "max_images", "workers", "backbone", "weights")


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
    _check_positive(args, "epochs", "size", "slots", "mixtures", "batch_size", "lr", "max_images", "threads")
    _set_threads(args.threads)
    config = SCANPATH.make_config({k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None})
    SCANPATH.train(open_dataset(args.data, args.images), args.out, config, log=print)
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
    p.add_argument("--report-text", choices=("none", "ground_truth"), default="none",
                   help="what a model trained with --text is conditioned on: none (as deployed) or each test "
                        "case's ground-truth report (an oracle setting, recorded as such in the JSON)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy machine)")


def evaluate(args: argparse.Namespace) -> int:
    from models.scanpath.evaluate import format_table, run_evaluation
    from models.scanpath.predict import ScanpathPredictor

    _check_positive(args, "samples", "max_images", "bootstrap", "threads")
    _set_threads(args.threads)
    predictor = ScanpathPredictor.from_checkpoint(args.model, device=args.device)
    source = open_dataset(args.data, args.images)
    summary = run_evaluation(source, predictor, split=args.split, samples=args.samples, temperature=args.temperature,
                             max_images=args.max_images, n_boot=args.bootstrap, seed=args.seed,
                             report_text=args.report_text)
    summary["model"] = str(args.model)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, allow_nan=True))
    if summary["synthetic"]:
        print(f"SYNTHETIC data ({summary['dataset']}): numbers describe the phantom, not real radiologists")
    print(format_table(summary))
    print(f"wrote {out}")
    return 0
