"""Standard image backbones for the classifier, and the weight files a user downloaded for them.

Why here: the per-finding attention pooling and the gaze loss only need a feature grid ``(B, D, h, w)``, so
any convolutional trunk can sit under them. :class:`BackboneEncoder` is that trunk for a torchvision
architecture (built with ``weights=None``: nothing is downloaded), single-channel, with the same interface as
the default :class:`~models.classifier.network.Encoder` (``forward`` on ``(B, 1, S, S)`` images in [0, 1],
``out_channels``), so the classifier, the VQA model over its features and the predictor do not change.

Output strides (``models.classifier.config.BACKBONE_STRIDES``): DenseNet-121 and ConvNeXt-Tiny keep their
native 32 (7 x 7 cells at 224 px, 16 x 16 at 512 px: CheXNet's CAM grid), ResNet-50's last stage is dilated
instead of strided (DeepLab's trick: the same weights, 16 = 14 x 14 cells at 224 px). Every weight of the
architecture is used; only the ImageNet / pathology classification heads are dropped.

Weight files (:func:`load_backbone_weights`), told apart by their keys:

- a torchvision ``state_dict`` (``torch.save(model.state_dict())``, also DDP's ``module.`` prefix);
- a timm checkpoint: a ``state_dict`` of ``timm.create_model(name)``, raw, under ``state_dict`` / ``model``
  (timm's ``save_checkpoint``), or a ``.safetensors`` file; ConvNeXt's timm names are mapped onto
  torchvision's;
- a torchxrayvision DenseNet checkpoint: the pickled model object xrv downloads, or its ``state_dict``. The
  pickle is read with ``weights_only=True`` like every file here: only the classes such a file holds
  (torchxrayvision's DenseNet parts, as inert stand-ins of the same names, and torch's layers) may be built,
  so nothing in the file runs and torchxrayvision need not be installed. Its first convolution is already
  single-channel and it expects xrv's input scaling (``input_norm="xrv"``).

A 3-channel first convolution becomes single-channel by summing its weights over the colour channels (a grey
image replicated to RGB gives the same response), with the grey ImageNet mean and standard deviation.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.classifier.config import BACKBONE_STRIDES, INPUT_NORMS

# (mean, std) that x in [0, 1] is normalised with: (x - mean) / std.
NORMALISATION = {
    "imagenet": (0.449, 0.226),  # the mean of ImageNet's RGB means and standard deviations (timm's in_chans=1)
    "xrv": (0.5, 0.5 / 1024.0),  # torchxrayvision scales images to [-1024, 1024]
}
HEADS = {  # parameter prefixes of the classification heads, dropped from a weight file
    "densenet121": ("classifier.", "op_threshs"),
    "resnet50": ("fc.",),
    "convnext_tiny": ("classifier.",),
}
FIRST_CONV = {"densenet121": "features.conv0.weight", "resnet50": "conv1.weight", "convnext_tiny": "features.0.0.weight"}
WEIGHT_FORMATS = ("torchvision", "timm", "xrv")


class WeightsError(ValueError):
    """A weight file that does not fit the backbone; the message names the file and the keys."""


def _single_channel(conv: nn.Conv2d) -> nn.Conv2d:
    return nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                     conv.groups, conv.bias is not None)


def build_body(name: str) -> tuple[nn.Module, int]:
    """The torchvision architecture ``name`` without its head, first convolution single-channel; returns
    ``(body, feature channels)``. Parameter names are torchvision's (``body.state_dict()`` keys are a
    torchvision ``state_dict``'s keys minus the head)."""
    import torchvision.models as tvm

    if name == "densenet121":
        model = tvm.densenet121(weights=None)
        model.features.conv0 = _single_channel(model.features.conv0)
        del model.classifier
        return model, 1024
    if name == "resnet50":
        model = tvm.resnet50(weights=None, replace_stride_with_dilation=[False, False, True])
        model.conv1 = _single_channel(model.conv1)
        del model.fc
        return model, 2048
    if name == "convnext_tiny":
        model = tvm.convnext_tiny(weights=None)
        model.features[0][0] = _single_channel(model.features[0][0])
        del model.classifier
        return model, 768
    raise ValueError(f"backbone must be one of {', '.join(BACKBONE_STRIDES)}, got {name!r}")


