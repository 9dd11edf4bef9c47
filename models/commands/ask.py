"""`gazelabel ask IMAGE "QUESTION"`: answer a question about a radiograph, with its evidence.

Runs :meth:`models.pipeline.Pipeline.run` as the server's ``vqa`` task does (the classifier and the scanpath
model when they are in the models folder, then the vqa model): the answer, its confidence, the evidence box
(original pixels) and the fixations behind it, or "cannot answer" and why.
"""

from __future__ import annotations

from pathlib import Path

HELP = "Ask a question about one image (answer, confidence, evidence box and fixations)"


def add_arguments(p) -> None:
    from models.pipeline import GAZE_CHOICES

    p.add_argument("image", help="a chest radiograph: DICOM, PNG/JPG, NIfTI ...")
    p.add_argument("question", help='the question, e.g. "Which side is the pneumothorax on?"')
    p.add_argument("--models", default=None, help="models folder (vqa.pt, and classifier.pt, scanpath.pt); default $GAZELABEL_HOME/models")
    p.add_argument("--json", dest="json_out", help="write the predicted Case JSON (answer in prediction.answer) here")
    p.add_argument("--gaze", default=None, choices=GAZE_CHOICES,
                   help="the fixations the answer rests on (default auto: recorded with --gaze-from, else predicted)")
    p.add_argument("--gaze-from", default=None, metavar="CASE.json", help="a case JSON whose fixations are the recorded gaze")
    p.add_argument("--mc-samples", type=int, default=None, help="MC-dropout passes behind the confidence (default 0)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="cpu")


def run(args) -> int:
    from dataclasses import replace

    from models.commands.predict import _models_dir, _print_answer
    from models.families import FAMILIES, VQA
    from models.imaging import read_image
    from models.pipeline import TASKS, Pipeline
    from models.schema import load_case

    task = TASKS["vqa"]
    if args.json_out and Path(args.json_out).suffix.lower() != ".json":
        raise ValueError(f"--json {args.json_out}: expected a .json path")
    overrides = {k: v for k, v in (("mc_samples", args.mc_samples), ("gaze", args.gaze), ("seed", args.seed)) if v is not None}
    options = replace(task.defaults, question=args.question, **overrides)  # ValueError names the question or option
    recorded = load_case(args.gaze_from).fixations if args.gaze_from else None
    image = read_image(args.image)
    models_dir = _models_dir(args)
    if not VQA.exists(models_dir):
        raise FileNotFoundError(f"{VQA.checkpoint(models_dir)}: no vqa model; train one with "
                                f"`gazelabel train vqa --data STORE --out {VQA.path(models_dir)}`")
    # Only the families the task runs (the report model is not loaded for a question).
    pipe = Pipeline(**{f: FAMILIES[f].load(FAMILIES[f].path(models_dir), device=args.device)
                       for f in task.families if FAMILIES[f].exists(models_dir)})
    result = pipe.run(image, families=task.families, options=options, recorded_gaze=recorded)
    _print_answer(result.case)
    if args.json_out:
        from models.files import atomic_json

        atomic_json(args.json_out, result.case.to_dict())
        print(f"wrote {args.json_out}")
    return 0
