"""Class: a path anywhere in a request (query, path segments, form fields, the infer ``params`` JSON, session
ids, upload file names) is followed, or tells whether a file exists.

Every such value is an id resolved inside the store or the session folder: the guard refuses unsafe ids and
path segments, the infer ``params`` may hold only task parameters, sessions are UUIDs, upload names give an
id from their base name, and the app's ``infer`` refuses any image path outside its own folders. For each
probe, a file outside the store that exists and one that does not get the same answer.
"""

from __future__ import annotations

import json
import re

import pytest
from attack_helpers import detail, files_under, png_bytes, raw

pytestmark = pytest.mark.integration


@pytest.fixture
def outside(gazelabel_server):
    """A secret file beside the store, and a name beside it that does not exist."""
    base = gazelabel_server.store.parent
    secret = base / "outside" / "secret.png"
    secret.parent.mkdir(exist_ok=True)
    secret.write_bytes(png_bytes(seed=3))
    before = files_under(base / "outside")
    yield secret, base / "outside" / "missing.png"
    assert files_under(base / "outside") == before
    assert secret.read_bytes() == png_bytes(seed=3)


def same_answer(a: tuple[int, str], b: tuple[int, str], a_value: str, b_value: str) -> None:
    """The two answers are identical once the probed value itself is blanked out."""
    def norm(ans, value):
        return ans[0], ans[1].replace(value, "<v>").replace(json.dumps(value)[1:-1], "<v>")

    assert norm(a, a_value) == norm(b, b_value), (a, b)
    assert 400 <= a[0] < 500


def _infer(server, query: str = "", params: dict | None = None) -> tuple[int, str]:
    response = server.post(f"/infer/gaze_classifier{query}", data={"params": json.dumps(params or {})})
    return response.status_code, response.text


@pytest.mark.parametrize("key", ["image", "label", "session", "session_id", "model", "label_tag", "result_extension", "device"])
def test_params_json_cannot_name_a_file(gazelabel_server, outside, key):
    secret, missing = outside
    image_id = gazelabel_server.image_ids[13]
    exists = _infer(gazelabel_server, f"?image={image_id}", {key: str(secret)})
    absent = _infer(gazelabel_server, f"?image={image_id}", {key: str(missing)})
    same_answer(exists, absent, str(secret), str(missing))
    assert exists[0] == 400 and f"params.{key}" in exists[1]
    nested = _infer(gazelabel_server, f"?image={image_id}", {"mc_samples": 0, key: {"path": str(secret)}})
    assert nested[0] == 400


@pytest.mark.parametrize("template", ["{abs}", "../outside/{name}", "..%2Foutside%2F{name}", "%2e%2e/outside/{name}",
                                      "{abs_noext}", "outside/{name}"])
def test_query_image_cannot_name_a_file(gazelabel_server, outside, template):
    secret, missing = outside
    answers = []
    for path in (secret, missing):
        value = template.format(abs=path, name=path.name, abs_noext=str(path)[:-4])
        status, body = raw(gazelabel_server.url, "POST", f"/infer/gaze_classifier?image={value}")
        answers.append(((status, detail(body)), value))
    (a, va), (b, vb) = answers
    assert a[0] == b[0] and 400 <= a[0] < 500, answers
    assert re.sub(r"'[^']*'", "<v>", a[1]) == re.sub(r"'[^']*'", "<v>", b[1]), answers


def test_safe_ids_that_name_files_in_the_server_folder_are_not_images(gazelabel_server):
    # server.pid and logs exist in the server's working folder; an id is never looked up there.
    for probe in ("server.pid", "logs", "uploads", "tmp", "nonexistent.pid"):
        status, body = raw(gazelabel_server.url, "POST", f"/infer/gaze_classifier?image={probe}")
        assert status == 404 and "no image with id" in detail(body), (probe, body)


@pytest.mark.parametrize("session_id", ["..", "../..", "/etc", "%2Fetc", "..%2F..%2Fwork", "00000000-0000-0000-0000-000000000000/..",
                                        "00000000-0000-0000-0000-00000000000", "NOT-A-UUID", "ffffffff-ffff-ffff-ffff-FFFFFFFFFFFF"])
def test_session_ids_are_uuids_only(gazelabel_server, session_id):
    work_before = files_under(gazelabel_server.work_dir.parent)
    for method, target in [("GET", f"/session/{session_id}"), ("DELETE", f"/session/{session_id}"),
                           ("GET", f"/session/{session_id}?image=true"),
                           ("POST", f"/infer/gaze_classifier?session_id={session_id}")]:
        status, body = raw(gazelabel_server.url, method, target)
        assert status in (400, 404), (method, target, body)
    # A well-formed id that was never created: 404, the same for every probe.
    status, body = raw(gazelabel_server.url, "DELETE", "/session/00000000-0000-0000-0000-000000000000")
    assert status == 404
    after = files_under(gazelabel_server.work_dir.parent)
    assert work_before <= after, "a session request deleted files"


@pytest.mark.parametrize("target", ["/model/..", "/model/..%2F..%2Fetc", "/activelearning/..", "/train/..%2Fx",
                                    "/scoring/.hidden", "/infer/..%2Fgaze_classifier", "/datastore/../info/",
                                    "/session/./x", "/info/..", "/model/info/..%2F.."])
def test_path_segments_are_ids(gazelabel_server, target):
    for method in ("GET", "POST", "DELETE"):
        status, body = raw(gazelabel_server.url, method, target)
        assert status in (400, 403, 404, 405), (method, target, body)
        assert status != 200


@pytest.mark.parametrize("filename", ["../../outside/escape.png", "/tmp/escape_abs.png", "..\\..\\escape_bs.png",
                                      "sub/dir/escape_sub.png", "./.escape_hidden.png", "escape\x00.png"])
def test_upload_file_names_are_base_names(gazelabel_server, outside, filename):
    response = gazelabel_server.put("/datastore/image", files={"file": (filename, png_bytes(seed=5))})
    if response.status_code == 200:
        image_id = response.json()["image"]
        assert "/" not in image_id and "\\" not in image_id and ".." not in image_id
        assert (gazelabel_server.store / f"{image_id}.png").exists()
        assert gazelabel_server.delete("/datastore/image", params={"id": image_id}).status_code == 200
    else:
        assert response.status_code == 400, response.text
    assert not (gazelabel_server.store.parent / "escape.png").exists()
    assert not any(p.name.startswith(("escape", ".escape")) for p in gazelabel_server.store.parent.parent.glob("*"))


def test_label_and_info_fields_cannot_redirect_a_file(gazelabel_server, outside):
    secret, _ = outside
    image_id = gazelabel_server.image_ids[13]
    for field in ("name", "path", "ext", "ts"):
        info = gazelabel_server.put("/datastore/image/info", params={"image": image_id}, data={"info": json.dumps({field: str(secret)})})
        assert info.status_code == 422 and f"info.{field}" in info.json()["detail"], info.text
    downloaded = gazelabel_server.get("/datastore/image", params={"image": image_id})
    assert downloaded.status_code == 200 and downloaded.content != secret.read_bytes()
