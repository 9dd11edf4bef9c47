"""Find MIMIC-CXR images under a user-given root, whatever part of the published path the root already holds.

REFLACX's ``image`` column holds ``physionet.org/files/mimic-cxr/2.0.0/files/p18/p18004941/s58821758/<dicom_id>.dcm``
and EGD-CXR's ``path`` column ``files/p18/.../<dicom_id>.dcm``; users point ``images=`` at any level of that
tree (``.../mimic-cxr/2.0.0``, ``.../files``) or at a flat folder, and often hold MIMIC-CXR-JPG (``.jpg``)
instead of the DICOMs. Both have the same pixel grid, so gaze coordinates stay valid.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from models.datasets.base import DatasetError

IMAGE_SUFFIXES = (".dcm", ".jpg", ".jpeg", ".png")


class ImageResolver:
    """Map (published relative path, dicom_id) to an existing file under ``root``; "" when not found.

    Direct candidates are tried first; a one-time walk of ``root`` indexed by file stem is the fallback, so a
    flat folder of ``<dicom_id>.dcm|.jpg|.png`` works too.
    """

    def __init__(self, root: str | Path | None):
        self.root = Path(root).expanduser() if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise DatasetError(f"{self.root}: images root is not a folder")
        self._index: dict[str, Path] | None = None
        self.missing = 0

    def _candidates(self, hint: str) -> list[Path]:
        parts = PurePosixPath(hint.replace("\\", "/")).parts
        tails = [parts]
        for i, part in enumerate(parts):
            if part == "files" and i + 1 < len(parts):
                tails += [parts[i:], parts[i + 1 :]]
        out = []
        for tail in tails:
            rel = Path(*tail)
            out.append(self.root / rel)
            for suffix in IMAGE_SUFFIXES:
                out.append(self.root / rel.with_suffix(suffix))
        return out

    def _by_stem(self, dicom_id: str) -> Path | None:
        if self._index is None:
            self._index = {}
            for folder, _dirs, files in os.walk(self.root):
                for name in files:
                    stem, ext = os.path.splitext(name)
                    if ext.lower() in IMAGE_SUFFIXES:
                        # Prefer DICOM (the original) when both exist.
                        if stem not in self._index or ext.lower() == ".dcm":
                            self._index[stem] = Path(folder) / name
        return self._index.get(dicom_id)

    def resolve(self, hint: str, dicom_id: str) -> str:
        """Absolute path of the image, or "" (counted in ``missing``) when ``root`` is unset or has no match."""
        if self.root is None:
            return ""
        for p in self._candidates(hint) if hint else []:
            if p.is_file():
                return str(p.resolve())
        found = self._by_stem(dicom_id)
        if found is None:
            self.missing += 1
            return ""
        return str(found.resolve())

    def warning(self, total: int) -> str | None:
        if self.root is None or not self.missing:
            return None
        return f"{self.root}: {self.missing} of {total} images not found (cases kept with image.path = '')"


def image_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` from the file header (DICOM Rows/Columns or the PNG/JPG header), None if unreadable."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".dcm":
            import pydicom

            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
            return int(ds.Columns), int(ds.Rows)
        from PIL import Image

        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except Exception:  # any unreadable header just means "size unknown"
        return None