class BackboneEncoder(nn.Module):
    """``(B, 1, S, S)`` image in [0, 1] -> ``(B, D, S / stride, S / stride)`` features of a torchvision
    trunk (see module docstring); ``S`` a multiple of the stride."""

    def __init__(self, name: str, input_norm: str = "imagenet"):
        super().__init__()
        if input_norm not in NORMALISATION:
            raise ValueError(f"input_norm must be one of {', '.join(NORMALISATION)}, got {input_norm!r}")
        self.name, self.stride = name, BACKBONE_STRIDES[name]
        self.body, self.out_channels = build_body(name)
        self.mean, self.std = NORMALISATION[input_norm]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        body = self.body
        if self.name == "resnet50":
            x = body.maxpool(body.relu(body.bn1(body.conv1(x))))
            return body.layer4(body.layer3(body.layer2(body.layer1(x))))  # (B, 2048, S/16, S/16)
        if self.name == "densenet121":
            return F.relu(body.features(x))  # (B, 1024, S/32, S/32), as torchvision's forward before pooling
        return body.features(x)  # convnext_tiny: (B, 768, S/32, S/32)


# ---------------------------------------------------------------------------------------------- weight files
_LEGACY_DENSENET = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
_TIMM_CONVNEXT = [  # timm name -> torchvision name (stage i, block j)
    (re.compile(r"^stem\.([01])\.(.*)$"), lambda m: f"features.0.{m[1]}.{m[2]}"),
    (re.compile(r"^stages\.(\d+)\.downsample\.([01])\.(.*)$"), lambda m: f"features.{2 * int(m[1])}.{m[2]}.{m[3]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.conv_dw\.(.*)$"), lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.block.0.{m[3]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.norm\.(.*)$"), lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.block.2.{m[3]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.(.*)$"), lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.block.3.{m[3]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.(.*)$"), lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.block.5.{m[3]}"),
    (re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.gamma$"), lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.layer_scale"),
    (re.compile(r"^head\.(.*)$"), lambda m: f"classifier.{m[1]}"),
]


def _stand_in(qualified: str) -> tuple[type, str]:
    """An empty ``nn.Module`` class under another library's name: unpickling fills its ``__dict__`` (its
    sub-modules, parameters, buffers), which is all ``state_dict()`` reads; it has no code of its own."""
    module, _, name = qualified.rpartition(".")
    return type(name, (nn.Module,), {"__module__": module, "__qualname__": name}), qualified


# What a pickled torchxrayvision DenseNet holds besides tensors (its own layer classes, or torchvision's in
# older files), and torch's layers inside it.
_PICKLED_MODEL_CLASSES = [_stand_in(f"{m}.{c}") for m in ("torchxrayvision.models", "torchvision.models.densenet")
                          for c in ("DenseNet", "_DenseBlock", "_DenseLayer", "_Transition")]
_TORCH_LAYERS = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Sequential, nn.Linear, nn.AvgPool2d, nn.MaxPool2d, set]


def _read(path: Path):
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise WeightsError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    try:
        with torch.serialization.safe_globals(_TORCH_LAYERS + _PICKLED_MODEL_CLASSES):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError ... here
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a weight file this backbone can read ({detail}); expected a state_dict, a "
                           "timm checkpoint or a torchxrayvision DenseNet (files holding other pickled objects "
                           "are not run: save the model's state_dict instead)") from None


