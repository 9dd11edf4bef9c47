"""Standard backbones under the classifier (models/classifier/backbones.py) and the weight files users bring:
a torchvision state_dict, a timm checkpoint (raw, under "state_dict", or safetensors) and torchxrayvision's
DenseNet checkpoints (its pickled model, or its state_dict). Every file here is saved from a randomly
initialised model (nothing is downloaded); each test checks that every tensor arrives where it belongs, by
comparing the features with the source model's own on the same image, and that a wrong file is refused
naming its keys."""

from __future__ import annotations

import pytest
import torch

from models.classifier.backbones import (BackboneEncoder, WeightsError, input_norm_for, load_backbone_weights,
                                         read_backbone_weights)
from models.classifier.config import BACKBONE_STRIDES, ClassifierConfig
from models.classifier.network import GazeAttentionNet

SIZE = 64


def _image(seed=0):
    return torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _grey_rgb(x, mean=0.449, std=0.226):
    """What a 3-channel network sees for a grey image normalised as the single-channel encoder does."""
    return ((x - mean) / std).repeat(1, 3, 1, 1)


def _close(ours, theirs):
    """Equal up to float32 summation order: errors small against the features' own scale."""
    return ours.shape == theirs.shape and float((ours - theirs).abs().max()) <= 1e-5 * float(theirs.abs().max()) + 1e-5


