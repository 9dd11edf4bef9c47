"""`gazelabel gaze import RECORDING ...`: an eye-tracking recording made elsewhere -> a GazeLabel case JSON.

The recording (Gazepoint CSV, XDF or Tobii Pro Lab export; :mod:`models.recordings`) holds gaze in screen
pixels while a chest X-ray was shown in a known rectangle of the screen. The steps:

1. read the samples and drop the invalid ones (tracker validity, blinks), counting each reason;
2. map screen pixels to original image pixels (:class:`models.screen.ViewGeometry`; the rectangle defaults
   to the image fitted into the screen, aspect kept, centred) and drop samples that miss the image;
3. detect fixations (:func:`models.gaze_events.detect_fixations`, I-VT or I-DT), thresholds in degrees of
   visual angle turned into image pixels from the screen's physical size and the viewing distance;
4. build a :class:`models.schema.Case` with the image's real size, provenance (format, screen, rectangle,
   method, thresholds, counts) in ``extra["gaze_import"]``, validate it by a round trip through
   ``Case.from_dict`` and write it atomically.

A malformed recording or option is one error line naming the file or flag (exit status 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Import eye-tracking recordings made elsewhere (gaze import)"
FORMATS = ("gazepoint", "xdf", "tobii-csv")
OUTSIDE = "outside the image"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="gaze_command", required=True, metavar="{import}")
    imp = sub.add_parser("import", help="recording (screen pixels) + image geometry -> case JSON (image pixels)",
                         description="Turn a recording made with the image shown at a known screen rectangle into "
                                     "a validated case JSON of fixations in original image pixels.")
    imp.add_argument("recording", help="the recording file (.csv, .tsv, .xdf)")
    imp.add_argument("--format", required=True, choices=FORMATS, help="recording format")
    imp.add_argument("--image", required=True, help="the radiograph that was shown (DICOM, PNG/JPG, NIfTI)")
    imp.add_argument("--screen", required=True, metavar="WxH", help="screen size in pixels, e.g. 1920x1080")
    imp.add_argument("--image-rect", metavar="X0,Y0,X1,Y1", default=None,
                     help="screen pixels where the image was drawn (left, top, right, bottom; right/bottom "
                          "exclusive; EGD-CXR: left_pad,top_pad,1920-right_pad,1080-bottom_pad); default: the "
                          "image fitted into the screen, aspect kept, centred")
    imp.add_argument("--visible-rect", metavar="XMIN,YMIN,XMAX,YMAX", default=None,
                     help="the part of the image shown in --image-rect, in image pixels, when it was zoomed or "
                          "panned (default: the whole image)")
    imp.add_argument("--out", required=True, metavar="CASE.json", help="case JSON to write")
    imp.add_argument("--id", default=None, help="case id (default: the image file's stem)")
    imp.add_argument("--screen-mm", metavar="WxH", default="527x296",
                     help="visible screen size in mm (default 527x296, a 24-inch 16:9 panel)")
    imp.add_argument("--distance-mm", type=float, default=650.0, help="eye-to-screen distance in mm (default 650)")
    imp.add_argument("--method", choices=("ivt", "idt"), default="ivt", help="fixation detector (default ivt)")
    imp.add_argument("--velocity-threshold", type=float, default=20.0, help="I-VT threshold, deg/s (default 20)")
    imp.add_argument("--dispersion-threshold", type=float, default=1.0, help="I-DT threshold, degrees (default 1.0)")
    imp.add_argument("--min-duration-ms", type=float, default=100.0, help="shortest fixation kept, ms (default 100)")
    imp.add_argument("--media-id", default=None, help="gazepoint: the MEDIA_ID or DICOM_ID to import when the "
                                                     "file holds several images")
    imp.add_argument("--stream", default=None, help="xdf: the gaze stream's name (default: the one of type Gaze)")
    imp.add_argument("--stream-type", default="Gaze", help="xdf: the stream type to look for (default Gaze)")
    imp.add_argument("--units", choices=("px", "fraction"), default=None,
                     help="xdf/tobii-csv: x/y units when the file does not say: screen pixels or fractions")
    imp.set_defaults(_gaze=import_command)


def run(args: argparse.Namespace) -> int:
    return int(args._gaze(args) or 0)


# ------------------------------------------------------------------------------------------------ import
def _positive(value: float, flag: str) -> float:
    import math

    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{flag}: must be a number > 0, got {value:g}")
    return float(value)


def _stem(path: str) -> str:
    """The image file's name without its suffix (both of ``.nii.gz``)."""
    name = Path(path).name
    for double in (".nii.gz",):
        if name.lower().endswith(double):
            return name[: -len(double)]
    return Path(name).stem or name


