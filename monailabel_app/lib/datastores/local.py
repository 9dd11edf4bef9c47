"""The case store as a MONAI Label datastore: no path outside the store, no torn file after a crash.

``LocalDatastore`` (0.8.5) joins image ids and label tags into paths unchecked, copies labels with
``shutil.copy`` over the previous version and rewrites its index ``datastore_v2.json`` in place, so a
``kill -9`` at the wrong moment leaves a 0-byte label or a truncated index that stops the next start. This
subclass:

- checks every id and tag (:mod:`monailabel_app.lib.ids`), accepts only readable CR/DX/PNG/JPG radiographs as
  images and only valid Cases as labels (stored re-serialised, with ``id`` = the image id), and lists
  ``*.json`` labels that exist on disk;
- writes images, labels and the index atomically (:mod:`models.files`: temp file, fsync, rename), so each
  file is always its old or its new version;
- loads the index defensively: an unreadable index is set aside as ``datastore_v2.json.corrupt-<time>`` and
  rebuilt from the files; entries with unsafe ids, unknown extensions or non-JSON info (NaN, Infinity, deep
  nesting) are skipped with a warning instead of breaking every listing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from filelock import FileLock
from monailabel.datastore.local import DataModel, ImageLabelModel, LocalDatastore, LocalDatastoreModel
from monailabel.interfaces.exception import ImageNotFoundException

from models.files import atomic_copy, atomic_json, atomic_write, remove_partials
from models.imaging import image_size
from models.schema import CaseError
from models.strict_json import JSONValueError, check_value

from ..ids import check_id, check_inside, is_safe_id
from .uploads import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, check_image_upload, read_label_upload

logger = logging.getLogger(__name__)

# LocalDatastore keeps its index in memory and was written for one event loop (plus the file watcher).
# The GazeLabel server calls it from worker threads, so these methods hold one lock per datastore.
SERIALIZED = ("datalist", "get_image_uri", "get_image_info", "get_label_uri", "get_label_info", "get_labeled_images",
              "get_unlabeled_images", "list_images", "status", "json", "add_image", "remove_image", "save_label",
              "remove_label", "update_image_info", "update_label_info", "refresh")
# Keys of image and label info that the datastore itself owns; a client cannot set them.
OWNED_INFO_KEYS = ("name", "ts", "ext", "path", "case")


def _serialized(cls):
    for name in SERIALIZED:
        method = getattr(cls, name)

        def locked(self, *args, __method=method, **kwargs):
            with self._mutex:
                return __method(self, *args, **kwargs)

        locked.__name__, locked.__doc__ = name, method.__doc__
        setattr(cls, name, locked)
    return cls


def client_info(info: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """Info a client sends with an upload or an info update: plain finite JSON, no datastore-owned keys."""
    info = dict(info or {})
    for key in OWNED_INFO_KEYS:
        if key in info:
            raise CaseError(f"{what}.{key}: set by the datastore itself; leave it out")
    try:
        check_value(info, what)
    except JSONValueError as e:
        raise CaseError(str(e)) from None
    return info


@_serialized
class CaseDatastore(LocalDatastore):
    """A hardened local datastore over a case store folder (``<root>/<id>.png|.dcm``, ``labels/<tag>/<id>.json``)."""

    def __init__(self, root: str, extensions=("*.png", "*.dcm"), auto_reload: bool = False, read_only: bool = False):
        self._mutex = threading.RLock()
        remove_partials(root, older_than_s=60.0)  # leftovers of writes killed between write and rename
        super().__init__(root, extensions=list(extensions), auto_reload=auto_reload, read_only=read_only)

    # ---------------------------------------------------------------- the index
    def _init_from_datastore_file(self, throw_exception=False):
        with FileLock(self._lock_file):
            path = self._datastore_config_path
            if not os.path.exists(path):
                return
            ts = os.stat(path).st_mtime
            if self._config_ts == ts:
                return
            self._datastore = self._read_index(path)
            self._datastore.base_path = self._datastore_path
            self._config_ts = os.stat(path).st_mtime if os.path.exists(path) else 0

    def _read_index(self, path: str) -> LocalDatastoreModel:
        """The index at ``path`` with every bad entry skipped; a wholly unreadable index is set aside."""
        empty = LocalDatastoreModel(name="new-dataset", description="New Dataset", images_dir=".", labels_dir="labels")
        try:
            with open(path, "rb") as f:
                raw = json.loads(f.read())  # lenient here: a stored NaN is found and skipped below
            if not isinstance(raw, dict) or not isinstance(raw.get("objects", {}), dict):
                raise ValueError("not a datastore index object")
        except (OSError, ValueError, RecursionError) as e:
            aside = f"{path}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(path, aside)
            logger.warning(f"datastore index {path} is unreadable ({type(e).__name__}: {str(e)[:200]}); moved to "
                           f"{aside} and rebuilt from the files in the store")
            return empty
        objects = {}
        for image_id, entry in raw.get("objects", {}).items():
            problem = self._entry_problem(image_id, entry)
            if problem:
                logger.warning(f"datastore index: skipping the entry of {str(image_id)[:80]!r} ({problem}); it is "
                               "re-listed from its files with fresh info")
                continue
            objects[image_id] = ImageLabelModel.model_validate(entry)
        return LocalDatastoreModel(name=str(raw.get("name") or empty.name)[:200],
                                   description=str(raw.get("description") or empty.description)[:1000],
                                   images_dir=".", labels_dir="labels", objects=objects)

    @staticmethod
    def _entry_problem(image_id: Any, entry: Any) -> str | None:
        if not is_safe_id(image_id if isinstance(image_id, str) else None):
            return "unsafe image id"
        try:
            check_value(entry, "entry", max_depth=24)
            image = entry["image"]
            if image.get("ext", "").lower() not in IMAGE_EXTENSIONS:
                return f"image extension {image.get('ext')!r} is not accepted"
            for tag, label in (entry.get("labels") or {}).items():
                if not is_safe_id(tag) or label.get("ext", "").lower() not in LABEL_EXTENSIONS:
                    return f"label {tag!r} has an unsafe tag or extension"
            ImageLabelModel.model_validate(entry)
        except JSONValueError as e:
            return str(e)
        except Exception as e:  # missing keys, wrong types
            return f"malformed entry ({type(e).__name__})"
        return None

    def _update_datastore_file(self, lock=True):
        def write():
            self._ignore_event_config = True
            atomic_json(self._datastore_config_path, self._datastore.model_dump(exclude={"base_path"}), indent=None)
            self._config_ts = os.stat(self._datastore_config_path).st_mtime

        if lock:
            with FileLock(self._lock_file):
                write()
        else:
            write()

    # ---------------------------------------------------------------- listing
    def _list_files(self, path, patterns):
        # Labels are Case JSON files; the image folder must not list dataset.json / datastore_v2.json as images.
        if os.path.realpath(path) != os.path.realpath(self._datastore.image_path()):
            patterns = [*patterns, *(f"*{e}" for e in LABEL_EXTENSIONS)]
        return super()._list_files(path, patterns)

    def _require_image(self, image_id: str) -> None:
        check_id(image_id)
        if image_id not in self._datastore.objects:
            raise ImageNotFoundException(f"no image with id {image_id!r} in the datastore")

    # ---------------------------------------------------------------- images
    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        derived_id, ext = self._to_id(os.path.basename(image_filename))
        image_id = check_id(image_id or derived_id)
        facts = check_image_upload(image_filename, ext)
        ext = ext.lower()
        dest = check_inside(self._datastore_path, os.path.join(self._datastore.image_path(), image_id + ext))
        info = {**client_info(image_info, "params"), **facts, "ts": int(time.time()), "name": image_id + ext}
        with FileLock(self._lock_file):
            atomic_copy(image_filename, dest)
            self._datastore.objects[image_id] = ImageLabelModel(image=DataModel(info=info, ext=ext))
            self._update_datastore_file(lock=False)
        return image_id

    def remove_image(self, image_id: str) -> None:
        self._require_image(image_id)
        super().remove_image(image_id)

    def get_image_uri(self, image_id: str) -> str:
        return super().get_image_uri(check_id(image_id))

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        return super().get_image_info(check_id(image_id))

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        self._require_image(image_id)
        super().update_image_info(image_id, client_info(info, "info"))

    def update_image_info_internal(self, image_id: str, info: dict[str, Any]) -> None:
        """Image info written by the server itself (scores, strategy stamps): still finite JSON."""
        self._require_image(image_id)
        check_value(info, "info")
        super().update_image_info(image_id, info)

    # ---------------------------------------------------------------- labels
    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        self._require_image(image_id)
        check_id(label_tag, "label tag")
        _, ext = self._to_id(os.path.basename(label_filename))
        if ext.lower() not in LABEL_EXTENSIONS:
            raise CaseError(f"label: send the label as a Case JSON file (.json), got a {ext or 'suffix-less'!r} file")
        label_dir = self._datastore.label_path(label_tag)
        dest = check_inside(self._datastore_path, os.path.join(label_dir, image_id + ".json"))
        info = client_info(label_info, "params")
        case = read_label_upload(label_filename, image_id, self._stored_size(image_id))
        info["case"] = {"findings": len(case.findings), "boxes": len(case.boxes), "fixations": len(case.fixations),
                        "has_report": case.report is not None}
        info.update(ts=int(time.time()), name=image_id + ".json")
        with FileLock(self._lock_file):
            os.makedirs(label_dir, exist_ok=True)
            atomic_write(dest, json.dumps(case.to_dict(), indent=1, allow_nan=False))
            self._datastore.objects[image_id].labels[label_tag] = DataModel(info=info, ext=".json")
            self._update_datastore_file(lock=False)
        return image_id

    def _stored_size(self, image_id: str) -> tuple[int, int]:
        """``(width, height)`` of a stored image: from its info, else from the file's header."""
        info = self._datastore.objects[image_id].image.info
        if isinstance(info.get("width"), int) and isinstance(info.get("height"), int):
            return info["width"], info["height"]
        return image_size(self.get_image_uri(image_id))

    def remove_label(self, label_id: str, label_tag: str) -> None:
        check_id(label_id, "label id")
        check_id(label_tag, "label tag")
        super().remove_label(label_id, label_tag)

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        return super().get_label_uri(check_id(label_id, "label id"), check_id(label_tag, "label tag"))

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        return super().get_label_info(check_id(label_id, "label id"), check_id(label_tag, "label tag"))

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        super().update_label_info(check_id(label_id, "label id"), check_id(label_tag, "label tag"),
                                  client_info(info, "info"))

