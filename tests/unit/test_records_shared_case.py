"""Records.shared_case (monailabel_app/lib/datastores/records.py): the infer tasks' parsed record, kept
until its label, record or manifest file changes. SYNTHETIC images (zeros)."""

from __future__ import annotations

import numpy as np

from models.datasets.store import CaseStore
from models.schema import Case, Fixation
from monailabel_app.lib.datastores.records import Records


def _store(tmp_path) -> CaseStore:
    store = CaseStore(tmp_path / "store")
    case = Case(id="a")
    case.fixations = [Fixation(10.0, 12.0, 0.3)]
    store.add(case, np.zeros((32, 32), np.float32))
    return store


def test_a_shared_case_is_parsed_once_and_again_after_any_of_its_files_changes(tmp_path):
    store = _store(tmp_path)
    records = Records(str(store.root))
    first = records.shared_case("a")
    assert first is records.shared_case("a")  # unchanged files: the same parsed Case, no second read
    assert [f.x for f in first.fixations] == [10.0]

    label = Case(id="a")
    label.fixations = [Fixation(20.0, 22.0, 0.4)]
    store.save_label(label)  # an annotator's label supersedes the record
    labelled = records.shared_case("a")
    assert labelled is not first and [f.x for f in labelled.fixations] == [20.0]

    store.label_path("a").unlink()  # label removed: the record again
    assert [f.x for f in records.shared_case("a").fixations] == [10.0]

    record = Case(id="a")
    record.fixations = [Fixation(30.0, 31.0, 0.2)]
    store.add(record, np.zeros((32, 32), np.float32))  # the record rewritten
    assert [f.x for f in records.shared_case("a").fixations] == [30.0]

    before = records.shared_case("a")
    store.write_manifest(synthetic=True)  # the manifest decides the synthetic flag
    after = records.shared_case("a")
    assert after is not before and after.image.synthetic


def test_an_unknown_id_is_not_remembered(tmp_path):
    store = _store(tmp_path)
    records = Records(str(store.root))
    assert records.shared_case("b") is None
    store.add(Case(id="b"), np.zeros((32, 32), np.float32))
    assert records.shared_case("b") is not None  # the image arrived: found at once
