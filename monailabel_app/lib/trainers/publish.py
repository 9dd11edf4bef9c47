"""Publish a trained model so running infer tasks switch to it atomically.

A checkpoint file is moved over the old one with ``os.replace``. A model folder (the report generator) is
moved to a unique ``<name>.<random>`` folder and ``<name>`` becomes a symlink swapped with ``os.replace``; the previous version
stays until the next publish so a request that is loading it can finish.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def publish(new: Path, target: Path) -> Path:
    """Move ``new`` (file or folder, same filesystem) to ``target``; returns ``target``."""
    new, target = Path(new), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not new.is_dir():
        os.replace(new, target)
        return target
    version = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))  # unique, empty
    os.replace(new, version)  # POSIX rename onto an empty folder
    previous = target.resolve() if target.is_symlink() else None
    if target.is_dir() and not target.is_symlink():  # a folder written by `gazelabel train report --out`
        os.replace(target, target.with_name(f"{target.name}.0"))
        previous = target.with_name(f"{target.name}.0")
    link = target.with_name(f".{target.name}.link")
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(version.name, link)
    os.replace(link, target)
    keep = {version.resolve(), previous.resolve() if previous else None}
    for old in target.parent.glob(f"{target.name}.*"):
        if old.is_dir() and old.resolve() not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return target
