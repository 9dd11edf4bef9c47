"""Each hole of MONAI Label 0.8.5 (notes §7), sent to a live GazeLabel server: it must refuse, and nothing
may appear outside the store.

Holes: path traversal through the image id and the label tag (PUT/GET/DELETE /datastore/*), the
unauthenticated POST /reload, tar-slip in PUT /session/?uncompress=true, weight replacement through
PUT/DELETE /model, cross-site and DNS-rebinding requests, and (instead of the broken JWT check) the
basic-auth mode. Uses ``image_ids[6:8]`` of the shared server for labels.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.integration

UNSAFE_IDS = ["../outside/evil", "..", "a/../../outside/b", "/etc/passwd", "..\\outside\\evil", "x\x00y", ".hidden"]


def tree(root: Path, skip: tuple[str, ...]) -> set[str]:
    """Every path under ``root`` except the subtrees named in ``skip`` (the store, models and logs)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts and rel.parts[0] in skip:
            continue
        out.update(str(rel / n) for n in dirnames + filenames)
    return out


@pytest.fixture
def untouched_outside(gazelabel_server):
    """Asserts after the test that nothing new exists next to the store (its parent folder), and gives a
    secret file there that attacks try to read or delete."""
    base = gazelabel_server.store.parent
    secret = base / "outside" / "secret.png"
    secret.parent.mkdir(exist_ok=True)
    secret.write_bytes(b"not for clients")
    before = tree(base, skip=("store", "models", "work"))
    yield secret
    assert tree(base, skip=("store", "models", "work")) == before, "a request wrote outside the store"
    assert secret.read_bytes() == b"not for clients"
    assert not list(base.parent.glob("**/tarslip*")) and not Path("/tmp/tarslip_gazelabel").exists()


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("bad_id", UNSAFE_IDS)
def test_image_id_traversal_is_refused_on_put_get_delete(gazelabel_server, untouched_outside, bad_id):
    put = gazelabel_server.put("/datastore/image", params={"image": bad_id}, files={"file": ("evil.png", png_bytes())})
    assert put.status_code == 400, put.text
    assert "not allowed" in put.json()["detail"]
    for method, path, params in [
        ("get", "/datastore/image", {"image": bad_id}),
        ("get", "/datastore/image/info", {"image": bad_id}),
        ("delete", "/datastore/image", {"id": bad_id}),
        ("post", "/infer/gaze_classifier", {"image": bad_id}),
    ]:
        response = getattr(gazelabel_server, method)(path, params=params)
        assert response.status_code == 400, (method, path, response.text)
    probe = gazelabel_server.get("/datastore/image", params={"image": "../outside/secret"})
    assert probe.status_code == 400 and b"not for clients" not in probe.content


def test_upload_file_name_cannot_choose_a_path(gazelabel_server, untouched_outside):
    response = gazelabel_server.put("/datastore/image", files={"file": ("../../outside/sneaky.png", png_bytes())})
    assert response.status_code == 200, response.text
    assert response.json()["image"] == "sneaky"
    assert (gazelabel_server.store / "sneaky.png").exists()
    assert gazelabel_server.delete("/datastore/image", params={"id": "sneaky"}).status_code == 200
    assert not (gazelabel_server.store / "sneaky.png").exists()


@pytest.mark.parametrize("bad_tag", ["../../outside/tagdir", "..", "final/../../../outside", "/tmp/x"])
def test_label_tag_traversal_is_refused(gazelabel_server, untouched_outside, bad_tag):
    image_id = gazelabel_server.image_ids[6]
    label = json.dumps({"id": image_id, "image": {"width": 512, "height": 512}, "findings": {"Cardiomegaly": 1}})
    put = gazelabel_server.put("/datastore/label", params={"image": image_id, "tag": bad_tag},
                               files={"label": ("x.json", label)})
    assert put.status_code == 400, put.text
    for method, path, params in [
        ("get", "/datastore/label", {"label": image_id, "tag": bad_tag}),
        ("get", "/datastore/label/info", {"label": image_id, "tag": bad_tag}),
        ("delete", "/datastore/label", {"id": image_id, "tag": bad_tag}),
        ("delete", "/datastore/label", {"id": "../outside/secret", "tag": "final"}),
    ]:
        response = getattr(gazelabel_server, method)(path, params=params)
        assert response.status_code == 400, (method, params, response.text)
    assert "tagdir" not in json.dumps(gazelabel_server.get("/datastore/?output=all").json())


