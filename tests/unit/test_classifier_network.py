"""GazeAttentionNet shapes, attention normalisation, MC dropout and input checks."""

import pytest
import torch

from models.checkpoint import CheckpointError, config_of
from models.classifier.network import ClassifierConfig, GazeAttentionNet, attention_to_model_space


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return GazeAttentionNet(ClassifierConfig(size=64, width=4, embed_dim=8)).eval()


@pytest.mark.parametrize("size", [64, 224, 512])
def test_output_shapes_and_attention_sums_to_one(size):
    torch.manual_seed(0)
    net = GazeAttentionNet(ClassifierConfig(size=size, width=4)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, size, size))
    g = size // 8
    assert out.logits.shape == (2, 14)
    assert out.attention.shape == (2, 14, g, g)
    assert torch.allclose(out.attention.sum((2, 3)), torch.ones(2, 14), atol=1e-5)
    assert out.prior.shape == (2, g, g)
    assert torch.allclose(out.prior.sum((1, 2)), torch.ones(2), atol=1e-5)
    assert out.image_embedding.shape == (2, 128)
    maps = attention_to_model_space(out.attention, size)
    assert maps.shape == (2, 14, size, size)
    assert torch.allclose(maps.flatten(2).amax(-1), torch.ones(2, 14))


def test_bad_input_shapes(net):
    with pytest.raises(ValueError, match=r"\(B, 1, S, S\)"):
        net(torch.rand(1, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 1, S, S\)"):
        net(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.rand(1, 1, 70, 70))


def test_mc_dropout_samples_vary_only_when_asked(net):
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        a, b = net(x).logits, net(x).logits
        assert torch.equal(a, b)
        m1, m2 = net(x, mc_dropout=True).logits, net(x, mc_dropout=True).logits
    assert not torch.equal(m1, m2)
    assert not net.training  # MC sampling does not flip the module into training mode


def test_no_contrastive_head():
    net = GazeAttentionNet(ClassifierConfig(size=64, width=4, embed_dim=0))
    assert net(torch.rand(1, 1, 64, 64)).image_embedding is None
    with pytest.raises(ValueError, match="contrastive head"):
        net.embed_text(torch.rand(1, 384))


def test_config_round_trip_and_unknown_fields_named():
    """A checkpoint from a newer version must not load with its new option silently dropped."""
    cfg = ClassifierConfig(size=96, width=8, dropout=0.1)
    assert config_of(ClassifierConfig, cfg.to_dict(), "m.pt", "model") == cfg
    with pytest.raises(CheckpointError, match=r"m.pt: config.model .*future_option"):
        config_of(ClassifierConfig, {**cfg.to_dict(), "future_option": 3}, "m.pt", "model")
