"""The Cases behind a datastore folder: annotator labels (``labels/final``) over dataset records (``cases/``).

An annotator's label supersedes the record of the same image, except that recorded gaze (fixations and
other readers) comes from the record when the label has none: an annotation tool may save findings and
boxes without the eye-tracking data it never saw. When the label's fixations are the predicted scanpath that
was on screen (:func:`models.recorded_gaze.fixations_are_predicted`), they stay, marked so, and the
record's fixations join the readers (as ``record``): a model's scanpath is never passed off as a reader's,
nor does it hide one. Annotators' own recorded readings (``readers`` of the label) are kept beside the
record's.

A label file that does not parse (written by another tool, or torn before writes were atomic) is moved to
``quarantine/`` with a logged warning, and the image counts as unlabelled: it never blocks a training.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from models.datasets.base import DatasetError
from models.datasets.store import MANIFEST, CaseStore
from models.recorded_gaze import fixations_are_predicted
from models.schema import Case, CaseError


RECORD_READER = "record"  # the reader key of a record's fixations when the label's own are a prediction
SHARED_CASES = 4096  # Cases :meth:`Records.shared_case` remembers (least recently used dropped first)


def _file_facts(path) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class Records:
    """Read-only view of the case store at ``root`` (the local datastore or the DICOMweb cache folder)."""

    def __init__(self, root: str):
        self.store = CaseStore(root)
        self._shared: OrderedDict[str, tuple[tuple, Case]] = OrderedDict()
        self._shared_lock = threading.Lock()

    def _load(self, image_id: str, prefer_label: bool) -> Case | None:
        try:
            return self.store.case(image_id, prefer_label=prefer_label)
        except (DatasetError, CaseError):
            return None

    def label(self, image_id: str) -> Case | None:
        """The annotator's final label (gaze filled from the record); None when there is none or it was
        unreadable (then it is quarantined)."""
        path = self.store.label_path(image_id)
        if not path.exists():
            return None
        try:
            case = self.store.case(image_id, prefer_label=True)
        except DatasetError:
            return None
        except CaseError as e:
            try:
                self.store.quarantine(path, f"unreadable label ({e})")
            except FileNotFoundError:  # another request quarantined it first
                pass
            return None
        record = self._load(image_id, prefer_label=False) if (not case.fixations or fixations_are_predicted(case)) else None
        if record is not None and not case.fixations:
            case.fixations, case.readers = list(record.fixations), {**record.readers, **case.readers}
        elif record is not None:
            # The label's fixations are the predicted scanpath that was on screen: they stay (marked so by
            # its prediction), and the record's human gaze joins the readers.
            human = {RECORD_READER: list(record.fixations)} if record.fixations else {}
            case.readers = {**human, **record.readers, **case.readers}
        return case

    def case(self, image_id: str) -> Case | None:
        """The label (gaze filled from the record) or the record of an image; None for unknown ids."""
        return self.label(image_id) or self._load(image_id, prefer_label=False)

    def shared_case(self, image_id: str) -> Case | None:
        """:meth:`case`, parsed again only when the label, the record or the manifest changed (three
        ``stat`` calls instead of reading and validating the JSON: about 1 ms of every inference). The same
        object goes to every caller, who must not change it: the infer tasks only read its recorded gaze
        and synthetic flag; anything that edits a Case uses :meth:`case`."""
        facts = tuple(_file_facts(p) for p in (self.store.label_path(image_id), self.store.record_path(image_id),
                                                self.store.root / MANIFEST))
        with self._shared_lock:
            hit = self._shared.get(image_id)
            if hit is not None and hit[0] == facts:
                self._shared.move_to_end(image_id)
                return hit[1]
        case = self.case(image_id)
        if case is None:  # an id the store does not have (yet): asked again next time
            return None
        with self._shared_lock:
            self._shared[image_id] = (facts, case)
            self._shared.move_to_end(image_id)
            while len(self._shared) > SHARED_CASES:
                self._shared.popitem(last=False)
        return case

    def synthetic(self) -> bool:
        try:
            return bool(self.store.manifest.get("synthetic"))
        except DatasetError:
            return False
