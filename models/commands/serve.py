"""`gazelabel serve`: start the hardened MONAI Label server with the GazeLabel app.

With no ``--studies`` it builds the embedded SYNTHETIC phantom store and trains quick default models on first
run (a few minutes on 2 CPU cores). The server code lives in ``monailabel_app`` (``launcher.serve``); this
module imports it only inside :func:`run`, so ``models/`` never imports monailabel.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--studies", default=None, metavar="DIR|URL",
                   help="case store folder or DICOMweb URL (e.g. http://127.0.0.1:8042/dicom-web); "
                        "default: the embedded SYNTHETIC phantom store")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--auth-token", default=os.environ.get("GAZELABEL_AUTH_TOKEN") or None, metavar="TOKEN",
                      help="require 'Authorization: Bearer TOKEN' (default: $GAZELABEL_AUTH_TOKEN)")
    auth.add_argument("--basic-auth", default=os.environ.get("GAZELABEL_BASIC_AUTH") or None, metavar="USER:PASS",
                      help="require HTTP basic auth (or a bearer token from POST /auth/token)")
    p.add_argument("--models-dir", default=None, help="models folder (default $GAZELABEL_HOME/models)")
    p.add_argument("--work-dir", default=None, help="logs, sessions and DICOMweb cache (default $GAZELABEL_HOME/server)")
    p.add_argument("--profile", choices=("quick", "tiny"), default="quick",
                   help="size of the default models trained on first run (default quick)")
    p.add_argument("--infer-workers", type=int, default=2, help="inferences run at once; others queue (default 2)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without authentication")


def run(args: argparse.Namespace) -> int:
    # Before torch loads (the first-run training happens in this process): OpenMP threads that spin while
    # waiting made training ~3x slower on a busy 2-core machine (39 s vs 13 s per quick classifier epoch).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from monailabel_app.launcher import serve

    if args.infer_workers < 1:
        raise ValueError(f"--infer-workers must be >= 1, got {args.infer_workers}")
    return serve(args.studies, host=args.host, port=args.port, auth_token=args.auth_token, basic_auth=args.basic_auth,
                 models_dir=args.models_dir, work_dir=args.work_dir, profile=args.profile,
                 infer_workers=args.infer_workers, insecure=args.insecure)
