"""Which image ids and label tags the server accepts.

MONAI Label 0.8.5 joins ids and tags straight into file paths, so ``image=../outside/evil`` writes outside
the store. Every id or tag that reaches a datastore or a file name must pass :func:`check_id` first: a
letter or digit followed by letters, digits, ``.``, ``_`` or ``-`` (DICOM UIDs and phantom ids fit), never
``..``, at most 128 characters.
"""

from __future__ import annotations

import os
import re

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_SAFE = re.compile(ID_PATTERN[1:-1])


class UnsafeIdError(ValueError):
    """An image id, label id or tag that could name a path outside the store; the message says which."""


def is_safe_id(value: str | None) -> bool:
    return bool(value) and _SAFE.fullmatch(value) is not None and ".." not in value


def check_id(value: str | None, what: str = "image id") -> str:
    """Return ``value`` if it is a safe id, else raise :class:`UnsafeIdError` naming ``what``."""
    if not is_safe_id(value):
        raise UnsafeIdError(
            f"{what} {value!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, without '..'"
        )
    return value


def check_inside(root: str, path: str) -> str:
    """Resolve ``path`` and make sure it lies inside ``root`` (defence in depth behind :func:`check_id`)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise UnsafeIdError(f"{path!r} resolves outside the datastore {real_root!r}")
    return real
