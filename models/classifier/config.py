"""The classifier's configuration, in front of its code (no torch here): what the network is, what it is
trained to minimise, and how it trains. The checkpoint stores all three (``config.model``, ``config.loss``,
``config.train``); ``gazelabel train classifier`` takes its defaults from these fields and the server's
``POST /train/gaze_classifier`` accepts any of them by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from models.runtime import check_device_name
from models.vocab import FINDINGS

UNCERTAIN_POLICIES = ("positive", "negative", "ignore")
# Backbone -> output stride of its feature grid (models.classifier.backbones): "gazelabel" is our own small
# encoder (models.classifier.network.Encoder); the others are torchvision architectures.
BACKBONE_STRIDES = {"gazelabel": 8, "densenet121": 32, "resnet50": 16, "convnext_tiny": 32}
# How images in [0, 1] are scaled for a standard backbone: "auto" = "imagenet", or the weight file's own
# ("xrv" for torchxrayvision's checkpoints); our own encoder has its fixed scaling.
INPUT_NORMS = ("auto", "imagenet", "xrv")


def check_backbone(backbone: str, input_norm: str = "auto") -> None:
    """The backbone and input-scaling options every family's config shares; ValueError names the option."""
    if backbone not in BACKBONE_STRIDES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONE_STRIDES)}, got {backbone!r}")
    if input_norm not in INPUT_NORMS:
        raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}")
    if backbone == "gazelabel" and input_norm != "auto":
        raise ValueError("input_norm applies to the standard backbones; the gazelabel encoder has its own scaling")
GAZE_TARGETS = ("prior", "all", "positive")


@dataclass
class ClassifierConfig:
    """Architecture.

    Attributes:
        size: model input side in pixels (a multiple of the backbone's stride; 224 and 512 are tested).
        backbone: "gazelabel" (our small encoder, stride 8) or a torchvision architecture of
            :data:`BACKBONE_STRIDES` (its weights from a user's file: ``TrainConfig.weights``).
        input_norm: the input scaling of a standard backbone (:data:`INPUT_NORMS`; training sets it from the
            weight file).
        width: channels of our encoder's stem; its stages use width x (2, 4, 8) (unused by other backbones).
        dropout: dropout on pooled per-finding features (also the MC-dropout rate).
        embed_dim: size of the image-report contrastive space (0 = no contrastive head).
        text_dim: size of the frozen text embedding (MiniLM: 384).
        n_findings: number of outputs (CheXpert-14).
    """

    size: int = 224
    backbone: str = "gazelabel"
    input_norm: str = "auto"
    width: int = 16
    dropout: float = 0.2
    embed_dim: int = 128
    text_dim: int = 384
    n_findings: int = len(FINDINGS)

    def __post_init__(self):
        check_backbone(self.backbone, self.input_norm)
        if self.size <= 0 or self.size % self.stride:
            where = "" if self.backbone == "gazelabel" else f" for {self.backbone}"
            raise ValueError(f"size must be a positive multiple of {self.stride}{where}, got {self.size}")
        if self.width <= 0:
            raise ValueError(f"width must be > 0, got {self.width}")

    @property
    def stride(self) -> int:
        """Output stride of the feature grid the attention and the gaze loss live on."""
        return BACKBONE_STRIDES[self.backbone]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LossConfig:
    """Weights of the training objective.

    uncertain: how uncertain (-1) labels train: "positive" (U-Ones), "negative" or "ignore".
    gaze_weight: weight of the whole gaze-attention loss (0 = the no-gaze baseline).
    gaze_target: which map meets the gaze map: "prior" (the network's shared attention prior, default),
        or "all" / "positive" finding maps combined by ``combine_attention``.
    gaze_mse, gaze_kl, gaze_cc, gaze_com: weights of the four gaze terms.
    gaze_warmup_epochs: ramp the gaze weight linearly from 0 to ``gaze_weight`` over this many epochs.
    contrastive_weight: image-report InfoNCE (needs reports); box_weight: attention inside boxes.
    """

    uncertain: str = "positive"
    gaze_weight: float = 1.0
    gaze_target: str = "prior"
    gaze_mse: float = 1.0
    gaze_kl: float = 1.0
    gaze_cc: float = 1.0
    gaze_com: float = 1.0
    gaze_warmup_epochs: float = 0.0
    contrastive_weight: float = 0.0
    box_weight: float = 0.0

    def __post_init__(self):
        if self.uncertain not in UNCERTAIN_POLICIES:
            raise ValueError(f"uncertain must be one of {', '.join(UNCERTAIN_POLICIES)}, got {self.uncertain!r}")
        if self.gaze_target not in GAZE_TARGETS:
            raise ValueError(f"gaze_target must be one of {', '.join(GAZE_TARGETS)}, got {self.gaze_target!r}")
        for name in ("gaze_weight", "gaze_mse", "gaze_kl", "gaze_cc", "gaze_com", "contrastive_weight", "box_weight",
                     "gaze_warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    def gaze_weight_at(self, epoch: float) -> float:
        """Curriculum: ``gaze_weight * min(1, epoch / gaze_warmup_epochs)`` (epoch may be fractional)."""
        if self.gaze_warmup_epochs <= 0:
            return self.gaze_weight
        return self.gaze_weight * min(1.0, max(0.0, epoch) / self.gaze_warmup_epochs)


@dataclass
class TrainConfig:
    """Optimisation. ``grad_clip`` 5.0 and ``warmup`` 0.15 are this family's measured settings (the shared
    loop's knobs, :class:`models.training.LoopConfig`). ``weights``: a file the user downloaded for the
    backbone (a torchvision state_dict, a timm checkpoint or a torchxrayvision DenseNet), read once at the
    start of training; a path on the training machine, so a server never takes it from a request."""

    epochs: int = 10
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    max_images: int | None = None
    augment: bool = True
    grad_clip: float = 5.0
    warmup: float = 0.15
    amp: bool = True
    weights: str | None = None  # a weight file for a standard backbone (models.classifier.backbones)
    workers: int = 0  # DataLoader worker processes (models.training.loader_options)

    def __post_init__(self):
        check_device_name(self.device)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_images is not None and self.max_images <= 0:
            raise ValueError(f"max_images must be > 0, got {self.max_images}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")


SECTIONS = {"model": ClassifierConfig, "loss": LossConfig, "train": TrainConfig}
