"""``gazelabel train classifier`` and ``gazelabel evaluate classifier``.

Top-level imports stay light (argparse only) so ``gazelabel --help`` is fast; torch loads inside the
commands. ``--data`` is anything :func:`models.datasets.open_source` accepts (a case store folder always
works). Under ``torchrun --nproc_per_node N -m models.cli train classifier ...`` training is data-parallel.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.argtypes import nonnegative_int, positive_int
from models.classifier.config import BACKBONE_STRIDES, GAZE_TARGETS, UNCERTAIN_POLICIES
from models.families import CLASSIFIER


def open_data(path: str):
    """A CaseSource from ``--data`` (any format :func:`models.datasets.open_source` detects)."""
    from models.datasets import open_source

    return open_source(path)


def _size(text: str) -> int:
    value = positive_int(text)
    if value % 8:  # the backbone's own stride (16 or 32) is checked with the backbone, by the config
        raise argparse.ArgumentTypeError(f"--size must be a multiple of 8, got {value}")
    return value


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    d = CLASSIFIER.default
    p.add_argument("--data", required=True, help="dataset folder (case store or a supported dataset)")
    p.add_argument("--out", required=True, help="checkpoint file to write, e.g. models/classifier.pt")
    p.add_argument("--gaze-weight", type=float, default=d("gaze_weight"), help="weight of the gaze-attention loss (0 = off)")
    p.add_argument("--gaze-warmup-epochs", type=float, default=d("gaze_warmup_epochs"),
                   help="ramp the gaze weight up over this many epochs")
    p.add_argument("--gaze-terms", default=",".join(f"{d(k):g}" for k in GAZE_TERMS), metavar="MSE,KL,CC,COM",
                   help="weights of the four gaze terms (default 1,1,1,1)")
    p.add_argument("--gaze-target", choices=GAZE_TARGETS, default=d("gaze_target"),
                   help="map matched to gaze: the shared attention prior (default), the mean of all finding maps, "
                        "or the mean of the positive findings' maps")
    p.add_argument("--contrastive-weight", type=float, default=d("contrastive_weight"),
                   help="image-report InfoNCE weight (needs reports)")
    p.add_argument("--box-weight", type=float, default=d("box_weight"), help="attention-inside-box loss weight (needs boxes)")
    p.add_argument("--uncertain", choices=UNCERTAIN_POLICIES, default=d("uncertain"),
                   help="how uncertain (-1) labels train (default: positive, U-Ones)")
    p.add_argument("--epochs", type=positive_int, default=d("epochs"))
    p.add_argument("--size", type=_size, default=d("size"), help="model input side in pixels (multiple of 8)")
    p.add_argument("--width", type=positive_int, default=d("width"), help="encoder width (channels of the stem)")
    p.add_argument("--backbone", choices=tuple(BACKBONE_STRIDES), default=d("backbone"),
                   help="gazelabel (our small encoder, default) or a torchvision architecture (output stride: "
                        + ", ".join(f"{k} {v}" for k, v in BACKBONE_STRIDES.items() if k != "gazelabel") + ")")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="backbone weights you downloaded: a torchvision state_dict, a timm checkpoint (.pth, "
                        ".safetensors) or a torchxrayvision DenseNet checkpoint (default: random init)")
    p.add_argument("--batch-size", type=positive_int, default=d("batch_size"))
    p.add_argument("--lr", type=float, default=d("lr"))
    p.add_argument("--seed", type=int, default=d("seed"))
    p.add_argument("--device", default=d("device"), help="auto, cpu or cuda")
    p.add_argument("--max-images", type=positive_int, default=None, help="train on at most N training cases")
    p.add_argument("--workers", type=nonnegative_int, default=None,
                   help="DataLoader worker processes (default 0: decode in the training process)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


GAZE_TERMS = ("gaze_mse", "gaze_kl", "gaze_cc", "gaze_com")
OPTIONS = ("gaze_weight", "gaze_warmup_epochs", "gaze_target", "contrastive_weight", "box_weight", "uncertain", "epochs",
           "size", "width", "backbone", "weights", "workers", "batch_size", "lr", "seed", "device", "max_images")


def _gaze_terms(text: str) -> dict[str, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0:
        raise ValueError(f"--gaze-terms: expected four non-negative numbers MSE,KL,CC,COM, got {text!r}")
    return dict(zip(GAZE_TERMS, values))


def train(args: argparse.Namespace) -> int:
    from models.classifier.train import train_classifier

    options = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    config = CLASSIFIER.make_config({**options, **_gaze_terms(args.gaze_terms)})
    source = open_data(args.data)
    for w in source.warnings[:5]:
        print(f"warning: {w}")
    train_classifier(source, args.out, model_config=config["model"], loss_config=config["loss"],
                     train_config=config["train"], progress=not args.no_progress)
    return 0


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder (case store or a supported dataset)")
    p.add_argument("--model", required=True, help="classifier checkpoint")
    p.add_argument("--json", required=True, help="where to write the metrics JSON")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--n-boot", type=positive_int, default=1000, help="bootstrap replicates for the 95%% CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=positive_int, default=32)


def _fmt(ci: dict) -> str:
    if ci["estimate"] is None:
        return "n/a"
    low, high = ci["low"], ci["high"]
    span = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{ci['estimate']:.3f}{span}"


def evaluate(args: argparse.Namespace) -> int:
    from models.classifier.evaluate import evaluate_classifier

    source = open_data(args.data)
    report = evaluate_classifier(args.model, source, args.split, n_boot=args.n_boot, seed=args.seed,
                                 device=args.device, batch_size=args.batch_size)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    cls, ag = report["classification"], report["attention_gaze"]
    tag = " (SYNTHETIC data)" if report["synthetic"] else ""
    print(f"{report['dataset']} {report['split']}: {report['n_cases']} cases{tag}")
    print(f"  macro AUC {_fmt(cls['macro_auc'])}   macro F1 {_fmt(cls['macro_f1'])}")
    print(f"  attention-gaze ({ag['n_cases']} cases): CC {_fmt(ag['cc'])}  KL {_fmt(ag['kl'])}  "
          f"IoU top-10% {_fmt(ag['iou_topk'])}")
    pg = report["pointing_game"]
    print(f"  pointing game ({pg['n_boxes']} boxes): {_fmt(pg['accuracy'])}")
    print(f"wrote {out}")
    return 0


__all__ = ["add_train_arguments", "train", "add_evaluate_arguments", "evaluate", "open_data"]
