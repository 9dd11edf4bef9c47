"""The case store: a MONAI Label local-datastore folder with a case JSON beside every image.

Layout::

    <root>/<id>.png | <id>.dcm        images (what MONAI Label lists as studies)
    <root>/cases/<id>.json            the dataset record (ground truth or import), a Case
    <root>/labels/final/<id>.json     the annotator's label, a Case (written by MONAI Label's PUT /datastore/label)
    <root>/dataset.json               {"name", "synthetic", "splits": {"train": [...], "val": [...], "test": [...]}}

An annotator's label supersedes the dataset record of the same image: they are the same kind of record.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from models.datasets.base import CaseSource, DatasetError
from models.files import atomic_json
from models.imaging import LoadedImage, read_image, write_dicom, write_png
from models.schema import Case, CaseError, load_case, save_case

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".dcm", ".jpg", ".jpeg", ".nii.gz", ".nii")
MANIFEST = "dataset.json"


def _image_id(path: Path) -> str | None:
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


class CaseStore:
    """Read and write a case store folder (see module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ reading
    @property
    def manifest(self) -> dict:
        path = self.root / MANIFEST
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: not valid JSON ({e})") from None

    def image_paths(self) -> dict[str, Path]:
        """Image id -> path, for every image file at the top level of the store."""
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder")
        out = {}
        for p in sorted(self.root.iterdir()):
            if p.is_file():
                image_id = _image_id(p)
                if image_id is not None:
                    out.setdefault(image_id, p)
        return out

    def ids(self) -> list[str]:
        return list(self.image_paths())

    def image_path(self, image_id: str) -> Path | None:
        """The image file of ``image_id``, or None: a few ``stat`` calls (the suffixes in their usual spellings),
        not a listing of the store, so a lookup costs the same in a store of 100,000 images as in one of 200.
        A file whose suffix has an unusual case (``.Png``) is found by the listing, as a last resort."""
        if not image_id or "/" in image_id or os.sep in image_id or image_id in (".", ".."):
            return None
        found = [p for suffix in IMAGE_SUFFIXES for spelling in (suffix, suffix.upper())
                 if (p := self.root / f"{image_id}{spelling}").is_file()]
        if found:  # the listing's choice when one id has two files: the first name in sorted order
            return min(found, key=lambda p: p.name)
        return self.image_paths().get(image_id) if self.root.is_dir() else None

    def record_path(self, image_id: str) -> Path:
        return self.root / "cases" / f"{image_id}.json"

    def label_path(self, image_id: str, tag: str = "final") -> Path:
        return self.root / "labels" / tag / f"{image_id}.json"

    def has_label(self, image_id: str, tag: str = "final") -> bool:
        return self.label_path(image_id, tag).exists()

    def quarantine(self, path: Path, reason: str) -> Path:
        """Move an unreadable label or record out of the way, to ``quarantine/<folder>/<name>.<time>``, and
        log why: one corrupt file must never block the listing or a training of the whole store."""
        path = Path(path)
        rel = path.resolve().relative_to(self.root.resolve())
        dest = self.root / "quarantine" / rel.parent / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        logger.warning(f"{path}: {reason}; moved to {dest}")
        return dest

    def case(self, image_id: str, *, prefer_label: bool = True) -> Case:
        """The annotator's label if there is one (and ``prefer_label``), else the dataset record, else an
        empty case for the image. ``case.image.path`` is set to the image's absolute path."""
        image_path = self.image_path(image_id)
        if image_path is None:
            if not self.root.is_dir():
                raise DatasetError(f"{self.root}: not a folder")
            raise DatasetError(f"{self.root}: no image with id {image_id!r}")
        return self._case_at(image_id, image_path, bool(self.manifest.get("synthetic")), prefer_label)

    def _case_at(self, image_id: str, image_path: Path, synthetic: bool, prefer_label: bool = True) -> Case:
        candidates = ([self.label_path(image_id)] if prefer_label else []) + [self.record_path(image_id)]
        case = None
        for p in candidates:
            if p.exists():
                case = load_case(p)
                break
        if case is None:
            case = Case(id=image_id)
        case.image.path = str(image_path.resolve())
        if synthetic:
            case.image.synthetic = True
        return case

    def load_image(self, image_id: str) -> LoadedImage:
        path = self.image_path(image_id)
        if path is None:
            raise DatasetError(f"{self.root}: no image with id {image_id!r}")
        return read_image(path)

    def source(self) -> CaseSource:
        """All cases as a :class:`CaseSource`; unreadable case files are reported, not fatal."""
        man = self.manifest
        cases, warnings = [], []
        synthetic = bool(man.get("synthetic"))
        for image_id, path in self.image_paths().items():
            try:
                cases.append(self._case_at(image_id, path, synthetic))
            except CaseError as e:
                warnings.append(str(e))
        return CaseSource(man.get("name", self.root.name), cases, man.get("splits", {}), bool(man.get("synthetic")), warnings)

    # ------------------------------------------------------------------ writing
    def write_manifest(self, **fields) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        man = {**self.manifest, **fields}
        return atomic_json(self.root / MANIFEST, man)

    def add(self, case: Case, array: np.ndarray, *, fmt: str = "png", dicom_kwargs: dict | None = None) -> Path:
        """Write an image (``(H, W)`` in [0, 1]) and its record; sets ``case.image`` path and size."""
        self.root.mkdir(parents=True, exist_ok=True)
        if fmt == "png":
            path = write_png(array, self.root / f"{case.id}.png", bits=16 if array.dtype != np.uint8 else 8)
        elif fmt == "dcm":
            path = write_dicom(array, self.root / f"{case.id}.dcm", **(dicom_kwargs or {}))
        else:
            raise ValueError(f"fmt must be 'png' or 'dcm', got {fmt!r}")
        case.image.path = path.name
        case.image.height, case.image.width = int(array.shape[0]), int(array.shape[1])
        save_case(case, self.record_path(case.id))
        return path

    def save_label(self, case: Case, tag: str = "final") -> Path:
        return save_case(case, self.label_path(case.id, tag))
