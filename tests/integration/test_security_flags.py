"""Class: request flags parsed leniently, and archive extraction (tar-slip).

Every boolean flag of every route is parsed by ``monailabel_app.parsing.parse_bool`` in the guard: only
``true``/``false``/``1``/``0`` (any case); the spellings FastAPI and MONAI Label also take (``on``, ``yes``,
``t``, ``y`` ...) are refused with a 400 naming the flag, repeated flags are refused, and the route sees only
the canonical value. ``uncompress=true`` in any accepted spelling is refused, and a session holds exactly
one radiograph, so no archive member is ever extracted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from attack_helpers import detail, evil_tar, files_under, png_bytes, raw

from monailabel_app.parsing import RequestError, parse_bool
from monailabel_app.security import RouteRules, check_query

pytestmark = pytest.mark.integration

LENIENT_TRUE = ["on", "ON", "yes", "Yes", "y", "t", "T", "enabled", "2", "-1", "true1", "tru", "true ", " 1", "1.0", "\x00true"]
STRICT_TRUE = ["true", "TRUE", "True", "1"]


@pytest.mark.parametrize("spelling", STRICT_TRUE + ["false", "FALSE", "0"])
def test_strict_spellings_are_understood(spelling):
    assert parse_bool(spelling, "flag") is (spelling.lower() in ("true", "1"))


@pytest.mark.parametrize("spelling", LENIENT_TRUE + ["off", "no", "n", "f", "", "null", "none"])
def test_other_spellings_are_refused_with_the_flag_named(spelling):
    with pytest.raises(RequestError, match="uncompress: expected true or false"):
        parse_bool(spelling, "uncompress")


def test_the_route_sees_the_canonical_value_and_repeats_are_refused():
    rules = RouteRules(query={"run_sync": "bool", "expiry": "int"})
    assert check_query([("run_sync", "TRUE"), ("expiry", "+05")], rules) == [("run_sync", "true"), ("expiry", "5")]
    with pytest.raises(RequestError, match="more than once"):
        check_query([("run_sync", "false"), ("run_sync", "true")], rules)
    with pytest.raises(RequestError, match="expiry: expected an integer"):
        check_query([("expiry", "1e3")], rules)


def _outside(server) -> set[str]:
    return files_under(server.store.parent)


@pytest.mark.parametrize("spelling", STRICT_TRUE + LENIENT_TRUE)
def test_no_spelling_of_uncompress_extracts_an_archive(gazelabel_server, spelling):
    before = _outside(gazelabel_server)
    status, body = raw(gazelabel_server.url, "PUT", f"/session/?uncompress={spelling.replace(' ', '%20').replace(chr(0), '%00')}",
                       *_multipart("files", "evil.tar", evil_tar()))
    assert status == 400, (spelling, body)
    assert "uncompress" in detail(body)
    assert _outside(gazelabel_server) == before
    assert not Path("/tmp/tarslip_gazelabel_abs").exists()


def test_repeated_uncompress_cannot_smuggle_true(gazelabel_server):
    for query in ("uncompress=false&uncompress=true", "uncompress=true&uncompress=false", "uncompress=0&uncompress=on"):
        status, body = raw(gazelabel_server.url, "PUT", f"/session/?{query}", *_multipart("files", "evil.tar", evil_tar()))
        assert status == 400, (query, body)


def test_an_archive_without_uncompress_is_not_a_radiograph(gazelabel_server):
    before = _outside(gazelabel_server)
    for name in ("evil.tar", "evil.png", "evil.dcm", "evil.tar.gz"):
        response = gazelabel_server.put("/session/", params={"uncompress": "false"}, files={"files": (name, evil_tar())})
        assert response.status_code in (400, 422), (name, response.text)
    assert _outside(gazelabel_server) == before
    sessions = gazelabel_server.work_dir / "sessions"
    assert not any(p.is_symlink() or p.name.startswith("tarslip") for p in sessions.rglob("*")) if sessions.exists() else True


def test_a_session_holds_one_real_image(gazelabel_server):
    created = gazelabel_server.put("/session/", params={"expiry": "60"}, files={"files": ("cxr.png", png_bytes())})
    assert created.status_code == 200, created.text
    session_id = created.json()["session_id"]
    assert gazelabel_server.get(f"/session/{session_id}", params={"image": "true"}).content == png_bytes()
    assert gazelabel_server.get(f"/session/{session_id}", params={"image": "yes"}).status_code == 400
    two = gazelabel_server.put("/session/", files=[("files", ("a.png", png_bytes())), ("files", ("b.png", png_bytes(seed=1)))])
    assert two.status_code == 400 and "exactly one" in two.json()["detail"]
    assert gazelabel_server.delete(f"/session/{session_id}").status_code == 200
    assert gazelabel_server.get(f"/session/{session_id}").status_code == 404


@pytest.mark.parametrize("method, path", [
    ("GET", "/train/?all={v}"),
    ("GET", "/scoring/?check_if_running={v}"),
    ("POST", "/train/gaze_classifier?run_sync={v}"),
    ("POST", "/scoring/uncertainty?run_sync={v}"),
    ("GET", "/logs/?text={v}"),
])
def test_every_flag_of_every_route_is_strict(gazelabel_server, method, path):
    for spelling in ("on", "yes", "t", "y"):
        status, body = raw(gazelabel_server.url, method, path.format(v=spelling), headers={"Content-Type": "application/json"})
        assert status == 400, (method, path, spelling, body)
        assert "expected true or false" in detail(body)
    status, body = raw(gazelabel_server.url, "GET", "/train/?all=false")
    assert status in (200, 404) and "expected true or false" not in detail(body)  # 404: no training yet


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "gazelabelboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
