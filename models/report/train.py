"""Training of the report generator, in two stages.

Stage 1 (language): a word-level tokenizer and a small GPT-2 trained from scratch (or a local ``--lm``
folder fine-tuned) on prompted report sequences: IU X-ray reports (prompt = our labeler's keywords for the
report itself, no regions) and the case store's reports (prompt = the case's CheXpert values as keywords plus
regions from boxes and gaze, keywords from noisy label scores as imperfect as a classifier's; each store report
is repeated ``case_repeat`` times per epoch with a fresh prompt). A quarter of the sequences drop the prompt so
the LM also models plain text.

Stage 2 (Gaze2Report): LoRA adapters (peft) on the stage-1 LM plus the visual/gaze graph prefix
(:class:`~models.report.gaze2report.Gaze2ReportPrefix`), trained on the store's images, recorded
fixations and reports: LM loss on the report tokens + ``aux_weight`` x finding BCE on the prefix's
auxiliary head. Only adapter and prefix parameters are trainable.

Output folder: ``lm/`` (the stage-1 LM and tokenizer, ``save_pretrained``) and ``report.pt`` (a
models.runtime checkpoint of kind "report": prefix weights, LoRA weights, configuration, history).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from models.report.corpus import TextReport
from models.report.lm import sequence_text
from models.report.prompt import build_plan, noisy_scores, plan_from_labels
from models.schema import Case

CHECKPOINT_KIND = "report"
CHECKPOINT_FILE = "report.pt"
LM_DIR = "lm"


@dataclass
class TrainConfig:
    lm_epochs: int = 6
    g2r_epochs: int = 8
    batch_size: int = 32
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
    box_dropout: float = 0.5  # train prompts without boxes half the time (inference may have none)
    prompt_noise: float = 0.15  # store-case prompts come from noisy label scores, like a classifier's
    case_repeat: int = 4  # store reports appear this often per LM epoch (fresh noisy prompts each time)
    aux_weight: float = 0.5
    min_frequency: int = 2
    n_layer: int = 4
    n_embd: int = 128
    seed: int = 0
    device: str = "cpu"
    lm_path: str | None = None
    max_train_steps: int | None = None  # caps each stage (tests)
    history: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ prompts
def iu_sequence(report: TextReport, labels: dict[str, int], rng: random.Random, prompt_dropout: float) -> str:
    """Training string for an IU report: keywords from its own labels (no regions: IU has no image here)."""
    prompt = None
    if rng.random() >= prompt_dropout:
        prompt = plan_from_labels(labels, with_regions=False).prompt_text()
    return sequence_text(prompt, report.findings, report.impression)


def case_prompt(case: Case, *, with_boxes: bool = True, noise_rng=None, noise: float = 0.0) -> str:
    """Prompt of a store case from its CheXpert values (exact, or as noisy scores with ``noise_rng``), boxes
    (optional) and recorded fixations."""
    w, h = case.image.width or 1, case.image.height or 1
    boxes = case.boxes if with_boxes else []
    if noise_rng is None:
        return plan_from_labels(case.findings, boxes, case.fixations, w, h).prompt_text()
    scores = noisy_scores(case.findings, noise_rng, noise)
    return build_plan(scores, boxes, case.fixations, w, h).prompt_text()


def case_sequence(case: Case, rng: random.Random, cfg: "TrainConfig", noise_rng) -> str:
    prompt = None
    if rng.random() >= cfg.prompt_dropout:
        prompt = case_prompt(case, with_boxes=rng.random() >= cfg.box_dropout, noise_rng=noise_rng,
                             noise=cfg.prompt_noise)
    return sequence_text(prompt, case.report.findings, case.report.impression)


# ------------------------------------------------------------------------------------------ stage 1
def _log(progress: Callable[[str], None] | None, msg: str) -> None:
    if progress:
        progress(msg)


def lm_loss(model, tokenizer, texts: Sequence[str], max_length: int, device) -> float:
    """Mean token cross-entropy (nats) of ``model`` on ``texts``' report tokens."""
    import torch

    from models.report.lm import encode_batch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            ids, mask, labels = encode_batch(tokenizer, texts[i: i + 64], max_length)
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
            n = int((labels[:, 1:] != -100).sum())
            total += float(out.loss) * n
            count += n
    return total / max(count, 1)


