"""`gazelabel serve`: start the MONAI Label server with the GazeLabel app.

With no ``--studies`` it builds the embedded SYNTHETIC phantom store and trains quick default models on first
run (a few minutes on 2 CPU cores). Registered as a ``gazelabel.commands`` entry point; the server code
(``monailabel_app.launcher``) is imported inside :func:`run` so ``gazelabel --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "Start the MONAI Label server with the GazeLabel app"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--studies", default=None, metavar="DIR|URL",
                   help="case store folder or DICOMweb URL (e.g. http://127.0.0.1:8042/dicom-web); "
                        "default: the embedded SYNTHETIC phantom store")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--auth-token-file", metavar="FILE",
                      help="require 'Authorization: Bearer TOKEN', TOKEN being the first line of FILE "
                           "(or set $GAZELABEL_AUTH_TOKEN / $GAZELABEL_AUTH_TOKEN_FILE)")
    auth.add_argument("--basic-auth-file", metavar="FILE",
                      help="require HTTP basic auth with USER:PASS from the first line of FILE (or set "
                           "$GAZELABEL_BASIC_AUTH / $GAZELABEL_BASIC_AUTH_FILE); clients may also get a bearer token "
                           "from POST /auth/token")
    auth.add_argument("--auth-token", metavar="TOKEN",
                      help="as --auth-token-file, but visible to every user of this machine in `ps`: avoid")
    auth.add_argument("--basic-auth", metavar="USER:PASS", help="as --basic-auth-file, but visible in `ps`: avoid")
    p.add_argument("--models-dir", default=None, help="models folder (default $GAZELABEL_HOME/models)")
    p.add_argument("--work-dir", default=None, help="logs, sessions and DICOMweb cache (default $GAZELABEL_HOME/server)")
    p.add_argument("--profile", choices=("quick", "tiny"), default="quick",
                   help="size of the default models trained on first run (default quick)")
    p.add_argument("--db", default=None, metavar="URL",
                   help="database of the store's index (SQLAlchemy URL; default SQLite in the store). "
                        "postgresql://user@host/dbname lets several servers share one store")
    p.add_argument("--infer-workers", type=int, default=2, help="inferences run at once; others queue (default 2)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without authentication")
    p.add_argument("--web-port", type=int, default=None, metavar="PORT",
                   help="also serve the web annotator (gazelabel web, on 127.0.0.1) on this port, logged in like a "
                        "client; `make demo` uses 8080")
    p.add_argument("--verbose", dest="verbose_command", action="store_true", help="show the server's INFO log on the console too (always in "
                                                          "<work dir>/logs/server.log)")


def _first_line(path: str, flag: str) -> str:
    try:
        value = Path(path).read_text().strip().splitlines()
    except OSError as e:
        raise ValueError(f"{flag} {path}: cannot read it ({e.strerror})") from None
    if not value or not value[0].strip():
        raise ValueError(f"{flag} {path}: the file is empty")
    return value[0].strip()


def auth_settings(args: argparse.Namespace, environ=os.environ) -> tuple[str | None, str | None]:
    """``(token, user:password)`` from the flags, else from the environment (``GAZELABEL_AUTH_TOKEN[_FILE]``,
    ``GAZELABEL_BASIC_AUTH[_FILE]``). Secrets given on the command line work but earn a warning."""
    from monailabel_app.security import AuthConfig

    if args.auth_token or args.basic_auth:
        print("[gazelabel] warning: a secret on the command line is visible to every user of this machine in `ps`; "
              "use --auth-token-file / --basic-auth-file or GAZELABEL_AUTH_TOKEN instead", file=sys.stderr, flush=True)
    if args.auth_token_file:
        return _first_line(args.auth_token_file, "--auth-token-file"), None
    if args.basic_auth_file:
        return None, _first_line(args.basic_auth_file, "--basic-auth-file")
    if args.auth_token or args.basic_auth:
        return args.auth_token, args.basic_auth
    config = AuthConfig.from_env(environ)
    if config.username:
        return None, f"{config.username}:{config.password}"
    return config.token, None


def run(args: argparse.Namespace) -> int:
    # Before torch loads (the first-run training happens in this process): OpenMP threads that spin while
    # waiting made training ~3x slower on a busy 2-core machine (39 s vs 13 s per quick classifier epoch).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from monailabel_app.launcher import check_db_url, serve

    if args.db:
        check_db_url(args.db)  # before any first-run set-up
    if args.infer_workers < 1:
        raise ValueError(f"--infer-workers must be >= 1, got {args.infer_workers}")
    token, basic = auth_settings(args)
    return serve(args.studies, host=args.host, port=args.port, auth_token=token, basic_auth=basic,
                 models_dir=args.models_dir, work_dir=args.work_dir, profile=args.profile,
                 infer_workers=args.infer_workers, insecure=args.insecure,
                 verbose=args.verbose or args.verbose_command, db=args.db, web_port=args.web_port)
