"""Live GazeLabel servers for integration tests (real ``monailabel start_server`` subprocesses).

Fixtures (any test under ``tests/integration/`` can use them):

``gazelabel_server`` (session scope)
    One running server for the whole session: hardened GazeLabel app on a free 127.0.0.1 port, no auth,
    over a private copy of the SYNTHETIC tiny phantom store (24 images, 3 simulated readers) with the tiny
    trained classifier, scanpath and report models (``tiny_models`` from ``tests/conftest.py``). It yields a
    :class:`LiveServer`:

    - ``url`` ("http://127.0.0.1:<port>"), ``headers`` (auth header dict; empty here)
    - ``store`` (Path: ``<id>.png``, ``cases/<id>.json``, ``labels/final/<id>.json`` once labels are saved;
      for DICOMweb studies the local cache ``<work_dir>/dicomweb_cache`` with ``<series uid>.dcm`` and labels),
      ``models_dir`` (Path), ``work_dir`` (Path; ``logs/stdout.log`` has the server log)
    - ``image_ids`` (sorted ids in the store)
    - ``get(path, **kw)``, ``post``, ``put``, ``delete``: ``requests`` calls on ``url + path`` with ``headers``
    - ``client()``: a ``monailabel.client.MONAILabelClient`` for ``url`` (auth header set)
    - ``log_tail()``: the last lines of the server log, for assertion messages

    The server is shared: do not stop it and do not delete its models; save labels only for image ids your
    test owns (``image_ids[k]`` with a k no other test uses; see :data:`IMAGE_OWNERS`). Only
    ``test_server_api`` retrains on it (classifier and scanpath, same tiny sizes), so do not compare model
    stamps across tests; a test that retrains should use ``start_server``.

``module_server`` (module scope) is the same for a server that every test of one module shares.

``start_server`` (function scope)
    ``start_server(studies=None, models_dir=None, **settings)`` starts one more server (stopped after the
    test): ``studies`` defaults to a fresh copy of the tiny store, ``models_dir`` to a fresh copy of the tiny
    models; ``settings`` go to :class:`monailabel_app.launcher.ServerSettings` (``auth_token``,
    ``basic_auth``, ``infer_workers`` ...). Returns a :class:`LiveServer`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from monailabel_app.launcher import ServerProcess, ServerSettings, free_port

# Which test module saves labels for which index of ``image_ids`` on the shared server.
IMAGE_OWNERS = {
    "test_server_api": (0, 1, 2, 3, 4, 5),
    "test_server_security": (6, 7),
    "test_server_bad_input": (8,),
    "test_security_paths": (13,),
    "test_security_json": (14, 15),
    "test_server_concurrency": (),
    "slicer": (20, 21, 22, 23),
}


@dataclass
class LiveServer:
    process: ServerProcess
    store: Path
    models_dir: Path

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def headers(self) -> dict[str, str]:
        return self.process.headers

    @property
    def work_dir(self) -> Path:
        return self.process.settings.work_dir

    @property
    def image_ids(self) -> list[str]:
        return sorted(p.name[: -len(".png")] for p in self.store.glob("*.png"))

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 300)
        kwargs["headers"] = {**self.headers, **kwargs.get("headers", {})}
        return requests.request(method, self.url + path, **kwargs)

    def get(self, path, **kwargs):
        return self._call("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self._call("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self._call("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self._call("DELETE", path, **kwargs)

    def client(self):
        from monailabel.client import MONAILabelClient

        client = MONAILabelClient(self.url)
        if self.headers:
            kind, _, token = self.headers["Authorization"].partition(" ")
            client.update_auth({"token_type": kind, "access_token": token})
        return client

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines)


def _copy_fixtures(tiny_models, base: Path) -> tuple[Path, Path]:
    store, models = tiny_models
    store_copy, models_copy = base / "store", base / "models"
    shutil.copytree(store, store_copy, ignore=shutil.ignore_patterns("labels", "datastore_v2.json", ".lock", "gazelabel_index.sqlite3*", ".gazelabel_store_id"))
    shutil.copytree(models, models_copy, symlinks=True)
    return store_copy, models_copy


def _launch(studies, models_dir: Path, work_dir: Path, **settings) -> LiveServer:
    config = ServerSettings(studies=str(studies), models_dir=models_dir, work_dir=work_dir, port=free_port(), **settings)
    process = ServerProcess(config).start(timeout=300)
    remote = str(studies).startswith(("http://", "https://"))
    return LiveServer(process, work_dir / "dicomweb_cache" if remote else Path(studies), models_dir)


@pytest.fixture(scope="session")
def gazelabel_server(tiny_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("gazelabel_server")
    store, models = _copy_fixtures(tiny_models, base)
    server = _launch(store, models, base / "work")
    yield server
    server.process.stop()


@pytest.fixture(scope="module")
def module_server(tiny_models, tmp_path_factory):
    """Like ``start_server``, for servers a whole test module shares (stopped after the module)."""
    started: list[LiveServer] = []

    def start(studies=None, models_dir=None, **settings) -> LiveServer:
        base = tmp_path_factory.mktemp("module_server")
        store, models = _copy_fixtures(tiny_models, base)
        server = _launch(studies or store, Path(models_dir or models), base / "work", **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.stop()


@pytest.fixture
def start_server(tiny_models, tmp_path):
    started: list[LiveServer] = []

    def start(studies=None, models_dir=None, **settings) -> LiveServer:
        base = tmp_path / f"server{len(started)}"
        base.mkdir()
        store, models = _copy_fixtures(tiny_models, base)
        server = _launch(studies or store, Path(models_dir or models), base / "work", **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.stop()
