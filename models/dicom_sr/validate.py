"""Run David Clunie's ``dciodvfy`` (Debian package ``dicom3tools``) over a DICOM file: the IOD checker used
to show that GazeLabel's SRs, Parametric Maps and overlays are valid DICOM."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def dciodvfy_path() -> str | None:
    return shutil.which("dciodvfy")


def dciodvfy(path: str | Path, timeout: float = 120.0) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` that dciodvfy reports for ``path``; FileNotFoundError when it is not installed."""
    exe = dciodvfy_path()
    if exe is None:
        raise FileNotFoundError("dciodvfy is not installed (apt-get install -y dicom3tools)")
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=timeout)
    lines = (out.stderr + out.stdout).splitlines()
    return [l for l in lines if l.startswith("Error")], [l for l in lines if l.startswith("Warning")]
