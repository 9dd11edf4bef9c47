"""`gazelabel import-sr SR.dcm --out CASE.json`: a DICOM SR (TID 1500) as a Case JSON.

Reads GazeLabel's own SRs exactly (:func:`models.dicom_sr.sr_to_case`) and other TID 1500 reports as far as
they use the same codes. A file that is not a TID 1500 SR, or one that references no image, is one error line
(exit status 2).
"""

from __future__ import annotations

import argparse

HELP = "Read a DICOM Structured Report (TID 1500) as a case JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sr", help="the SR file (.dcm)")
    p.add_argument("--out", required=True, help="case JSON to write")
    p.add_argument("--id", default=None, help="case id (default: the id in the SR, else the image's series UID)")
    p.add_argument("--image", default=None, help="the radiograph, to record its path in the case")


def run(args: argparse.Namespace) -> int:
    from models.dicom_sr import SRError, sr_to_case
    from models.imaging import read_dicom
    from models.schema import save_case

    sr = read_dicom(args.sr)
    try:
        case = sr_to_case(sr, case_id=args.id)
    except SRError as e:
        raise SRError(f"{args.sr}: {e}") from None
    if args.image:
        case.image.path = args.image
    save_case(case, args.out)
    print(f"wrote {args.out}: case {case.id!r} ({len(case.findings)} findings, {len(case.boxes)} boxes, "
          f"{len(case.fixations)} fixations, {len(case.readers)} other readers, "
          f"report {'yes' if case.report else 'no'})")
    return 0
