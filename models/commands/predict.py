"""`gazelabel predict IMAGE`: findings, heatmap and boxes; with --scanpath the predicted reading path and
its region coverage; with --report the draft report and its evidence links."""

from __future__ import annotations

import os
from pathlib import Path


def add_arguments(p) -> None:
    from models.pipeline import GAZE_CHOICES, REPORT_MODES, TASKS

    p.add_argument("image", help="a chest radiograph: DICOM, PNG/JPG, NIfTI ...")
    p.add_argument("--task", choices=tuple(TASKS), default="pipeline",
                   help="what to run, as the server's infer task of that name does (default pipeline: all models)")
    p.add_argument("--models", default=None, help="models folder (classifier.pt, scanpath.pt, report/); default $GAZELABEL_HOME/models")
    p.add_argument("--json", dest="json_out", help="write the predicted Case JSON here")
    p.add_argument("--overlay", help="write a PNG with heatmap, boxes and numbered fixations here")
    p.add_argument("--scanpath", action="store_true", help="print the predicted fixations and covered/missed regions")
    p.add_argument("--samples", type=int, default=None, help="scanpaths to sample (the first is shown; default 1)")
    p.add_argument("--temperature", type=float, default=None, help="scanpath sampling temperature (default 0.3; 0 = mean path)")
    p.add_argument("--report", action="store_true", help="print the draft report with its evidence links")
    p.add_argument("--report-mode", default=None, choices=REPORT_MODES, help="default auto")
    p.add_argument("--report-samples", type=int, default=None,
                   help="seeded samples of a report sentence the labeler refused, before its template (0-8; default 0)")
    p.add_argument("--mc-samples", type=int, default=None, help="classifier MC-dropout passes (default 0)")
    p.add_argument("--gaze", default=None, choices=GAZE_CHOICES,
                   help="which fixations the case and report carry (default: the task's; recorded needs --gaze-from)")
    p.add_argument("--gaze-from", default=None, metavar="CASE.json", help="a case JSON whose fixations are the recorded gaze")
    p.add_argument("--finding", default=None, help="heatmap of this finding (default: score-weighted mean)")
    p.add_argument("--question", default=None, help="a question for the vqa model (--task vqa; or use `gazelabel ask`)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="cpu")


CALLS = {1: "POSITIVE", -1: "uncertain"}


def _print_case(case, show_scanpath: bool, show_report: bool) -> None:
    print(f"{case.id}: {case.image.width}x{case.image.height} px  ({case.source.model})")
    if case.prediction is not None and case.prediction.synthetic:
        print("  note: these models were trained on SYNTHETIC phantom data; outputs are not clinical findings")
    print(f"  {'finding':<28}{'score':>7}  call (models.decision: the report says the same)")
    for name, score in sorted(case.scores.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<28}{score:7.3f}  {CALLS.get(case.findings.get(name), '')}")
    for i, b in enumerate(case.boxes):
        print(f"  box {i}: {b.finding} in {b.region} ({b.x1:.0f}, {b.y1:.0f})-({b.x2:.0f}, {b.y2:.0f}) px, score {b.score or 0:.2f}")
    if show_scanpath:
        print(f"  scanpath: {len(case.fixations)} fixations, {sum(f.duration for f in case.fixations):.2f} s")
        for i, f in enumerate(case.fixations):
            print(f"    {i + 1:>3}  x {f.x:7.1f}  y {f.y:7.1f}  t {f.t:6.2f} s  dur {f.duration:5.3f} s")
        print(f"  visited: {', '.join(case.coverage.get('visited', [])) or '-'}")
        print(f"  missed:  {', '.join(case.coverage.get('missed', [])) or '-'}")
        n = len(case.prediction.scanpath_samples) if case.prediction else 0
        if n:
            print(f"  {n} sampled scanpaths are in the JSON output (prediction.scanpath_samples)")
    if show_report and case.report is not None:
        print(f"  FINDINGS: {case.report.findings}")
        print(f"  IMPRESSION: {case.report.impression}")
        for e in case.report.evidence:
            print(f"    sentence {e.sentence}: finding={e.finding} region={e.region} box={e.box} fixations={e.fixations}")


def _models_dir(args) -> Path:
    """The models folder, with a message that says where it was looked for and how to get models."""
    from models.families import FAMILIES
    from models.runtime import home

    models_dir = Path(args.models) if args.models else home() / "models"
    if not any(f.exists(models_dir) for f in FAMILIES.values()):
        where = "--models" if args.models else "$GAZELABEL_HOME/models (GAZELABEL_HOME is " + \
            (os.environ.get("GAZELABEL_HOME") or f"unset, so ./.gazelabel under {Path.cwd()}") + ")"
        raise FileNotFoundError(
            f"{models_dir}: no models found in {where}; run `make demo` (or `gazelabel serve`) in the "
            "repository to train the default ones, point --models at a models folder, or train with "
            "`gazelabel train classifier|scanpath|report`")
    return models_dir


def _print_answer(case) -> None:
    """The answer block of a vqa Case, for `gazelabel ask` and `predict --task vqa`."""
    a = case.prediction.answer
    print(f"Q: {a.question}")
    if not a.answerable:
        print(f"A: cannot answer: {a.reason}")
    else:
        then = ", ".join(f"{x['answer']} {x['p']:.2f}" for x in a.alternatives)
        print(f"A: {a.answer}   (confidence {a.confidence:.2f}; {a.type}/{a.kind}" + (f"; then {then}" if then else "") + ")")
        if a.box is not None:
            x1, y1, x2, y2 = a.box
            print(f"   evidence box ({x1:.0f}, {y1:.0f})-({x2:.0f}, {y2:.0f}) px")
        if a.fixations:
            print(f"   evidence fixations ({a.gaze_source}): {', '.join(str(i + 1) for i in a.fixations)}")
    if case.prediction.synthetic:
        print("   note: these models were trained on SYNTHETIC phantom data; answers are not clinical findings")


def run(args) -> int:
    from dataclasses import replace

    from models.imaging import read_image
    from models.pipeline import TASKS, Pipeline
    from models.schema import load_case
    from models.vocab import canonical_finding

    # Every input is checked before any model loads: a bad path is reported at once.
    task = TASKS[args.task]
    overrides = {k: v for k, v in (("n_samples", args.samples), ("temperature", args.temperature),
                                   ("report_mode", args.report_mode), ("report_samples", args.report_samples),
                                   ("mc_samples", args.mc_samples),
                                   ("gaze", args.gaze), ("seed", args.seed)) if v is not None}
    if args.finding:
        try:
            overrides["finding"] = canonical_finding(args.finding)
        except KeyError as e:
            raise ValueError(f"--finding: {e.args[0]}") from None
    if args.question is not None:
        overrides["question"] = args.question
    elif task.needs_question:
        raise ValueError(f"--task {task.name} answers a question: add --question \"...\" (or use `gazelabel ask IMAGE QUESTION`)")
    options = replace(task.defaults, **overrides)  # ValueError names an option out of range
    for flag, out, suffix in (("--json", args.json_out, ".json"), ("--overlay", args.overlay, ".png")):
        if out and Path(out).suffix.lower() != suffix:
            raise ValueError(f"{flag} {out}: expected a {suffix} path")
    recorded = load_case(args.gaze_from).fixations if args.gaze_from else None
    image = read_image(args.image)
    models_dir = _models_dir(args)
    pipe = Pipeline.from_dir(models_dir, device=args.device)
    result = pipe.run(image, families=task.families, options=options, recorded_gaze=recorded)
    case = result.case
    _print_case(case, args.scanpath or task.name == "scanpath", args.report or task.name == "report")
    if case.prediction is not None and case.prediction.answer is not None:
        _print_answer(case)
    if args.json_out:
        from models.files import atomic_json

        atomic_json(args.json_out, case.to_dict())
        print(f"wrote {args.json_out}")
    if args.overlay:
        from models.files import atomic_path
        from models.render import render_overlay

        with atomic_path(args.overlay) as tmp:
            render_overlay(image, case, result.heatmap).save(tmp, format="PNG")
        print(f"wrote {args.overlay}")
    return 0
