"""``gazelabel train vqa`` and ``gazelabel evaluate vqa``.

Top-level imports stay light (argparse only) so ``gazelabel --help`` is fast; torch loads inside the commands.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.argtypes import positive_int
from models.families import VQA
from models.vqa.config import INPUTS


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    d = VQA.default
    p.add_argument("--data", required=True, help="dataset folder (case store or a supported dataset)")
    p.add_argument("--out", required=True, help="checkpoint file to write, e.g. models/vqa.pt")
    p.add_argument("--classifier", default=None,
                   help="trained classifier whose network is the frozen image backbone (default: classifier.pt beside --out)")
    p.add_argument("--scanpath", default=None,
                   help="scanpath model whose sampled paths train the gaze tokens (default: scanpath.pt beside --out, if any)")
    p.add_argument("--inputs", choices=INPUTS, default=d("inputs"),
                   help="all (the model), no_gaze or question_only (the baselines, trained the same way)")
    p.add_argument("--epochs", type=positive_int, default=d("epochs"))
    p.add_argument("--batch-size", type=positive_int, default=d("batch_size"))
    p.add_argument("--lr", type=float, default=d("lr"))
    p.add_argument("--d-model", type=positive_int, default=d("d_model"))
    p.add_argument("--gaze-samples", type=int, default=d("gaze_samples"), help="predicted scanpaths per training image")
    p.add_argument("--seed", type=int, default=d("seed"))
    p.add_argument("--device", default=d("device"), help="auto, cpu or cuda")
    p.add_argument("--max-images", type=positive_int, default=None, help="train on at most N training images")


OPTIONS = ("classifier", "scanpath", "inputs", "epochs", "batch_size", "lr", "d_model", "gaze_samples", "seed", "device",
           "max_images")


def open_data(path: str):
    from models.datasets import open_source

    if not Path(path).exists():
        raise FileNotFoundError(f"--data {path}: no such dataset folder")
    return open_source(path)


def train(args: argparse.Namespace) -> int:
    from models.vqa.train import train_vqa

    options = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    config = VQA.make_config(options)
    out = Path(args.out)
    if out.suffix != ".pt":
        raise ValueError(f"--out {out}: expected a .pt checkpoint path")
    source = open_data(args.data)
    for w in source.warnings[:5]:
        print(f"warning: {w}")
    train_vqa(source, out, model_config=config["model"], train_config=config["train"])
    return 0


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder (case store or a supported dataset)")
    p.add_argument("--models", required=True,
                   help="models folder: vqa.pt (and vqa_no_gaze.pt, vqa_question_only.pt baselines; classifier.pt and "
                        "scanpath.pt for the rule baseline and the predicted gaze)")
    p.add_argument("--json", required=True, help="where to write the metrics JSON")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--phrasing", default="test", choices=("train", "val", "test"),
                   help="which phrasing group the questions use (default test: held out from training)")
    p.add_argument("--gaze", default="auto", choices=("auto", "predicted", "recorded"),
                   help="the gaze the models get and inspection questions are about (auto: predicted when scanpath.pt exists)")
    p.add_argument("--n-boot", type=positive_int, default=1000, help="bootstrap replicates for the 95%% CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-images", type=positive_int, default=None)


def evaluate(args: argparse.Namespace) -> int:
    from models.vqa.evaluate import evaluate_vqa, format_table

    out = Path(args.json)
    if out.suffix.lower() != ".json":
        raise ValueError(f"--json {out}: expected a .json path")
    if not Path(args.models).is_dir():
        raise FileNotFoundError(f"--models {args.models}: no such folder")
    source = open_data(args.data)
    report = evaluate_vqa(args.models, source, args.split, phrasing=args.phrasing, gaze=args.gaze, n_boot=args.n_boot,
                          seed=args.seed, device=args.device, max_images=args.max_images, log=None)
    from models.files import atomic_json

    atomic_json(out, report)
    tag = " (SYNTHETIC data)" if report["synthetic"] else ""
    print(f"{report['dataset']} {report['split']}: {report['n_images']} images, {report['n_questions']} questions, "
          f"{report['phrasing']} phrasings, {report['gaze']} gaze{tag}")
    print(format_table(report))
    for s, g in report["grounding"].items():
        if isinstance(g, dict):
            print(f"  grounding {s}: IoU {g['iou']['estimate']:.2f}, pointing game {g['pointing_game']['estimate']:.2f} "
                  f"({g['n']} questions)")
    for s, c in report["calibration"].items():
        print(f"  calibration {s}: ECE {c['ece']['estimate']:.3f}")
    print(f"wrote {out}")
    return 0


__all__ = ["add_evaluate_arguments", "add_train_arguments", "evaluate", "open_data", "train"]
