"""`gazelabel` command line.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; model
families (:mod:`models.families`) expose ``add_train_arguments``/``train`` and
``add_evaluate_arguments``/``evaluate`` in their ``cli`` module. Command modules import torch and friends
inside ``run`` so ``--help`` stays fast. Other packages add commands through the ``gazelabel.commands``
entry-point group, a module with ``HELP``, ``add_arguments`` and ``run`` (``gazelabel serve`` comes from
``monailabel_app``, which ``models`` never imports).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from models.families import FAMILIES

COMMANDS = {
    "sample-data": ("models.commands.sample_data", "Generate the SYNTHETIC phantom case store"),
    "inspect": ("models.commands.inspect", "Summarise an image, a case JSON or a dataset"),
    "overlay": ("models.commands.overlay", "Render an image with fixations, heatmap and boxes to PNG"),
    "predict": ("models.commands.predict", "Run the models on one image (or one server task's part of them)"),
    "ask": ("models.commands.ask", "Ask a question about one image: answer, confidence, evidence box and fixations"),
    "predict-store": ("models.commands.predict_store", "Run the classifier over a case store in batches (Case JSON per image, scores into the index)"),
    "gaze": ("models.commands.gaze", "Import eye-tracking recordings made elsewhere (gaze import)"),
    "export-sr": ("models.commands.export_sr", "Write a case JSON as a DICOM Structured Report (TID 1500)"),
    "import-sr": ("models.commands.import_sr", "Read a DICOM Structured Report (TID 1500) as a case JSON"),
    "export-bundle": ("models.commands.export_bundle", "Write a model as a MONAI bundle that `python -m monai.bundle run` executes"),
}
ENTRY_POINTS = "gazelabel.commands"


def _commands() -> dict[str, tuple[str, str]]:
    """The built-in commands plus those other installed packages register (module, help)."""
    out = dict(COMMANDS)
    for ep in entry_points(group=ENTRY_POINTS):
        out.setdefault(ep.name, (ep.value, ""))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gazelabel", description="Gaze-guided chest X-ray AI (GazeLabel)")
    parser.add_argument("--verbose", action="store_true", help="show library warnings and progress bars too")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in _commands().items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith(module):
                continue
            raise
        help_text = help_text or getattr(mod, "HELP", name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    for verb in ("train", "evaluate"):
        vp = sub.add_parser(verb, help=f"{verb.capitalize()} a model ({', '.join(FAMILIES)})")
        vsub = vp.add_subparsers(dest="family", required=True)
        for fam, family in FAMILIES.items():
            mod = importlib.import_module(f"models.{fam}.cli")
            p = vsub.add_parser(fam, help=f"{verb} the {fam}: {family.description}")
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
