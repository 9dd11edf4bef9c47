"""Authentication and the request guard of the GazeLabel server, as one pure ASGI middleware.

MONAI Label 0.8.5 ships with auth off, CORS ``*`` with credentials, an unauthenticated ``POST /reload``, a
tar-slip in ``PUT /session/?uncompress=true``, ids joined into paths unchecked, and a Keycloak-only JWT check
that rejects every token under PyJWT 2 (it calls ``jwt.decode`` without ``algorithms``). This middleware sits
in front of every route and:

- authenticates every request when a token or a user/password is configured (``GAZELABEL_AUTH_TOKEN`` or
  ``GAZELABEL_BASIC_AUTH=user:password``): ``Authorization: Bearer <token>`` or ``Basic``; ``GET /auth/`` and
  ``POST /auth/token`` (the MONAI Label client's and Slicer plugin's login flow) stay open;
- refuses ``POST /reload``, ``PUT /session/?uncompress=true`` and ``PUT``/``DELETE /model/*`` (weights are
  published by training only);
- refuses unsafe ``image``, ``id``, ``label`` and ``tag`` query values before any route runs;
- refuses cross-site browser requests (an ``Origin`` header that is not allowed) and, when
  ``GAZELABEL_ALLOWED_HOSTS`` is set, requests for other host names (DNS rebinding);
- refuses bodies larger than ``GAZELABEL_MAX_UPLOAD_MB`` (default 512) up front.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from .lib.ids import is_safe_id

ID_PARAMS = ("image", "id", "label", "tag")
OPEN_PATHS = {("GET", "/auth/"), ("GET", "/auth"), ("POST", "/auth/token")}


@dataclass(frozen=True)
class AuthConfig:
    """Who may talk to the server: a shared bearer token, one user/password, or nobody checked (loopback)."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_env(cls, environ=os.environ) -> "AuthConfig":
        token = environ.get("GAZELABEL_AUTH_TOKEN") or None
        basic = environ.get("GAZELABEL_BASIC_AUTH") or None
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


class GuardMiddleware:
    """ASGI middleware that refuses unauthenticated, unsafe or disabled requests before any route runs."""

    def __init__(self, app, auth: AuthConfig | None = None, allowed_origins=(), allowed_hosts=(), max_upload_mb: float = 512):
        self.app = app
        self.auth = auth or AuthConfig()
        self.allowed_origins = {o.rstrip("/") for o in allowed_origins}
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.max_upload = int(max_upload_mb * 1024 * 1024)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.refusal(scope)
        if refusal is None:
            return await self.app(scope, receive, send)
        status, detail, extra = refusal
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope) -> tuple[int, str, list] | None:
        """``(status, message, extra headers)`` when the request must be refused, else None."""
        method, path = scope["method"].upper(), scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)

        host = urlsplit(f"//{headers.get('host', '')}").hostname or ""
        if self.allowed_hosts and host.lower() not in self.allowed_hosts:
            return 403, f"host {host!r} is not served here", []
        origin = headers.get("origin")
        if origin and origin.rstrip("/") not in self.allowed_origins:
            return 403, f"cross-site requests from {origin!r} are refused", []
        if (method, path) not in OPEN_PATHS and not self.auth.accepts(headers.get("authorization", "")):
            challenge = b'Bearer realm="GazeLabel"' if self.auth.mode == "token" else b'Basic realm="GazeLabel"'
            return 401, "authentication required: send 'Authorization: Bearer <token>' (see POST /auth/token)", [
                (b"www-authenticate", challenge)
            ]
        if path.rstrip("/") == "/reload":
            return 403, "POST /reload is disabled on GazeLabel servers (it re-imports app code)", []
        if path.startswith("/session") and method == "PUT" and any(k == "uncompress" and v.lower() in ("1", "true", "yes") for k, v in query):
            return 400, "uncompress=true is disabled (archive extraction can write outside the session folder)", []
        if path.startswith("/model/") and method in ("PUT", "DELETE"):
            return 403, "model weights are published by training only; PUT/DELETE /model is disabled", []
        for key, value in query:
            if key in ID_PARAMS and value and not is_safe_id(value):
                return 400, f"{key}={value!r} is not allowed: use letters, digits, '.', '_' or '-' without '..'", []
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_upload:
            return 413, f"request body of {int(length)} bytes exceeds the {self.max_upload}-byte limit", []
        return None