def train_language_model(train_texts: Sequence[str], val_texts: Sequence[str], cfg: TrainConfig, *,
                         vocab_texts: Sequence[str], progress=None):
    """Stage 1: ``(model, tokenizer, history)``."""
    import torch

    from models.report.lm import batches, count_parameters, encode_batch, load_lm, small_gpt2, train_tokenizer

    device = torch.device(cfg.device)
    if cfg.lm_path:
        model, tokenizer = load_lm(cfg.lm_path)
    else:
        tokenizer = train_tokenizer(vocab_texts, min_frequency=cfg.min_frequency, max_length=cfg.max_length)
        model = small_gpt2(len(tokenizer), n_layer=cfg.n_layer, n_embd=cfg.n_embd,
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lm_lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train_texts) / cfg.batch_size)
    total = cfg.lm_epochs * steps_per_epoch
    if cfg.max_train_steps:
        total = min(total, cfg.max_train_steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lm_lr, total_steps=max(total, 1), pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = {"params": count_parameters(model), "vocab": len(tokenizer), "train_loss": [], "val_loss": [],
               "initial_val_loss": lm_loss(model, tokenizer, list(val_texts), cfg.max_length, device)}
    step, t0 = 0, time.time()
    for epoch in range(cfg.lm_epochs):
        model.train()
        running = []
        for batch in batches(list(train_texts), cfg.batch_size, gen):
            if step >= total:
                break
            ids, mask, labels = encode_batch(tokenizer, batch, cfg.max_length)
            loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running.append(float(loss))
            step += 1
        val = lm_loss(model, tokenizer, list(val_texts), cfg.max_length, device)
        history["train_loss"].append(sum(running) / max(len(running), 1))
        history["val_loss"].append(val)
        _log(progress, f"[lm] epoch {epoch + 1}/{cfg.lm_epochs} train {history['train_loss'][-1]:.3f} "
                       f"val {val:.3f} (ppl {math.exp(val):.1f}) {time.time() - t0:.0f}s")
        if step >= total:
            break
    history["seconds"] = time.time() - t0
    history["source"] = cfg.lm_path or "trained from scratch"
    return model.eval(), tokenizer, history


# ------------------------------------------------------------------------------------------ stage 2
def attach_lora(model, cfg: TrainConfig):
    """Wrap ``model`` with LoRA adapters (targets detected per architecture); base weights frozen."""
    from peft import LoraConfig, get_peft_model

    from models.report.lm import lora_targets

    targets = lora_targets(model)
    fan_in_fan_out = getattr(model.config, "model_type", "") == "gpt2"  # GPT-2 uses Conv1D (transposed)
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, fan_in_fan_out=fan_in_fan_out, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lcfg), targets


