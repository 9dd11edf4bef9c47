"""The Cases behind a datastore folder: annotator labels (``labels/final``) over dataset records (``cases/``).

An annotator's label supersedes the record of the same image, except that recorded gaze (fixations and
other readers) comes from the record when the label has none: an annotation tool may save findings and
boxes without the eye-tracking data it never saw.
"""

from __future__ import annotations

from models.datasets.base import DatasetError
from models.datasets.store import CaseStore
from models.schema import Case, CaseError


class Records:
    """Read-only view of the case store at ``root`` (the local datastore or the DICOMweb cache folder)."""

    def __init__(self, root: str):
        self.store = CaseStore(root)

    def _load(self, image_id: str, prefer_label: bool) -> Case | None:
        try:
            return self.store.case(image_id, prefer_label=prefer_label)
        except (DatasetError, CaseError):
            return None

    def case(self, image_id: str) -> Case | None:
        """The label (gaze filled from the record) or the record of an image; None for unknown ids."""
        case = self._load(image_id, prefer_label=True)
        if case is None or case.fixations or not self.store.has_label(image_id):
            return case
        record = self._load(image_id, prefer_label=False)
        if record is not None and record.fixations:
            case.fixations, case.readers = record.fixations, {**record.readers, **case.readers}
        return case

    def synthetic(self) -> bool:
        try:
            return bool(self.store.manifest.get("synthetic"))
        except DatasetError:
            return False
