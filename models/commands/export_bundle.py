"""`gazelabel export-bundle MODEL --out DIR`: a trained model as a MONAI bundle (:mod:`models.bundle`).

MODEL is a family's checkpoint (``classifier.pt``, ``scanpath.pt``, ``vqa.pt``) or the ``report/`` folder;
the models its answer needs (the report's classifier and scanpath model, the vqa's) are taken from beside it.
"""

from __future__ import annotations

import argparse

HELP = "Write a model as a MONAI bundle that `python -m monai.bundle run` executes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="classifier.pt, scanpath.pt, vqa.pt or a report/ folder (companions beside it)")
    p.add_argument("--out", required=True, help="bundle folder to create (must be new or empty)")
    p.add_argument("--version", default="0.1.0", help="the bundle's version in metadata.json")


def run(args: argparse.Namespace) -> int:
    from models.bundle import export_bundle

    out = export_bundle(args.model, args.out, version=args.version)
    print(f"wrote the MONAI bundle {out}")
    print(f"  run:    cd {out} && python -m monai.bundle run --config_file configs/inference.json "
          "--meta_file configs/metadata.json --image IMAGE --output_dir OUT")
    print(f"  verify: cd {out} && python -m monai.bundle verify_metadata --meta_file configs/metadata.json "
          "--filepath configs/metadata_schema.json")
    return 0
