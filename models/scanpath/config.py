"""The scanpath predictor's configuration, in front of its code (no torch here). The checkpoint stores both
sections (``config.model``, ``config.train``); ``gazelabel train scanpath`` and ``POST /train/scanpath``
take any field by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from models.classifier.config import BACKBONE_STRIDES, check_backbone
from models.runtime import check_device_name

DECODINGS = ("autoregressive", "parallel")


@dataclass
class ScanpathConfig:
    """Hyper-parameters of the network; ``ScanpathNet(ScanpathConfig(**cfg))`` rebuilds it.

    Attributes:
        size: model input side (pixels of the letterboxed square image).
        slots: K, the maximum number of fixations predicted (longer human paths are truncated).
        d_model, heads, encoder_layers, decoder_layers, ff: transformer sizes.
        channels: CNN widths; each stage halves the resolution, so memory is ``size / 2**len(channels)`` square.
        backbone: "gazelabel" (that CNN) or a standard backbone of the classifier's
            (``models.classifier.backbones``: densenet121, resnet50, convnext_tiny), its grid ``size / stride``;
            ``input_norm`` its input scaling ("auto" = ImageNet's; training sets it from a weight file).
        text_dim: report-embedding size (384 for MiniLM), 0 = no text conditioning (set by ``text``).
        decoding: "autoregressive" or "parallel" (see ``models.scanpath.network``).
        mixtures: Gaussian components of the x, y head (1 = a single Gaussian).
        duration_prior: mean fixation duration in seconds, the initial duration prediction.
    """

    size: int = 128
    slots: int = 50
    d_model: int = 96
    heads: int = 4
    encoder_layers: int = 1
    decoder_layers: int = 3
    ff: int = 192
    channels: tuple[int, ...] = (16, 32, 64, 96)
    dropout: float = 0.1
    text_dim: int = 0
    decoding: str = "autoregressive"
    mixtures: int = 3
    duration_prior: float = 0.3
    backbone: str = "gazelabel"
    input_norm: str = "auto"

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, got {self.decoding!r}")
        if self.mixtures < 1:
            raise ValueError(f"mixtures must be >= 1, got {self.mixtures}")
        if self.slots < 2:
            raise ValueError(f"slots must be >= 2, got {self.slots}")
        check_backbone(self.backbone, self.input_norm)
        if self.size <= 0 or self.size % self.stride:
            why = "one halving per CNN stage" if self.backbone == "gazelabel" else f"the {self.backbone} stride"
            raise ValueError(f"size {self.size} must be divisible by {self.stride} ({why})")

    @property
    def stride(self) -> int:
        """Image pixels per memory-grid cell."""
        return 2 ** len(self.channels) if self.backbone == "gazelabel" else BACKBONE_STRIDES[self.backbone]

    @property
    def grid(self) -> int:
        """Side of the square memory grid."""
        return self.size // self.stride

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


@dataclass
class ScanpathTrainConfig:
    """Optimisation (AdamW, one-cycle). ``text``: condition on the report (frozen MiniLM). ``l1_weight``:
    extra L1 on the x, y means (0 = pure Gaussian NLL). ``grad_clip`` 1.0, ``warmup`` 0.1."""

    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    l1_weight: float = 0.0
    seed: int = 0
    device: str = "auto"
    text: bool = False
    max_images: int | None = None
    grad_clip: float = 1.0
    warmup: float = 0.1
    amp: bool = True
    workers: int = 0  # DataLoader worker processes (models.training.loader_options)
    weights: str | None = None  # a weight file for a standard backbone (models.classifier.backbones)

    def __post_init__(self):
        check_device_name(self.device)
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        for name in ("epochs", "batch_size", "lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_images is not None and self.max_images <= 0:
            raise ValueError(f"max_images must be > 0, got {self.max_images}")


SECTIONS = {"model": ScanpathConfig, "train": ScanpathTrainConfig}
