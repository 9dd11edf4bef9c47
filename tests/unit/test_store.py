import json

import numpy as np
import pytest
import torch

from models.datasets.base import CaseSource, DatasetError, hash_split
from models.datasets.store import CaseStore
from models.datasets.torch_data import CaseDataset, collate, letterbox_of
from models.schema import Box, Case, CaseError, Fixation, Report


def _make_store(root, n=3):
    store = CaseStore(root)
    for i in range(n):
        arr = np.random.default_rng(i).random((60, 80)).astype(np.float32)
        case = Case(id=f"img{i}", findings={"Cardiomegaly": i % 2, "Edema": 0},
                    boxes=[Box("Cardiomegaly", 20, 20, 40, 50, "heart")] if i % 2 else [],
                    fixations=[Fixation(30, 30, 0, 0.3), Fixation(70, 10, 0.3, 0.2)],
                    report=Report("The heart is enlarged." if i % 2 else "Normal heart size."))
        store.add(case, arr)
    store.write_manifest(name="test-store", synthetic=True, splits={"train": ["img0", "img1"], "test": ["img2"]})
    return store


def test_store_round_trip_and_label_precedence(tmp_path):
    store = _make_store(tmp_path / "s")
    assert store.ids() == ["img0", "img1", "img2"]
    case = store.case("img1")
    assert case.image.width == 80 and case.image.height == 60 and case.image.synthetic
    assert case.image.path.endswith("img1.png")
    # The annotator's label supersedes the dataset record.
    edited = store.case("img1")
    edited.findings["Edema"] = 1
    store.save_label(edited)
    assert store.case("img1").findings["Edema"] == 1
    assert store.case("img1", prefer_label=False).findings["Edema"] == 0
    src = store.source()
    assert src.synthetic and [c.id for c in src.split("test")] == ["img2"]
    assert {c.id for c in src.split("train")} == {"img0", "img1"}


def test_store_reports_bad_records_without_failing(tmp_path):
    store = _make_store(tmp_path / "s")
    store.record_path("img2").write_text(json.dumps({"id": "img2", "fixations": [{"x": 1}]}))
    src = store.source()
    assert len(src) == 2 and "img2.json" in src.warnings[0] and "missing 'y'" in src.warnings[0]
    with pytest.raises(DatasetError, match="no image with id 'nope'"):
        store.case("nope")
    with pytest.raises(DatasetError, match="not a folder"):
        CaseStore(tmp_path / "absent").ids()


def test_hash_split_is_stable_and_roughly_proportional():
    splits = [hash_split(f"case{i}") for i in range(2000)]
    assert splits == [hash_split(f"case{i}") for i in range(2000)]
    assert 0.65 < splits.count("train") / 2000 < 0.75 and 0.15 < splits.count("test") / 2000 < 0.25
    src = CaseSource("x", [Case(id=f"case{i}") for i in range(50)])
    assert sum(len(src.split(s)) for s in ("train", "val", "test")) == 50


def test_case_dataset_maps_gaze_and_boxes_into_model_space(tmp_path):
    store = _make_store(tmp_path / "s")
    ds = CaseDataset(store.source().cases, size=40)
    batch = collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 1, 40, 40) and batch["gaze"].shape == (2, 1, 40, 40)
    lb = letterbox_of(batch["letterbox"][1])
    # First fixation (30, 30) in original pixels -> model pixels via the same letterbox.
    np.testing.assert_allclose(batch["fixations"][1, 0, :2].numpy(), lb.to_model([[30, 30]])[0], atol=1e-4)
    assert int(batch["n_boxes"][1]) == 1 and int(batch["n_boxes"][0]) == 0
    gaze = batch["gaze"][1, 0]
    peak = np.unravel_index(int(gaze.argmax()), gaze.shape)
    exp = lb.to_model([[30, 30]])[0]
    assert abs(peak[1] + 0.5 - exp[0]) <= 1 and abs(peak[0] + 0.5 - exp[1]) <= 1
    assert batch["label_mask"][0].sum() == 2 and batch["report"][1] == "The heart is enlarged."
    assert torch.all(batch["has_gaze"] == 1)
