"""`gazelabel` command line.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; model
families expose ``add_train_arguments``/``train`` and ``add_evaluate_arguments``/``evaluate`` in their
``cli`` module. Command modules import torch and friends inside ``run`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "sample-data": ("models.commands.sample_data", "Generate the SYNTHETIC phantom case store"),
    "inspect": ("models.commands.inspect", "Summarise an image, a case JSON or a dataset"),
    "overlay": ("models.commands.overlay", "Render an image with fixations, heatmap and boxes to PNG"),
    "predict": ("models.commands.predict", "Run the models on one image"),
    "serve": ("models.commands.serve", "Start the MONAI Label server with the GazeLabel app"),
}
FAMILIES = {
    "classifier": "models.classifier.cli",
    "scanpath": "models.scanpath.cli",
    "report": "models.report.cli",
}


def _family(name: str):
    try:
        return importlib.import_module(FAMILIES[name])
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith(FAMILIES[name]):
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gazelabel", description="Gaze-guided chest X-ray AI (GazeLabel)")
    parser.add_argument("--verbose", action="store_true", help="show library warnings and progress bars too")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith(module):
                continue
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    for verb in ("train", "evaluate"):
        vp = sub.add_parser(verb, help=f"{verb.capitalize()} a model (classifier, scanpath, report)")
        vsub = vp.add_subparsers(dest="family", required=True)
        for fam in FAMILIES:
            mod = _family(fam)
            if mod is None:
                continue
            p = vsub.add_parser(fam, help=f"{verb} the {fam}")
            getattr(mod, f"add_{verb}_arguments")(p)
            p.set_defaults(_run=getattr(mod, verb))
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    # Idle OpenMP threads that spin made CPU training ~3x slower on a busy 2-core machine; let them sleep.
    # Must be set before torch loads its OpenMP runtime.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Nothing is ever downloaded; huggingface_hub reads these once, at import, so they are set first (a hub
    # lookup that cannot connect cost a one-image predict 40 s of timeouts).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from models.errors import USER_ERRORS

    parser = build_parser()
    args = parser.parse_args(argv)
    from models.quiet import quiet_libraries

    quiet_libraries(verbose=args.verbose or getattr(args, "verbose_command", False))
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as e:
        print(f"gazelabel {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gazelabel inspect ... | head`: the reader left; not an error worth a traceback
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
