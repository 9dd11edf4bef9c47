"""Publish a trained model so running infer tasks switch to it atomically.

A checkpoint file is moved over the old one with ``os.replace``. A model folder (the report generator) is
moved to a unique ``<name>.<random>`` folder and ``<name>`` becomes a symlink swapped with ``os.replace``; the previous version
stays until the next publish so a request that is loading it can finish. Every file is fsync-ed before
the rename, so a crash leaves the old model or the whole new one, never a torn file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from models.files import fsync_dir


def _fsync_tree(path: Path) -> None:
    """fsync every file under ``path`` (or ``path`` itself) and the folders holding them."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    for f in files:
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    for folder in {f.parent for f in files} | ({path} if path.is_dir() else set()):
        fsync_dir(folder)


def publish(new: Path, target: Path) -> Path:
    """Move ``new`` (file or folder, same filesystem) to ``target``; returns ``target``."""
    new, target = Path(new), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _fsync_tree(new)  # the new version is on disk before anything points at it
    if not new.is_dir():
        os.replace(new, target)
        fsync_dir(target.parent)
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
    fsync_dir(target.parent)
    keep = {version.resolve(), previous.resolve() if previous else None}
    for old in target.parent.glob(f"{target.name}.*"):
        if old.is_dir() and old.resolve() not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return target