def test_safe_label_tags_still_work(gazelabel_server, untouched_outside):
    image_id = gazelabel_server.image_ids[7]
    label = json.dumps({"id": image_id, "image": {"width": 512, "height": 512}, "findings": {"Pneumothorax": 1}})
    put = gazelabel_server.put("/datastore/label", params={"image": image_id, "tag": "reviewer_2"},
                               files={"label": ("x.json", label)})
    assert put.status_code == 200, put.text
    assert (gazelabel_server.store / "labels" / "reviewer_2" / f"{image_id}.json").exists()
    assert gazelabel_server.delete("/datastore/label", params={"id": image_id, "tag": "reviewer_2"}).status_code == 200
    assert not (gazelabel_server.store / "labels" / "reviewer_2" / f"{image_id}.json").exists()


def test_reload_is_refused(gazelabel_server):
    response = gazelabel_server.post("/reload")
    assert response.status_code == 403 and "disabled" in response.json()["detail"]
    assert gazelabel_server.get("/info/").status_code == 200


def test_session_tar_slip_is_refused(gazelabel_server, untouched_outside):
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        for name in ("../../../../tarslip_marker.txt", "/tmp/tarslip_gazelabel"):
            data = b"escaped"
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    files = {"files": ("evil.tar", payload.getvalue())}
    refused = gazelabel_server.put("/session/", params={"uncompress": "true"}, files=files)
    assert refused.status_code == 400 and "uncompress" in refused.json()["detail"]
    # A session holds one radiograph: without extraction the archive is refused as not an image.
    kept = gazelabel_server.put("/session/", params={"uncompress": "false"}, files=files)
    assert kept.status_code == 422 and "not accepted" in kept.json()["detail"], kept.text
    assert not list(gazelabel_server.work_dir.parent.glob("**/tarslip_marker.txt"))


def test_model_weights_cannot_be_replaced_or_deleted(gazelabel_server):
    weights = gazelabel_server.models_dir / "classifier.pt"
    before = weights.read_bytes()
    put = gazelabel_server.put("/model/gaze_classifier", files={"file": ("evil.pt", b"not a model")})
    delete = gazelabel_server.delete("/model/gaze_classifier")
    assert put.status_code == 403 and delete.status_code == 403
    assert weights.read_bytes() == before


def test_cross_site_and_rebinding_requests_are_refused(gazelabel_server):
    evil = gazelabel_server.post("/activelearning/first", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    preflight = gazelabel_server._call("OPTIONS", "/datastore/image", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    same_origin = gazelabel_server.get("/info/", headers={"Origin": gazelabel_server.url})
    assert same_origin.status_code == 200
    rebound = gazelabel_server.get("/info/", headers={"Host": f"attacker.example:{urlsplit(gazelabel_server.url).port}"})
    assert rebound.status_code == 403


def test_oversized_upload_is_refused_before_reading_it(gazelabel_server):
    parts = urlsplit(gazelabel_server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest("PUT", "/datastore/image?image=huge")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(50 * 1024**3))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    conn.close()


def test_basic_auth_protects_every_route(start_server):
    server = start_server(basic_auth="annotator:s3cret-pass")
    image_id = server.image_ids[0]
    anonymous = [
        requests.get(f"{server.url}/info/"),
        requests.get(f"{server.url}/datastore/"),
        requests.post(f"{server.url}/infer/gaze_classifier?image={image_id}"),
        requests.put(f"{server.url}/datastore/label?image={image_id}", files={"label": ("x.json", "{}")}),
        requests.post(f"{server.url}/train/gaze_classifier"),
        requests.get(f"{server.url}/info/", auth=("annotator", "wrong")),
        requests.get(f"{server.url}/info/", headers={"Authorization": "Bearer guessed"}),
    ]
    assert [r.status_code for r in anonymous] == [401] * len(anonymous)
    assert anonymous[0].headers["www-authenticate"].startswith("Basic")
    assert not (server.store / "labels" / "final" / f"{image_id}.json").exists()

    assert requests.get(f"{server.url}/auth/").json()["enabled"] is True
    assert requests.get(f"{server.url}/info/", auth=("annotator", "s3cret-pass")).status_code == 200
    denied = requests.post(f"{server.url}/auth/token", data={"username": "annotator", "password": "nope"})
    assert denied.status_code == 401
    token = requests.post(f"{server.url}/auth/token", data={"username": "annotator", "password": "s3cret-pass"}).json()
    assert token["token_type"] == "Bearer" and "s3cret" not in token["access_token"]

    from monailabel.client import MONAILabelClient

    client = MONAILabelClient(server.url)
    client.update_auth(token)  # the MONAI Label client / Slicer plugin login flow
    assert client.auth_valid_token()
    assert set(client.info()["models"]) >= {"gaze_classifier", "pipeline"}
    result = requests.post(f"{server.url}/infer/gaze_classifier?image={image_id}",
                           headers={"Authorization": f"Bearer {token['access_token']}"})
    assert result.status_code == 200 and result.json()["case"]["id"] == image_id
