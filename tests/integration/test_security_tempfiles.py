"""Class: temporary files left behind (disk fill) and bodies read past the size cap.

Uploads are spooled into the server's private ``uploads/`` folder and removed in a ``finally``; the server's
``TMPDIR`` is its private ``tmp/``; both are emptied at start. The size cap applies to the declared length
and to the stream itself (chunked bodies without ``Content-Length`` too).
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest
from attack_helpers import files_under, label_json, png_bytes, raw

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def capped_server(module_server):
    """A private server with a 1 MB upload cap (its folders are this module's alone)."""
    return module_server(extra_env={"GAZELABEL_MAX_UPLOAD_MB": "1"})


def leftovers(server) -> set[str]:
    """Files in the server's private upload and temporary folders (should be none between requests)."""
    return {f"uploads/{p}" for p in files_under(server.work_dir / "uploads")} | {f"tmp/{p}" for p in files_under(server.work_dir / "tmp")}


def settle(server, timeout: float = 5.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while leftovers(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    return leftovers(server)


def test_refused_and_accepted_uploads_leave_nothing(capped_server):
    server = capped_server
    image_id = server.image_ids[0]
    attempts = [
        ("put", "/datastore/image", {"files": {"file": ("bad.png", b"not a png" * 1000)}}),
        ("put", "/datastore/image", {"files": {"file": ("bad.exe", png_bytes())}}),
        ("put", "/datastore/image", {"params": {"image": "../x"}, "files": {"file": ("x.png", png_bytes())}}),
        ("put", "/datastore/image", {"files": {"file": ("ok_upload.png", png_bytes())}, "data": {"params": "{NaN"}}),
        ("put", "/datastore/label", {"params": {"image": image_id}, "files": {"label": ("x.json", b"{broken")}}),
        ("put", "/datastore/label", {"params": {"image": image_id}, "files": {"label": ("x.json", label_json(image_id))},
                                     "data": {"params": '{"score": NaN}'}}),
        ("put", "/datastore/label", {"params": {"image": "no_such_image"}, "files": {"label": ("x.json", label_json("x"))}}),
        ("post", f"/infer/gaze_classifier", {"files": {"file": ("x.png", b"garbage" * 500)}}),
        ("post", f"/infer/gaze_classifier", {"files": {"file": ("x.png", png_bytes())}, "data": {"params": '{"image": "/etc/passwd"}'}}),
        ("put", "/session/", {"files": {"files": ("x.tar", b"\0" * 4096)}}),
        ("put", "/datastore/image", {"files": {"file": ("big.png", b"\0" * (2 * 1024 * 1024))}}),
    ]
    for method, path, kwargs in attempts:
        response = getattr(server, method)(path, **kwargs)
        assert 400 <= response.status_code < 500, (path, kwargs.get("params"), response.status_code, response.text)
        assert settle(server) == set(), (path, response.text)
    ok = server.post(f"/infer/gaze_classifier?output=all", files={"file": ("x.png", png_bytes(128, 128))})
    assert ok.status_code == 200, ok.text
    session = server.put("/session/", files={"files": ("s.png", png_bytes())})
    assert session.status_code == 200
    assert server.post(f"/infer/gaze_classifier?session_id={session.json()['session_id']}&output=image").status_code == 200
    assert settle(server) == set()


def test_a_client_that_disconnects_mid_upload_leaves_nothing(capped_server):
    server = capped_server
    parts = urlsplit(server.url)
    for sent in (10_000, 600_000):
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
            head = (f"PUT /datastore/image?image=halfway HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
                    "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 900000\r\n\r\n"
                    '--b\r\nContent-Disposition: form-data; name="file"; filename="halfway.png"\r\n\r\n')
            s.sendall(head.encode() + b"\0" * sent)
        assert settle(server) == set()
    assert not (server.store / "halfway.png").exists()
    assert server.get("/info/").status_code == 200


def _chunked(server, path: str, total: int, content_type: str) -> int:
    parts = urlsplit(server.url)
    method = "POST" if path.startswith("/infer") else "PUT"
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as s:
        s.sendall((f"{method} {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nContent-Type: {content_type}\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b"x" * 65536
        try:
            if content_type.startswith("multipart/"):  # a well-formed file part that just never ends
                head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
                s.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
            for _ in range(total // len(chunk)):
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end: that is the point
        try:
            reply = s.recv(4096).decode("latin-1")
        except ConnectionResetError:
            return -1
    return int(reply.split(" ", 2)[1])


def test_the_cap_applies_to_chunked_bodies(capped_server):
    assert _chunked(capped_server, "/datastore/image?image=chunky", 4 * 1024 * 1024, "multipart/form-data; boundary=b") == 413
    assert _chunked(capped_server, "/infer/gaze_classifier", 4 * 1024 * 1024, "multipart/form-data; boundary=b") == 413
    assert settle(capped_server) == set()
    status, body = raw(capped_server.url, "PUT", "/datastore/image?image=huge",
                       headers={"Content-Length": str(50 * 1024**3), "Content-Type": "multipart/form-data; boundary=b"})
    assert status == 413
    assert capped_server.get("/info/").status_code == 200


def test_a_json_body_is_bounded_too(capped_server):
    big = json.dumps({"epochs": 1, "pad": "x" * (2 * 1024 * 1024)})
    response = capped_server.post("/train/gaze_classifier", data=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert capped_server.get("/train/").status_code == 404  # nothing was started


def test_the_dataset_archive_leaves_no_file(capped_server):
    server = capped_server
    image_id = server.image_ids[1]
    saved = server.put("/datastore/label", params={"image": image_id}, files={"label": ("l.json", label_json(image_id))})
    assert saved.status_code == 200, saved.text
    for _ in range(3):
        archive = server.get("/datastore/dataset")
        assert archive.status_code == 200 and archive.content[:2] == b"PK"
    assert settle(server) == set()


def test_a_restart_empties_the_private_folders(start_server):
    server = start_server()
    work = server.work_dir
    (work / "uploads" / "tmpleft.png").write_bytes(b"left by a killed server")
    (work / "tmp" / "tmpdir_left").mkdir()
    server.process.stop()
    server.process.start(timeout=300)
    assert leftovers(server) == set()
