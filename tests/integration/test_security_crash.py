"""Class: data lost or the server broken by a crash (``kill -9`` during a label save or a training).

Every file the server writes is written atomically (temp file, fsync, rename). The kill loop below kills
the whole server process group with SIGKILL at random moments while labels are being saved and while a
model trains, then checks that no acknowledged save is lost, no label or index is torn, and the server
restarts; a corrupt label is quarantined and never blocks training, a corrupt index is rebuilt, and stale
``.training/`` folders are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import threading
import time

import pytest
import requests
from attack_helpers import label_json

from models.checkpoint import load_checkpoint
from models.schema import load_case

pytestmark = pytest.mark.integration
SAVE_ROUNDS = 10
TRAIN_ROUNDS = 4
FIGURES = {"rounds": 0, "sent": 0, "acknowledged": 0, "in_flight_at_kill": 0, "read_back": 0,
           "train_rounds": 0, "killed_while_training": 0}


def kill9(server) -> None:
    """SIGKILL the server's whole process group (uvicorn and any train subprocess) and reap it."""
    try:
        os.killpg(server.process.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.process.process.wait(timeout=30)


def assert_nothing_torn(server) -> dict[str, int]:
    """Every label parses as a Case and the index database passes SQLite's integrity check (its WAL
    replayed); returns image id -> stored save number."""
    stored = {}
    for path in sorted((server.store / "labels" / "final").glob("*.json")):
        case = load_case(path)  # CaseError on a torn or empty file
        stored[path.stem] = int(case.extra.get("seq", -1))
    index = server.store / "gazelabel_index.sqlite3"
    if index.exists():
        with contextlib.closing(sqlite3.connect(index)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return stored


def save_loop(server, image_id, counter, acked, sent, stop: threading.Event) -> None:
    """Save labels of one image one after another (one writer per image: "the latest acknowledged save" is
    then well defined; saves of different images run concurrently)."""
    session = requests.Session()
    while not stop.is_set():
        with counter["lock"]:
            counter["n"] += 1
            seq = counter["n"]
            sent[image_id] = max(sent.get(image_id, 0), seq)
        body = label_json(image_id, extra={"seq": seq})
        try:
            response = session.put(f"{server.url}/datastore/label", params={"image": image_id},
                                   files={"label": ("l.json", body)}, timeout=30)
        except requests.RequestException:
            return
        if response.status_code == 200:
            with counter["lock"]:
                acked[image_id] = max(acked.get(image_id, 0), seq)
                counter["acked"] += 1


def test_kill_during_label_saves_loses_no_acknowledged_save(start_server):
    server = start_server()
    image_ids = server.image_ids[:4]
    rng = random.Random(20261201)
    counter = {"n": 0, "acked": 0, "lock": threading.Lock()}
    acked: dict[str, int] = {}
    for round_ in range(SAVE_ROUNDS):
        sent: dict[str, int] = {}
        stop = threading.Event()
        unanswered_before = counter["n"] - counter["acked"]  # the saves killed in earlier rounds
        writers = [threading.Thread(target=save_loop, args=(server, image_id, counter, acked, sent, stop))
                   for image_id in image_ids]
        for w in writers:
            w.start()
        time.sleep(rng.uniform(0.2, 1.5))
        with counter["lock"]:
            answered = counter["acked"]
            issued = counter["n"]
        kill9(server)
        stop.set()
        for w in writers:
            w.join(timeout=60)
        FIGURES["in_flight_at_kill"] += issued - answered - unanswered_before  # sent, not answered when it died
        stored = assert_nothing_torn(server)
        for image_id, seq in acked.items():
            assert stored.get(image_id, -1) >= seq, f"round {round_}: acknowledged save {seq} of {image_id} lost"
        server.process.start(timeout=300)
        for image_id in acked:
            served = server.get("/datastore/label", params={"label": image_id, "tag": "final"})
            assert served.status_code == 200, served.text
            assert json.loads(served.content)["extra"]["seq"] == stored[image_id]
            FIGURES["read_back"] += 1
        listed = server.get("/datastore/", params={"output": "train"}).json()
        assert {i["label"].rsplit("/", 1)[-1][:-5] for i in listed} >= set(acked)
        FIGURES["rounds"] += 1
    FIGURES["sent"], FIGURES["acknowledged"] = counter["n"], counter["acked"]
    assert len(acked) == len(image_ids)
    assert FIGURES["sent"] > FIGURES["acknowledged"], "no kill landed while a save was in flight"
    print(f"\nkill-9 loop: {FIGURES}")


def test_kill_during_training_leaves_a_loadable_model_and_no_leftovers(start_server):
    server = start_server()
    for image_id in server.image_ids[:8]:
        record = json.loads((server.store / "cases" / f"{image_id}.json").read_text())
        assert server.put("/datastore/label", params={"image": image_id},
                          files={"label": ("l.json", json.dumps(record))}).status_code == 200
    rng = random.Random(7)
    models = server.models_dir
    for round_ in range(TRAIN_ROUNDS):
        started = server.post("/train/gaze_classifier", json={"epochs": 3, "size": 64, "width": 8, "batch_size": 4})
        assert started.status_code == 200, started.text
        time.sleep(rng.uniform(1.0, 12.0))
        FIGURES["killed_while_training"] += server.get("/train/").json().get("status") == "RUNNING"
        kill9(server)
        load_checkpoint(models / "classifier.pt", "classifier")  # old or new, never torn
        stats = models / "train_stats_classifier.json"
        if stats.exists():
            json.loads(stats.read_text())
        server.process.start(timeout=300)
        assert not [p for p in (models / ".training").glob("*") if p.is_dir()], f"round {round_}: stale training folder"
        assert not list(models.glob(".*.partial"))
        infer = server.post(f"/infer/gaze_classifier?image={server.image_ids[0]}&output=json")
        assert infer.status_code == 200, infer.text
        FIGURES["train_rounds"] += 1
    print(f"\nkill-9 during training: {FIGURES['train_rounds']} rounds ({FIGURES['killed_while_training']} while the "
          "training ran), model loadable and server up after each")
    assert FIGURES["killed_while_training"] >= 1


def test_corrupt_label_index_and_training_leftovers_are_recovered(start_server):
    server = start_server()
    ids = server.image_ids
    for image_id in ids[:6]:
        record = json.loads((server.store / "cases" / f"{image_id}.json").read_text())
        assert server.put("/datastore/label", params={"image": image_id},
                          files={"label": ("l.json", json.dumps(record))}).status_code == 200
    server.process.stop()
    (server.store / "labels" / "final" / f"{ids[0]}.json").write_bytes(b"")  # torn by an old crash
    (server.store / "labels" / "final" / f"{ids[1]}.json").write_text('{"schema": "gazelabel.case/1", "id": "x", "fin')
    index = server.store / "gazelabel_index.sqlite3"
    with contextlib.closing(sqlite3.connect(index)) as db:  # the WAL into the file, then the file torn in half
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = index.read_bytes()
    assert len(data) > 3 * 4096, len(data)
    index.write_bytes(data[: len(data) // 2 + 100])
    stale = server.models_dir / ".training" / "classifier-999999999-abc"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("x")
    (server.models_dir / ".classifier.pt.x1y2.partial").write_bytes(b"half a model")
    os.utime(server.models_dir / ".classifier.pt.x1y2.partial", (time.time() - 3600,) * 2)

    server.process.start(timeout=300)
    assert not stale.exists() and not (server.models_dir / ".classifier.pt.x1y2.partial").exists()
    assert list(server.store.glob("gazelabel_index.sqlite3.corrupt-*")), "the truncated index was not set aside"
    listing = server.get("/datastore/", params={"output": "stats"}).json()
    assert listing["total"] == len(ids) and listing["completed"] == 6  # rebuilt from the files
    assert server.get("/datastore/", params={"output": "all"}).status_code == 200
    started = server.post("/train/gaze_classifier", json={"epochs": 1, "size": 64, "width": 8, "batch_size": 4})
    assert started.status_code == 200, started.text
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.get("/train/").json().get("status") in ("SUBMITTED", "RUNNING"):
        time.sleep(1.0)
    status = server.get("/train/").json()
    assert status["status"] == "DONE", "\n".join(status.get("details", [])) + server.log_tail()
    stats = server.get("/info/").json()["train_stats"]["gaze_classifier"]
    assert stats["cases"] == 4  # the two corrupt labels were skipped, not fatal
    quarantined = sorted(p.name for p in (server.store / "quarantine").rglob("*.json.*"))
    assert len(quarantined) == 2 and all(n.startswith((ids[0], ids[1])) for n in quarantined)
    assert "quarantine" in server.log_tail(2000) or "quarantined" in "\n".join(status.get("details", []))
