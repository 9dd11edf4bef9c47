"""The case store as a MONAI Label datastore whose index is a database: the same cost at 100,000 images as at 200.

MONAI Label 0.8.5's ``LocalDatastore`` keeps its index in memory and rewrites all of ``datastore_v2.json``
(19 MB at 100k images) under one lock on every label save and every image-info update, and its start-up is
quadratic once the index exists. :class:`IndexedCaseDatastore` implements the same ``Datastore`` interface
(the stock client, the Slicer module and the train tasks see no difference) over
:class:`models.datasets.index.StoreIndex`:

- a label save writes its file atomically (temp, fsync, rename) and then one row; an image-info update one
  row; a lookup is one primary-key query. Nothing lists the folder or rewrites a whole index;
- start-up reconciles the index with the folder by one ``scandir`` (a stat per file): only new, changed or
  gone files are written (:func:`models.datasets.index.scan_folder`);
- an existing ``datastore_v2.json`` is imported on first start (bad entries skipped with a warning, as
  :class:`.local.CaseDatastore` loads it) and renamed ``datastore_v2.json.migrated``; a corrupt SQLite index
  is set aside as ``<name>.corrupt-<time>`` and rebuilt from the files;
- uncertainty scores are ranked in their own table (:meth:`top_uncertain`), images are claimed by one
  annotator at a time (:meth:`claim`), listings are paginated (:meth:`page`).

The same checks as :class:`.local.CaseDatastore` apply: ids and tags are checked, images must be readable
CR/DX/PNG/JPG radiographs, labels valid Cases, client info plain finite JSON without datastore-owned keys.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from typing import Any

import sqlalchemy as sa
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException

from models.datasets.index import (SCORE_KEY, SQLITE_NAME, StoreIndex, StoreIndexError, StoreIndexSchemaError, scan_folder,
                                   sqlite_url)
from models.files import atomic_copy, atomic_write, remove_partials
from models.imaging import image_size
from models.schema import CaseError
from models.strict_json import check_value

from ..ids import check_id, check_inside, is_safe_id
from .local import CaseDatastore, client_info
from .uploads import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, check_image_upload, read_label_upload

logger = logging.getLogger(__name__)
# watchdog (>= 5 on Linux) also reports every open of a file and every close without a write: reading an
# image or a record is not a change, and syncing on it cost each request a stat and an index query per file
# the request opened, in the watcher thread beside the inference (about 8 per /infer/pipeline).
READ_EVENTS = frozenset({"opened", "closed_no_write"})

LEGACY_INDEX = "datastore_v2.json"
STORE_ID_FILE = ".gazelabel_store_id"
DEFAULT_LEASE_S = 1800.0  # an image handed out stays with its annotator this long unless saved first


def _split(name: str, exts: tuple[str, ...]) -> tuple[str, str] | None:
    lower = name.lower()
    for ext in exts:
        if lower.endswith(ext):
            return name[: -len(ext)], name[-len(ext):]
    return None


class IndexedCaseDatastore(Datastore):
    """A case store folder (``<root>/<id>.png|.dcm|.jpg``, ``labels/<tag>/<id>.json``) indexed in a database.

    Args:
        root: the store folder.
        db_url: a SQLAlchemy URL; default SQLite ``<root>/gazelabel_index.sqlite3``.
        auto_reload: watch the folder (inotify) and index files added or removed by other tools as they
            appear; without it, :meth:`refresh` (and every start) reconciles.
        read_only: never write the index from a folder scan (the store is someone else's).
    """

    def __init__(self, root: str, db_url: str | None = None, auto_reload: bool = False, read_only: bool = False):
        self._root = os.path.abspath(root)
        os.makedirs(os.path.join(self._root, "labels", DefaultLabelTag.FINAL), exist_ok=True)
        remove_partials(self._root, older_than_s=60.0)
        self._index = self._open(db_url)
        self._check_store_identity()
        self._read_only = read_only
        self._migrate_legacy_index()
        started = time.monotonic()
        if not read_only:
            self.refresh()
        logger.info(f"datastore: {self._index.count()} images indexed in {time.monotonic() - started:.2f} s "
                    f"({self._index.backend})")
        self._observer = self._watch() if auto_reload else None

    # ---------------------------------------------------------------- opening
    def _open(self, db_url: str | None) -> StoreIndex:
        if db_url:
            return StoreIndex(db_url)
        path = os.path.join(self._root, SQLITE_NAME)
        try:
            index = StoreIndex(sqlite_url(self._root))
            with index.reading() as c:
                ok = c.exec_driver_sql("PRAGMA quick_check").scalar()
            if ok != "ok":
                raise sa.exc.DatabaseError("PRAGMA quick_check", None, Exception(str(ok)[:200]))
            return index
        except StoreIndexSchemaError:
            raise
        except (sa.exc.DatabaseError, StoreIndexError) as e:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.replace(path + suffix, f"{path}.corrupt-{stamp}{suffix}")
            logger.warning(f"datastore index {path} is unreadable ({str(e)[:200]}); moved to {path}.corrupt-{stamp} "
                           "and rebuilt from the files in the store (image info and scores it held are lost)")
            return StoreIndex(sqlite_url(self._root))

    def _check_store_identity(self) -> None:
        """One database indexes one store: a store keeps a random id in ``.gazelabel_store_id`` and the
        database remembers the first store it indexed, so a shared database (``--db``) pointed at another
        store is refused instead of having its index reconciled away."""
        id_path = os.path.join(self._root, STORE_ID_FILE)
        if not os.path.exists(id_path):
            atomic_write(id_path, uuid.uuid4().hex + "\n")
        with open(id_path) as f:
            store_id = f.read().strip()
        known = self._index.get_meta("store_id")
        if known is None:
            self._index.set_meta("store_id", store_id)
        elif known != store_id:
            raise StoreIndexError(f"index database {self._index.shown}: it indexes another store (id {known[:8]}…, "
                                  f"this store {self._root} is {store_id[:8]}…); give each store its own database")

    def _migrate_legacy_index(self) -> None:
        """Import MONAI Label's ``datastore_v2.json`` once: its image and label info (scores, strategy stamps)."""
        path = os.path.join(self._root, LEGACY_INDEX)
        if not os.path.exists(path) or self._read_only:
            return
        entries: dict[str, dict[str, Any]] = {}
        try:
            with open(path, "rb") as f:
                raw = json.loads(f.read())
            objects = raw.get("objects", {}) if isinstance(raw, dict) else None
            if not isinstance(objects, dict):
                raise ValueError("not a datastore index object")
        except (OSError, ValueError, RecursionError) as e:
            aside = f"{path}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(path, aside)
            logger.warning(f"datastore index {path} is unreadable ({type(e).__name__}: {str(e)[:200]}); moved to "
                           f"{aside} and rebuilt from the files in the store")
            return
        for image_id, entry in objects.items():
            problem = CaseDatastore._entry_problem(image_id, entry)
            if problem:
                logger.warning(f"datastore index: skipping the entry of {str(image_id)[:80]!r} ({problem}); it is "
                               "re-listed from its files with fresh info")
                continue
            entries[image_id] = {"ext": entry["image"]["ext"], "info": dict(entry["image"].get("info") or {}),
                                 "labels": {t: {"ext": lab["ext"], "info": dict(lab.get("info") or {})}
                                            for t, lab in (entry.get("labels") or {}).items()}}
        self._index.import_entries(entries)
        for key in ("name", "description"):
            if isinstance(raw.get(key), str):
                self._index.set_meta(key, raw[key][:1000])
        os.replace(path, path + ".migrated")
        logger.info(f"datastore: imported {len(entries)} entries of {path} into the index; the file is now "
                    f"{LEGACY_INDEX}.migrated")

    def _watch(self):
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog comes with monailabel
            return None
        store = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.is_directory or event.event_type in READ_EVENTS:
                    return
                for path in {getattr(event, "src_path", None), getattr(event, "dest_path", None)} - {None, ""}:
                    try:
                        store.sync_file(os.fsdecode(path))
                    except Exception as e:  # a watcher must never die on one odd file
                        logger.warning(f"datastore watcher: {path}: {type(e).__name__}: {e}")

        observer = Observer()
        observer.daemon = True
        try:
            try:  # the kernel is not even asked for read events (watchdog >= 4: event_filter)
                from watchdog.events import (FileClosedEvent, FileCreatedEvent, FileDeletedEvent, FileModifiedEvent,
                                             FileMovedEvent)

                observer.schedule(Handler(), self._root, recursive=True, event_filter=[
                    FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent])
            except (ImportError, TypeError):
                observer.schedule(Handler(), self._root, recursive=True)
            observer.start()
        except OSError as e:
            logger.warning(f"datastore: cannot watch {self._root} ({e}); files added by other tools appear at the "
                           "next start or refresh")
            return None
        return observer

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
        self._index.close()

    # ---------------------------------------------------------------- files <-> index
    def _image_path(self, image_id: str, ext: str) -> str:
        return os.path.join(self._root, image_id + ext)

    def _label_path(self, image_id: str, tag: str, ext: str = ".json") -> str:
        return os.path.join(self._root, "labels", tag, image_id + ext)

    def refresh(self) -> None:
        scan_folder(self._index, self._root, IMAGE_EXTENSIONS, LABEL_EXTENSIONS, is_safe_id)

    def sync_file(self, path: str) -> None:
        """Index one file's creation, change or removal (the watcher's event), without a folder scan.

        Only file facts are written, never info: the event of a file this server just wrote may be handled
        before or after the save's own row write, and must not replace the info that save stored."""
        rel = os.path.relpath(os.path.abspath(path), self._root).split(os.sep)
        if len(rel) == 1:
            parts = _split(rel[0], IMAGE_EXTENSIONS)
            if not parts or not is_safe_id(parts[0]) or rel[0].startswith("."):
                return
            image_id, ext = parts
            if not os.path.isfile(path):
                if self._index.has_image(image_id) and not any(
                        os.path.exists(self._image_path(image_id, e)) for e in (ext, ext.lower(), ext.upper())):
                    self._index.remove_image(image_id)
                return
            st = os.stat(path)
            row = self._index.image(image_id)
            if row is None:
                self._index.apply_scan(new_images=[{"id": image_id, "ext": ext, "mtime": st.st_mtime, "size": st.st_size,
                                                    "info": json.dumps({"ts": int(time.time()), "name": rel[0]})}])
            elif (row["ext"], row["mtime"], row["size"]) != (ext, st.st_mtime, st.st_size):
                self._index.apply_scan(changed_images=[{"id": image_id, "ext": ext, "mtime": st.st_mtime,
                                                        "size": st.st_size, "stale": True}])
        elif len(rel) == 3 and rel[0] == "labels":
            parts = _split(rel[2], LABEL_EXTENSIONS)
            tag = rel[1]
            if not parts or not is_safe_id(parts[0]) or not is_safe_id(tag):
                return
            image_id, ext = parts
            if not os.path.isfile(path):
                if self._index.label(image_id, tag) is not None:
                    self._index.remove_label(image_id, tag)
                return
            if not self._index.has_image(image_id):
                return
            mtime = os.stat(path).st_mtime
            row = self._index.label(image_id, tag)
            if row is None:
                self._index.apply_scan(new_labels=[{"image_id": image_id, "tag": tag, "ext": ext, "mtime": mtime,
                                                    "info": json.dumps({"ts": int(time.time()), "name": rel[2]})}])
            elif row["mtime"] != mtime:
                self._index.apply_scan(changed_labels=[{"image_id": image_id, "tag": tag, "ext": ext, "mtime": mtime}])

    def _require_image(self, image_id: str) -> dict[str, Any]:
        check_id(image_id)
        row = self._index.image(image_id)
        if row is None:
            raise ImageNotFoundException(f"no image with id {image_id!r} in the datastore")
        return row

    # ---------------------------------------------------------------- names
    def name(self) -> str:
        return self._index.get_meta("name", "new-dataset")

    def set_name(self, name: str):
        self._index.set_meta("name", str(name)[:200])

    def description(self) -> str:
        return self._index.get_meta("description", "New Dataset")

    def set_description(self, description: str):
        self._index.set_meta("description", str(description)[:1000])

    # ---------------------------------------------------------------- listing
    def datalist(self, full_path: bool = True) -> list[dict[str, Any]]:
        out = []
        for image_id, ext, label_ext in self._index.labelled_pairs(DefaultLabelTag.FINAL):
            image = os.path.realpath(self._image_path(image_id, ext))
            label = os.path.realpath(self._label_path(image_id, DefaultLabelTag.FINAL, label_ext))
            out.append({"image": image, "label": label} if full_path else
                       {"image": os.path.relpath(image, self._root), "label": os.path.relpath(label, self._root)})
        return out

    def list_images(self) -> list[str]:
        return self._index.ids()

    def get_labeled_images(self, label_tag: str | None = None, labels=None) -> list[str]:
        return self._index.labelled_ids(label_tag or DefaultLabelTag.FINAL, True)

    def get_unlabeled_images(self, label_tag: str | None = None, labels=None) -> list[str]:
        return self._index.labelled_ids(label_tag or DefaultLabelTag.FINAL, False)

    def status(self) -> dict[str, Any]:
        return {"total": self._index.count(), "completed": self._index.labelled_count(DefaultLabelTag.FINAL),
                "label_tags": self._index.tag_counts()}

    def _entry(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"image": {"ext": row["ext"], "info": row["info"]},
                "labels": {t: {"ext": lab["ext"], "info": lab["info"]} for t, lab in row["labels"].items()}}

    def json(self) -> dict[str, Any]:
        """The whole index in ``datastore_v2.json``'s shape (``GET /datastore/?output=all``)."""
        return {"name": self.name(), "description": self.description(), "images_dir": ".", "labels_dir": "labels",
                "objects": {r["id"]: self._entry(r) for r in self._index.rows()}}

    def page(self, offset: int, limit: int) -> dict[str, Any]:
        """One page of the index in id order: ``{"total", "offset", "limit", "objects"}``."""
        rows = self._index.rows(offset=offset, limit=limit)
        return {"total": self._index.count(), "offset": offset, "limit": limit,
                "objects": {r["id"]: self._entry(r) for r in rows}}

    # ---------------------------------------------------------------- images
    def get_image(self, image_id: str, params=None) -> Any:
        uri = self.get_image_uri(image_id)
        if not uri:
            return None
        with open(uri, "rb") as f:
            return io.BytesIO(f.read())

    def get_image_uri(self, image_id: str) -> str:
        row = self._index.image(check_id(image_id))
        return os.path.realpath(self._image_path(image_id, row["ext"])) if row else ""

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        row = self._index.image(check_id(image_id))
        if row is None:
            return {}
        return {**row["info"], "path": os.path.realpath(self._image_path(image_id, row["ext"]))}

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        parts = _split(os.path.basename(image_filename), IMAGE_EXTENSIONS) or \
            (os.path.basename(image_filename), os.path.splitext(image_filename)[1])
        image_id = check_id(image_id or parts[0])
        facts = check_image_upload(image_filename, parts[1])
        ext = parts[1].lower()
        dest = check_inside(self._root, self._image_path(image_id, ext))
        info = {**client_info(image_info, "params"), **facts, "ts": int(time.time()), "name": image_id + ext}
        atomic_copy(image_filename, dest)
        st = os.stat(dest)
        self._index.put_image(image_id, ext, st.st_mtime, st.st_size, info)
        return image_id

    def remove_image(self, image_id: str) -> None:
        row = self._require_image(image_id)
        for tag, ext in self._index.labels_of(image_id).items():
            _remove(self._label_path(image_id, tag, ext))
        _remove(self._image_path(image_id, row["ext"]))
        self._index.remove_image(image_id)

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        self._require_image(image_id)
        if not self._index.update_image_info(image_id, client_info(info, "info")):
            raise ImageNotFoundException(f"no image with id {image_id!r} in the datastore")

    def update_image_info_internal(self, image_id: str, info: dict[str, Any]) -> None:
        """Image info written by the server itself (scores, strategy stamps): still finite JSON."""
        check_id(image_id)
        check_value(info, "info")
        if not self._index.update_image_info(image_id, info):
            raise ImageNotFoundException(f"no image with id {image_id!r} in the datastore")

    # ---------------------------------------------------------------- labels
    def get_label(self, label_id: str, label_tag: str, params=None) -> Any:
        uri = self.get_label_uri(label_id, label_tag)
        if not uri:
            return None
        with open(uri, "rb") as f:
            return io.BytesIO(f.read())

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        check_id(label_id, "label id")
        check_id(label_tag, "label tag")
        row = self._index.label(label_id, label_tag)
        return os.path.realpath(self._label_path(label_id, label_tag, row["ext"])) if row else ""

    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        return {tag: image_id for tag in self._index.labels_of(check_id(image_id))}

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        return self.get_labels_by_image_id(image_id).get(tag, "")

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        row = self._index.label(check_id(label_id, "label id"), check_id(label_tag, "label tag"))
        return row["info"] if row else {}

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        row = self._require_image(image_id)
        check_id(label_tag, "label tag")
        if not os.path.basename(label_filename).lower().endswith(LABEL_EXTENSIONS):
            ext = os.path.splitext(label_filename)[1]
            raise CaseError(f"label: send the label as a Case JSON file (.json), got a {ext or 'suffix-less'!r} file")
        dest = check_inside(self._root, self._label_path(image_id, label_tag))
        info = client_info(label_info, "params")
        case = read_label_upload(label_filename, image_id, self._stored_size(image_id, row))
        info["case"] = {"findings": len(case.findings), "boxes": len(case.boxes), "fixations": len(case.fixations),
                        "has_report": case.report is not None}
        info.update(ts=int(time.time()), name=image_id + ".json")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        atomic_write(dest, json.dumps(case.to_dict(), indent=1, allow_nan=False))
        self._index.put_label(image_id, label_tag, ".json", os.stat(dest).st_mtime, info,
                              release=label_tag == DefaultLabelTag.FINAL)
        return image_id

    def _stored_size(self, image_id: str, row: dict[str, Any]) -> tuple[int, int]:
        info = row["info"]
        if isinstance(info.get("width"), int) and isinstance(info.get("height"), int):
            return info["width"], info["height"]
        size = image_size(self._image_path(image_id, row["ext"]))
        self._index.update_image_info(image_id, {"width": int(size[0]), "height": int(size[1])})
        return size

    def remove_label(self, label_id: str, label_tag: str) -> None:
        check_id(label_id, "label id")
        check_id(label_tag, "label tag")
        row = self._index.label(label_id, label_tag)
        if row is None:
            raise LabelNotFoundException(f"no label {label_tag!r} of image {label_id!r} in the datastore")
        _remove(self._label_path(label_id, label_tag, row["ext"]))
        self._index.remove_label(label_id, label_tag)

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        check_id(label_id, "label id")
        check_id(label_tag, "label tag")
        if not self._index.update_label_info(label_id, label_tag, client_info(info, "info")):
            raise LabelNotFoundException(f"no label {label_tag!r} of image {label_id!r} in the datastore")

    def get_dataset_archive(self, limit_cases: int | None) -> str:
        raise NotImplementedError("GET /datastore/dataset is served by monailabel_app.routes.download_dataset")

    # ---------------------------------------------------------------- scores and claims
    @property
    def index(self) -> StoreIndex:
        return self._index

    def top_uncertain(self, model: str, mc_samples: int, holder: str = "", exclude=()) -> tuple[str, float] | None:
        """The unlabelled image with the highest stored score of this model that no one but ``holder`` has
        claimed (one indexed query)."""
        return self._index.top_uncertain(model, mc_samples, DefaultLabelTag.FINAL, holder, exclude)

    def random_unlabelled(self, holder: str = "", exclude=()) -> str | None:
        """A random unlabelled image no one but ``holder`` has claimed (one range query over a random key;
        see :meth:`StoreIndex.random_unlabelled` for how close to uniform it is)."""
        return self._index.random_unlabelled(DefaultLabelTag.FINAL, holder, exclude)

    def unscored(self, model: str, mc_samples: int, limit: int) -> list[str]:
        """Unlabelled images with no score of this model and ``mc_samples`` yet (missing or stale)."""
        return self._index.unscored_unlabelled(model, mc_samples, DefaultLabelTag.FINAL, limit)

    def claimed(self, holder: str = "") -> set[str]:
        """Images held by a live claim of anyone but ``holder`` (handed to an annotator who has not saved yet)."""
        return self._index.claimed(holder)

    def claim(self, image_id: str, holder: str, lease_s: float = DEFAULT_LEASE_S) -> bool:
        """Hand ``image_id`` to ``holder`` (released by a final label's save or after ``lease_s``)."""
        return self._index.claim(check_id(image_id), holder, lease_s)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


__all__ = ["IndexedCaseDatastore", "SCORE_KEY"]
