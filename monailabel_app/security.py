"""Authentication and the request guard of the GazeLabel server, as one pure ASGI middleware.

MONAI Label 0.8.5 ships with auth off, CORS ``*`` with credentials, an unauthenticated ``POST /reload``, a
tar-slip in ``PUT /session/?uncompress=true``, ids joined into paths unchecked, lenient flag parsing and a
Keycloak-only JWT check that rejects every token under PyJWT 2. This middleware sits in front of every route
and, before any route runs:

- authenticates every request when a token or a user/password is configured (``GAZELABEL_AUTH_TOKEN`` /
  ``GAZELABEL_AUTH_TOKEN_FILE`` or ``GAZELABEL_BASIC_AUTH`` / ``GAZELABEL_BASIC_AUTH_FILE``): ``Authorization:
  Bearer <token>`` or ``Basic``, compared in constant time; ``GET /auth/`` and ``POST /auth/token`` (the MONAI
  Label client's and Slicer plugin's login flow) stay open; a client that fails to authenticate
  :data:`FailureLimiter.max_failures` times in a window is answered 429 until the window passes;
- refuses the disabled routes (:data:`DISABLED`): ``POST /reload``, ``PUT``/``DELETE /model/*``, batch
  inference;
- parses every query parameter the matched route declares with the one strict parser
  (:mod:`monailabel_app.parsing`): flags, integers, ids, session ids; refuses repeated parameters and
  rewrites the query string to canonical values, so the route sees exactly what was checked; every path
  segment must be an id (no ``..``, no empty or hidden segments);
- strictly parses JSON bodies (no NaN/Infinity, bounded size and depth) and replays them to the route;
- enforces ``GAZELABEL_MAX_UPLOAD_MB`` (default 512) on the declared length and on the stream itself, so a
  chunked upload without ``Content-Length`` is cut off at the limit too;
- refuses cross-site browser requests (an ``Origin`` header that is not allowed) and, when
  ``GAZELABEL_ALLOWED_HOSTS`` is set, requests for other host names (DNS rebinding).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import inspect
import json
import os
import threading
import time
import typing
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

from .lib.ids import is_safe_id
from .parsing import RequestError, TooLarge, parse_bool, parse_id, parse_int, parse_json, parse_session_id

OPEN_PATHS = {("GET", "/auth/"), ("GET", "/auth"), ("POST", "/auth/token")}
# (method or "*", path prefix) -> why it is refused (403).
DISABLED = {
    ("POST", "/reload"): "POST /reload is disabled on GazeLabel servers (it re-imports app code)",
    ("PUT", "/model/"): "model weights are published by training only; PUT/DELETE /model is disabled",
    ("DELETE", "/model/"): "model weights are published by training only; PUT/DELETE /model is disabled",
    ("POST", "/batch/"): "batch inference is disabled (it saves model outputs as labels); use POST /scoring/uncertainty",
    ("DELETE", "/batch/"): "batch inference is disabled",
}
# Query parameters checked by name on every route; the matched route's annotations refine them.
NAMED_KINDS = {"image": "id", "id": "id", "label": "id", "tag": "id", "session_id": "session",
               **{flag: "bool" for flag in ("uncompress", "run_sync", "enqueue", "all", "check_if_running",
                                            "update_ts", "html", "text")}}
ID_PATH_PARAMS = ("model", "strategy", "method", "session_id")
MAX_JSON_BODY = 1024 * 1024


# ---------------------------------------------------------------------------------------------- auth
def _secret(environ, name: str) -> str | None:
    """``$NAME`` or the first line of the file ``$NAME_FILE`` (a secret kept out of argv and ``ps``)."""
    value = environ.get(name) or None
    path = environ.get(f"{name}_FILE") or None
    if value and path:
        raise ValueError(f"set {name} or {name}_FILE, not both")
    if path:
        try:
            value = Path(path).read_text().strip() or None
        except OSError as e:
            raise ValueError(f"{name}_FILE={path}: cannot read it ({e.strerror})") from None
        if value is None:
            raise ValueError(f"{name}_FILE={path}: the file is empty")
    return value


@dataclass(frozen=True)
class AuthConfig:
    """Who may talk to the server: a shared bearer token, one user/password, or nobody checked (loopback)."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_env(cls, environ=os.environ) -> "AuthConfig":
        token = _secret(environ, "GAZELABEL_AUTH_TOKEN")
        basic = _secret(environ, "GAZELABEL_BASIC_AUTH")
        if token and basic:
            raise ValueError("set GAZELABEL_AUTH_TOKEN or GAZELABEL_BASIC_AUTH, not both")
        if basic:
            user, sep, password = basic.partition(":")
            if not sep or not user or not password:
                raise ValueError("GAZELABEL_BASIC_AUTH must be USER:PASSWORD with both parts non-empty")
            return cls(username=user, password=password)
        return cls(token=token)

    @property
    def mode(self) -> str | None:
        return "token" if self.token else "basic" if self.username else None

    @property
    def bearer(self) -> str | None:
        """The bearer token a client sends: the configured token, or one derived from user and password."""
        if self.token:
            return self.token
        if self.username:
            return hmac.new(self.password.encode(), f"gazelabel:{self.username}".encode(), hashlib.sha256).hexdigest()
        return None

    def exchange(self, username: str, password: str) -> str | None:
        """``POST /auth/token``: the bearer token for valid credentials (token mode: the token as password)."""
        if self.token:
            return self.token if hmac.compare_digest(password.encode(), self.token.encode()) else None
        if self.username:
            ok = hmac.compare_digest(username.encode(), self.username.encode()) & hmac.compare_digest(
                password.encode(), self.password.encode()
            )
            return self.bearer if ok else None
        return None

    def accepts(self, authorization: str) -> bool:
        if self.mode is None:
            return True
        scheme, _, value = authorization.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer":
            return hmac.compare_digest(value.encode(), self.bearer.encode())
        if scheme == "basic" and self.username:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return self.exchange(user, password) is not None
        return False


