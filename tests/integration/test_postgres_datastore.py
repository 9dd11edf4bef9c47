"""Two GazeLabel servers sharing one store and one PostgreSQL index (issue 22, item 4).

Starts a private PostgreSQL (Debian ``postgresql``, :class:`monailabel_app.postgres.PostgresServer`) on a free
loopback port and checks, first on :class:`models.datasets.index.StoreIndex` directly (several index objects
standing for several servers, many threads at once) and then with two real ``gazelabel`` servers on the same
store folder and database (SYNTHETIC tiny phantom store), that:

- of many concurrent claims of one image exactly one wins; a claim ends on its lease's expiry or when the
  image's final label is saved; ``top_uncertain`` skips images another holder claimed;
- a label saved through one server is at once seen by the other (stats, label fetch);
- concurrent next-sample requests (``random`` and ``first``, half on each server, one ``client_id`` each)
  never hand the same image to two annotators; saving the label releases the claim; a lease of 10 s (the
  minimum) expires and the image is handed out again.

Skips only when PostgreSQL or psycopg2 is absent (``scripts/install-system-deps.sh``, ``pip install -e '.[test]'``).
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from attack_helpers import label_json
from models.datasets.index import StoreIndex
from monailabel_app.postgres import PostgresServer, postgres_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(postgres_missing() is not None, reason=str(postgres_missing())),
]


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    with PostgresServer(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def fresh_db(pg):
    """The URL of a new, empty database on the module's PostgreSQL."""
    return pg.create_database("t_" + uuid.uuid4().hex[:12])


def _indexes(url: str, n: int):
    from models.datasets.index import StoreIndex

    return [StoreIndex(url) for _ in range(n)]


def _close(indexes) -> None:
    for index in indexes:
        index.close()


# ------------------------------------------------------------------------------------ the index directly
def test_indexes_opened_at_once_on_an_empty_database_all_open(pg):
    """Two servers starting together create the tables once (an advisory lock), neither fails."""
    for attempt in range(3):
        url = pg.create_database(f"race{attempt}")
        errors: list[str] = []

        def open_index():
            try:
                StoreIndex(url).close()
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(e)[:300])

        threads = [threading.Thread(target=open_index) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], errors


def test_concurrent_claims_of_one_image_one_winner(fresh_db):
    # Ten index objects (ten "servers", each with its own connection pool and its own in-process write lock)
    # and fifty threads claiming the same image at the same moment, each for another holder.
    indexes = _indexes(fresh_db, 10)
    try:
        indexes[0].put_image("img-a", ".png", 1.0, 10, {})
        barrier = threading.Barrier(50)

        def claim(i: int) -> bool:
            barrier.wait(timeout=60)
            return indexes[i % len(indexes)].claim("img-a", f"holder-{i}", 600.0)

        with ThreadPoolExecutor(50) as pool:
            won = list(pool.map(claim, range(50)))
        assert won.count(True) == 1, won
        winner = f"holder-{won.index(True)}"
        assert indexes[3].claimed("") == {"img-a"}
        assert indexes[3].claimed(winner) == set()  # the holder's own claim does not hide the image from it
        assert indexes[5].claim("img-a", winner, 600.0)  # the holder may renew
        assert not indexes[7].claim("img-a", "latecomer", 600.0)
    finally:
        _close(indexes)


def test_lease_expiry_and_label_save_release_claims(fresh_db):
    a, b = _indexes(fresh_db, 2)
    try:
        for image_id in ("img-1", "img-2"):
            a.put_image(image_id, ".png", 1.0, 10, {})
        assert a.claim("img-1", "alice", 0.5)
        assert not b.claim("img-1", "bob", 600.0)
        assert b.claimed("bob") == {"img-1"}
        time.sleep(0.8)
        assert b.claimed("bob") == set()  # expired: no longer held
        assert b.claim("img-1", "bob", 600.0)
        assert not a.claim("img-1", "alice", 600.0)

        # A final label's save (on the other "server") ends the claim; without release it stays.
        a.put_label("img-1", "original", ".json", 2.0, {}, release=False)
        assert b.claimed("") == {"img-1"}
        a.put_label("img-1", "final", ".json", 2.0, {})
        assert b.claimed("") == set()
        assert a.labelled_ids("final") == ["img-1"]
        assert b.claim("img-2", "carol", 600.0) and a.claimed("") == {"img-2"}
    finally:
        _close((a, b))


def test_top_uncertain_skips_images_claimed_by_others(fresh_db):
    a, b = _indexes(fresh_db, 2)
    try:
        for image_id in ("u1", "u2", "u3"):
            a.put_image(image_id, ".png", 1.0, 10, {})
        values = {"u1": 0.9, "u2": 0.5, "u3": 0.1}
        assert a.put_scores({i: {"value": v, "mc_samples": 2, "model": "m"} for i, v in values.items()}) == 3
        assert b.top_uncertain("m", 2, holder="bob") == ("u1", 0.9)
        assert a.claim("u1", "alice", 600.0)
        assert b.top_uncertain("m", 2, holder="bob") == ("u2", 0.5)  # u1 is alice's
        assert a.top_uncertain("m", 2, holder="alice") == ("u1", 0.9)  # but still hers
        assert b.claim("u2", "bob", 600.0)
        assert b.top_uncertain("m", 2, holder="carol") == ("u3", 0.1)
        b.put_label("u2", "final", ".json", 2.0, {})  # labelled: nobody's next image any more
        assert a.top_uncertain("m", 2, holder="bob") == ("u3", 0.1)
        assert b.claim("u3", "carol", 600.0)
        assert a.top_uncertain("m", 2, holder="dave") is None
        assert a.top_uncertain("m", 3, holder="dave") is None  # other mc_samples: not ranked
    finally:
        _close((a, b))