def _tensors(obj, path: Path) -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` inside a loaded file: a state_dict, a model, or a training checkpoint dict."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: no state_dict found (expected a dict of tensors, a model, or a checkpoint with "
                           "'state_dict' / 'model')")
    out = {}
    for key, value in obj.items():
        for prefix in ("module.", "model.", "_orig_mod."):  # DDP, wrappers, torch.compile
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def detect_format(state: dict[str, torch.Tensor], backbone: str) -> str:
    """"xrv" (a single-channel DenseNet with torchxrayvision's head), "timm" (timm's names) or
    "torchvision"."""
    if backbone == "densenet121":
        conv = state.get("features.conv0.weight")
        if "op_threshs" in state or (conv is not None and conv.shape[1] == 1):
            return "xrv"
    if backbone == "convnext_tiny" and any(k.startswith(("stem.", "stages.")) for k in state):
        return "timm"
    return "torchvision"


def _to_torchvision(state: dict[str, torch.Tensor], backbone: str, fmt: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if backbone == "densenet121":
            m = _LEGACY_DENSENET.match(key)  # torchvision's pre-0.3 names: norm.1 -> norm1
            key = m[1] + m[2] if m else key
        if backbone == "convnext_tiny" and fmt == "timm":
            for pattern, rename in _TIMM_CONVNEXT:
                m = pattern.match(key)
                if m:
                    key = rename(m)
                    if key.endswith("layer_scale"):
                        value = value.reshape(-1, 1, 1)  # timm's gamma (C,) is torchvision's (C, 1, 1)
                    break
        out[key] = value
    return out


def read_backbone_weights(path: str | Path, backbone: str) -> tuple[dict, str]:
    """The tensors of a weight file in torchvision's names for ``backbone`` (head dropped, first convolution
    single-channel) and the file's format ("torchvision", "timm" or "xrv").

    Raises:
        WeightsError: unreadable, holding pickled objects other than a torchxrayvision DenseNet, or not this
            architecture (the message names missing, unexpected and mis-shaped keys).
    """
    path = Path(path)
    if backbone not in HEADS:
        raise WeightsError(f"--weights: the {backbone!r} backbone takes no weight file (choose one of "
                           f"{', '.join(HEADS)})")
    if not path.is_file():
        raise WeightsError(f"{path}: no such weight file")
    state = _tensors(_read(path), path)
    fmt = detect_format(state, backbone)
    state = _to_torchvision(state, backbone, fmt)
    state = {k: v for k, v in state.items() if not k.startswith(HEADS[backbone])}
    first = FIRST_CONV[backbone]
    if first in state and state[first].dim() == 4 and state[first].shape[1] == 3:
        state[first] = state[first].sum(1, keepdim=True)  # RGB -> grey (module docstring)
    expected = build_body(backbone)[0].state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        def some(keys):
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
        parts = [f"{len(missing)} missing ({some(missing)})" if missing else "",
                 f"{len(unexpected)} unexpected ({some(unexpected)})" if unexpected else "",
                 f"{len(shapes)} of another shape ({some([f'{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}' for k in shapes])})"
                 if shapes else ""]
        raise WeightsError(f"{path}: not {backbone} weights in a {fmt} layout: "
                           + "; ".join(p for p in parts if p) + f" of {len(expected)} tensors")
    return state, fmt


def load_backbone_weights(encoder: BackboneEncoder, path: str | Path) -> str:
    """Load a weight file into ``encoder`` (every tensor, checked by name and shape); returns its format."""
    state, fmt = read_backbone_weights(path, encoder.name)
    encoder.body.load_state_dict(state, strict=True)
    return fmt


def input_norm_for(fmt: str) -> str:
    """The input scaling a weight file's format was trained with."""
    return "xrv" if fmt == "xrv" else "imagenet"


def training_weights(path: str | Path | None, backbone: str, input_norm: str = "auto") -> tuple[dict | None, str, str]:
    """What a family's training reads before it builds its network: ``(state, format, input_norm)`` of the
    weight file ``path`` (:func:`read_backbone_weights`), ``input_norm`` resolved from the file's format when
    "auto"; ``(None, "", input_norm)`` without a file."""
    if not path:
        return None, "", input_norm
    state, fmt = read_backbone_weights(path, backbone)
    return state, fmt, input_norm_for(fmt) if input_norm == "auto" else input_norm


__all__ = ["BackboneEncoder", "HEADS", "INPUT_NORMS", "NORMALISATION", "WEIGHT_FORMATS", "WeightsError", "build_body",
           "detect_format", "input_norm_for", "load_backbone_weights", "read_backbone_weights", "training_weights"]