class FailureLimiter:
    """At most ``max_failures`` failed logins per client address in ``window_s`` seconds; then 429 until the
    oldest failure leaves the window. Successful requests do not reset the count (no oracle for guessing)."""

    def __init__(self, max_failures: int = 10, window_s: float = 60.0):
        self.max_failures, self.window_s = max_failures, window_s
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque:
        failures = self._failures.setdefault(client, deque())
        while failures and now - failures[0] > self.window_s:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: it may now)."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.max_failures:
                return 0
            return max(1, int(self.window_s - (now - failures[0])) + 1)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
                for key in [k for k, v in self._failures.items() if not v][:5_000]:
                    del self._failures[key]


def client_address(scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


# ---------------------------------------------------------------------------------------------- route rules
@dataclass(frozen=True)
class RouteRules:
    """How one route's inputs are parsed: query parameter kinds (``bool``, ``int``, ``id``, ``session``,
    ``text``), path parameter kinds, and whether it takes a JSON body."""

    query: dict[str, str] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)
    json_body: bool = False


def _kind(name: str, annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    base = args[0]
    if base is bool:
        return "bool"
    if base is int:
        return "int"
    if inspect.isclass(base) and issubclass(base, enum.Enum):
        return "enum"
    return NAMED_KINDS.get(name, "text")


def rules_of(endpoint: Callable, path: str) -> RouteRules:
    """Read a FastAPI endpoint's signature: which of its parameters come from the query, the path or a body."""
    from fastapi import params as fastapi_params

    try:
        hints = typing.get_type_hints(endpoint)
    except Exception:  # unresolvable annotations: fall back to the names
        hints = {}
    query, path_params, json_body = {}, {}, False
    for name, param in inspect.signature(endpoint).parameters.items():
        default, annotation = param.default, hints.get(name, param.annotation)
        if isinstance(default, (fastapi_params.Depends, fastapi_params.Form, fastapi_params.File)):
            continue
        if inspect.isclass(annotation) and annotation.__module__.startswith(("starlette", "fastapi")):
            continue  # Request, BackgroundTasks ...
        if isinstance(default, fastapi_params.Body) or typing.get_origin(annotation) is dict or annotation is dict or \
                dict in typing.get_args(annotation) or any(typing.get_origin(a) is dict for a in typing.get_args(annotation)):
            json_body = True
        elif "{" + name + "}" in path or "{" + name + ":" in path:
            path_params[name] = "session" if name == "session_id" else "id" if name in ID_PATH_PARAMS else "text"
        else:
            query[name] = _kind(name, annotation)
    return RouteRules(query, path_params, json_body)


def fastapi_rules(router) -> Callable[[dict], tuple[RouteRules, dict] | None]:
    """``scope -> (rules, path params)`` for the route of ``router`` (an APIRouter included without prefix)
    that fully matches the request."""
    from fastapi.routing import APIRoute
    from starlette.routing import Match

    cache: dict[int, RouteRules] = {}

    def find(scope):
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            match, child = route.matches(scope)
            if match == Match.FULL:
                if id(route) not in cache:
                    cache[id(route)] = rules_of(route.endpoint, route.path)
                return cache[id(route)], child.get("path_params", {})
        return None

    return find


def check_query(query: list[tuple[str, str]], rules: RouteRules | None) -> list[tuple[str, str]]:
    """Parse every declared (or id-like) query parameter strictly; returns the canonical query.

    Raises:
        RequestError: a repeated parameter, an unknown flag spelling, a malformed integer or an unsafe id.
    """
    declared = rules.query if rules else {}
    seen, out = set(), []
    for key, value in query:
        kind = declared.get(key) or NAMED_KINDS.get(key)
        if kind is None:
            out.append((key, value))
            continue
        if key in seen:
            raise RequestError(f"{key}: given more than once; send each parameter once")
        seen.add(key)
        if kind == "bool":
            value = "true" if parse_bool(value, key) else "false"
        elif kind == "int":
            value = str(parse_int(value, key))
        elif kind == "id" and value:
            parse_id(value, key)
        elif kind == "session" and value:
            parse_session_id(value, key)
        out.append((key, value))
    return out


def check_path(path: str, params: dict[str, Any], rules: RouteRules | None) -> None:
    """Every path segment is an id-like word, so no segment can climb out of a folder it is joined to."""
    for segment in path.split("/")[1:]:
        if segment and not is_safe_id(segment):
            raise RequestError(f"path segment {segment!r} is not allowed: use letters, digits, '.', '_' or '-' "
                               "without '..'"[:300])
    for name, kind in (rules.path if rules else {}).items():
        if kind == "session":
            parse_session_id(params.get(name), name)
        elif kind == "id":
            parse_id(params.get(name), name)


# ---------------------------------------------------------------------------------------------- middleware
class GuardMiddleware:
    """ASGI middleware that refuses unauthenticated, unsafe or disabled requests before any route runs."""

    def __init__(self, app, auth: AuthConfig | None = None, allowed_origins=(), allowed_hosts=(), max_upload_mb: float = 512,
                 route_rules: Callable[[dict], tuple[RouteRules, dict] | None] | None = None,
                 limiter: FailureLimiter | None = None):
        self.app = app
        self.auth = auth or AuthConfig()
        self.allowed_origins = {o.rstrip("/") for o in allowed_origins}
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.max_upload = int(max_upload_mb * 1024 * 1024)
        self.route_rules = route_rules
        self.limiter = limiter or FailureLimiter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal, rules = self.refusal(scope)
        if refusal is not None:
            return await self.respond(send, *refusal)
        receive = self.limited(receive)
        if rules is not None and rules.json_body and scope["method"].upper() in ("POST", "PUT", "PATCH"):
            try:
                receive = await self.checked_json_body(scope, receive)
            except RequestError as e:
                return await self.respond(send, e.status, str(e), [])
        await self.app(scope, receive, send)

    def too_large(self) -> str:
        return f"request body exceeds the {self.max_upload}-byte limit (GAZELABEL_MAX_UPLOAD_MB)"

    @staticmethod
    async def respond(send, status: int, detail: str, extra: list) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def limited(self, receive):
        """``receive`` that raises HTTP 413 once more than ``max_upload`` bytes have arrived (FastAPI passes an
        HTTPException raised while it reads a body on as it is: the client gets the 413, not a 400)."""
        received = 0

        async def wrapped():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_upload:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(status_code=413, detail=self.too_large())
            return message

        return wrapped

    async def checked_json_body(self, scope, receive):
        """Read a (small) JSON body, parse it strictly, and return a ``receive`` that replays it."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_JSON_BODY:
                raise TooLarge(f"JSON body: larger than the {MAX_JSON_BODY}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            if "json" not in headers.get("content-type", "").lower():
                raise RequestError("body: send JSON with 'Content-Type: application/json'")
            parse_json(body, "body", max_bytes=MAX_JSON_BODY)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    def refusal(self, scope) -> tuple[tuple[int, str, list] | None, RouteRules | None]:
        """``((status, message, extra headers) or None, the matched route's rules)``; rewrites the query
        string in ``scope`` to the canonical values it checked."""
        method, path = scope["method"].upper(), scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}

        host = urlsplit(f"//{headers.get('host', '')}").hostname or ""
        if self.allowed_hosts and host.lower() not in self.allowed_hosts:
            return (403, f"host {host!r} is not served here", []), None
        origin = headers.get("origin")
        if origin and origin.rstrip("/") not in self.allowed_origins:
            return (403, f"cross-site requests from {origin!r} are refused", []), None
        client = client_address(scope)
        if self.auth.mode is not None and (method, path) not in OPEN_PATHS:
            wait = self.limiter.retry_after(client)
            if wait:
                return (429, f"too many failed logins from {client}; try again in {wait} s",
                        [(b"retry-after", str(wait).encode())]), None
            if not self.auth.accepts(headers.get("authorization", "")):
                if headers.get("authorization"):
                    self.limiter.failed(client)
                challenge = b'Bearer realm="GazeLabel"' if self.auth.mode == "token" else b'Basic realm="GazeLabel"'
                return (401, "authentication required: send 'Authorization: Bearer <token>' (see POST /auth/token)",
                        [(b"www-authenticate", challenge)]), None
        for (m, prefix), why in DISABLED.items():
            if method == m and (path.rstrip("/") == prefix.rstrip("/") or (prefix.endswith("/") and path.startswith(prefix))):
                return (403, why, []), None
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_upload:
            return (413, f"request body of {int(length)} bytes exceeds the {self.max_upload}-byte limit", []), None

        found = self.route_rules(scope) if self.route_rules else None
        rules, path_params = found if found else (None, {})
        try:
            check_path(path, path_params, rules)
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            canonical = check_query(query, rules)
        except RequestError as e:
            return (e.status, str(e), []), rules
        if path.startswith("/session") and method == "PUT" and ("uncompress", "true") in canonical:
            return (400, "uncompress=true is disabled (archive extraction can write outside the session folder); "
                         "upload the image file itself", []), rules
        scope["query_string"] = urlencode(canonical).encode("latin-1")
        return None, rules
