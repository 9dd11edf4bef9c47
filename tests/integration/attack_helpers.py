"""Helpers for the tests that attack a live server (``test_security_*.py``): raw HTTP, payloads, file sets."""

from __future__ import annotations

import http.client
import io
import json
import os
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image


def raw(url: str, method: str, target: str, body: bytes = b"", headers: dict | None = None,
        timeout: float = 120) -> tuple[int, bytes]:
    """Send ``method target`` exactly as written (no client-side path normalisation); ``(status, body)``."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def detail(body: bytes) -> str:
    try:
        return str(json.loads(body).get("detail"))
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")


def png_bytes(width: int = 64, height: int = 64, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random((height, width)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def evil_tar() -> bytes:
    """A tar whose members try every way out of the folder it is extracted into."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        for name in ("../../../../tarslip_marker.txt", "/tmp/tarslip_gazelabel_abs", "ok/../../../tarslip_up"):
            member = tarfile.TarInfo(name)
            member.size = 7
            tar.addfile(member, io.BytesIO(b"escaped"))
        link = tarfile.TarInfo("tarslip_link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        hard = tarfile.TarInfo("tarslip_hard")
        hard.type, hard.linkname = tarfile.LNKTYPE, "../../../../etc/passwd"
        tar.addfile(hard)
        dev = tarfile.TarInfo("tarslip_dev")
        dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(dev)
    return payload.getvalue()


def files_under(root: Path) -> set[str]:
    """Every file and folder below ``root`` (relative), for before/after comparisons."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        out.update(str(rel / n) for n in dirnames + filenames)
    return out


def label_json(image_id: str, width: int = 512, height: int = 512, **fields) -> str:
    case = {"schema": "gazelabel.case/1", "id": image_id, "image": {"width": width, "height": height},
            "findings": {"Cardiomegaly": 1}}
    case.update(fields)
    return json.dumps(case)
