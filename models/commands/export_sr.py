"""`gazelabel export-sr CASE.json --image IMAGE.dcm --out OUT.dcm`: a Case as a DICOM SR (TID 1500).

The SR references ``IMAGE.dcm`` (the radiograph the case describes: same size) and carries the findings,
scores, boxes, fixations of every reader, coverage and the report with its evidence links
(:mod:`models.dicom_sr.writer`). ``--heatmap MAP.npy`` also writes the ``(H, W)`` map as a Parametric Map
(``--pm OUT``) or, with ``--overlay OUT``, as a colour Secondary Capture for viewers without parametric-map
support. A label is written with an annotator (person observer); ``--as-prediction`` writes a predicted Case
with the models as the device observer.
"""

from __future__ import annotations

import argparse

HELP = "Write a case JSON as a DICOM Structured Report (TID 1500) on its radiograph"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="case JSON (a label or a prediction)")
    p.add_argument("--image", required=True, help="the DICOM radiograph (CR/DX) the case describes")
    p.add_argument("--out", required=True, help="SR file to write (.dcm)")
    p.add_argument("--annotator", default=None, help="who made the label (default: 'annotator'; the person observer)")
    p.add_argument("--tag", default="final", help="label tag recorded in the SR (default final)")
    p.add_argument("--as-prediction", action="store_true",
                   help="write the case's prediction with the models as device observer (needs a predicted case)")
    p.add_argument("--heatmap", default=None, help="an (H, W) .npy heatmap in [0, 1] on the image's pixel grid")
    p.add_argument("--pm", default=None, help="with --heatmap: Parametric Map file to write")
    p.add_argument("--overlay", default=None, help="with --heatmap: Secondary Capture overlay file to write")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from models.dicom_sr import case_to_sr, heatmap_to_parametric_map, heatmap_to_secondary_capture, write_sr
    from models.imaging import read_dicom
    from models.schema import CaseError, load_case

    case = load_case(args.case)
    if args.as_prediction and case.prediction is None:
        raise CaseError(f"{args.case}: --as-prediction needs a predicted case (it has no 'prediction')")
    if (args.pm or args.overlay) and not args.heatmap:
        raise ValueError("--pm and --overlay need --heatmap MAP.npy")
    image = read_dicom(args.image, pixels=bool(args.overlay))
    if "SOPInstanceUID" not in image or "Rows" not in image:
        raise ValueError(f"{args.image}: not a DICOM image (no SOP Instance UID or Rows)")
    try:
        sr = case_to_sr(case, image, label_tag=args.tag, annotator=None if args.as_prediction else (args.annotator or "annotator"))
    except CaseError as e:
        raise CaseError(f"{args.case}: {e}") from None
    write_sr(sr, args.out)
    print(f"wrote {args.out}: SR {sr.SOPInstanceUID} on image {image.SOPInstanceUID} ({len(case.boxes)} boxes, "
          f"{len(case.fixations) + sum(map(len, case.readers.values()))} fixations)")
    if args.heatmap:
        try:
            heatmap = np.load(args.heatmap, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{args.heatmap}: not a .npy array ({type(e).__name__})") from None
        for out, make in ((args.pm, heatmap_to_parametric_map), (args.overlay, heatmap_to_secondary_capture)):
            if out:
                try:
                    ds = make(heatmap, image)
                except CaseError as e:
                    raise CaseError(f"{args.heatmap}: {e}") from None
                write_sr(ds, out)
                print(f"wrote {out}: {ds.SOPClassUID.name if hasattr(ds.SOPClassUID, 'name') else ds.SOPClassUID}")
    return 0