def _randomise_norms(model):
    """Non-trivial batch-norm statistics, so that a misplaced running mean shows in the features."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("name", ["densenet121", "resnet50", "convnext_tiny"])
def test_a_torchvision_state_dict_loads_every_tensor(name, tmp_path):
    import torchvision.models as tvm

    torch.manual_seed(0)
    source = _randomise_norms(getattr(tvm, name)(weights=None))
    path = tmp_path / f"{name}.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)  # as DDP saves it
    encoder = BackboneEncoder(name).eval()
    assert load_backbone_weights(encoder, path) == "torchvision"
    x = _image()
    with torch.no_grad():
        ours = encoder(x)
        if name == "densenet121":
            theirs = torch.relu(source.features(_grey_rgb(x)))
        elif name == "convnext_tiny":
            theirs = source.features(_grey_rgb(x))
        else:  # our ResNet-50 is dilated: compare the stages before the dilated one, then the tensor count
            s = source
            theirs = s.layer3(s.layer2(s.layer1(s.maxpool(s.relu(s.bn1(s.conv1(_grey_rgb(x))))))))
            b = encoder.body
            ours = b.layer3(b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1((x - 0.449) / 0.226)))))))
    assert _close(ours, theirs), (ours - theirs).abs().max()
    expected = {k for k in source.state_dict() if not k.startswith(("fc.", "classifier."))}
    assert set(encoder.body.state_dict()) == expected  # every tensor of the architecture, heads aside


@pytest.mark.parametrize("layout", ["state_dict", "raw", "safetensors"])
def test_a_timm_convnext_checkpoint_is_mapped_onto_torchvision_names(layout, tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    source = timm.create_model("convnext_tiny", pretrained=False).eval()
    with torch.no_grad():  # timm starts layer scales at 1e-6: make them matter
        for k, v in source.named_parameters():
            if k.endswith("gamma"):
                v.copy_(torch.rand_like(v) + 0.5)
    state = source.state_dict()
    if layout == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        path = tmp_path / "checkpoint.pth.tar"
        torch.save({"epoch": 3, "arch": "convnext_tiny", "state_dict": state} if layout == "state_dict" else state, path)
    encoder = BackboneEncoder("convnext_tiny").eval()
    assert load_backbone_weights(encoder, path) == "timm"
    x = _image(1)
    with torch.no_grad():
        assert _close(encoder(x), source.forward_features(_grey_rgb(x)))


@pytest.mark.parametrize("name", ["densenet121", "resnet50"])
def test_timm_densenet_and_resnet_checkpoints_load(name, tmp_path):
    timm = pytest.importorskip("timm")
    source = _randomise_norms(timm.create_model(name, pretrained=False))
    path = tmp_path / "timm.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    state, fmt = read_backbone_weights(path, name)
    for key, value in encoder_state(name).items():
        assert key in state and state[key].shape == value.shape
    first = "features.conv0.weight" if name == "densenet121" else "conv1.weight"
    assert torch.allclose(state[first], source.state_dict()[first].sum(1, keepdim=True))
    assert fmt == "torchvision"  # timm keeps torchvision's names for these two


def encoder_state(name):
    return BackboneEncoder(name).body.state_dict()


def test_torchxrayvision_checkpoints_load_without_running_the_pickle_and_keep_xrv_scaling(tmp_path):
    xrv = pytest.importorskip("torchxrayvision")
    torch.manual_seed(0)
    source = _randomise_norms(xrv.models.DenseNet(weights=None))
    pickled = tmp_path / "xrv-densenet121.pt"
    torch.save(source, pickled)  # what torchxrayvision downloads: the whole model object
    state, fmt = read_backbone_weights(pickled, "densenet121")  # weights_only: stand-ins, no xrv code
    assert fmt == "xrv" and input_norm_for(fmt) == "xrv"
    assert torch.equal(state["features.denseblock2.denselayer3.conv1.weight"],
                       source.state_dict()["features.denseblock2.denselayer3.conv1.weight"])
    plain = tmp_path / "xrv-state.pt"
    torch.save(source.state_dict(), plain)
    encoder = BackboneEncoder("densenet121", input_norm="xrv").eval()
    assert load_backbone_weights(encoder, plain) == "xrv"  # its state_dict too
    x = _image(2)
    with torch.no_grad():  # xrv's own scaling: [0, 1] -> [-1024, 1024], single channel
        assert _close(encoder(x), torch.relu(source.features(x * 2048 - 1024)))


def test_a_file_for_another_network_is_refused_naming_the_keys(tmp_path):
    import torchvision.models as tvm

    path = tmp_path / "resnet.pth"
    torch.save(tvm.resnet50(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match=r"not densenet121 weights .*missing \(features\.conv0\.weight.*unexpected"):
        read_backbone_weights(path, "densenet121")
    partial = {k: v for k, v in tvm.resnet50(weights=None).state_dict().items() if not k.startswith("layer4.")}
    torch.save(partial, path)
    with pytest.raises(WeightsError, match=r"missing \(layer4\."):
        read_backbone_weights(path, "resnet50")
    wide = tvm.resnet50(weights=None).state_dict()
    wide["layer1.0.conv1.weight"] = torch.zeros(8, 64, 1, 1)
    torch.save(wide, path)
    with pytest.raises(WeightsError, match=r"of another shape \(layer1\.0\.conv1\.weight"):
        read_backbone_weights(path, "resnet50")
    (tmp_path / "junk.pth").write_bytes(b"not a tensor file")
    with pytest.raises(WeightsError, match="junk.pth: not a weight file"):
        read_backbone_weights(tmp_path / "junk.pth", "resnet50")
    torch.save({"model": torch.nn.GRU(4, 4)}, tmp_path / "other-pickle.pth")  # a pickled object of another kind
    with pytest.raises(WeightsError, match="not run: save the model's state_dict"):
        read_backbone_weights(tmp_path / "other-pickle.pth", "resnet50")
    with pytest.raises(WeightsError, match="no such weight file"):
        read_backbone_weights(tmp_path / "absent.pth", "resnet50")
    with pytest.raises(WeightsError, match="takes no weight file"):
        read_backbone_weights(path, "gazelabel")


@pytest.mark.parametrize("name", sorted(BACKBONE_STRIDES))
def test_every_backbone_gives_the_classifier_its_feature_grid(name):
    size = 64
    net = GazeAttentionNet(ClassifierConfig(backbone=name, size=size, embed_dim=16)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, size, size))
    side = size // BACKBONE_STRIDES[name]
    assert out.logits.shape == (2, 14) and out.attention.shape == (2, 14, side, side) and out.prior.shape == (2, side, side)
    assert torch.allclose(out.prior.flatten(1).sum(-1), torch.ones(2), atol=1e-5)
    assert out.image_embedding.shape == (2, 16)


def test_backbone_options_are_checked_by_the_config():
    with pytest.raises(ValueError, match="backbone must be one of"):
        ClassifierConfig(backbone="vgg19")
    with pytest.raises(ValueError, match="size must be a positive multiple of 32 for densenet121"):
        ClassifierConfig(backbone="densenet121", size=80)
    with pytest.raises(ValueError, match="input_norm"):
        ClassifierConfig(backbone="resnet50", input_norm="zscore")
    with pytest.raises(ValueError, match="input_norm"):
        ClassifierConfig(input_norm="xrv")  # our own net has its own scaling


class _Payload:
    """A pickle that would run a command when unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_crafted_weight_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "densenet121-evil.pt"
    torch.save({"state_dict": {"features.conv0.weight": torch.zeros(64, 1, 7, 7)}, "hook": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="not a weight file this backbone can read"):
        read_backbone_weights(path, "densenet121")
    assert not marker.exists()
