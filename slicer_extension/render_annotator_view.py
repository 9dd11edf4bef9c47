"""Screenshot what a GazeLabel annotator sees in Slicer, without a full Slicer.

It connects to a running server, takes the next sample (or a given image), runs the pipeline, and renders
the Red slice view offscreen.

    python slicer_extension/render_annotator_view.py --server http://127.0.0.1:8000 \\
        --out benchmarks/results/slicer_annotator_view.png

Runs on the ``slicer-core`` wheel (in the test extra) with Mesa EGL (Debian ``libegl1 libegl-mesa0
libgl1-mesa-dri``). Exit 0 and the PNG path on success; one line and exit 2 on a server or data error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
sys.path.insert(0, str(Path(__file__).resolve().parent / "GazeLabel"))

from GazeLabelLib.client import ServerError  # noqa: E402
from GazeLabelLib.headless import new_scene, render_slice_view  # noqa: E402
from GazeLabelLib.image_io import ImageDecodeError  # noqa: E402
from GazeLabelLib.scene_io import SceneError  # noqa: E402
from GazeLabelLib.session import AnnotationSession  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[:2]).replace("\n", " "))
    p.add_argument("--server", default="http://127.0.0.1:8000", help="GazeLabel server address")
    p.add_argument("--token", help="bearer token (server started with --auth-token)")
    p.add_argument("--user", help="user name for basic auth (server started with --basic-auth)")
    p.add_argument("--password", default=os.environ.get("GAZELABEL_PASSWORD"), help="password (or $GAZELABEL_PASSWORD)")
    p.add_argument("--image", help="image id to show (default: the next sample of --strategy)")
    p.add_argument("--strategy", default="random", help="active-learning strategy for the next sample")
    p.add_argument("--model", default="pipeline", help="infer task to run")
    p.add_argument("--size", type=int, nargs=2, default=(900, 900), metavar=("W", "H"), help="picture size in pixels")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/slicer_annotator_view.png"))
    args = p.parse_args(argv)

    headless = new_scene()
    session = AnnotationSession(headless.scene)
    try:
        session.connect(args.server, token=args.token, username=args.user, password=args.password if args.user else None)
        if args.image:
            session.load_image(args.image)
        elif session.next_sample(args.strategy) is None:
            print(f"{args.server}: the {args.strategy!r} strategy has no image left to annotate", file=sys.stderr)
            return 2
        start = time.perf_counter()
        case = session.run_pipeline(args.model)
        seconds = time.perf_counter() - start
        png = args.out if args.out.suffix.lower() == ".png" else args.out.with_suffix(".png")
        shot = render_slice_view(headless, png, size=tuple(args.size))
        if png != args.out:  # .jpg/.jpeg: the README screenshot is a JPEG to keep the repository small
            from PIL import Image

            Image.open(png).convert("RGB").save(args.out, quality=90)
            png.unlink()
    except (ServerError, ImageDecodeError, SceneError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    synthetic = " (SYNTHETIC)" if case["image"].get("synthetic") else ""
    print(f"{args.out}: {case['id']}{synthetic}, {len(case['fixations'])} fixations, {len(case['boxes'])} boxes, "
          f"heatmap from {session.heatmap_source}, inference {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
