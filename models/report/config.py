"""The report generator's configuration, in front of its code (no torch here). The checkpoint stores it as
``config.train`` beside what training derives (``config.prefix``, ``config.lora_targets``, ``config.lm_dir``);
``gazelabel train report`` and ``POST /train/report`` take any field by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.runtime import check_device_name


@dataclass
class ReportConfig:
    """Both training stages (see ``models.report.train``).

    Stage 1, the language model: ``lm_epochs``, ``batch_size``, ``lm_lr``, a from-scratch GPT-2 of ``n_layer``
    layers and width ``n_embd`` over a word-level tokenizer (words seen ``min_frequency`` times), or a local
    causal LM at ``lm_path``; ``iu`` adds the 2,955 IU X-ray reports to its sentences.
    Stage 2, Gaze2Report: ``g2r_epochs``, ``g2r_batch_size``, ``g2r_lr``, LoRA ``lora_r`` / ``lora_alpha`` /
    ``lora_dropout``, the graph prefix of ``prefix_tokens`` tokens over ``image_size`` images (gaze nodes
    unless ``use_gaze`` is False), and ``aux_weight`` x the prefix's finding loss.
    ``prompt_dropout``: sentences whose control keeps only the section; ``box_dropout``: regions without
    boxes (inference may have none); ``case_repeat``: store reports per LM epoch. ``max_train_steps`` caps
    each stage (tests). ``grad_clip`` 1.0 and ``warmup`` 0.1 for both stages.
    """

    lm_epochs: int = 6
    g2r_epochs: int = 8
    batch_size: int = 64
    g2r_batch_size: int = 16
    lm_lr: float = 2e-3
    g2r_lr: float = 1e-3
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    use_gaze: bool = True
    image_size: int = 128
    prefix_tokens: int = 8
    max_length: int = 160
    prompt_dropout: float = 0.25
    box_dropout: float = 0.5
    case_repeat: int = 2
    aux_weight: float = 0.5
    min_frequency: int = 2
    n_layer: int = 4
    n_embd: int = 128
    seed: int = 0
    device: str = "auto"
    lm_path: str | None = None
    iu: bool = False
    max_train_steps: int | None = None
    grad_clip: float = 1.0
    warmup: float = 0.1
    amp: bool = True
    workers: int = 0  # DataLoader worker processes of the Gaze2Report stage (models.training.loader_options)
    backbone: str = "gazelabel"  # the visual tokens' image encoder: our CNN or a standard backbone
    weights: str | None = None  # a weight file for that backbone (models.classifier.backbones)

    def __post_init__(self):
        check_device_name(self.device)
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        from models.classifier.config import BACKBONE_STRIDES, check_backbone

        check_backbone(self.backbone)
        if self.image_size % BACKBONE_STRIDES[self.backbone] and self.backbone != "gazelabel":
            raise ValueError(f"image_size must be a multiple of {BACKBONE_STRIDES[self.backbone]} for {self.backbone}, "
                             f"got {self.image_size}")
        if self.g2r_epochs < 1 or self.lm_epochs < 0 or (self.lm_epochs == 0 and not self.lm_path):
            raise ValueError("lm_epochs must be >= 1 (0 only with lm_path) and g2r_epochs >= 1")
        if self.lora_r < 1:
            raise ValueError(f"lora_r must be >= 1, got {self.lora_r}")


# Seeded samples a sentence gets at inference after the labeler refused its greedy sentence, before the
# template sentence is used. 0: greedy or template. On the quick models (40 held-out phantom reports,
# SYNTHETIC, benchmarks/results/issue21_report_samples{0,1,2,4}.json) 4 samples raise the LM's share of the
# Gaze2Report sentences from 15% to 36% at the same CE-F1 (0.262: the read-back keeps the plan's findings)
# and ROUGE-L 0.295 vs 0.297 (CI 0.277-0.322), for 2.3x the report time (86 vs 37 ms); a request can ask for
# more (RunOptions.report_samples, params.report_samples).
INFERENCE_SAMPLES = 0
MAX_INFERENCE_SAMPLES = 8


def check_samples(samples, name: str = "samples") -> int:
    """A sample budget in 0..MAX_INFERENCE_SAMPLES (not a bool); ValueError names ``name`` otherwise."""
    if isinstance(samples, bool) or not isinstance(samples, int) or not 0 <= samples <= MAX_INFERENCE_SAMPLES:
        raise ValueError(f"{name} must be an integer in 0..{MAX_INFERENCE_SAMPLES} (seeded samples of a refused "
                         f"sentence), got {samples!r}")
    return samples

KIND = "report"  # checkpoint kind
CHECKPOINT_NAME = "report.pt"  # the checkpoint inside the published report/ folder (next to lm/)
SECTIONS = {"train": ReportConfig}
