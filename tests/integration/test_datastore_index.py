"""The live server over its database index: paginated listings, claims on next sample, files added by other
tools, info that survives a restart (SYNTHETIC tiny phantom store). Two servers sharing one PostgreSQL
index: tests/integration/test_postgres_datastore.py. Costs at scale: benchmarks/datastore_scale.py."""

from __future__ import annotations

import shutil
import time

from attack_helpers import label_json


def test_pages_claims_new_files_and_restart(start_server):
    server = start_server()
    ids = server.image_ids

    # Pages of the index, in id order; the whole index is still there without offset/limit.
    page = server.get("/datastore/", params={"output": "all", "offset": 2, "limit": 3}).json()
    assert page["total"] == len(ids) and page["offset"] == 2 and list(page["objects"]) == ids[2:5]
    assert set(server.get("/datastore/", params={"output": "all"}).json()["objects"]) == set(ids)
    for params in ({"output": "stats", "limit": 3}, {"output": "all", "limit": 0}, {"output": "all", "offset": -1},
                   {"output": "everything"}):
        bad = server.get("/datastore/", params=params)
        assert bad.status_code in (400, 422), (params, bad.text)
        assert any(k in bad.text for k in ("limit", "offset", "output")), bad.text

    # Next sample: two annotators asking for "the first unlabelled image" get different ones; asking again
    # an annotator keeps theirs; saving the label releases it and the image is no longer unlabelled.
    alice = server.post("/activelearning/first", json={"client_id": "alice"}).json()
    bob = server.post("/activelearning/first", json={"client_id": "bob"}).json()
    assert alice["id"] == ids[0] and bob["id"] == ids[1], (alice, bob)
    assert alice["claimed_by"] == "alice" and alice["lease_s"] == 1800
    assert server.post("/activelearning/first", json={"client_id": "alice"}).json()["id"] == ids[0]
    assert server.post("/activelearning/first", json={"client_id": "carol"}).json()["id"] == ids[2]
    saved = server.put("/datastore/label", params={"image": ids[0]}, files={"label": ("l.json", label_json(ids[0]))})
    assert saved.status_code == 200, saved.text
    assert server.post("/activelearning/first", json={"client_id": "alice"}).json()["id"] == ids[3]
    bad = server.post("/activelearning/first", json={"client_id": ""})
    assert bad.status_code == 400 and "client_id" in bad.text

    # A file copied into the store by another tool is indexed while the server runs (the watcher).
    shutil.copy(server.store / f"{ids[5]}.png", server.store / "zz-added.png")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and server.get("/datastore/image/info", params={"image": "zz-added"}).json() == {}:
        time.sleep(0.25)
    assert server.get("/datastore/image/info", params={"image": "zz-added"}).json()["name"] == "zz-added.png"

    # Info and claims live in the database: a restart keeps them.
    assert server.put("/datastore/image/info", params={"image": ids[6]}, data={"info": '{"note": "kept"}'}).status_code == 200
    server.process.stop()
    server.process.start(timeout=300)
    assert server.get("/datastore/image/info", params={"image": ids[6]}).json()["note"] == "kept"
    stats = server.get("/datastore/", params={"output": "stats"}).json()
    assert stats["total"] == len(ids) + 1 and stats["completed"] == 1
    assert server.post("/activelearning/first", json={"client_id": "dave"}).json()["id"] == ids[4]  # 1, 2, 3 held
