"""HTTP client for the GazeLabel MONAI Label server, standard library only.

Slicer's bundled Python has no ``requests`` guarantee and ``monailabel.client`` imports ``cgi`` (gone in
Python 3.13), so this module speaks the few endpoints the annotation loop needs with ``urllib`` and
``email`` (for multipart replies):

=================================  ================================================================
``GET  /info/``                    app name, models, strategies, labels
``POST /activelearning/<name>``    next image to annotate: ``{"id": ..., ...}`` or ``{}`` when done
``GET  /datastore/image?image=``   the image file (PNG or DICOM bytes)
``POST /infer/<model>?image=``     run a task; JSON, or multipart with a ``params`` JSON part and an
                                   ``image`` part (e.g. the heatmap) when ``output=all``
``PUT  /datastore/label?image=``   save the annotator's Case JSON under ``labels/<tag>/<id>.json``
``POST /train/<model>``            start training
``GET  /train/``                   training status
=================================  ================================================================

Authentication: a bearer token (``Authorization: Bearer <token>``) or HTTP basic auth
(``Authorization: Basic base64(user:password)``); the header goes with every request, image downloads
included. Every failure is a :class:`ServerError` whose message names the request and the reason.
"""

from __future__ import annotations

import base64
import email.message
import email.parser
import email.policy
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass


class ServerError(RuntimeError):
    """A request failed; ``status`` is the HTTP status (0 when the server could not be reached)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


@dataclass
class Download:
    """A file from the server: its bytes and the file name the server gave (for the format)."""

    data: bytes
    filename: str


@dataclass
class InferResult:
    """An inference reply: the JSON result and, when the task wrote one, its image file (e.g. heatmap)."""

    result: dict
    image: Download | None = None


def _encode_multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """Body and content type of a ``multipart/form-data`` request."""
    boundary = uuid.uuid4().hex
    lines: list[bytes] = []
    for name, value in fields.items():
        lines += [
            f"--{boundary}".encode(),
            f'Content-Disposition: form-data; name="{name}"'.encode(),
            b"",
            value.encode("utf-8"),
        ]
    for name, (filename, data, content_type) in files.items():
        lines += [
            f"--{boundary}".encode(),
            f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'.encode(),
            f"Content-Type: {content_type}".encode(),
            b"",
            data,
        ]
    lines += [f"--{boundary}--".encode(), b""]
    return b"\r\n".join(lines), f"multipart/form-data; boundary={boundary}"


def _decode_multipart(body: bytes, content_type: str) -> dict[str, Download]:
    """Parts of a multipart reply by field name (each with its bytes and file name, '' for plain fields)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            parts[name] = Download(part.get_payload(decode=True) or b"", part.get_filename() or "")
    return parts


def _filename_from_disposition(header: str | None) -> str:
    if not header:
        return ""
    message = email.message.EmailMessage()
    message["content-disposition"] = header
    return message.get_filename() or ""