def import_recording(args: argparse.Namespace):
    """The import's steps (no output): returns ``(case, report)``; ``report`` is ``extra["gaze_import"]``.

    Raises:
        ValueError (RecordingError, CaseError, ImageError): bad option, recording or image; one line each.
    """
    import numpy as np

    from models.gaze_events import detect_fixations
    from models.imaging import read_image
    from models.recordings import read_recording
    from models.schema import Case, ImageRef, Source
    from models.screen import ViewGeometry, parse_rect, parse_size, px_per_degree

    screen = parse_size(args.screen, "--screen")
    screen_mm = parse_size(args.screen_mm, "--screen-mm", integer=False)
    distance = _positive(args.distance_mm, "--distance-mm")
    for flag, value in (("--velocity-threshold", args.velocity_threshold),
                        ("--dispersion-threshold", args.dispersion_threshold),
                        ("--min-duration-ms", args.min_duration_ms)):
        _positive(value, flag)
    pitch_x, pitch_y = screen_mm[0] / screen[0], screen_mm[1] / screen[1]
    if abs(pitch_x / pitch_y - 1.0) > 0.1:
        raise ValueError(f"--screen-mm {args.screen_mm}: {pitch_x:.3f} mm per pixel across but {pitch_y:.3f} down "
                         f"for a {screen[0]}x{screen[1]} screen; give the visible width x height in mm "
                         f"(e.g. 527x296 for a 24-inch 16:9 panel)")
    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise ValueError(f"--out {out}: expected a .json path for the case")

    image = read_image(args.image)
    visible = None if args.visible_rect is None else parse_rect(
        args.visible_rect, "--visible-rect", names=("xmin", "ymin", "xmax", "ymax"), units="image pixels")
    if args.image_rect is None:
        view = ViewGeometry.letterbox((image.width, image.height), screen, visible)
    else:
        view = ViewGeometry((image.width, image.height), parse_rect(args.image_rect, "--image-rect"), visible)
    x0, y0, x1, y1 = view.screen_rect
    if x1 <= 0 or y1 <= 0 or x0 >= screen[0] or y0 >= screen[1]:
        raise ValueError(f"--image-rect {args.image_rect}: lies wholly outside the {screen[0]}x{screen[1]} screen; "
                         f"give the rectangle in screen pixels")

    rec = read_recording(args.recording, args.format, screen_size=screen, media_id=args.media_id,
                         stream=args.stream, stream_type=args.stream_type, units=args.units)
    samples = rec.valid_samples()
    on_image = np.asarray(view.on_image(samples[:, 1], samples[:, 2]), bool).reshape(-1)
    dropped = dict(rec.dropped)
    if (~on_image).any():
        dropped[OUTSIDE] = int((~on_image).sum())
    samples = samples[on_image]
    if not len(samples):
        raise ValueError(f"{args.recording}: none of its {len(rec)} samples ({rec.n_valid} valid) lands on the "
                         f"image at --image-rect {','.join(f'{v:g}' for v in view.screen_rect)}; check --screen, "
                         f"--image-rect and --format")
    ix, iy = view.screen_to_image(samples[:, 1], samples[:, 2])
    offset = 0.0
    if samples[:, 0].min() < 0:  # a case's times are >= 0
        offset = -float(samples[:, 0].min())
    image_samples = np.stack([samples[:, 0] + offset, ix, iy], axis=1)

    screen_ppd = px_per_degree(screen[0], screen_mm[0], distance)
    image_ppd = view.image_px_per_degree(screen_ppd)
    fixations = detect_fixations(image_samples, method=args.method, px_per_deg=image_ppd,
                                 velocity_threshold=args.velocity_threshold,
                                 dispersion_threshold=args.dispersion_threshold,
                                 minimum_duration_ms=args.min_duration_ms,
                                 sampling_rate=rec.sampling_rate or None)
    report = {
        "format": args.format,
        "recording": str(args.recording),
        "source": rec.source,
        "screen_px": list(screen),
        "screen_mm": [float(v) for v in screen_mm],
        "distance_mm": distance,
        "geometry": view.to_dict(),
        "image_rect_default": args.image_rect is None,
        "px_per_degree": {"screen": round(screen_ppd, 6), "image": round(image_ppd, 6)},
        "method": args.method,
        "velocity_threshold_deg_s": float(args.velocity_threshold),
        "dispersion_threshold_deg": float(args.dispersion_threshold),
        "min_duration_ms": float(args.min_duration_ms),
        "sampling_rate_hz": round(float(rec.sampling_rate), 6),
        "samples": {"read": len(rec), "valid": rec.n_valid, "on_image": int(len(samples))},
        "dropped": dropped,
        "time_offset_s": offset,
        "fixations": len(fixations),
        "reader": rec.meta,
    }
    case = Case(
        id=args.id or _stem(args.image),
        image=ImageRef(str(args.image), image.width, image.height, image.spacing_mm, (image.meta or {}).get("view")),
        fixations=fixations,
        source=Source(dataset=None, ref=str(args.recording), model=None),
        extra={"gaze_import": report},
    )
    return Case.from_dict(case.to_dict()), report


def import_command(args: argparse.Namespace) -> int:
    from models.files import atomic_json

    import sys

    case, report = import_recording(args)
    atomic_json(args.out, case.to_dict())
    for warning in report["reader"].get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    dropped = report["dropped"]
    n_dropped = sum(dropped.values())
    reasons = ", ".join(f"{k} {v}" for k, v in dropped.items())
    samples = report["samples"]
    skipped = report["reader"].get("skipped_rows") or 0
    print(f"Read {samples['read']} samples from {args.recording} ({args.format}, {report['sampling_rate_hz']:.1f} Hz"
          + (f"; {skipped} rows of other sensors skipped" if skipped else "") + f"); dropped {n_dropped}"
          + (f": {reasons}" if reasons else ""))
    thresholds = (f"{args.velocity_threshold:g} deg/s" if args.method == "ivt" else f"{args.dispersion_threshold:g} deg")
    print(f"Found {len(case.fixations)} fixations ({args.method}, {thresholds}, >= {args.min_duration_ms:g} ms; "
          f"{report['px_per_degree']['image']:.1f} image px per degree)")
    print(f"Wrote {args.out} (case {case.id}, image {case.image.width}x{case.image.height})")
    return 0
