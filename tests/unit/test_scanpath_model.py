"""Scanpath network, loss, data encoding and the prediction API (tiny models, CPU, no training data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.imaging import Letterbox, LoadedImage
from models.checkpoint import CheckpointError, save_checkpoint
from models.schema import Case, Fixation
from models.scanpath.losses import gaussian_nll, mixture_nll_xy, scanpath_loss
from models.scanpath.network import ScanpathConfig, ScanpathNet, fourier_xy
from models.scanpath.predict import ScanpathPredictor, to_fixations
from models.scanpath.paths import reader_paths
from models.scanpath.train import encode_path

TINY = dict(size=32, slots=12, d_model=32, heads=2, ff=64, decoder_layers=1, channels=(8, 16), dropout=0.0)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**kw) -> ScanpathNet:
    torch.manual_seed(0)
    return ScanpathNet(ScanpathConfig(**{**TINY, **kw})).eval()


def random_targets(n: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, k, 3, generator=g)
    t[..., 2] = math.log(0.3) + 0.3 * torch.randn(n, k, generator=g)
    return t


# ------------------------------------------------------------------------------------------------ network
@pytest.mark.parametrize("decoding", ["autoregressive", "parallel"])
def test_forward_shapes_and_shared_image_encoding(decoding):
    model = tiny(decoding=decoding, mixtures=3)
    images = torch.rand(2, 1, 32, 32)
    targets = random_targets(5, 12)
    out = model(images, targets, None, torch.tensor([0, 0, 0, 1, 1]))
    assert out["mix_logit"].shape == (5, 12, 3)
    assert out["mean_xy"].shape == (5, 12, 3, 2) and out["logvar_xy"].shape == (5, 12, 3, 2)
    assert out["mean_dur"].shape == out["logvar_dur"].shape == out["stop_logit"].shape == (5, 12)
    assert float(out["mean_xy"].detach().min()) >= 0.0 and float(out["mean_xy"].detach().max()) <= 1.0
    # rows 0-2 share image 0: with parallel decoding (no target input) they are identical
    if decoding == "parallel":
        assert torch.allclose(out["mean_xy"][0], out["mean_xy"][2])
        assert not torch.allclose(out["mean_xy"][0], out["mean_xy"][3])


def test_autoregressive_slot_ignores_later_fixations():
    model = tiny()
    images = torch.rand(1, 1, 32, 32)
    a = random_targets(1, 12, seed=1)
    b = a.clone()
    b[:, 6:] = torch.rand(1, 6, 3)  # change fixations 6.. (inputs of slots 7..)
    oa, ob = model(images, a), model(images, b)
    assert torch.allclose(oa["mean_xy"][:, :7], ob["mean_xy"][:, :7], atol=1e-6)  # causal
    assert not torch.allclose(oa["mean_xy"][:, 7:], ob["mean_xy"][:, 7:])


def test_config_validation():
    with pytest.raises(ValueError, match="decoding"):
        ScanpathConfig(decoding="beam")
    with pytest.raises(ValueError, match="divisible"):
        ScanpathConfig(size=100)
    with pytest.raises(ValueError, match="mixtures"):
        ScanpathConfig(mixtures=0)
    cfg = ScanpathConfig(**TINY)
    assert ScanpathConfig(**cfg.to_dict()) == cfg


def test_fourier_code_shape_and_distinct_positions():
    code = fourier_xy(torch.tensor([[0.1, 0.2, -1.0], [0.8, 0.7, -1.0]]), bands=4)
    assert code.shape == (2, 17)
    assert not torch.allclose(code[0], code[1])


# ------------------------------------------------------------------------------------------------ loss
def test_single_component_mixture_is_the_gaussian_nll():
    xy = torch.tensor([[[0.3, 0.6]]])
    mean = torch.tensor([[[[0.5, 0.5]]]])
    logvar = torch.tensor([[[[math.log(0.04), math.log(0.01)]]]])
    ours = mixture_nll_xy(xy, torch.zeros(1, 1, 1), mean, logvar)
    ref = -torch.distributions.Normal(mean[0, 0, 0], logvar[0, 0, 0].mul(0.5).exp()).log_prob(xy[0, 0]).sum()
    assert float(ours) == pytest.approx(float(ref), abs=1e-5)
    assert float(gaussian_nll(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.0))) == pytest.approx(0.5 * math.log(2 * math.pi))


def test_two_component_mixture_matches_the_hand_formula():
    xy = torch.tensor([[[0.2, 0.2]]])
    mean = torch.tensor([[[[0.2, 0.2], [0.8, 0.8]]]])
    logvar = torch.zeros(1, 1, 2, 2)
    logits = torch.tensor([[[math.log(0.25), math.log(0.75)]]])
    dens = [math.exp(-0.5 * sum((v - m) ** 2 for v, m in zip((0.2, 0.2), mu))) / (2 * math.pi) for mu in ((0.2, 0.2), (0.8, 0.8))]
    expected = -math.log(0.25 * dens[0] + 0.75 * dens[1])
    assert float(mixture_nll_xy(xy, logits, mean, logvar)) == pytest.approx(expected, abs=1e-5)


def test_loss_masks_padding_and_the_stop_target():
    model = tiny(decoding="parallel")
    with torch.no_grad():
        out = model(torch.rand(1, 1, 32, 32), None)
    targets = random_targets(1, 12)
    base = scanpath_loss(out, targets, torch.tensor([4]))
    changed = targets.clone()
    changed[:, 4:] = 0.0  # padding content must not matter
    assert float(scanpath_loss(out, changed, torch.tensor([4]))["loss"]) == pytest.approx(float(base["loss"]))
    assert float(scanpath_loss(out, targets, torch.tensor([8]))["stop"]) != pytest.approx(float(base["stop"]))


@pytest.mark.parametrize("decoding", ["autoregressive", "parallel"])
def test_a_few_steps_fit_a_fixed_batch(decoding):
    model = tiny(decoding=decoding).train()
    images = torch.rand(2, 1, 32, 32)
    targets = random_targets(2, 12)
    lengths = torch.tensor([12, 7])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = scanpath_loss(model(images, targets), targets, lengths, l1_weight=0.1, stop_all_slots=decoding == "parallel")["loss"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < first - 0.5


# ------------------------------------------------------------------------------------------------ generation
@pytest.mark.parametrize("decoding", ["autoregressive", "parallel"])
def test_generation_mean_is_deterministic_and_samples_differ(decoding):
    model = tiny(decoding=decoding)
    with torch.no_grad():
        model.head.bias[-1] = -6.0  # rarely stop, so paths are long enough to compare
    image = torch.rand(1, 1, 32, 32)
    m1, l1 = model.generate(image, temperature=0.0)
    m2, l2 = model.generate(image, temperature=0.0)
    assert torch.equal(m1, m2) and torch.equal(l1, l2)
    paths, lengths = model.generate(image, n_samples=4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert paths.shape == (1, 4, 12, 3) and lengths.shape == (1, 4)
    assert int(lengths.min()) >= 1 and int(lengths.max()) <= 12
    assert float((paths[..., 2]).min()) > 0  # durations in seconds
    firsts = [paths[0, s, : int(lengths[0, s]), :2] for s in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            n = min(len(firsts[i]), len(firsts[j]))
            assert not torch.allclose(firsts[i][:n], firsts[j][:n])
    again, _ = model.generate(image, n_samples=4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(paths, again)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(image, temperature=-1.0)


# ------------------------------------------------------------------------------------------------ data encoding
def test_encode_path_uses_the_letterbox_and_drops_off_image_fixations():
    lb = Letterbox.fit(200, 100, 32)  # wide image: scale 0.16, vertical padding 8 px
    path = [Fixation(100, 50, 0, 0.3), Fixation(-5, 50, 0.3, 0.2), Fixation(0, 0, 0.5, 0.0), Fixation(200, 100, 0.5, 0.4)]
    enc, n = encode_path(path, lb, slots=5)
    assert n == 3
    assert enc[0, :2] == pytest.approx([0.5, 0.5])
    assert enc[1, :2] == pytest.approx([0.0, 8 / 32])
    assert enc[2, :2] == pytest.approx([1.0, 24 / 32])
    assert enc[:3, 2] == pytest.approx(np.log([0.3, 0.01, 0.4]))  # zero duration floored at 10 ms
    assert encode_path(path * 3, lb, slots=5)[1] == 5


def test_reader_paths_lists_every_reader_once():
    f = [Fixation(1, 1, 0, 0.2)]
    case = Case("c", fixations=f, readers={"reader_2": f, "reader_3": []})
    assert list(reader_paths(case)) == ["reader_1", "reader_2"]
    assert reader_paths(Case("empty")) == {}


def test_to_fixations_maps_back_to_original_pixels_with_cumulative_time():
    lb = Letterbox.fit(200, 100, 32)
    out = to_fixations(np.array([[0.5, 0.5, 0.25], [1.0, 0.0, 0.5], [0.0, 1.0, 0.1]]), lb)
    assert (out[0].x, out[0].y) == pytest.approx((100, 50))
    assert (out[1].x, out[1].y) == pytest.approx((200, 0))  # the padding band clamps to the image edge
    assert (out[2].x, out[2].y) == pytest.approx((0, 100))
    assert [f.t for f in out] == pytest.approx([0.0, 0.25, 0.75])


# ------------------------------------------------------------------------------------------------ predictor
def test_predictor_round_trip_and_outputs_in_original_pixels(tmp_path):
    model = tiny()
    path = save_checkpoint(tmp_path / "sp.pt", "scanpath", config={"model": model.cfg.to_dict()},
                           state={"model": model.state_dict()}, info={"synthetic": True})
    pred = ScanpathPredictor.from_checkpoint(path)
    image = LoadedImage(np.random.default_rng(0).random((90, 160), dtype=np.float32))
    mean = pred(image)
    assert len(mean) == 1 and 1 <= len(mean[0]) <= 12
    again = pred(image)
    assert [(f.x, f.y, f.duration) for f in mean[0]] == [(f.x, f.y, f.duration) for f in again[0]]
    paths = pred(image, n_samples=3, seed=1)
    assert len(paths) == 3
    assert [(f.x, f.y) for f in paths[0]] == [(f.x, f.y) for f in mean[0]]  # first = the mean path
    assert pred(image, n_samples=3, seed=1, include_mean=False)[0] != paths[0]
    for p in paths:
        assert all(0 <= f.x <= 160 and 0 <= f.y <= 90 and f.duration > 0 for f in p)
        assert all(b.t == pytest.approx(a.t + a.duration) for a, b in zip(p, p[1:]))
    seeded = pred(image, n_samples=3, seed=1)
    assert [[(f.x, f.y) for f in p] for p in seeded] == [[(f.x, f.y) for f in p] for p in paths]
    assert pred(image, n_samples=2, temperature=0.0)[1] == mean[0]
    with pytest.raises(ValueError, match="n_samples"):
        pred(image, n_samples=0)


def test_predictor_rejects_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no such model file"):
        ScanpathPredictor.from_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable model file"):
        ScanpathPredictor.from_checkpoint(tmp_path / "junk.pt")
    wrong = save_checkpoint(tmp_path / "cls.pt", "classifier", config={}, state={})
    with pytest.raises(CheckpointError, match="expected 'scanpath'"):
        ScanpathPredictor.from_checkpoint(wrong)
    model = tiny()
    bad = save_checkpoint(tmp_path / "bad.pt", "scanpath", config={"model": {**model.cfg.to_dict(), "d_model": 48}},
                          state={"model": model.state_dict()})
    with pytest.raises(CheckpointError, match="does not match"):
        ScanpathPredictor.from_checkpoint(bad)


def test_report_conditioning_adds_one_memory_token_and_changes_the_prediction():
    model = tiny(text_dim=8)
    image = torch.rand(1, 1, 32, 32)
    a, b = torch.randn(1, 8), torch.randn(1, 8)
    assert model.memory(image, a).shape == (1, 8 * 8 + 1, 32)  # 32 px / 2 stages = 8 x 8 image tokens + 1
    targets = random_targets(1, 12)
    assert not torch.allclose(model(image, targets, a)["mean_xy"], model(image, targets, b)["mean_xy"])
    with pytest.raises(ValueError, match="report text"):
        model.memory(image)


def test_temperature_narrows_positions_but_not_durations():
    model = tiny(decoding="parallel")
    with torch.no_grad():
        model.head.bias[-1] = -6.0
    image = torch.rand(1, 1, 32, 32)
    spread = {}
    for t in (0.1, 1.0):
        paths, _ = model.generate(image, n_samples=200, temperature=t, generator=torch.Generator().manual_seed(0))
        spread[t] = (float(paths[0, :, 3, :2].std(0).mean()), float(paths[0, :, 3, 2].log().std()))
    assert spread[0.1][0] < 0.3 * spread[1.0][0]
    assert spread[0.1][1] == pytest.approx(spread[1.0][1], rel=0.15)