class GazeLabelClient:
    """Talks to one GazeLabel server.

    Args:
        server_url: e.g. ``http://127.0.0.1:8000``.
        token: bearer token; or ``username`` + ``password`` for basic auth (not both).
        timeout: seconds per request (inference on CPU can take a while).
    """

    def __init__(
        self,
        server_url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 120.0,
    ):
        url = (server_url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"server address must start with http:// or https://, got {server_url!r}")
        if token and (username or password):
            raise ValueError("give either a bearer token or a user name and password, not both")
        if bool(username) != bool(password):
            raise ValueError("basic auth needs both a user name and a password")
        self.server_url = url
        self.timeout = timeout
        self._auth_header = None
        if token:
            self._auth_header = f"Bearer {token}"
        elif username:
            pair = f"{username}:{password}".encode("utf-8")
            self._auth_header = "Basic " + base64.b64encode(pair).decode("ascii")

    # ------------------------------------------------------------------ transport
    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        url = self.server_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Accept", "application/json, multipart/form-data, */*")
        if content_type:
            request.add_header("Content-Type", content_type)
        if self._auth_header:
            request.add_header("Authorization", self._auth_header)
        try:
            # The scheme is http(s), checked in __init__.
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # nosec B310
                return response.read(), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace").strip()
            try:
                detail = json.loads(detail).get("detail", detail)
            except (ValueError, AttributeError):
                pass
            hint = " (check the token or user name and password)" if e.code in (401, 403) else ""
            raise ServerError(f"{method} {url}: HTTP {e.code}{hint}: {str(detail)[:500]}", e.code) from None
        except urllib.error.URLError as e:
            raise ServerError(f"{method} {url}: cannot reach the server ({e.reason})") from None
        except TimeoutError:
            raise ServerError(f"{method} {url}: no answer within {self.timeout:.0f} s") from None

    def _json(self, method: str, path: str, *, query: dict | None = None, payload: dict | None = None) -> dict:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        data, _ = self._request(method, path, query=query, body=body, content_type="application/json" if body else None)
        return self._parse_json(data, f"{method} {path}")

    @staticmethod
    def _parse_json(data: bytes, what: str):
        try:
            return json.loads(data.decode("utf-8")) if data else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ServerError(f"{what}: the reply is not JSON ({e})") from None

    # ------------------------------------------------------------------ endpoints
    def info(self) -> dict:
        """``GET /info/``: app name, ``models``, ``strategies``, ``trainers`` ..."""
        return self._json("GET", "/info/")

    def next_sample(self, strategy: str = "random", params: dict | None = None) -> dict:
        """``POST /activelearning/<strategy>``: ``{"id": image_id, ...}``, or ``{}`` when nothing is left."""
        return self._json("POST", f"/activelearning/{urllib.parse.quote(strategy)}", payload=params or {})

    def download_image(self, image_id: str) -> Download:
        """``GET /datastore/image?image=<id>``: the image file's bytes and name."""
        data, headers = self._request("GET", "/datastore/image", query={"image": image_id})
        return Download(data, _filename_from_disposition(headers.get("content-disposition")))

    def infer(self, model: str, image_id: str, params: dict | None = None, *, output: str = "all") -> InferResult:
        """``POST /infer/<model>?image=<id>&output=...``; the JSON result plus the task's image file, if any."""
        body, content_type = _encode_multipart({"params": json.dumps(params or {})}, {})
        data, headers = self._request(
            "POST", f"/infer/{urllib.parse.quote(model)}", query={"image": image_id, "output": output},
            body=body, content_type=content_type,
        )
        reply_type = headers.get("content-type", "")
        what = f"POST /infer/{model}"
        if reply_type.startswith("multipart/"):
            parts = _decode_multipart(data, reply_type)
            if "params" not in parts:
                raise ServerError(f"{what}: multipart reply without a 'params' part")
            image = parts.get("image")
            return InferResult(self._parse_json(parts["params"].data, what), image if image and image.data else None)
        return InferResult(self._parse_json(data, what))

    def save_label(self, image_id: str, case: dict, *, tag: str = "final", params: dict | None = None) -> dict:
        """``PUT /datastore/label?image=<id>&tag=<tag>`` with the Case JSON as the label file."""
        label = json.dumps(case, indent=1).encode("utf-8")
        body, content_type = _encode_multipart(
            {"params": json.dumps(params or {})}, {"label": (f"{image_id}.json", label, "application/json")}
        )
        data, _ = self._request(
            "PUT", "/datastore/label", query={"image": image_id, "tag": tag}, body=body, content_type=content_type
        )
        return self._parse_json(data, "PUT /datastore/label")

    def train_start(self, model: str, params: dict | None = None) -> dict:
        """``POST /train/<model>`` with the trainer's request options (e.g. ``{"max_epochs": 1}``)."""
        return self._json("POST", f"/train/{urllib.parse.quote(model)}", payload=params or {})

    def train_status(self, all_runs: bool = False) -> dict | list:
        """``GET /train/``: the latest training task (``status``: RUNNING, DONE, ERROR ...), or all of them."""
        return self._json("GET", "/train/", query={"all": str(all_runs).lower()})

    def train_stop(self) -> dict:
        """``DELETE /train/``: stop the running training task."""
        return self._json("DELETE", "/train/")
