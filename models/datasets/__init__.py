"""Datasets as :class:`CaseSource` objects, whatever their on-disk format.

``open_source(path)`` detects the format:

=================  ====================================================================
case store         a folder with ``dataset.json`` or ``cases/`` (:class:`store.CaseStore`)
REFLACX            ``main_data/metadata_phase_*.csv`` (:mod:`reflacx`)
EGD-CXR            ``master_sheet.csv`` + ``fixations.csv`` (:mod:`egd_cxr`)
MIMIC-Eye          ``patient_<subject_id>/`` folders or ``spreadsheets/`` (:mod:`mimic_eye`)
IU X-ray reports   the keyword ``iu-xray`` or a path to ``NLMCXR_reports.tgz`` (:mod:`iu_xray`)
=================  ====================================================================

Readers are imported on use so ``import models.datasets`` stays light.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from models.datasets.base import CaseSource, DatasetError, hash_split

IU_KEYWORD = "iu-xray"
FORMATS = (
    "case store (dataset.json or cases/)",
    "REFLACX (main_data/metadata_phase_*.csv)",
    "EGD-CXR (master_sheet.csv + fixations.csv)",
    "MIMIC-Eye (patient_* folders or spreadsheets/)",
    f"IU X-ray ('{IU_KEYWORD}' or NLMCXR_reports.tgz)",
)


def detect_format(path: str | Path) -> str:
    """One of "store", "reflacx", "egd-cxr", "mimic-eye", "iu-xray"; DatasetError when none fits."""
    text = str(path)
    if text == IU_KEYWORD or (text.endswith(".tgz") and Path(text).name.startswith("NLMCXR_reports")):
        return "iu-xray"
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_dir():
        from models.datasets.reflacx import find_metadata

        if (p / "dataset.json").is_file() or (p / "cases").is_dir():
            return "store"
        if find_metadata(p):
            return "reflacx"
        if (p / "master_sheet.csv").is_file() and (p / "fixations.csv").is_file():
            return "egd-cxr"
        if (p / "spreadsheets").is_dir() or any(c.is_dir() and c.name.startswith("patient_") for c in p.iterdir()):
            return "mimic-eye"
    raise DatasetError(f"{p}: not a recognised dataset; looked for: {'; '.join(FORMATS)}")


def open_source(path: str | Path, *, images: str | Path | None = None, **opts) -> CaseSource:
    """Read any supported dataset into a :class:`CaseSource` (see the module table).

    Args:
        path: dataset folder, ``NLMCXR_reports.tgz``, or the keyword ``"iu-xray"``.
        images: image root for REFLACX / EGD-CXR / MIMIC-Eye (MIMIC-CXR or MIMIC-CXR-JPG); ignored by the
            case store (images live in it) and IU X-ray (no pixels).
        opts: reader options, e.g. ``phases=(3,)`` for REFLACX or ``selection="all"`` for IU X-ray.

    Raises:
        DatasetError: unknown format, missing files or columns (the message names the file).
        ValueError: an option the reader does not take.
    """
    fmt = detect_format(path)
    if fmt == "store":
        from models.datasets.store import CaseStore

        if opts:
            raise ValueError(f"{path}: a case store takes no reader options, got {', '.join(opts)}")
        return CaseStore(path).source()
    if fmt == "iu-xray":
        from models.datasets.iu_xray import read_iu_xray as reader

        first = None if str(path) == IU_KEYWORD else path
    else:
        from models.datasets import egd_cxr, mimic_eye, reflacx

        reader = {"reflacx": reflacx.read_reflacx, "egd-cxr": egd_cxr.read_egd_cxr, "mimic-eye": mimic_eye.read_mimic_eye}[fmt]
        first, opts = path, {"images": images, **opts}
    accepted = inspect.signature(reader).parameters
    unknown = [k for k in opts if k not in accepted or k == "path"]
    if unknown:
        raise ValueError(f"{path}: the {fmt} reader does not take option(s) {', '.join(unknown)}")
    return reader(first, **opts)


__all__ = ["CaseSource", "DatasetError", "hash_split", "open_source", "detect_format", "FORMATS"]
