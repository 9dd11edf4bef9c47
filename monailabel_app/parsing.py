"""The one parser for what a request carries: flags, integers, ids and JSON, strict and with named errors.

MONAI Label and FastAPI each accept their own spellings (``on``, ``t``, ``y`` and ``yes`` are all true to
FastAPI's bool), so a guard that lists refused spellings can be walked around. Every value the server acts
on is parsed here instead, and anything outside the documented spellings is refused with a
:class:`RequestError` (HTTP 400) that names the field and says what is accepted:

- flags: ``true``/``false`` or ``1``/``0`` (case-insensitive);
- integers: optional sign and at most 18 digits;
- ids (image, label, tag, model, strategy ...): :func:`monailabel_app.lib.ids.check_id`;
- session ids: the canonical lower-case UUID that ``PUT /session/`` returns;
- JSON form fields and bodies: :func:`models.strict_json.loads` (no NaN/Infinity, bounded size and depth).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from models.strict_json import MAX_INFO_BYTES, JSONValueError, loads

from .lib.ids import UnsafeIdError, check_id

TRUE, FALSE = ("true", "1"), ("false", "0")
_INT = re.compile(r"[+-]?\d{1,18}")


class RequestError(ValueError):
    """A request parameter that is malformed or not accepted; HTTP 400 with this message."""

    status = 400


class TooLarge(RequestError):
    """A body or field over its size limit; HTTP 413."""

    status = 413


def parse_bool(value: Any, field: str) -> bool:
    """``true``/``false``/``1``/``0`` (any case) or a JSON boolean; RequestError otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).lower() if isinstance(value, (str, int)) else None
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise RequestError(f"{field}: expected true or false (or 1 / 0), got {value!r}"[:300])


def parse_int(value: Any, field: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number (JSON integer or decimal digits) within ``[low, high]``; RequestError otherwise."""
    if isinstance(value, bool):
        raise RequestError(f"{field}: expected an integer, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise RequestError(f"{field}: expected an integer, got {value!r}"[:300])
    if (low is not None and number < low) or (high is not None and number > high):
        raise RequestError(f"{field}: must be between {low} and {high}, got {number}")
    return number


def parse_float(value: Any, field: str, low: float, high: float) -> float:
    """A finite number within ``[low, high]``; RequestError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RequestError(f"{field}: expected a number, got {value!r}"[:300])
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise RequestError(f"{field}: expected a number, got {value!r}"[:300]) from None
    if not low <= number <= high:  # also refuses NaN
        raise RequestError(f"{field}: must be between {low} and {high}, got {value!r}"[:300])
    return number


def parse_choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise RequestError(f"{field}: must be one of {', '.join(choices)}, got {value!r}"[:300])
    return value


def parse_id(value: Any, field: str) -> str:
    """An image id, label id, tag or task name (letters, digits, ``.``, ``_``, ``-``; never a path)."""
    try:
        return check_id(value if isinstance(value, str) else None, field)
    except UnsafeIdError as e:
        raise RequestError(str(e) if isinstance(value, str) else f"{field}: expected an id string, got {value!r}") from None


def parse_session_id(value: Any, field: str = "session_id") -> str:
    """A session id as ``PUT /session/`` returns it: a lower-case UUID, never a path."""
    try:
        if isinstance(value, str) and str(uuid.UUID(value)) == value:
            return value
    except ValueError:
        pass
    raise RequestError(f"{field}: {value!r} is not a session id (the UUID that PUT /session/ returned)"[:300])


def parse_json(text: str | bytes | None, field: str, *, max_bytes: int = MAX_INFO_BYTES) -> dict:
    """A JSON object from a form field or body (empty means ``{}``); RequestError names the field."""
    if text is None or (isinstance(text, (str, bytes)) and not text.strip()):
        return {}
    try:
        return loads(text, field, max_bytes=max_bytes)
    except JSONValueError as e:
        raise RequestError(str(e)) from None


def only_keys(params: dict, allowed: tuple[str, ...] | set[str], field: str = "params") -> dict:
    """Refuse keys outside ``allowed``: an unknown key is a typo or an attempt to reach MONAI Label internals
    (``image``, ``label``, ``session`` ... are paths there)."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise RequestError(f"{field}.{unknown[0]}: not a parameter of this request; accepted: "
                           f"{', '.join(sorted(allowed)) or '(none)'}")
    return params
