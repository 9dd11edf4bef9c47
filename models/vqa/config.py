"""The VQA model's configuration, in front of its code (no torch here). The checkpoint stores both sections
(``config.model``, ``config.train``) plus the frozen backbone's classifier config (``config.backbone``);
``gazelabel train vqa`` takes its defaults from these fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from models.runtime import check_device_name

# Which inputs the network sees. "all" is the model; the other two are the baselines, trained the same way:
# "no_gaze" zeroes and masks the gaze tokens and the region-coverage token, "question_only" also the image
# (the language prior).
INPUTS = ("all", "no_gaze", "question_only")
KIND = "vqa"
MAX_QUESTION_CHARS = 300  # longer questions are refused (CLI exit 2, HTTP 400)


@dataclass
class VQAConfig:
    """Architecture (see :mod:`models.vqa.network`).

    Attributes:
        d_model, heads, layers, ff: the fusion transformer over question, slot, coverage, finding, gaze and
            pooled visual tokens.
        dropout: in the transformer and the heads (also the MC-dropout rate).
        pool: average-pooling factor of the feature grid for the transformer's visual tokens (the grounding
            map keeps the full grid).
        max_fixations: gaze tokens per question (longer scanpaths keep their first fixations).
        frequencies: Fourier frequencies of the (x, y) position encodings of grid cells and fixations.
        inputs: "all", "no_gaze" or "question_only" (:data:`INPUTS`).
        text_dim: frozen MiniLM embedding size.
    """

    d_model: int = 64
    heads: int = 4
    layers: int = 2
    ff: int = 128
    dropout: float = 0.1
    pool: int = 4
    max_fixations: int = 64
    frequencies: int = 6
    inputs: str = "all"
    text_dim: int = 384

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        for name in ("d_model", "heads", "layers", "ff", "pool", "max_fixations", "frequencies"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VQATrainConfig:
    """Optimisation and data.

    Attributes:
        classifier: the trained classifier checkpoint whose network is the frozen image backbone (None = the
            ``classifier.pt`` beside ``--out``). Its weights are copied into the VQA checkpoint.
        scanpath: the scanpath checkpoint whose sampled paths train the gaze tokens beside the recorded
            readers (None = ``scanpath.pt`` beside ``--out`` when it exists, else recorded gaze only).
        gaze_samples: predicted scanpaths per training image (T=0.3, as the pipeline shows them).
        negatives: presence questions about absent findings per positive one (at least two per image).
        grounding_weight, region_weight, kind_weight: loss weights of the grounding map, the region-set head
            ("which regions were not inspected") and the question-kind head.
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    classifier: str | None = None
    scanpath: str | None = None
    gaze_samples: int = 2
    negatives: float = 1.0
    max_images: int | None = None
    grounding_weight: float = 1.0
    region_weight: float = 1.0
    kind_weight: float = 0.5
    grad_clip: float = 1.0
    warmup: float = 0.1
    amp: bool = True

    def __post_init__(self):
        check_device_name(self.device)
        for name in ("epochs", "batch_size", "lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.gaze_samples < 0:
            raise ValueError(f"gaze_samples must be >= 0, got {self.gaze_samples}")
        if self.max_images is not None and self.max_images <= 0:
            raise ValueError(f"max_images must be > 0, got {self.max_images}")
        for name in ("negatives", "grounding_weight", "region_weight", "kind_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


SECTIONS = {"model": VQAConfig, "train": VQATrainConfig}
