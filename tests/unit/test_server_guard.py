"""Fast in-process checks of the server's building blocks: id policy, auth modes, request guard, model
publishing and NaN-free stats. The live-server versions are in tests/integration/test_server_*.py."""

from __future__ import annotations

import base64
import math

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from monailabel_app.lib.ids import UnsafeIdError, check_id, check_inside, is_safe_id
from monailabel_app.lib.trainers.family import finite
from monailabel_app.lib.trainers.publish import publish
from monailabel_app.security import AuthConfig, GuardMiddleware


@pytest.mark.parametrize("value", ["phantom_000001", "1.2.840.113619.2.55.3", "cxr-7", "A"])
def test_safe_ids(value):
    assert is_safe_id(value) and check_id(value) == value


@pytest.mark.parametrize("value", ["", None, "..", "../x", "a/b", "a\\b", ".hidden", "-x", "x..y", "x\x00", "é", "a" * 129])
def test_unsafe_ids(value):
    assert not is_safe_id(value)
    with pytest.raises(UnsafeIdError, match="not allowed"):
        check_id(value, "label tag")


def test_check_inside(tmp_path):
    assert check_inside(str(tmp_path), str(tmp_path / "a" / "b.json")).endswith("b.json")
    with pytest.raises(UnsafeIdError, match="outside"):
        check_inside(str(tmp_path / "store"), str(tmp_path / "store" / ".." / "x"))


def guarded(auth: AuthConfig, **kwargs) -> TestClient:
    async def ok(request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/{path:path}", ok, methods=["GET", "POST", "PUT", "DELETE"])])
    return TestClient(GuardMiddleware(app, auth=auth, **kwargs), base_url="http://127.0.0.1:8000")


def test_token_mode():
    client = guarded(AuthConfig.from_env({"GAZELABEL_AUTH_TOKEN": "t0ken"}))
    assert client.get("/info/").status_code == 401
    assert client.get("/info/").headers["www-authenticate"].startswith("Bearer")
    assert client.get("/info/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/info/", headers={"Authorization": "Bearer t0ken"}).status_code == 200
    assert client.get("/auth/").status_code == 200 and client.post("/auth/token").status_code == 200  # login stays open
    auth = AuthConfig(token="t0ken")
    assert auth.exchange("anyone", "t0ken") == "t0ken" and auth.exchange("anyone", "nope") is None


def test_basic_mode_accepts_basic_and_derived_bearer():
    auth = AuthConfig.from_env({"GAZELABEL_BASIC_AUTH": "ann:pw:with:colons"})
    assert (auth.username, auth.password) == ("ann", "pw:with:colons")
    client = guarded(auth)
    basic = "Basic " + base64.b64encode(b"ann:pw:with:colons").decode()
    assert client.get("/x", headers={"Authorization": basic}).status_code == 200
    assert client.get("/x", headers={"Authorization": "Basic " + base64.b64encode(b"ann:bad").decode()}).status_code == 401
    assert client.get("/x", headers={"Authorization": "Basic !!!"}).status_code == 401
    token = auth.exchange("ann", "pw:with:colons")
    assert token and "pw" not in token
    assert client.get("/x", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("env", [{"GAZELABEL_BASIC_AUTH": "nocolon"}, {"GAZELABEL_BASIC_AUTH": ":pw"},
                                 {"GAZELABEL_AUTH_TOKEN": "a", "GAZELABEL_BASIC_AUTH": "u:p"}])
def test_bad_auth_settings(env):
    with pytest.raises(ValueError):
        AuthConfig.from_env(env)


def test_guard_refusals_without_auth():
    client = guarded(AuthConfig(), allowed_origins=["http://127.0.0.1:8000"], allowed_hosts=["127.0.0.1"], max_upload_mb=1)
    assert client.get("/info/").status_code == 200
    assert client.post("/reload").status_code == 403
    assert client.put("/session/?uncompress=true").status_code == 400
    assert client.put("/session/?uncompress=false").status_code == 200
    assert client.put("/model/gaze_classifier").status_code == 403
    assert client.get("/model/gaze_classifier").status_code == 200
    assert client.get("/datastore/image?image=..%2Fx").status_code == 400
    assert client.delete("/datastore/label?id=ok&tag=..").status_code == 400
    assert client.get("/info/", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.get("/info/", headers={"Origin": "http://127.0.0.1:8000"}).status_code == 200
    assert client.get("/info/", headers={"Host": "evil.example"}).status_code == 403
    assert client.put("/datastore/image?image=a", content=b"x" * (2 * 1024 * 1024)).status_code == 413


def test_publish_file_and_folder(tmp_path):
    models = tmp_path / "models"
    (tmp_path / "new.pt").write_text("v1")
    publish(tmp_path / "new.pt", models / "classifier.pt")
    assert (models / "classifier.pt").read_text() == "v1"

    for version in ("v1", "v2", "v3"):
        new = tmp_path / f"report_{version}"
        new.mkdir()
        (new / "report.pt").write_text(version)
        publish(new, models / "report")
        assert (models / "report" / "report.pt").read_text() == version
    assert (models / "report").is_symlink()
    assert len([p for p in models.glob("report.*") if p.is_dir()]) == 2  # current + previous only


def test_publish_replaces_a_real_report_folder(tmp_path):
    models = tmp_path / "models"
    (models / "report").mkdir(parents=True)
    (models / "report" / "report.pt").write_text("from gazelabel train report")
    new = tmp_path / "new"
    new.mkdir()
    (new / "report.pt").write_text("retrained")
    publish(new, models / "report")
    assert (models / "report" / "report.pt").read_text() == "retrained"


def test_finite_replaces_nan_and_inf():
    stats = finite({"auc": float("nan"), "nested": [1.0, float("inf"), {"x": -float("inf")}], "n": 3, "ok": 0.5})
    assert stats == {"auc": 0.0, "nested": [1.0, 0.0, {"x": 0.0}], "n": 3, "ok": 0.5}
    assert all(math.isfinite(v) for v in (stats["auc"], stats["nested"][1]))