def prefix_config(cfg: TrainConfig, lm_hidden: int):
    from models.report.gaze2report import PrefixConfig

    return PrefixConfig(image_size=cfg.image_size, grid=max(cfg.image_size // 16, 1), prefix_tokens=cfg.prefix_tokens,
                        lm_hidden=lm_hidden)


def lm_hidden_size(model) -> int:
    return int(model.get_input_embeddings().embedding_dim)


def prefixed_forward(lm, prefix_tokens, ids, mask, labels=None):
    """LM forward on ``[prefix (B, K, H)] + token embeddings``; the prefix gets no loss."""
    import torch

    emb = lm.get_input_embeddings()(ids)
    inputs = torch.cat([prefix_tokens.to(emb.dtype), emb], dim=1)
    pmask = torch.ones(ids.shape[0], prefix_tokens.shape[1], dtype=mask.dtype, device=mask.device)
    full_mask = torch.cat([pmask, mask], dim=1)
    full_labels = None
    if labels is not None:
        full_labels = torch.cat([torch.full_like(pmask, -100), labels], dim=1)
    return lm(inputs_embeds=inputs, attention_mask=full_mask, labels=full_labels)


def g2r_batch_texts(cases: Sequence[Case], rng: random.Random, cfg: TrainConfig, train: bool, noise_rng) -> list[str]:
    if not train:
        return [sequence_text(case_prompt(c, with_boxes=False), c.report.findings, c.report.impression) for c in cases]
    return [case_sequence(c, rng, cfg, noise_rng) for c in cases]


def train_gaze2report(lm, tokenizer, train_cases: Sequence[Case], val_cases: Sequence[Case], cfg: TrainConfig, *,
                      progress=None):
    """Stage 2: ``(peft_lm, prefix, history)`` (see module docstring)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from models.datasets.torch_data import CaseDataset, collate
    from models.report.gaze2report import Gaze2ReportPrefix
    from models.report.lm import count_parameters, encode_batch

    device = torch.device(cfg.device)
    peft_lm, targets = attach_lora(lm, cfg)
    prefix = Gaze2ReportPrefix(prefix_config(cfg, lm_hidden_size(lm))).to(device)
    peft_lm.to(device)
    params = [p for p in peft_lm.parameters() if p.requires_grad] + list(prefix.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.g2r_lr, weight_decay=0.01)
    by_id = {c.id: c for c in list(train_cases) + list(val_cases)}
    train_ds = CaseDataset(train_cases, cfg.image_size)
    val_ds = CaseDataset(val_cases, cfg.image_size)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.g2r_batch_size, shuffle=True, collate_fn=collate, generator=gen)
    steps = cfg.g2r_epochs * len(loader)
    if cfg.max_train_steps:
        steps = min(steps, cfg.max_train_steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.g2r_lr, total_steps=max(steps, 1), pct_start=0.1)
    rng = random.Random(cfg.seed)
    noise_rng = np.random.default_rng(cfg.seed)
    history = {"lora_targets": targets, "trainable_params": count_parameters(peft_lm, True) + count_parameters(prefix),
               "lm_frozen_params": count_parameters(peft_lm) - count_parameters(peft_lm, True),
               "train_loss": [], "val_loss": [], "use_gaze": cfg.use_gaze}

    def run_batch(batch, train: bool):
        cases = [by_id[i] for i in batch["id"]]
        ids, mask, labels = encode_batch(tokenizer, g2r_batch_texts(cases, rng, cfg, train, noise_rng), cfg.max_length)
        tokens, aux = prefix(batch["image"].to(device), batch["fixations"].to(device),
                             batch["n_fixations"].to(device), use_gaze=cfg.use_gaze)
        out = prefixed_forward(peft_lm, tokens, ids.to(device), mask.to(device), labels.to(device))
        target = batch["labels"].to(device)
        weight = batch["label_mask"].to(device)
        aux_loss = (F.binary_cross_entropy_with_logits(aux, target, reduction="none") * weight).sum() / weight.sum().clamp(min=1)
        return out.loss, aux_loss

    step, t0 = 0, time.time()
    for epoch in range(cfg.g2r_epochs):
        prefix.train()
        peft_lm.train()
        running = []
        for batch in loader:
            if step >= steps:
                break
            lm_l, aux_l = run_batch(batch, True)
            loss = lm_l + cfg.aux_weight * aux_l
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            running.append(float(lm_l))
            step += 1
        prefix.eval()
        peft_lm.eval()
        val = []
        with torch.no_grad():
            for batch in DataLoader(val_ds, batch_size=32, collate_fn=collate):
                val.append(float(run_batch(batch, False)[0]))
        history["train_loss"].append(sum(running) / max(len(running), 1))
        history["val_loss"].append(sum(val) / max(len(val), 1))
        _log(progress, f"[gaze2report] epoch {epoch + 1}/{cfg.g2r_epochs} train {history['train_loss'][-1]:.3f} "
                       f"val {history['val_loss'][-1]:.3f} {time.time() - t0:.0f}s")
        if step >= steps:
            break
    history["seconds"] = time.time() - t0
    return peft_lm.eval(), prefix.eval(), history


# ------------------------------------------------------------------------------------------ both
def split_cases(cases: Sequence[Case], splits: dict) -> dict[str, list[Case]]:
    """Store cases with a report, by split (train / val / test)."""
    out = {"train": [], "val": [], "test": []}
    where = {cid: name for name, ids in (splits or {}).items() for cid in ids}
    from models.datasets.base import hash_split

    for c in cases:
        if c.report is None or not c.report.text.strip():
            continue
        out.setdefault(where.get(c.id) or hash_split(c.id), []).append(c)
    return out


def train_report_generator(cases_by_split: dict[str, list[Case]], out_dir: str | Path, cfg: TrainConfig, *,
                           iu: Sequence[TextReport] = (), synthetic: bool = True, dataset: str = "phantom",
                           progress=None) -> Path:
    """Both stages; writes ``out_dir/lm`` and ``out_dir/report.pt`` and returns the checkpoint path."""
    from peft import get_peft_model_state_dict

    from models.report.labeler import default_labeler
    from models.runtime import save_checkpoint, seed_everything

    seed_everything(cfg.seed)
    out_dir = Path(out_dir)
    rng = random.Random(cfg.seed)
    train_cases, val_cases = cases_by_split.get("train", []), cases_by_split.get("val", [])
    if not train_cases:
        raise ValueError("report training: the data has no training cases with a report")
    if not val_cases:  # keep a few training cases aside rather than fail
        val_cases = train_cases[-max(1, len(train_cases) // 10):]
        train_cases = train_cases[: len(train_cases) - len(val_cases)]

    iu_train = [r for r in iu if r.split == "train"]
    iu_val = [r for r in iu if r.split == "val"]
    labels = default_labeler().label_many([r.text for r in iu_train + iu_val])
    iu_lab = dict(zip([r.id for r in iu_train + iu_val], labels))
    lm_train = [iu_sequence(r, iu_lab[r.id], rng, cfg.prompt_dropout) for r in iu_train]
    noise_rng = np.random.default_rng(cfg.seed)
    # Repeat the store's reports so its prompt->report mapping is not drowned by the IU text.
    lm_train += [case_sequence(c, rng, cfg, noise_rng) for _ in range(cfg.case_repeat) for c in train_cases]
    lm_val = [iu_sequence(r, iu_lab[r.id], rng, 0.0) for r in iu_val]
    lm_val += [sequence_text(case_prompt(c), c.report.findings, c.report.impression) for c in val_cases]
    # Vocabulary: every report and every prompt word (regions, keywords) the LM will be asked to read.
    vocab_texts = lm_train + [sequence_text(case_prompt(c), "", "") for c in train_cases]
    _log(progress, f"[lm] {len(lm_train)} training sequences ({len(iu_train)} IU X-ray, {len(train_cases)} {dataset})")
    lm, tokenizer, lm_hist = train_language_model(lm_train, lm_val, cfg, vocab_texts=vocab_texts, progress=progress)
    lm_dir = out_dir / LM_DIR
    lm.save_pretrained(lm_dir)
    tokenizer.save_pretrained(lm_dir)

    peft_lm, prefix, g2r_hist = train_gaze2report(lm, tokenizer, train_cases, val_cases, cfg, progress=progress)
    cfg.history = {"lm": lm_hist, "gaze2report": g2r_hist}
    config = {k: v for k, v in asdict(cfg).items() if k != "history"}
    config["lm_dir"] = LM_DIR
    config["prefix"] = prefix.config.to_dict()
    config["lora_targets"] = g2r_hist["lora_targets"]
    return save_checkpoint(out_dir / CHECKPOINT_FILE, CHECKPOINT_KIND, config,
                           {"prefix": prefix.state_dict(), "lora": get_peft_model_state_dict(peft_lm)},
                           history=cfg.history, synthetic=synthetic, dataset=dataset,
                           iu_reports={"train": len(iu_train), "val": len(iu_val)})