# ------------------------------------------------------------------------------------ two live servers
@pytest.fixture(scope="module")
def servers(module_server, pg):
    """Two servers on the same store folder and the same PostgreSQL database (started one after the other)."""
    db = pg.create_database("servers")
    first = module_server(db=db)
    second = module_server(studies=first.store, db=db)
    assert second.store == first.store
    return first, second


def _next(server, strategy: str, client_id: str, **params) -> dict:
    response = server.post(f"/activelearning/{strategy}", json={"client_id": client_id, **params}, timeout=120)
    assert response.status_code == 200, (response.status_code, response.text[:300], server.log_tail(20))
    return response.json()


def _db_claimed(pg) -> set[str]:
    from models.datasets.index import StoreIndex

    index = StoreIndex(pg.url_of("servers"))
    try:
        return index.claimed("")
    finally:
        index.close()


def test_label_saved_on_one_server_is_seen_at_once_by_the_other(servers):
    a, b = servers
    image_id = a.image_ids[-1]
    before = b.get("/datastore/", params={"output": "stats"}).json()
    assert b.get("/datastore/label", params={"label": image_id, "tag": "final"}).status_code == 404
    saved = a.put("/datastore/label", params={"image": image_id}, files={"label": ("l.json", label_json(image_id))})
    assert saved.status_code == 200, saved.text
    after = b.get("/datastore/", params={"output": "stats"}).json()
    assert after["completed"] == before["completed"] + 1 and after["total"] == before["total"], (before, after)
    label = b.get("/datastore/label", params={"label": image_id, "tag": "final"})
    assert label.status_code == 200, label.text[:300]
    assert label.json()["id"] == image_id


def test_concurrent_next_samples_on_two_servers_never_collide(servers, pg):
    a, b = servers
    held_before = _db_claimed(pg)

    def round_of(n: int) -> list[tuple[str, dict]]:
        barrier = threading.Barrier(n)
        clients = [f"annotator-{uuid.uuid4().hex[:8]}" for _ in range(n)]

        def ask(i: int) -> tuple[str, dict]:
            server = (a, b)[i % 2]
            strategy = ("random", "first")[(i // 2) % 2]
            barrier.wait(timeout=60)
            return clients[i], _next(server, strategy, clients[i])

        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(ask, range(n)))

    first_round = round_of(8)
    ids = [r["id"] for _, r in first_round]
    assert all(ids) and len(set(ids)) == 8, first_round
    assert all(r["claimed_by"] == c and r["lease_s"] == 1800 for c, r in first_round), first_round
    assert not set(ids) & held_before  # nothing another annotator still held
    assert set(ids) <= _db_claimed(pg)

    # A second wave while the first one's claims are live: none of theirs, none twice.
    second_round = round_of(8)
    more = [r["id"] for _, r in second_round]
    assert all(more) and len(set(more)) == 8 and not set(more) & set(ids), (first_round, second_round)

    # One annotator saves (through the other server): the image is labelled, the claim is gone, the others stay.
    client, sample = first_round[0]
    image_id = sample["id"]
    saved = b.put("/datastore/label", params={"image": image_id}, files={"label": ("l.json", label_json(image_id))})
    assert saved.status_code == 200, saved.text
    assert a.get("/datastore/label", params={"label": image_id, "tag": "final"}).status_code == 200
    claimed = _db_claimed(pg)
    assert image_id not in claimed and (set(ids) - {image_id}) | set(more) <= claimed
    again = _next(a, "first", client)
    assert again["id"] and again["id"] != image_id and again["id"] not in set(ids) | set(more), again


def test_lease_expires_and_the_image_is_handed_out_again(servers):
    a, b = servers
    x, y = (f"lease-{k}-{uuid.uuid4().hex[:8]}" for k in "xy")
    held = _next(a, "first", x, lease_s=10)
    assert held["id"] and held["lease_s"] == 10
    other = _next(b, "first", y, lease_s=10)
    assert other["id"] and other["id"] != held["id"], (held, other)
    time.sleep(10.5)
    # Both leases ran out: the first unlabelled image nobody holds is x's again, on either server.
    z = _next(b, "first", f"lease-z-{uuid.uuid4().hex[:8]}", lease_s=10)
    assert z["id"] == held["id"], (held, other, z)
    w = _next(a, "first", f"lease-w-{uuid.uuid4().hex[:8]}", lease_s=10)
    assert w["id"] == other["id"], (held, other, w)
