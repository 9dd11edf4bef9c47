"""The case store's index in a real database: what must be looked up, at the cost of one indexed query.

A case store (:mod:`models.datasets.store`) keeps images, records and labels as files. Finding things among
10^5 of them must not mean listing the folder or rewriting one big JSON file: MONAI Label 0.8.5's
``datastore_v2.json`` cost a 19 MB rewrite per label save at 100,000 images. This index holds, per image,
its file facts (extension, mtime, size) and its info (scores, stamps); per label its tag and info; the
uncertainty scores in their own indexed table (so "the most uncertain unlabelled image" is one query);
and claims (an image handed to one annotator, with a lease) so that two servers never hand out the same image.

The files stay the truth for images and labels: :meth:`StoreIndex.scan` reconciles the index with the folder
in O(N) stats (only new or changed files are read further), and an index lost or corrupt is rebuilt from
them. What only the index holds (image info, scores, claims) is lost with it, and says so in the log.

The database is SQLite in the store (``<store>/gazelabel_index.sqlite3``, WAL mode: readers never wait for
the writer) unless a SQLAlchemy URL names another one, e.g. ``postgresql://user@127.0.0.1/gazelabel`` for
several servers sharing one store. Tables (``ix_`` prefixed so they can live in a shared schema)::

    ix_images  (id PK, ext, mtime, size, info JSON text, rkey)  index (rkey)
    ix_labels  (image_id, tag) PK, ext, mtime, info JSON text
    ix_scores  (image_id PK, model, mc_samples, value, ts)   index (model, mc_samples, value)
    ix_claims  (image_id PK, holder, expires)                  index (holder)
    ix_meta    (key PK, value)
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

logger = logging.getLogger(__name__)

SQLITE_NAME = "gazelabel_index.sqlite3"
SCHEMA_VERSION = "2"  # 2: ix_images.rkey (random key for the random strategy); 1 is migrated on open
# The image-info key under which uncertainty scores are kept (value, mc_samples, model, ts, probs): the
# datastore mirrors it into ix_scores so the best unlabelled image is one indexed query.
SCORE_KEY = "gazelabel_uncertainty"
_CHUNK = 2000

metadata = sa.MetaData()
images = sa.Table(
    "ix_images", metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("ext", sa.String(16), nullable=False),
    sa.Column("mtime", sa.Float, nullable=False, default=0.0),
    sa.Column("size", sa.BigInteger, nullable=False, default=0),
    sa.Column("info", sa.Text, nullable=False, default="{}"),
    # A uniform random number drawn when the row is inserted: "a random unlabelled image" is the first one at
    # or after a random point of this key (one indexed range query instead of listing every unlabelled id).
    sa.Column("rkey", sa.Float, nullable=True, default=random.random),
    sa.Index("ix_images_rkey", "rkey"),
)
labels = sa.Table(
    "ix_labels", metadata,
    sa.Column("image_id", sa.String(255), primary_key=True),
    sa.Column("tag", sa.String(255), primary_key=True),
    sa.Column("ext", sa.String(16), nullable=False),
    sa.Column("mtime", sa.Float, nullable=False, default=0.0),
    sa.Column("info", sa.Text, nullable=False, default="{}"),
    sa.Index("ix_labels_tag", "tag", "image_id"),
)
scores = sa.Table(
    "ix_scores", metadata,
    sa.Column("image_id", sa.String(255), primary_key=True),
    sa.Column("model", sa.String(512), nullable=False),
    sa.Column("mc_samples", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("ts", sa.Float, nullable=False, default=0.0),
    sa.Index("ix_scores_rank", "model", "mc_samples", "value"),
)
claims = sa.Table(
    "ix_claims", metadata,
    sa.Column("image_id", sa.String(255), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Index("ix_claims_holder", "holder"),
)
meta = sa.Table(
    "ix_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


class StoreIndexError(RuntimeError):
    """The index database cannot be opened or used; the message names the database and the fix."""


class StoreIndexSchemaError(StoreIndexError):
    """The database was written by a newer schema than this code reads: not damage, so never set aside."""


def sqlite_url(root: str) -> str:
    return "sqlite:///" + os.path.join(os.path.abspath(root), SQLITE_NAME)


def _dumps(info: dict[str, Any]) -> str:
    return json.dumps(info, allow_nan=False, separators=(",", ":"))


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _chunks(items: list, n: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class StoreIndex:
    """The index of one case store in a SQLAlchemy database (see module docstring).

    Thread-safe: every method runs in its own transaction. With SQLite, writes start ``BEGIN IMMEDIATE``
    (one writer at a time, across processes too) and reads run on their own connections under WAL.
    """

    def __init__(self, url: str):
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise StoreIndexError(f"index database {url[:80]!r}: not a SQLAlchemy URL; give e.g. "
                                  "postgresql://user@127.0.0.1/gazelabel or sqlite:////path/index.sqlite3") from None
        self.backend = parsed.get_backend_name()
        self.shown = shown = parsed.render_as_string(hide_password=True)
        if self.backend not in ("sqlite", "postgresql"):
            raise StoreIndexError(f"index database {shown}: {self.backend!r} is not supported; use sqlite or postgresql")
        try:
            self._engines(url)
        except (ImportError, sa.exc.NoSuchModuleError) as e:
            raise StoreIndexError(f"index database {shown}: its driver is not installed ({e}); for PostgreSQL "
                                  "install psycopg2-binary (pip install -e '.[postgres]')") from None
        self._local = threading.Lock()  # one writer per process: SQLite's busy wait is coarse
        try:
            with self._write.begin() as c:
                if self.backend == "postgresql":
                    # two servers starting at once on an empty database would race on CREATE TABLE
                    c.execute(sa.text("SELECT pg_advisory_xact_lock(7220401)"))
                self._migrate(c)
                metadata.create_all(c)
                self._set_meta(c, "schema", SCHEMA_VERSION)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as e:
            raise StoreIndexError(f"index database {shown}: cannot be opened ({str(e.orig)[:200]}); check the URL, "
                                  "that the server is running and that the user may create tables") from None

    def _migrate(self, c: sa.Connection) -> None:
        """Bring an index made by an earlier schema up to :data:`SCHEMA_VERSION` (in the opening transaction)."""
        inspector = sa.inspect(c)
        if not inspector.has_table(images.name):
            return  # a new database: create_all makes the current schema
        stored = c.execute(sa.select(meta.c.value).where(meta.c.key == "schema")).scalar() \
            if inspector.has_table(meta.name) else None
        if stored is not None and stored.isdigit() and int(stored) > int(SCHEMA_VERSION):
            raise StoreIndexSchemaError(f"index database {self.shown}: schema {stored} was written by a newer GazeLabel "
                                  f"(this one reads {SCHEMA_VERSION}); upgrade GazeLabel, or give another --db")
        if "rkey" not in {col["name"] for col in inspector.get_columns(images.name)}:
            # schema 1 -> 2: every existing image gets its random key (one statement, ~0.1 s per 10^5 rows)
            c.execute(sa.text(f"ALTER TABLE {images.name} ADD COLUMN rkey FLOAT"))
            draw = "(random() / 18446744073709551616.0 + 0.5)" if self.backend == "sqlite" else "random()"
            c.execute(sa.text(f"UPDATE {images.name} SET rkey = {draw}"))
            next(i for i in images.indexes if i.name == "ix_images_rkey").create(c)  # create_all skips existing tables
            logger.info(f"index {self.shown}: schema 1 -> 2 (random keys for {c.execute(sa.select(sa.func.count()).select_from(images)).scalar()} images)")

    def _engines(self, url: str) -> None:
        if self.backend == "sqlite":
            self._write = self._sqlite_engine(url, immediate=True)
            self._read = self._sqlite_engine(url, immediate=False)
        else:
            self._write = self._read = sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)

    @staticmethod
    def _sqlite_engine(url: str, immediate: bool) -> sa.Engine:
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                                  pool_size=8, max_overflow=8)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # transactions begun below, not by the driver
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def close(self) -> None:
        self._write.dispose()
        if self._read is not self._write:
            self._read.dispose()

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        with self._local, self._write.begin() as c:
            yield c

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        with self._read.connect() as c:
            yield c

    def _insert(self, table: sa.Table):
        if self.backend == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            raise StoreIndexError(f"index database: {self.backend!r} is not supported; use sqlite or postgresql")
        return insert(table)

    def _upsert(self, c: sa.Connection, table: sa.Table, rows: list[dict], keys: list[str], update: list[str]) -> None:
        if not rows:
            return
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={k: stmt.excluded[k] for k in update}) if update \
            else stmt.on_conflict_do_nothing(index_elements=keys)
        for chunk in _chunks(rows):
            c.execute(stmt, chunk)

    # ---------------------------------------------------------------- meta
    def _set_meta(self, c: sa.Connection, key: str, value: str, only_if_absent: bool = False) -> None:
        self._upsert(c, meta, [{"key": key, "value": value}], ["key"], [] if only_if_absent else ["value"])

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.reading() as c:
            value = c.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        with self.writing() as c:
            self._set_meta(c, key, value)

    # ---------------------------------------------------------------- images
    def image(self, image_id: str) -> dict[str, Any] | None:
        """``{"ext", "mtime", "size", "info"}`` of an image, or None."""
        with self.reading() as c:
            row = c.execute(sa.select(images.c.ext, images.c.mtime, images.c.size, images.c.info)
                            .where(images.c.id == image_id)).first()
        return None if row is None else {"ext": row.ext, "mtime": row.mtime, "size": row.size, "info": _loads(row.info)}

    def has_image(self, image_id: str) -> bool:
        with self.reading() as c:
            return c.execute(sa.select(images.c.id).where(images.c.id == image_id)).first() is not None

    def put_image(self, image_id: str, ext: str, mtime: float, size: int, info: dict[str, Any]) -> None:
        """Add or replace an image (its info replaced; its stale score and labels' rows kept as they are)."""
        with self.writing() as c:
            self._upsert(c, images, [{"id": image_id, "ext": ext, "mtime": mtime, "size": size, "info": _dumps(info)}],
                         ["id"], ["ext", "mtime", "size", "info"])
            c.execute(scores.delete().where(scores.c.image_id == image_id))

    def remove_image(self, image_id: str) -> None:
        with self.writing() as c:
            for table, column in ((labels, labels.c.image_id), (scores, scores.c.image_id), (claims, claims.c.image_id),
                                  (images, images.c.id)):
                c.execute(table.delete().where(column == image_id))

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> bool:
        """Merge ``info`` into the image's info (one row read and written); False if there is no such image.
        A ``SCORE_KEY`` entry is mirrored into the scores table."""
        with self.writing() as c:
            row = c.execute(sa.select(images.c.info).where(images.c.id == image_id).with_for_update()).first()
            if row is None:
                return False
            merged = {**_loads(row.info), **info}
            c.execute(images.update().where(images.c.id == image_id).values(info=_dumps(merged)))
            if SCORE_KEY in info:
                self._put_scores(c, [(image_id, info[SCORE_KEY])])
        return True

    def infos(self) -> dict[str, dict[str, Any]]:
        """Every image's info, in one query (for strategies that compare all images)."""
        with self.reading() as c:
            return {r.id: _loads(r.info) for r in c.execute(sa.select(images.c.id, images.c.info))}

    def ids(self, *, offset: int = 0, limit: int | None = None) -> list[str]:
        with self.reading() as c:
            q = sa.select(images.c.id).order_by(images.c.id).offset(offset)
            return list(c.execute(q.limit(limit) if limit is not None else q).scalars())

    def count(self) -> int:
        with self.reading() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(images)).scalar())

    def _labelled(self, tag: str):
        return sa.exists().where(labels.c.image_id == images.c.id, labels.c.tag == tag)

    def labelled_ids(self, tag: str, labelled: bool = True) -> list[str]:
        cond = self._labelled(tag)
        with self.reading() as c:
            return list(c.execute(sa.select(images.c.id).where(cond if labelled else ~cond).order_by(images.c.id)).scalars())

    def rows(self, *, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Images with their labels, in id order: ``{"id", "ext", "info", "labels": {tag: {"ext", "info"}}}``."""
        with self.reading() as c:
            q = sa.select(images.c.id, images.c.ext, images.c.info).order_by(images.c.id).offset(offset)
            page = c.execute(q.limit(limit) if limit is not None else q).all()
            out = {r.id: {"id": r.id, "ext": r.ext, "info": _loads(r.info), "labels": {}} for r in page}
            if not out:
                return []
            lq = sa.select(labels.c.image_id, labels.c.tag, labels.c.ext, labels.c.info)
            if limit is not None or offset:
                lq = lq.where(labels.c.image_id >= page[0].id, labels.c.image_id <= page[-1].id)
            for r in c.execute(lq):
                if r.image_id in out:
                    out[r.image_id]["labels"][r.tag] = {"ext": r.ext, "info": _loads(r.info)}
        return list(out.values())

    def labelled_count(self, tag: str) -> int:
        """Images with a label of ``tag``: counted over that tag's labels (the tag index), not over every image."""
        known = sa.exists().where(images.c.id == labels.c.image_id)
        with self.reading() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(labels).where(labels.c.tag == tag, known)).scalar())

    def tag_counts(self) -> dict[str, int]:
        with self.reading() as c:
            return {t: int(n) for t, n in c.execute(sa.select(labels.c.tag, sa.func.count()).group_by(labels.c.tag))}

    # ---------------------------------------------------------------- labels
    def label(self, image_id: str, tag: str) -> dict[str, Any] | None:
        with self.reading() as c:
            row = c.execute(sa.select(labels.c.ext, labels.c.mtime, labels.c.info)
                            .where(labels.c.image_id == image_id, labels.c.tag == tag)).first()
        return None if row is None else {"ext": row.ext, "mtime": row.mtime, "info": _loads(row.info)}

    def labels_of(self, image_id: str) -> dict[str, str]:
        """tag -> extension of every label of an image."""
        with self.reading() as c:
            return dict(c.execute(sa.select(labels.c.tag, labels.c.ext).where(labels.c.image_id == image_id)).all())

    def put_label(self, image_id: str, tag: str, ext: str, mtime: float, info: dict[str, Any], *,
                  release: bool = True) -> None:
        """Add or replace a label row; with ``release`` the image's claim ends (it is labelled now)."""
        with self.writing() as c:
            self._upsert(c, labels, [{"image_id": image_id, "tag": tag, "ext": ext, "mtime": mtime, "info": _dumps(info)}],
                         ["image_id", "tag"], ["ext", "mtime", "info"])
            if release:
                c.execute(claims.delete().where(claims.c.image_id == image_id))

    def remove_label(self, image_id: str, tag: str) -> None:
        with self.writing() as c:
            c.execute(labels.delete().where(labels.c.image_id == image_id, labels.c.tag == tag))

    def update_label_info(self, image_id: str, tag: str, info: dict[str, Any]) -> bool:
        with self.writing() as c:
            row = c.execute(sa.select(labels.c.info).where(labels.c.image_id == image_id, labels.c.tag == tag)
                            .with_for_update()).first()
            if row is None:
                return False
            c.execute(labels.update().where(labels.c.image_id == image_id, labels.c.tag == tag)
                      .values(info=_dumps({**_loads(row.info), **info})))
        return True

    def labelled_pairs(self, tag: str) -> list[tuple[str, str, str]]:
        """``(image id, image ext, label ext)`` of every image with a label of ``tag``, in id order."""
        with self.reading() as c:
            q = (sa.select(images.c.id, images.c.ext, labels.c.ext.label("lext"))
                 .join(labels, sa.and_(labels.c.image_id == images.c.id, labels.c.tag == tag)).order_by(images.c.id))
            return [(r.id, r.ext, r.lext) for r in c.execute(q)]

    # ---------------------------------------------------------------- scores
    def _put_scores(self, c: sa.Connection, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        rows = []
        for image_id, s in items:
            try:
                rows.append({"image_id": image_id, "model": str(s["model"]), "mc_samples": int(s["mc_samples"]),
                             "value": float(s["value"]), "ts": float(s.get("ts") or time.time())})
            except (KeyError, TypeError, ValueError):
                logger.warning(f"index: score of {image_id!r} is malformed ({str(s)[:120]}); not ranked")
        self._upsert(c, scores, rows, ["image_id"], ["model", "mc_samples", "value", "ts"])

    def put_scores(self, items: dict[str, dict[str, Any]]) -> int:
        """Store many images' scores at once (``{id: {"value", "mc_samples", "model", "ts", "probs"?}}``), in
        their info and in the ranking table; ids not in the index are skipped. Returns how many were stored."""
        stored = 0
        for chunk in _chunks(sorted(items)):
            with self.writing() as c:
                rows = c.execute(sa.select(images.c.id, images.c.info).where(images.c.id.in_(chunk))).all()
                for r in rows:
                    c.execute(images.update().where(images.c.id == r.id)
                              .values(info=_dumps({**_loads(r.info), SCORE_KEY: items[r.id]})))
                self._put_scores(c, [(r.id, items[r.id]) for r in rows])
                stored += len(rows)
        return stored

    def scored_ids(self, model: str, mc_samples: int) -> set[str]:
        """Images with a score of this model and ``mc_samples`` (one indexed query)."""
        with self.reading() as c:
            return set(c.execute(sa.select(scores.c.image_id).where(scores.c.model == model,
                                                                     scores.c.mc_samples == mc_samples)).scalars())

    def scored_count(self, model: str, mc_samples: int) -> int:
        with self.reading() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(scores)
                                 .where(scores.c.model == model, scores.c.mc_samples == mc_samples)).scalar())

    def unscored_unlabelled(self, model: str, mc_samples: int, tag: str, limit: int) -> list[str]:
        """Unlabelled images with no score by this model and ``mc_samples`` (missing or stale), in id order."""
        fresh = sa.exists().where(scores.c.image_id == images.c.id, scores.c.model == model,
                                  scores.c.mc_samples == mc_samples)
        with self.reading() as c:
            return list(c.execute(sa.select(images.c.id).where(~self._labelled(tag), ~fresh)
                                  .order_by(images.c.id).limit(limit)).scalars())

    def top_uncertain(self, model: str, mc_samples: int, tag: str = "final", holder: str = "",
                      exclude: Iterable[str] = ()) -> tuple[str, float] | None:
        """The unlabelled image with the highest score of this model that nobody but ``holder`` holds a live
        claim on: one query over the ``(model, mc_samples, value)`` index."""
        claimed = sa.exists().where(claims.c.image_id == scores.c.image_id, claims.c.expires > time.time(),
                                    claims.c.holder != holder)
        labelled = sa.exists().where(labels.c.image_id == scores.c.image_id, labels.c.tag == tag)
        q = (sa.select(scores.c.image_id, scores.c.value)
             .where(scores.c.model == model, scores.c.mc_samples == mc_samples, ~labelled, ~claimed)
             .order_by(scores.c.value.desc(), scores.c.image_id.desc()).limit(1))
        exclude = list(exclude)
        if exclude:
            q = q.where(scores.c.image_id.not_in(exclude))
        with self.reading() as c:
            row = c.execute(q).first()
        return None if row is None else (row.image_id, float(row.value))

    def random_unlabelled(self, tag: str = "final", holder: str = "", exclude: Iterable[str] = (),
                          rng: random.Random | None = None) -> str | None:
        """A random unlabelled image that nobody but ``holder`` holds a live claim on: the first such image at
        or after a uniform random point of ``rkey`` (wrapping around), one range query over its index; the
        chosen image then gets a new random key.

        One draw picks an image with probability equal to the gap of keys before it, which is uneven (the
        gaps between uniform points vary several-fold); giving the drawn image a fresh key makes every image
        equally likely over repeated draws (the process treats all images alike), which is what a random
        baseline needs. Exactly uniform single draws would mean counting the eligible rows (O(N))."""
        rng = rng or random
        point = rng.random()
        claimed = sa.exists().where(claims.c.image_id == images.c.id, claims.c.expires > time.time(),
                                    claims.c.holder != holder)
        base = sa.select(images.c.id).where(~self._labelled(tag), ~claimed)
        exclude = list(exclude)
        if exclude:
            base = base.where(images.c.id.not_in(exclude))
        found = None
        with self.reading() as c:
            for cond in (images.c.rkey >= point, images.c.rkey < point, images.c.rkey.is_(None)):
                found = c.execute(base.where(cond).order_by(images.c.rkey).limit(1)).scalar()
                if found is not None:
                    break
        if found is not None:
            with self.writing() as c:
                c.execute(images.update().where(images.c.id == found).values(rkey=rng.random()))
        return found

    # ---------------------------------------------------------------- claims
    def claim(self, image_id: str, holder: str, lease_s: float) -> bool:
        """Hand ``image_id`` to ``holder`` for ``lease_s`` seconds, unless someone else holds a live claim on
        it. A holder keeps one claim: taking a new image releases the previous one. True if claimed."""
        now = time.time()
        with self.writing() as c:
            c.execute(claims.delete().where(claims.c.expires <= now))
            c.execute(claims.delete().where(claims.c.holder == holder, claims.c.image_id != image_id))
            stmt = self._insert(claims).values(image_id=image_id, holder=holder, expires=now + lease_s)
            stmt = stmt.on_conflict_do_update(index_elements=["image_id"], set_={"expires": now + lease_s},
                                              where=claims.c.holder == holder)
            c.execute(stmt)
            owner = c.execute(sa.select(claims.c.holder).where(claims.c.image_id == image_id)).scalar()
        return owner == holder

    def claimed(self, holder: str = "") -> set[str]:
        """Images under a live claim of anyone but ``holder``."""
        with self.reading() as c:
            return set(c.execute(sa.select(claims.c.image_id).where(claims.c.expires > time.time(),
                                                                     claims.c.holder != holder)).scalars())

    def release(self, image_id: str, holder: str | None = None) -> None:
        with self.writing() as c:
            q = claims.delete().where(claims.c.image_id == image_id)
            c.execute(q.where(claims.c.holder == holder) if holder else q)

    # ---------------------------------------------------------------- reconcile with the files
    def file_facts(self) -> tuple[dict[str, tuple[str, float, int]], dict[tuple[str, str], tuple[str, float]]]:
        with self.reading() as c:
            imgs = {r.id: (r.ext, r.mtime, r.size) for r in c.execute(sa.select(images.c.id, images.c.ext, images.c.mtime, images.c.size))}
            labs = {(r.image_id, r.tag): (r.ext, r.mtime)
                    for r in c.execute(sa.select(labels.c.image_id, labels.c.tag, labels.c.ext, labels.c.mtime))}
        return imgs, labs

    def apply_scan(self, *, new_images: list[dict] = (), changed_images: list[dict] = (), gone_images: list[str] = (),
                   new_labels: list[dict] = (), changed_labels: list[dict] = (),
                   gone_labels: list[tuple[str, str]] = ()) -> None:
        """Write what a folder scan (or one watched file) found, in chunks, each its own transaction (a huge
        first scan never holds the writer for long). Rows that exist keep their info: a "new" file already
        indexed by a concurrent save only gets its file facts written."""
        new_images, changed_images, gone_images = list(new_images), list(changed_images), list(gone_images)
        new_labels, changed_labels, gone_labels = list(new_labels), list(changed_labels), list(gone_labels)
        for chunk in _chunks(new_images):
            with self.writing() as c:
                self._upsert(c, images, chunk, ["id"], ["ext", "mtime", "size"])
        for chunk in _chunks(changed_images):
            with self.writing() as c:
                c.execute(images.update().where(images.c.id == sa.bindparam("b_id"))
                          .values(ext=sa.bindparam("ext"), mtime=sa.bindparam("mtime"), size=sa.bindparam("size")),
                          [{"b_id": r["id"], "ext": r["ext"], "mtime": r["mtime"], "size": r["size"]} for r in chunk])
                stale = [r["id"] for r in chunk if r.get("stale", True)]
                if stale:  # the image file was replaced: its score is of another image
                    c.execute(scores.delete().where(scores.c.image_id.in_(stale)))
        for chunk in _chunks(gone_images):
            with self.writing() as c:
                for table, column in ((labels, labels.c.image_id), (scores, scores.c.image_id),
                                      (claims, claims.c.image_id), (images, images.c.id)):
                    c.execute(table.delete().where(column.in_(chunk)))
        for chunk in _chunks(new_labels):
            with self.writing() as c:
                self._upsert(c, labels, chunk, ["image_id", "tag"], ["ext", "mtime"])
        for chunk in _chunks(changed_labels):
            with self.writing() as c:
                c.execute(labels.update().where(labels.c.image_id == sa.bindparam("b_id"), labels.c.tag == sa.bindparam("b_tag"))
                          .values(ext=sa.bindparam("ext"), mtime=sa.bindparam("mtime")),
                          [{"b_id": r["image_id"], "b_tag": r["tag"], "ext": r["ext"], "mtime": r["mtime"]} for r in chunk])
        for chunk in _chunks(gone_labels):
            with self.writing() as c:
                for image_id, tag in chunk:
                    c.execute(labels.delete().where(labels.c.image_id == image_id, labels.c.tag == tag))

    def import_entries(self, entries: dict[str, dict[str, Any]]) -> None:
        """Bulk import of a legacy index: ``{id: {"ext", "info", "labels": {tag: {"ext", "info"}}}}``. File
        facts are left 0 so the next scan stats each file once."""
        ids = sorted(entries)
        for chunk in _chunks(ids):
            with self.writing() as c:
                self._upsert(c, images, [{"id": i, "ext": entries[i]["ext"], "mtime": 0.0, "size": 0,
                                          "info": _dumps(entries[i]["info"])} for i in chunk], ["id"], ["ext", "info"])
                self._upsert(c, labels, [{"image_id": i, "tag": t, "ext": lab["ext"], "mtime": 0.0, "info": _dumps(lab["info"])}
                                         for i in chunk for t, lab in entries[i]["labels"].items()],
                             ["image_id", "tag"], ["ext", "info"])
                self._put_scores(c, [(i, entries[i]["info"][SCORE_KEY]) for i in chunk
                                     if isinstance(entries[i]["info"].get(SCORE_KEY), dict)])


