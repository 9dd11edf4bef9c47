"""Crash-safe file writes: a reader (or a restart after ``kill -9``) sees the old version or the new one.

Every file the library or the server writes for keeps (cases, labels, the datastore index, image info,
checkpoints, train stats) goes through :func:`atomic_path`: the content is written to a temporary file in
the same folder, flushed and ``fsync``-ed, renamed over the target (``os.replace`` is atomic on POSIX), and
the folder itself is ``fsync``-ed so the rename survives a power cut. A write that fails half-way removes
its temporary file and leaves the target untouched.

Temporary files are named ``.<name>.<random>.partial`` so a start-up sweep (:func:`remove_partials`) can
delete the leftovers of a process that was killed between the write and the rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

PARTIAL_SUFFIX = ".partial"


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is fsync-ed and renamed onto ``path``.

    For writers that want a file name (``torch.save``, ``nib.save``, ``PIL.Image.save``)::

        with atomic_path(out) as tmp:
            torch.save(obj, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; returns ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def atomic_copy(src: str | Path, path: str | Path) -> Path:
    """Copy the file ``src`` onto ``path`` atomically (never a half-copied target)."""
    with atomic_path(path) as tmp, open(src, "rb") as fin, open(tmp, "wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
    return Path(path)


def atomic_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Write ``obj`` as strict JSON (NaN and infinities refused with ValueError) atomically."""
    return atomic_write(path, json.dumps(obj, indent=indent, allow_nan=False))


def remove_partials(folder: str | Path, older_than_s: float = 0.0, recursive: bool = True) -> int:
    """Delete the ``*.partial`` leftovers of interrupted atomic writes under ``folder``; returns the count.

    ``older_than_s`` spares files younger than that (a write that may still be running in another process)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for p in (folder.rglob if recursive else folder.glob)(f".*{PARTIAL_SUFFIX}"):
        try:
            if p.is_file() and now - p.stat().st_mtime >= older_than_s:
                p.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
