"""``gazelabel train report`` and ``gazelabel evaluate report``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from models.argtypes import nonnegative_int
from models.families import REPORT


def add_train_arguments(p) -> None:
    d = REPORT.default
    p.add_argument("--data", required=True, help="case store folder (reports, images, fixations)")
    p.add_argument("--out", required=True, help="output folder (lm/ and report.pt are written there)")
    p.add_argument("--iu", action="store_true", help="also train the LM on the 2,955 IU X-ray reports")
    p.add_argument("--lm", default=None, help="a local transformers causal-LM folder instead of our small GPT-2")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"epochs of both stages (default: {d('lm_epochs')} LM, {d('g2r_epochs')} Gaze2Report)")
    p.add_argument("--lm-epochs", type=int, default=None,
                   help="epochs of the language stage only (0 with --lm: use that LM as it is)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (1 is much faster on a busy machine)")
    p.add_argument("--lora-r", type=int, default=d("lora_r"), help="LoRA rank")
    p.add_argument("--no-gaze", action="store_true", help="ablation: train the prefix without fixation tokens")
    p.add_argument("--device", default=d("device"), help="auto, cpu or cuda[:N]")
    p.add_argument("--seed", type=int, default=d("seed"))
    p.add_argument("--backbone", default=None, choices=("gazelabel", "densenet121", "resnet50", "convnext_tiny"),
                   help="image encoder of the visual tokens: gazelabel (our CNN, default) or a torchvision trunk")
    p.add_argument("--weights", default=None, metavar="FILE", help="weights for --backbone (as for the classifier)")
    p.add_argument("--workers", type=nonnegative_int, default=None,
                   help="DataLoader worker processes (default 0: decode in the training process)")


def train(args) -> int:
    from models.datasets.store import CaseStore

    options = {"lora_r": args.lora_r, "use_gaze": not args.no_gaze, "device": args.device, "lm_path": args.lm,
               "seed": args.seed, "iu": args.iu}
    for key in ("workers", "backbone", "weights"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
        options["lm_epochs"] = options["g2r_epochs"] = args.epochs
    if args.lm_epochs is not None:
        if args.lm_epochs < 0 or (args.lm_epochs == 0 and not args.lm):
            raise ValueError("--lm-epochs must be >= 1 (0 is allowed only with --lm PATH)")
        options["lm_epochs"] = args.lm_epochs
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if args.lora_r < 1:
        raise ValueError(f"--lora-r must be >= 1, got {args.lora_r}")
    source = CaseStore(args.data).source()
    REPORT.train(source, args.out, REPORT.make_config(options), log=lambda m: print(m, file=sys.stderr, flush=True))
    return 0


def add_evaluate_arguments(p) -> None:
    p.add_argument("--data", required=True, help="case store folder; its test split is scored")
    p.add_argument("--model", required=True, help="folder written by `gazelabel train report`")
    p.add_argument("--json", required=True, help="where to write the metrics JSON")
    p.add_argument("--mode", default="gaze2report", choices=("gaze2report", "prompt", "template"))
    p.add_argument("--split", default="test")
    p.add_argument("--classifier", default=None,
                   help="classifier checkpoint; default: a simulated classifier from the ground truth (labelled)")
    p.add_argument("--gaze", default="recorded", choices=("recorded", "predicted", "none"))
    p.add_argument("--scanpath", default=None, help="scanpath checkpoint (for --gaze predicted)")
    p.add_argument("--no-gaze-tokens", action="store_true", help="ablation: gaze2report without fixation tokens")
    p.add_argument("--limit", type=int, default=None, help="score at most this many cases")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (no Java)")
    p.add_argument("--no-bertscore", action="store_true")
    p.add_argument("--device", default="cpu")


def evaluate(args) -> int:
    from models.datasets.base import DatasetError
    from models.datasets.store import CaseStore
    from models.metrics.report import ReportScorer
    from models.report.evaluate import SIMULATED_NOTE, generate_reports, timing_summary
    from models.report.generate import ReportGenerator
    from models.report.corpus import split_cases

    source = CaseStore(args.data).source()
    cases = split_cases(source.cases, source.splits).get(args.split, [])
    if not cases:
        raise DatasetError(f"{args.data}: no cases with a report in split {args.split!r}")
    cases = cases[: args.limit] if args.limit else cases
    if args.mode == "template" and not Path(args.model).exists():
        generator = ReportGenerator()
    else:
        generator = ReportGenerator.from_checkpoint(args.model, device=args.device)
    classifier = scanpath = None
    if args.classifier:
        from models.classifier.predict import ClassifierPredictor

        classifier = ClassifierPredictor.from_checkpoint(args.classifier, device=args.device)
    if args.gaze == "predicted":
        if not args.scanpath:
            raise ValueError("--gaze predicted needs --scanpath CHECKPOINT")
        from models.scanpath.predict import ScanpathPredictor

        scanpath = ScanpathPredictor.from_checkpoint(args.scanpath, device=args.device)
    run = generate_reports(generator, cases, mode=args.mode, classifier=classifier, gaze=args.gaze, scanpath=scanpath,
                           use_gaze=not args.no_gaze_tokens)
    with ReportScorer(meteor=not args.no_meteor, bertscore=not args.no_bertscore) as scorer:
        metrics = scorer.score(run["references"], run["hypotheses"])
    out = {
        "synthetic": bool(source.synthetic), "dataset": source.name, "split": args.split, "mode": args.mode,
        "gaze": args.gaze, "gaze_tokens": not args.no_gaze_tokens,
        "classifier": args.classifier or SIMULATED_NOTE.format(noise=0.15),
        "metrics": metrics, "timing_cpu": timing_summary(run),
        "examples": [{"id": c.id, "reference": r, "generated": h}
                     for c, r, h in list(zip(cases, run["references"], run["hypotheses"]))[:3]],
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    m = metrics
    written = f", LM wrote {run['lm_sentences']}/{run['sentences']} sentences" if args.mode != "template" else ""
    print(f"{args.mode}: BLEU-4 {m['BLEU-4']:.3f} ROUGE-L {m['ROUGE-L']:.3f} "
          f"CE-F1 {m['ce_f1_micro14_positive_only']:.3f} (micro, 14 findings, positive only) / "
          f"{m['ce_f1_micro5_uncertain_positive']:.3f} (micro, CheXbert's 5, uncertain = positive)"
          f"{written} -> {args.json}" + (" (SYNTHETIC data)" if source.synthetic else ""))
    return 0
