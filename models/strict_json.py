"""Strict JSON in and out: what a client sends must be plain, finite, bounded JSON before anything stores it.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``1e999`` (which becomes ``inf``) and recurses once per
nesting level. A NaN stored in a label's info poisons every later listing (JSON responses cannot carry it),
and deep nesting ends in a ``RecursionError``. :func:`loads` and :func:`check_value` refuse all of that with
:class:`JSONValueError` naming the field, e.g. ``params.weights[2]: NaN is not allowed``.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32
# Info and params objects are small; labels have their own, larger limit.
MAX_INFO_BYTES = 256 * 1024


class JSONValueError(ValueError):
    """JSON that is malformed, too large, too deep or holds non-finite numbers; the message names the field."""


def check_value(value: Any, where: str, max_depth: int = MAX_DEPTH) -> Any:
    """Return ``value`` if it is plain JSON (dict with str keys, list, str, finite number, bool, None) nested
    at most ``max_depth`` levels; else raise :class:`JSONValueError` naming the offending field."""
    stack = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > max_depth:
            raise JSONValueError(f"{path}: nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise JSONValueError(f"{path}: object keys must be strings, got {type(k).__name__}")
                stack.append((v, f"{path}.{k}", depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise JSONValueError(f"{path}: {item} is not allowed; send a finite number or null")
        elif item is not None and not isinstance(item, (str, int, bool)):
            raise JSONValueError(f"{path}: {type(item).__name__} is not a JSON value")
    return value


def loads(text: str | bytes, where: str, *, max_bytes: int | None = MAX_INFO_BYTES, max_depth: int = MAX_DEPTH,
          expect: type | None = dict) -> Any:
    """Parse ``text`` strictly: valid UTF-8 JSON of at most ``max_bytes``, no NaN/Infinity (also not as
    overflowing literals like ``1e999``), nesting at most ``max_depth``, and of type ``expect`` (default an
    object; None for any). Raises :class:`JSONValueError` naming ``where``."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if max_bytes is not None and size > max_bytes:
        raise JSONValueError(f"{where}: {size} bytes is larger than the {max_bytes}-byte limit")

    def constant(name: str):
        raise JSONValueError(f"{where}: {name} is not allowed in JSON; send a finite number or null")

    try:
        value = json.loads(text, parse_constant=constant)
    except JSONValueError:
        raise
    except RecursionError:
        raise JSONValueError(f"{where}: nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as e:
        raise JSONValueError(f"{where}: not valid JSON ({e})") from None
    except (UnicodeDecodeError, ValueError) as e:  # bad UTF-8; integers beyond Python's digit limit
        raise JSONValueError(f"{where}: not valid JSON ({e})") from None
    check_value(value, where, max_depth)
    if expect is not None and not isinstance(value, expect):
        kind = {dict: "an object", list: "a list"}.get(expect, expect.__name__)
        raise JSONValueError(f"{where}: expected {kind}, got {type(value).__name__}")
    return value


def dumps(value: Any, **kwargs) -> str:
    """``json.dumps`` that refuses NaN/Infinity instead of writing invalid JSON."""
    return json.dumps(value, allow_nan=False, **kwargs)
