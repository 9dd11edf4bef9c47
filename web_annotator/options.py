"""The ``gazelabel web`` command line, shared by ``gazelabel web`` (project venv) and ``python -m
web_annotator`` (the web venv). Standard library only: it is imported where neither torch nor trame is."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

HELP = "Annotate in a browser: the Slicer scene and annotation loop served as a web page (trame-slicer)"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORT = 8080
ENCODERS = ("turbo-jpeg", "jpeg", "png", "webp")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("GAZELABEL_SERVER", "http://127.0.0.1:8000"),
                   help="GazeLabel server to annotate for (default $GAZELABEL_SERVER or http://127.0.0.1:8000)")
    p.add_argument("--host", default="127.0.0.1", help="address the page is served on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port of the page (default {DEFAULT_PORT})")
    p.add_argument("--auth", choices=("none", "token", "basic"), default=None,
                   help="how to log in to the server (default: token or basic when their secret is given, else none)")
    p.add_argument("--token-file", metavar="FILE",
                   help="bearer token: the first line of FILE (or $GAZELABEL_AUTH_TOKEN)")
    p.add_argument("--user", help="user name for basic auth (or the user of $GAZELABEL_BASIC_AUTH=USER:PASS)")
    p.add_argument("--password-file", metavar="FILE", help="password for basic auth: the first line of FILE "
                                                           "(or $GAZELABEL_PASSWORD)")
    p.add_argument("--strategy", default="uncertainty", help="active-learning strategy for the next sample "
                                                             "(default uncertainty; any the server lists)")
    p.add_argument("--samples", type=int, default=3, help="scanpaths sampled per case (1-16; default 3)")
    p.add_argument("--encoder", choices=ENCODERS, default="turbo-jpeg", help="how the view's frames are encoded")
    p.add_argument("--no-connect", action="store_true", help="do not connect at start; use the page's Connect")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host: the page has no login of its own, anyone reaching it "
                        "annotates with this command's server credentials")


def to_argv(args: argparse.Namespace) -> list[str]:
    """The options of ``args`` as a command line again (to run the app in the other venv)."""
    argv = ["--server", args.server, "--host", args.host, "--port", str(args.port), "--strategy", args.strategy,
            "--samples", str(args.samples), "--encoder", args.encoder]
    for flag, value in (("--auth", args.auth), ("--token-file", args.token_file), ("--user", args.user),
                        ("--password-file", args.password_file)):
        if value:
            argv += [flag, str(value)]
    argv += ["--no-connect"] * bool(args.no_connect) + ["--insecure"] * bool(args.insecure)
    return argv


@dataclass
class Credentials:
    """How the app logs in to the server; secrets stay in the app's process, never in the page's state."""

    mode: str = "none"  # none | token | basic
    token: str | None = None
    username: str | None = None
    password: str | None = None


def _first_line(path: str, flag: str) -> str:
    try:
        lines = Path(path).read_text().strip().splitlines()
    except OSError as e:
        raise ValueError(f"{flag} {path}: cannot read it ({e.strerror})") from None
    if not lines or not lines[0].strip():
        raise ValueError(f"{flag} {path}: the file is empty")
    return lines[0].strip()


def credentials(args: argparse.Namespace, environ=os.environ) -> Credentials:
    """The login from the flags, else from ``GAZELABEL_AUTH_TOKEN`` / ``GAZELABEL_BASIC_AUTH`` /
    ``GAZELABEL_PASSWORD``; ValueError naming the flag when they do not fit together."""
    token = _first_line(args.token_file, "--token-file") if args.token_file else None
    password = _first_line(args.password_file, "--password-file") if args.password_file else None
    user = args.user
    basic_env = environ.get("GAZELABEL_BASIC_AUTH", "")
    if not token and not user and not password:
        token = environ.get("GAZELABEL_AUTH_TOKEN") or None
        if not token and ":" in basic_env:
            user, _, password = basic_env.partition(":")
    if user and not password:
        password = environ.get("GAZELABEL_PASSWORD") or (basic_env.partition(":")[2] if basic_env.startswith(f"{user}:") else None)
    mode = args.auth or ("token" if token else "basic" if user else "none")
    if mode == "token" and not token:
        raise ValueError("--auth token: give --token-file FILE or set $GAZELABEL_AUTH_TOKEN")
    if mode == "basic" and not (user and password):
        raise ValueError("--auth basic: give --user NAME and --password-file FILE (or $GAZELABEL_PASSWORD)")
    if mode == "none":
        token = user = password = None
    return Credentials(mode, token if mode == "token" else None, user if mode == "basic" else None,
                       password if mode == "basic" else None)


def check(args: argparse.Namespace) -> None:
    """ValueError with one line for options that cannot work."""
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: a TCP port is 1-65535")
    if not 1 <= args.samples <= 16:
        raise ValueError(f"--samples {args.samples}: draw 1 to 16 scanpaths")
    if args.host not in LOOPBACK_HOSTS and not args.insecure:
        raise ValueError(f"--host {args.host}: the page has no login of its own; refusing to serve it beyond this "
                         "machine without --insecure")
    if not str(args.server).startswith(("http://", "https://")):
        raise ValueError(f"--server {args.server}: the address must start with http:// or https://")
