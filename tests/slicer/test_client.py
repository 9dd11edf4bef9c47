"""The HTTP client's own checks: arguments, errors when no server answers, and reading MONAI Label's
multipart replies (as ``requests_toolbelt.MultipartEncoder`` writes them on the server). The client against
a real server is in ``test_annotation_loop.py``."""

from __future__ import annotations

import json
import socket

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"server_url": "localhost:8000"}, "must start with http:// or https://"),
        ({"server_url": "http://x", "token": "t", "username": "u", "password": "p"}, "not both"),
        ({"server_url": "http://x", "username": "u"}, "needs both a user name and a password"),
    ],
)
def test_bad_connection_settings(kwargs, message):
    from GazeLabelLib.client import GazeLabelClient

    with pytest.raises(ValueError, match=message):
        GazeLabelClient(**kwargs)


def test_auth_headers():
    from GazeLabelLib.client import GazeLabelClient

    assert GazeLabelClient("http://h", token="abc")._auth_header == "Bearer abc"
    assert GazeLabelClient("http://h", username="ann", password="s:cret")._auth_header == "Basic YW5uOnM6Y3JldA=="
    assert GazeLabelClient("http://h/")._auth_header is None


def test_unreachable_server_is_a_clear_error():
    from GazeLabelLib.client import ServerError
    from GazeLabelLib.session import AnnotationSession

    session = AnnotationSession(scene=None)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerError, match=r"GET http://127\.0\.0\.1:\d+/info/: cannot reach the server") as e:
        session.connect(url, timeout=5)
    assert e.value.status == 0 and session.client is None
    with pytest.raises(ServerError, match="not connected"):
        session.next_sample()


def test_reads_monai_label_multipart_replies():
    from requests_toolbelt import MultipartEncoder

    from GazeLabelLib.client import _decode_multipart

    heat = bytes(range(256)) * 4
    encoder = MultipartEncoder(fields={
        "params": (None, json.dumps({"case": {"id": "cxr_1"}}), "application/json"),
        "image": ("tmpab12.nii.gz", heat, "application/gzip"),
    })
    parts = _decode_multipart(encoder.to_string(), encoder.content_type)
    assert json.loads(parts["params"].data) == {"case": {"id": "cxr_1"}}
    assert parts["image"].data == heat and parts["image"].filename == "tmpab12.nii.gz"


def test_render_script_reports_an_unreachable_server(tmp_path, capsys, load_script):
    module = load_script("slicer_extension/render_annotator_view.py")
    out = tmp_path / "view.png"
    assert module.main(["--server", f"http://127.0.0.1:{free_port()}", "--out", str(out)]) == 2
    assert "cannot reach the server" in capsys.readouterr().err and not out.exists()
