"""The datastore's database index (models/datasets/index.py, monailabel_app/lib/datastores/database.py), in process.

What must hold at any store size is checked by construction rather than by timing (speed lives in
benchmarks/datastore_scale.py): a label save, an info update and a lookup run a constant number of SQL
statements and never list the folder; start-up reconciles with the files; a legacy JSON index is imported
once; a corrupt index is rebuilt; the uncertainty ranking skips labelled, claimed and stale scores; claims
hand an image to one holder at a time. SYNTHETIC images (random arrays).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import sqlalchemy as sa

from models.datasets.index import SCORE_KEY, SQLITE_NAME, StoreIndex, StoreIndexError, scan_folder, sqlite_url
from models.imaging import write_png
from models.schema import CaseError
from monailabel_app.lib.datastores.database import IndexedCaseDatastore
from monailabel_app.lib.ids import UnsafeIdError, is_safe_id

W = H = 32


def make_store(root, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    ids = [f"img{i:05d}" for i in range(n)]
    for image_id in ids:
        write_png(rng.random((H, W)), root / f"{image_id}.png")
    return ids


def label_file(tmp_path, image_id: str, **fields) -> str:
    path = tmp_path / f"upload-{image_id}.json"
    case = {"schema": "gazelabel.case/1", "id": image_id, "image": {"width": W, "height": H},
            "findings": {"Cardiomegaly": 1}, **fields}
    path.write_text(json.dumps(case))
    return str(path)


class StatementCounter:
    def __init__(self, index: StoreIndex):
        self.n = 0
        self.engines = {index._write, index._read}
        for engine in self.engines:
            sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args, **kwargs):
        self.n += 1

    def close(self):
        for engine in self.engines:
            sa.event.remove(engine, "before_cursor_execute", self._count)


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    return root


def test_start_indexes_the_folder_and_rescans_only_changes(store):
    ids = make_store(store, 12)
    (store / "labels" / "final").mkdir(parents=True)
    (store / "labels" / "final" / f"{ids[3]}.json").write_text("{}")
    (store / "labels" / "final" / "orphan.json").write_text("{}")  # no image: not listed
    (store / "notes.txt").write_text("x")
    ds = IndexedCaseDatastore(str(store))
    assert ds.list_images() == ids
    assert ds.get_labeled_images() == [ids[3]] and len(ds.get_unlabeled_images()) == 11
    assert ds.status() == {"total": 12, "completed": 1, "label_tags": {"final": 1}}
    ds.close()

    os.remove(store / f"{ids[0]}.png")
    write_png(np.zeros((H, W)), store / "new-one.png")
    again = IndexedCaseDatastore(str(store))
    assert "new-one" in again.list_images() and ids[0] not in again.list_images()
    counts = scan_folder(again.index, str(store), (".png",), (".json",), is_safe_id)
    assert not any(counts.values()), counts  # nothing changed since the start: nothing written
    again.close()


def test_a_label_save_an_info_update_and_a_lookup_cost_a_constant_number_of_statements(store, tmp_path, monkeypatch):
    """The same statements at 50 and at 2,000 images, and no folder listing during any of them."""
    costs = {}
    for n in (50, 2000):
        root = tmp_path / f"s{n}"
        root.mkdir()
        rng = np.random.default_rng(1)
        write_png(rng.random((H, W)), root / "img00000.png")
        for i in range(1, n):  # hard links: the folder's size is what matters
            os.link(root / "img00000.png", root / f"img{i:05d}.png")
        ds = IndexedCaseDatastore(str(root))
        counter = StatementCounter(ds.index)

        def no_listing(*args, **kwargs):
            raise AssertionError("the folder was listed")

        with monkeypatch.context() as m:
            m.setattr(os, "scandir", no_listing)
            m.setattr(os, "listdir", no_listing)
            ds.save_label("img00007", label_file(tmp_path, "img00007"), "final", {"reader": "r"})
            ds.update_image_info("img00008", {"note": "n"})
            ds.get_image_info("img00009")
            ds.get_label_info("img00007", "final")
            ds.get_image_uri("img00010")
        costs[n] = counter.n
        counter.close()
        assert ds.get_label_info("img00007", "final")["reader"] == "r"
        assert ds.get_image_info("img00008")["note"] == "n"
        ds.close()
    assert costs[50] == costs[2000], costs


def test_labels_images_and_info_behave_like_monai_labels_datastore(store, tmp_path):
    ids = make_store(store, 4)
    ds = IndexedCaseDatastore(str(store))
    assert ds.save_label(ids[1], label_file(tmp_path, ids[1]), "final", {"reader": "a"}) == ids[1]
    saved = json.loads(open(ds.get_label_uri(ids[1], "final")).read())
    assert saved["id"] == ids[1] and saved["findings"] == {"Cardiomegaly": 1}
    assert ds.get_labels_by_image_id(ids[1]) == {"final": ids[1]}
    assert ds.get_label_info(ids[1], "final")["case"]["findings"] == 1
    assert ds.datalist() == [{"image": os.path.realpath(store / f"{ids[1]}.png"),
                              "label": os.path.realpath(store / "labels" / "final" / f"{ids[1]}.json")}]
    assert ds.get_image_info(ids[0])["path"] == os.path.realpath(store / f"{ids[0]}.png")
    assert ds.get_image_info("unknown") == {} and ds.get_image_uri("unknown") == ""
    with pytest.raises(UnsafeIdError):
        ds.get_image_uri("../escape")
    with pytest.raises(CaseError, match="name"):
        ds.update_image_info(ids[0], {"name": "x"})  # owned by the datastore
    with pytest.raises(CaseError, match="width"):
        ds.save_label(ids[2], label_file(tmp_path, ids[2], image={"width": 99, "height": 99}), "final", {})
    upload = tmp_path / "up.png"
    write_png(np.ones((H, W)) * 0.5, upload)
    assert ds.add_image("added", str(upload), {"site": "x"}) == "added"
    assert ds.get_image_info("added")["site"] == "x" and ds.get_image_info("added")["width"] == W
    ds.remove_label(ids[1], "final")
    assert ds.get_labeled_images() == [] and not (store / "labels" / "final" / f"{ids[1]}.json").exists()
    ds.remove_image("added")
    assert "added" not in ds.list_images() and not (store / "added.png").exists()
    whole = ds.json()
    assert set(whole["objects"]) == set(ids)
    page = ds.page(1, 2)
    assert page["total"] == 4 and list(page["objects"]) == ids[1:3]
    ds.close()


def test_uncertainty_ranking_skips_labelled_claimed_and_stale_scores(store, tmp_path):
    ids = make_store(store, 6)
    ds = IndexedCaseDatastore(str(store))
    score = lambda v, model="m1", k=8: {"value": v, "mc_samples": k, "model": model, "ts": 1}  # noqa: E731
    ds.index.put_scores({ids[0]: score(0.9), ids[1]: score(0.8), ids[2]: score(0.95, "old"), ids[3]: score(0.99, k=3)})
    ds.update_image_info_internal(ids[4], {SCORE_KEY: score(0.7)})
    assert ds.top_uncertain("m1", 8) == (ids[0], 0.9)
    ds.save_label(ids[0], label_file(tmp_path, ids[0]), "final", {})
    assert ds.top_uncertain("m1", 8) == (ids[1], 0.8)
    assert ds.claim(ids[1], "alice", 60)
    assert ds.top_uncertain("m1", 8, holder="bob") == (ids[4], 0.7)
    assert ds.top_uncertain("m1", 8, holder="alice") == (ids[1], 0.8)  # her own claim stays hers
    assert sorted(ds.unscored("m1", 8, 10)) == [ids[2], ids[3], ids[5]]  # missing or by another model/K
    assert ds.get_image_info(ids[1])[SCORE_KEY]["value"] == 0.8  # the info keeps the score too
    ds.close()


def test_claims_hand_an_image_to_one_holder_until_saved_or_expired(store, tmp_path, monkeypatch):
    ids = make_store(store, 3)
    ds = IndexedCaseDatastore(str(store))
    assert ds.claim(ids[0], "alice", 30)
    assert not ds.claim(ids[0], "bob", 30)
    assert ds.claimed("bob") == {ids[0]} and ds.claimed("alice") == set()
    assert ds.claim(ids[1], "alice", 30)  # alice moves on: her first image is free again
    assert ds.claim(ids[0], "bob", 30)
    ds.save_label(ids[0], label_file(tmp_path, ids[0]), "final", {})
    assert ds.claimed("alice") == set()  # saved: released
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 31)  # alice's lease on ids[1] ran out
    assert ds.claim(ids[1], "carol", 30)
    ds.close()


def test_a_legacy_json_index_is_imported_once(store):
    ids = make_store(store, 3)
    legacy = {"name": "old", "objects": {
        ids[0]: {"image": {"ext": ".png", "info": {"note": "kept", SCORE_KEY: {"value": 0.5, "mc_samples": 8, "model": "m"}}},
                 "labels": {}},
        "../x": {"image": {"ext": ".png", "info": {}}, "labels": {}},
        "gone": {"image": {"ext": ".png", "info": {}}, "labels": {}},  # its file no longer exists
    }}
    (store / "datastore_v2.json").write_text(json.dumps(legacy))
    ds = IndexedCaseDatastore(str(store))
    assert ds.list_images() == ids and ds.name() == "old"
    assert ds.get_image_info(ids[0])["note"] == "kept" and ds.top_uncertain("m", 8) == (ids[0], 0.5)
    assert not (store / "datastore_v2.json").exists() and (store / "datastore_v2.json.migrated").exists()
    ds.update_image_info(ids[0], {"note": "changed"})
    ds.close()
    assert IndexedCaseDatastore(str(store)).get_image_info(ids[0])["note"] == "changed"  # not re-imported


def test_a_corrupt_index_is_set_aside_and_rebuilt_from_the_files(store, tmp_path):
    ids = make_store(store, 5)
    ds = IndexedCaseDatastore(str(store))
    ds.save_label(ids[2], label_file(tmp_path, ids[2]), "final", {})
    ds.close()
    path = store / SQLITE_NAME
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)  # torn header
    rebuilt = IndexedCaseDatastore(str(store))
    assert rebuilt.list_images() == ids and rebuilt.get_labeled_images() == [ids[2]]
    assert list(store.glob(f"{SQLITE_NAME}.corrupt-*"))
    rebuilt.close()


def test_another_database_url_is_used_instead_of_the_store_file(store, tmp_path):
    ids = make_store(store, 2)
    url = sqlite_url(str(tmp_path))  # a database outside the store (as a PostgreSQL URL would be)
    ds = IndexedCaseDatastore(str(store), db_url=url)
    assert ds.list_images() == ids and not (store / SQLITE_NAME).exists()
    ds.close()
    with pytest.raises(StoreIndexError, match="'mysql' is not supported"):
        StoreIndex("mysql+nothing://x/y")
    with pytest.raises(StoreIndexError, match="not a SQLAlchemy URL"):
        StoreIndex("just words")
    other = tmp_path / "other-store"
    other.mkdir()
    make_store(other, 1)
    with pytest.raises(StoreIndexError, match="indexes another store"):
        IndexedCaseDatastore(str(other), db_url=url)  # one database, one store
    assert IndexedCaseDatastore(str(store), db_url=url).list_images() == ids


def test_a_watched_file_event_never_replaces_the_info_a_save_stored(store, tmp_path):
    """The watcher's event for a file the server just wrote may run before or after the save's row write;
    either way the info stays (it once replaced the label info with a bare {"ts", "name"})."""
    ids = make_store(store, 2)
    ds = IndexedCaseDatastore(str(store))
    label = store / "labels" / "final" / f"{ids[0]}.json"
    ds.index.apply_scan(new_labels=[{"image_id": ids[0], "tag": "final", "ext": ".json", "mtime": 1.0,
                                     "info": json.dumps({"ts": 1, "name": "x"})}])  # the watcher ran first
    ds.save_label(ids[0], label_file(tmp_path, ids[0]), "final", {"reader": "r"})
    ds.sync_file(str(label))  # ... or after
    real_label = ds.index.label
    ds.index.label = lambda *a: None  # the watcher read "no row" just before the save wrote it
    ds.sync_file(str(label))
    ds.index.label = real_label
    assert ds.get_label_info(ids[0], "final")["reader"] == "r"
    os.utime(label, (time.time() + 5,) * 2)
    ds.sync_file(str(label))  # a later change of the file by another tool: facts only
    assert ds.get_label_info(ids[0], "final")["reader"] == "r"
    ds.update_image_info(ids[1], {"note": "n"})
    ds.sync_file(str(store / f"{ids[1]}.png"))
    assert ds.get_image_info(ids[1])["note"] == "n"
    ds.close()


def test_a_random_unlabelled_image_skips_labelled_claimed_and_excluded_and_reaches_every_other(store, tmp_path):
    ids = make_store(store, 12)
    ds = IndexedCaseDatastore(str(store))
    for image_id in ids[:4]:
        ds.save_label(image_id, label_file(tmp_path, image_id), "final", {})
    assert ds.claim(ids[4], "alice", 60)
    eligible = set(ids[6:])  # ids[5] excluded below
    seen = [ds.random_unlabelled("bob", exclude=(ids[5],)) for _ in range(600)]
    assert set(seen) == eligible  # never a labelled, claimed or excluded one; every other one
    counts = np.array([seen.count(i) for i in sorted(eligible)])
    assert counts.min() >= 20, counts  # 100 expected each: none starved (the random-key gaps are not tiny)
    assert ds.random_unlabelled("alice", exclude=(ids[5],)) in eligible | {ids[4]}  # her own claim is hers
    for image_id in ids[4:]:
        ds.save_label(image_id, label_file(tmp_path, image_id), "final", {})
    assert ds.random_unlabelled("bob") is None
    ds.close()


def test_a_random_draw_and_the_status_do_not_walk_every_image(tmp_path):
    """SQLite's virtual-machine steps of a random draw and of the status, at 100 and 4,000 images (one label
    each): about the same, where listing the unlabelled ids or counting labels by walking the images grows
    with the store (the first versions of both did: 150 ms and 35 ms at 100,000 images)."""
    steps = {}
    for n in (100, 4000):
        root = tmp_path / f"s{n}"
        root.mkdir()
        write_png(np.random.default_rng(1).random((H, W)), root / "img00000.png")
        for i in range(1, n):
            os.link(root / "img00000.png", root / f"img{i:05d}.png")
        ds = IndexedCaseDatastore(str(root))
        ds.save_label("img00003", label_file(tmp_path, "img00003"), "final", {})
        count = [0]

        def counting(dbapi_connection, _record):
            dbapi_connection.set_progress_handler(lambda: count.__setitem__(0, count[0] + 1) or 0, 10)

        for engine in (ds.index._read, ds.index._write):
            engine.dispose()  # new connections, each with the step counter
            sa.event.listen(engine, "connect", counting)
        drawn = [ds.random_unlabelled("bob") for _ in range(5)]
        status = ds.status()
        steps[n] = count[0]
        assert "img00003" not in drawn and all(ds.index.has_image(d) for d in drawn)
        assert status == {"total": n, "completed": 1, "label_tags": {"final": 1}}
        ds.close()
    assert steps[100] > 0 and steps[4000] < 3 * steps[100], steps


def test_an_index_of_schema_1_gains_random_keys_on_open_and_a_newer_schema_is_refused(store):
    from models.datasets.index import SCHEMA_VERSION, StoreIndexSchemaError

    ids = make_store(store, 30)
    db = store / SQLITE_NAME
    old = sa.create_engine(f"sqlite:///{db}")
    with old.begin() as c:  # the tables as schema 1 made them (no rkey)
        c.exec_driver_sql("CREATE TABLE ix_images (id VARCHAR(255) PRIMARY KEY, ext VARCHAR(16) NOT NULL, "
                          "mtime FLOAT NOT NULL, size BIGINT NOT NULL, info TEXT NOT NULL)")
        c.exec_driver_sql("CREATE TABLE ix_meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)")
        c.exec_driver_sql("INSERT INTO ix_meta VALUES ('schema', '1')")
        for i in ids:
            c.exec_driver_sql("INSERT INTO ix_images VALUES (?, '.png', 0, 0, ?)", (i, json.dumps({"note": i})))
    old.dispose()
    ds = IndexedCaseDatastore(str(store))
    with ds.index.reading() as c:
        keys = [r[0] for r in c.exec_driver_sql("SELECT rkey FROM ix_images")]
        indexes = {r[1] for r in c.exec_driver_sql("PRAGMA index_list(ix_images)")}
    assert len(keys) == 30 and all(0.0 <= k < 1.0 for k in keys) and len(set(keys)) == 30
    assert "ix_images_rkey" in indexes
    assert ds.index.get_meta("schema") == SCHEMA_VERSION
    assert ds.get_image_info(ids[2])["note"] == ids[2]  # info kept through the migration
    assert ds.random_unlabelled() in ids
    ds.index.set_meta("schema", str(int(SCHEMA_VERSION) + 1))
    ds.close()
    with pytest.raises(StoreIndexSchemaError, match="newer GazeLabel"):
        IndexedCaseDatastore(str(store))
    assert db.exists() and not list(store.glob(f"{SQLITE_NAME}.corrupt-*"))  # refused, never set aside


def test_the_uncertainty_answer_never_waits_for_the_search_of_unscored_images(monkeypatch):
    """Finding what is unscored walks the unlabelled images (0.1 s at 10^5): it runs in the background pass,
    and after a pass that found nothing, no pass starts again for RESCAN_S seconds."""
    import threading as th

    from monailabel_app.lib.activelearning import uncertainty as unc

    class Models:
        def predictor(self, family):
            return object()

        def served(self, families):
            return ((1, 2, 3),)

    searched, release = [], th.Event()

    class Datastore:
        def top_uncertain(self, model, mc_samples):
            return ("img1", 0.5)

        def unscored(self, model, mc_samples, limit):
            searched.append(th.current_thread().name)
            release.wait(10)  # a slow search: the answer must not wait for it
            return []

    strategy = unc.UncertaintyStrategy(Models())
    started = time.monotonic()
    answer = strategy._indexed(Datastore(), 8, 32)
    assert time.monotonic() - started < 5 and answer == {"id": "img1", "uncertainty": 0.5, "computed": 0,
                                                         "scoring_in_background": True}
    release.set()
    assert strategy.wait_background(10) == {"model": "1-2-3", "mc_samples": 8, "scored": 0}
    assert searched == ["gazelabel-scoring"]
    assert strategy._indexed(Datastore(), 8, 32)["scoring_in_background"] is False  # nothing missing, just now
    monkeypatch.setattr(unc.time, "monotonic", lambda: started + unc.RESCAN_S + 60)
    assert strategy._indexed(Datastore(), 8, 32)["scoring_in_background"] is True  # looked again later
    strategy.wait_background(10)
    assert searched == ["gazelabel-scoring"] * 2


def test_the_watcher_indexes_changes_but_not_reads(store, tmp_path):
    """watchdog reports every open and close-without-write too; reading an image or a label is not a change
    and must cost the watcher nothing (it once ran a stat and an index query per file each request opened)."""
    ids = make_store(store, 2)
    ds = IndexedCaseDatastore(str(store), auto_reload=True)
    try:
        assert ds._observer is not None
        seen = []
        real_sync = ds.sync_file
        ds.sync_file = lambda path: (seen.append(os.path.basename(path)), real_sync(path))
        for _ in range(3):
            for image_id in ids:
                (store / f"{image_id}.png").read_bytes()
        (store / "dataset.json").write_text("{}")  # a write, for comparison
        (store / "dataset.json").read_text()
        deadline = time.monotonic() + 10
        while "dataset.json" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # any read event queued behind the write would have arrived by now
        assert "dataset.json" in seen, "the watcher missed a write"
        assert not any(name.endswith(".png") for name in seen), seen
        write_png(np.zeros((H, W)), store / "img_new.png")  # a new image is still indexed
        deadline = time.monotonic() + 10
        while ds.index.image("img_new") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ds.index.image("img_new") is not None
    finally:
        ds.close()
