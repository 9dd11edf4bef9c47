"""``gazelabel web``: the web annotator, registered as a ``gazelabel.commands`` entry point.

trame-slicer 2.0 pins slicer-core 5.11 while the project's environment has 5.13, so the app usually lives in
its own venv (``.venv-web``, made by ``scripts/web-venv.sh``): when trame-slicer is not importable here, this
command runs ``<web venv>/bin/python -m web_annotator`` with the same options in place of itself. Nothing
here imports trame, so ``gazelabel --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from .options import HELP, add_arguments, check, to_argv  # noqa: F401  (HELP and add_arguments: the CLI's)

REPO = Path(__file__).resolve().parents[1]
WEB_VENV = REPO / ".venv-web"


def web_python(environ=os.environ) -> Path | None:
    """The web venv's python: ``$GAZELABEL_WEB_PYTHON``, else ``<repo>/.venv-web/bin/python``; None if absent."""
    path = Path(environ.get("GAZELABEL_WEB_PYTHON") or WEB_VENV / "bin" / "python")
    return path if path.exists() else None


def web_command(argv: list[str], environ=os.environ) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run the app with ``argv`` in the web venv.

    Raises:
        FileNotFoundError: no web venv (one line saying how to make it)."""
    python = web_python(environ)
    if python is None:
        wanted = environ.get("GAZELABEL_WEB_PYTHON") or WEB_VENV / "bin" / "python"
        raise FileNotFoundError(f"gazelabel web runs trame-slicer in its own venv, and {wanted} does not exist: "
                                "run `bash scripts/web-venv.sh` (or `make web-venv`) first")
    env = dict(environ)
    paths = [str(REPO), str(REPO / "slicer_extension" / "GazeLabel")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in (env.get("PYTHONPATH") or "").split(os.pathsep) if p])
    env.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    return [str(python), "-m", "web_annotator", *argv], env


def run(args: argparse.Namespace) -> int:
    check(args)
    argv = to_argv(args)
    if importlib.util.find_spec("trame_slicer") is not None:
        from .app import main

        return main(argv)
    command, env = web_command(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)  # the web app takes this process's place (Ctrl-C, exit status)
    return 0  # not reached
