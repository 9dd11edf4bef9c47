"""Prediction API: checkpoint round trip, original-pixel heatmaps and boxes, Case output, bad inputs."""

import numpy as np
import pytest
import torch

from models.classifier.boxes import attention_boxes, largest_component_box
from models.classifier.network import ClassifierConfig, GazeAttentionNet
from models.classifier.predict import ClassifierPredictor, ClassifierResult, binary_entropy
from models.imaging import Letterbox, LoadedImage
from models.checkpoint import CheckpointError, save_checkpoint
from models.schema import Case, ImageRef
from models.vocab import FINDING_INDEX, FINDINGS, REGION_NAMES

SIZE = 64


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = GazeAttentionNet(ClassifierConfig(size=SIZE, width=4))
    path = tmp_path_factory.mktemp("ckpt") / "classifier.pt"
    thresholds = [0.0] * len(FINDINGS)  # everything positive, so every spatial finding gets a box
    save_checkpoint(path, "classifier", config={"model": net.config.to_dict()},
                    state={"model": net.state_dict(), "thresholds": torch.tensor(thresholds, dtype=torch.float64)},
                    info={"synthetic": True})
    return path


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return ClassifierPredictor.from_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return LoadedImage(rng.random((120, 200)).astype(np.float32))  # wide: letterbox pads top and bottom


def test_result_shapes_and_original_pixels(predictor, image):
    res = predictor(image)
    assert set(res.scores) == set(FINDINGS)
    assert all(0 <= s <= 1 for s in res.scores.values())
    assert res.attention.shape == (14, SIZE, SIZE)
    assert res.heatmap().shape == (120, 200)
    assert res.heatmap("cardiomegaly").shape == (120, 200)  # names are canonicalised
    assert res.heatmap().max() == pytest.approx(1.0)
    assert res.thresholds["Cardiomegaly"] == 0.0
    assert 0.0 <= res.uncertainty <= 1.0
    assert len(res.boxes) == 13  # all spatial findings positive at threshold 0; "No Finding" has no box
    for b in res.boxes:
        assert 0 <= b.x1 < b.x2 <= 200 and 0 <= b.y1 < b.y2 <= 120
        assert b.region in REGION_NAMES
        assert b.score == pytest.approx(res.scores[b.finding])


def test_to_case_is_a_valid_case(predictor, image):
    res = predictor(image)
    case = res.to_case("img1", ImageRef("img1.png", 200, 120))
    again = Case.from_dict(case.to_dict())  # validates boxes inside the image, score ranges, names
    # Every finding is over its threshold; "No Finding" follows the others (models.decision), so it is 0.
    assert again.findings == {f: 0 if f == "No Finding" else 1 for f in FINDINGS}
    assert len(again.boxes) == 13
    assert again.source.model.startswith("gazelabel-classifier")
    assert res.to_case("img2", "x.png").image.width == 200


def test_mc_dropout_uncertainty(predictor, image):
    a = predictor(image, mc_samples=4)
    b = predictor(image)
    assert a.scores != b.scores  # averaged over dropout samples
    with pytest.raises(ValueError, match="mc_samples"):
        predictor(image, mc_samples=-1)
    out = predictor.predict_tensor(torch.rand(3, 1, SIZE, SIZE), mc_samples=2)
    assert out["mc_probs"].shape == (2, 3, 14) and out["uncertainty"].shape == (3,)


def test_bad_inputs(predictor, image, tmp_path):
    res = predictor(image)
    with pytest.raises(ValueError, match="unknown finding"):
        res.heatmap("Broken Heart")
    with pytest.raises(ValueError, match="2D"):
        predictor(LoadedImage(np.zeros((3, 50, 50), np.float32)))
    with pytest.raises(ValueError, match="shape"):
        predictor.predict_tensor(torch.rand(1, 1, 32, 32))
    with pytest.raises(CheckpointError, match="no such model"):
        ClassifierPredictor.from_checkpoint(tmp_path / "missing.pt")
    wrong = save_checkpoint(tmp_path / "scan.pt", "scanpath", config={}, state={})
    with pytest.raises(CheckpointError, match="expected 'classifier'"):
        ClassifierPredictor.from_checkpoint(wrong)
    broken = save_checkpoint(tmp_path / "broken.pt", "classifier", config={"model": {"size": SIZE, "width": 8}},
                             state={"model": {}})
    with pytest.raises(CheckpointError, match="do not match"):
        ClassifierPredictor.from_checkpoint(broken)


def test_largest_component_box_picks_the_biggest_blob():
    m = np.zeros((20, 20))
    m[2:4, 2:4] = 1.0  # small, highest
    m[10:16, 8:18] = 0.8  # large
    assert largest_component_box(m, 0.5) == (8.0, 10.0, 18.0, 16.0)
    assert largest_component_box(np.zeros((5, 5))) is None
    with pytest.raises(ValueError, match="2D"):
        largest_component_box(np.zeros((2, 5, 5)))


def test_attention_boxes_map_back_through_letterbox():
    lb = Letterbox.fit(400, 200, 100)  # scale 0.25, pad_y 25
    maps = np.zeros((14, 100, 100))
    maps[FINDING_INDEX["Cardiomegaly"], 50:60, 40:60] = 1.0  # model px
    boxes = attention_boxes(maps, lb, {"Cardiomegaly": 0.9}, FINDING_INDEX)
    (b,) = boxes
    assert (b.x1, b.y1, b.x2, b.y2) == pytest.approx((160, 100, 240, 140))
    assert b.score == 0.9 and b.region == "heart"
    # a map that lives only in the padding gives no box
    maps[FINDING_INDEX["Fracture"], 0:10, :] = 1.0
    assert [x.finding for x in attention_boxes(maps, lb, {"Fracture": 0.5}, FINDING_INDEX)] == []


def test_binary_entropy():
    assert binary_entropy(np.array([0.5]))[0] == pytest.approx(1.0)
    assert binary_entropy(np.array([0.0, 1.0])).max() < 1e-5
    res = ClassifierResult({f: 0.5 for f in FINDINGS}, np.zeros((14, 8, 8)), Letterbox.fit(8, 8, 8), {f: 0.5 for f in FINDINGS})
    assert res.heatmap().shape == (8, 8)  # all-zero attention stays zero, no division error
