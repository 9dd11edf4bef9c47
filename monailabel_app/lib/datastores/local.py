"""The case store as a MONAI Label datastore, with the path-traversal holes of ``LocalDatastore`` closed.

``LocalDatastore`` (0.8.5) joins image ids and label tags into paths unchecked. This subclass checks every
id and tag (:mod:`monailabel_app.lib.ids`), accepts only readable CR/DX/PNG/JPG radiographs as images and
only valid Cases as labels (stored re-serialised, with ``id`` = the image id), and lists ``*.json`` labels
that exist on disk (the case store layout keeps images at the top level and JSON only below ``labels/``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from typing import Any

from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.exception import ImageNotFoundException

from models.schema import CaseError

from ..ids import check_id, check_inside
from .uploads import LABEL_EXTENSIONS, check_image_upload, read_label_upload


# LocalDatastore keeps its index in memory and was written for one event loop (plus the file watcher).
# The GazeLabel server calls it from worker threads, so these methods hold one lock per datastore.
SERIALIZED = ("datalist", "get_image_uri", "get_image_info", "get_label_uri", "get_label_info", "get_labeled_images",
              "get_unlabeled_images", "list_images", "status", "json", "add_image", "remove_image", "save_label",
              "remove_label", "update_image_info", "update_label_info", "refresh")


def _serialized(cls):
    for name in SERIALIZED:
        method = getattr(cls, name)

        def locked(self, *args, __method=method, **kwargs):
            with self._mutex:
                return __method(self, *args, **kwargs)

        locked.__name__, locked.__doc__ = name, method.__doc__
        setattr(cls, name, locked)
    return cls


@_serialized
class CaseDatastore(LocalDatastore):
    """A hardened local datastore over a case store folder (``<root>/<id>.png|.dcm``, ``labels/<tag>/<id>.json``)."""

    def __init__(self, root: str, extensions=("*.png", "*.dcm"), auto_reload: bool = False, read_only: bool = False):
        self._mutex = threading.RLock()
        super().__init__(root, extensions=list(extensions), auto_reload=auto_reload, read_only=read_only)

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
        check_inside(self._datastore_path, os.path.join(self._datastore.image_path(), image_id + ext.lower()))
        info = {**(image_info or {}), **facts}
        if ext == ext.lower():
            return super().add_image(image_id, image_filename, info)
        with tempfile.TemporaryDirectory() as tmp:  # store upper-case suffixes as the listed lower-case ones
            normalised = os.path.join(tmp, f"upload{ext.lower()}")
            shutil.copy(image_filename, normalised)
            return super().add_image(image_id, normalised, info)

    def remove_image(self, image_id: str) -> None:
        self._require_image(image_id)
        super().remove_image(image_id)

    def get_image_uri(self, image_id: str) -> str:
        return super().get_image_uri(check_id(image_id))

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        return super().get_image_info(check_id(image_id))

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        self._require_image(image_id)
        super().update_image_info(image_id, info)

    # ---------------------------------------------------------------- labels
    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        self._require_image(image_id)
        check_id(label_tag, "label tag")
        _, ext = self._to_id(os.path.basename(label_filename))
        if ext.lower() not in LABEL_EXTENSIONS:
            raise CaseError(f"label: send the label as a Case JSON file (.json), got a {ext or 'suffix-less'!r} file")
        check_inside(self._datastore_path, os.path.join(self._datastore.label_path(label_tag), image_id + ".json"))
        case = read_label_upload(label_filename, image_id)
        summary = {
            "findings": len(case.findings),
            "boxes": len(case.boxes),
            "fixations": len(case.fixations),
            "has_report": case.report is not None,
        }
        with tempfile.TemporaryDirectory() as tmp:
            # No dots before ".json": LocalDatastore takes every short dotted suffix as the extension, so a
            # DICOM UID as the file name would give "<uid>.<last part>.json".
            normalised = os.path.join(tmp, "label.json")
            with open(normalised, "w") as f:
                json.dump(case.to_dict(), f, indent=1)
            return super().save_label(image_id, normalised, label_tag, {**(label_info or {}), "case": summary})

    def remove_label(self, label_id: str, label_tag: str) -> None:
        check_id(label_id, "label id")
        check_id(label_tag, "label tag")
        super().remove_label(label_id, label_tag)

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        return super().get_label_uri(check_id(label_id, "label id"), check_id(label_tag, "label tag"))

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        return super().get_label_info(check_id(label_id, "label id"), check_id(label_tag, "label tag"))

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        super().update_label_info(check_id(label_id, "label id"), check_id(label_tag, "label tag"), info)
