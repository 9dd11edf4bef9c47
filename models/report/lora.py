"""LoRA adapters on a causal LM (peft): what Gaze2Report trains and what loading a report model re-attaches.

Below both training and generation, so loading a model never imports the trainer.
"""

from __future__ import annotations

import warnings


def attach_lora(model, r: int, alpha: int, dropout: float = 0.0):
    """Wrap ``model`` with LoRA adapters of rank ``r`` (targets detected per architecture: attention and MLP
    projections); base weights frozen. Returns ``(peft_model, target module names)``."""
    from peft import LoraConfig, get_peft_model

    from models.report.lm import lora_targets

    targets = lora_targets(model)
    fan_in_fan_out = getattr(model.config, "model_type", "") == "gpt2"  # GPT-2 uses Conv1D (transposed)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        fan_in_fan_out=fan_in_fan_out, bias="none", task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config), targets