def _entries(folder: str, exts: tuple[str, ...], accept) -> dict[str, tuple[str, float, int]]:
    """id -> (ext as written, mtime, size) of the files directly in ``folder`` with one of ``exts``."""
    out: dict[str, tuple[str, float, int]] = {}
    try:
        it = os.scandir(folder)
    except FileNotFoundError:
        return out
    with it:
        for entry in it:
            name = entry.name
            lower = name.lower()
            ext = next((e for e in exts if lower.endswith(e)), None)
            if ext is None or name.startswith("."):
                continue
            image_id = name[: -len(ext)]
            if not accept(image_id):
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except FileNotFoundError:  # removed while listing
                continue
            if image_id not in out:
                out[image_id] = (name[-len(ext):], st.st_mtime, st.st_size)
    return out


def scan_folder(index: StoreIndex, root: str, image_exts: tuple[str, ...], label_exts: tuple[str, ...], accept,
                labels_dir: str = "labels") -> dict[str, int]:
    """Reconcile the index with the store folder: one ``scandir`` (a stat per file) for images and one per
    label tag; only new, changed (mtime or size) and gone files are written. ``accept(id)`` filters unsafe
    ids. Returns counts of what changed."""
    known_images, known_labels = index.file_facts()
    on_disk = _entries(root, image_exts, accept)
    new_images, changed_images = [], []
    now = int(time.time())
    for image_id, (ext, mtime, size) in on_disk.items():
        old = known_images.get(image_id)
        if old is None:
            new_images.append({"id": image_id, "ext": ext, "mtime": mtime, "size": size,
                               "info": _dumps({"ts": now, "name": image_id + ext})})
        elif old[0] != ext or old[1] != mtime or old[2] != size:
            # facts 0/0: imported from a legacy index, never stat'ed; the file is the same, its score stays
            changed_images.append({"id": image_id, "ext": ext, "mtime": mtime, "size": size,
                                   "stale": not (old[1] == 0.0 and old[2] == 0)})
    gone_images = [i for i in known_images if i not in on_disk]
    label_root = os.path.join(root, labels_dir)
    new_labels, changed_labels, seen = [], [], set()
    try:
        tags = [e.name for e in os.scandir(label_root) if e.is_dir() and accept(e.name)]
    except FileNotFoundError:
        tags = []
    for tag in tags:
        for image_id, (ext, mtime, _size) in _entries(os.path.join(label_root, tag), label_exts, accept).items():
            if image_id not in on_disk:
                continue  # a label without its image is not listed (as MONAI Label does)
            seen.add((image_id, tag))
            old = known_labels.get((image_id, tag))
            if old is None:
                new_labels.append({"image_id": image_id, "tag": tag, "ext": ext, "mtime": mtime,
                                   "info": _dumps({"ts": now, "name": image_id + ext})})
            elif old[0] != ext or old[1] != mtime:
                changed_labels.append({"image_id": image_id, "tag": tag, "ext": ext, "mtime": mtime})
    gone = set(gone_images)
    gone_labels = [k for k in known_labels if k not in seen and k[0] not in gone]
    index.apply_scan(new_images=new_images, changed_images=changed_images, gone_images=gone_images,
                     new_labels=new_labels, changed_labels=changed_labels, gone_labels=gone_labels)
    counts = {"images_new": len(new_images), "images_changed": len(changed_images), "images_gone": len(gone_images),
              "labels_new": len(new_labels), "labels_changed": len(changed_labels), "labels_gone": len(gone_labels)}
    if any(counts.values()):
        logger.info(f"index: reconciled with {root}: {counts}")
    return counts
