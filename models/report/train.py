"""Training of the report generator, in two stages.

Both stages train on sentences, each after its control (:mod:`models.report.sentences`): the labeler
reads every reference sentence and its control says what the labeler found in it, so a control and its
sentence always agree.

Stage 1 (language): a word-level tokenizer and a small GPT-2 trained from scratch (or a local ``--lm``
folder fine-tuned) on the sentences of IU X-ray reports (controls without regions: no image here) and of
the case store's reports (regions from the case's boxes and gaze, boxes dropped half the time since
inference may have none; the store's reports are repeated ``case_repeat`` times per epoch). A quarter of
the sentences keep only the section in their control so the LM also models plain text.

Stage 2 (Gaze2Report): LoRA adapters (peft) on the stage-1 LM plus the visual/gaze graph prefix
(:class:`~models.report.gaze2report.Gaze2ReportPrefix`), trained on the store's images, recorded
fixations and report sentences (the image's prefix goes in front of each of its sentences): LM loss on the
sentence tokens + ``aux_weight`` x finding BCE on the prefix's auxiliary head. Only adapter and prefix
parameters are trainable.

Output folder: ``lm/`` (the stage-1 LM and tokenizer, ``save_pretrained``) and ``report.pt`` (a
models.runtime checkpoint of kind "report": prefix weights, LoRA weights, configuration, history).
"""

from __future__ import annotations

import math
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from models.optim import one_cycle
from models.report.corpus import TextReport
from models.report.lm import sequence_text
from models.report.prompt import ReportPlan, plan_from_labels
from models.report.sentences import ReferenceSentence, read_references, training_pairs
from models.schema import Case
from models.vocab import FINDINGS, REGION_NAMES

CHECKPOINT_KIND = "report"
CHECKPOINT_FILE = "report.pt"
LM_DIR = "lm"


@dataclass
class TrainConfig:
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
    prompt_dropout: float = 0.25  # sentences whose control keeps only the section
    box_dropout: float = 0.5  # regions without boxes half the time (inference may have none)
    case_repeat: int = 2  # store reports appear this often per LM epoch
    aux_weight: float = 0.5
    min_frequency: int = 2
    n_layer: int = 4
    n_embd: int = 128
    seed: int = 0
    device: str = "cpu"
    lm_path: str | None = None
    max_train_steps: int | None = None  # caps each stage (tests)
    history: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ sentences
def case_plan(case: Case, *, with_boxes: bool = True) -> ReportPlan:
    """The plan a case's labels, boxes (optional) and recorded fixations give: its regions go in the
    controls of the case's sentences."""
    w, h = case.image.width or 1, case.image.height or 1
    return plan_from_labels(case.findings, case.boxes if with_boxes else [], case.fixations, w, h)


def sentence_texts(refs: list[ReferenceSentence], plan: ReportPlan | None, rng: random.Random,
                   prompt_dropout: float) -> list[str]:
    """Training strings of one report's sentences; with probability ``prompt_dropout`` a control keeps only
    its section ("findings :")."""
    out = []
    for control, sentence in training_pairs(refs, plan):
        if rng.random() < prompt_dropout:
            control = control.split(":")[0] + ":"
        out.append(sequence_text(control, sentence))
    return out


def control_vocabulary() -> str:
    """Every word a control can hold, so the tokenizer knows regions no training sentence happened to name."""
    words = ["findings", "impression", ":", ";", "@", "likely", "possible", "no", "normal", "lungs", "pleura",
             "heart", "bones", "chest"]
    return " ".join(words + [f.lower() for f in FINDINGS] + list(REGION_NAMES))


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
    sched = one_cycle(opt, cfg.lm_lr, total, pct_start=0.1)
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
    with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
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


def train_gaze2report(lm, tokenizer, train_cases: Sequence[Case], val_cases: Sequence[Case], cfg: TrainConfig, *,
                      references: dict[str, list[ReferenceSentence]], progress=None):
    """Stage 2: ``(peft_lm, prefix, history)`` (see module docstring); ``references`` holds each case's
    labelled report sentences by case id."""
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
    sched = one_cycle(opt, cfg.g2r_lr, steps, pct_start=0.1)
    rng = random.Random(cfg.seed)
    history = {"lora_targets": targets, "trainable_params": count_parameters(peft_lm, True) + count_parameters(prefix),
               "lm_frozen_params": count_parameters(peft_lm) - count_parameters(peft_lm, True),
               "train_loss": [], "val_loss": [], "use_gaze": cfg.use_gaze}

    def run_batch(batch, train: bool):
        texts, owner = [], []
        for k, cid in enumerate(batch["id"]):
            plan = case_plan(by_id[cid], with_boxes=not train or rng.random() >= cfg.box_dropout)
            own = sentence_texts(references[cid], plan, rng, cfg.prompt_dropout if train else 0.0)
            texts += own
            owner += [k] * len(own)
        tokens, aux = prefix(batch["image"].to(device), batch["fixations"].to(device),
                             batch["n_fixations"].to(device), use_gaze=cfg.use_gaze)
        ids, mask, labels = encode_batch(tokenizer, texts, cfg.max_length)
        tokens = tokens[torch.tensor(owner, device=device)]  # each sentence gets its image's prefix
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
    labeler = default_labeler()
    iu_refs = read_references([(r.findings, r.impression) for r in iu_train + iu_val], labeler)
    cases = train_cases + val_cases
    case_refs = dict(zip([c.id for c in cases],
                         read_references([(c.report.findings, c.report.impression) for c in cases], labeler)))
    lm_train = [t for refs in iu_refs[: len(iu_train)] for t in sentence_texts(refs, None, rng, cfg.prompt_dropout)]
    # Repeat the store's reports so their region-bearing controls are not drowned by the IU text.
    lm_train += [t for _ in range(cfg.case_repeat) for c in train_cases
                 for t in sentence_texts(case_refs[c.id], case_plan(c, with_boxes=rng.random() >= cfg.box_dropout),
                                         rng, cfg.prompt_dropout)]
    lm_val = [t for refs in iu_refs[len(iu_train):] for t in sentence_texts(refs, None, rng, 0.0)]
    lm_val += [t for c in val_cases for t in sentence_texts(case_refs[c.id], case_plan(c), rng, 0.0)]
    vocab_texts = lm_train + [control_vocabulary()] * max(cfg.min_frequency, 1)
    _log(progress, f"[lm] {len(lm_train)} training sentences ({len(iu_train)} IU X-ray reports, "
                   f"{len(train_cases)} {dataset} reports x {cfg.case_repeat})")
    lm, tokenizer, lm_hist = train_language_model(lm_train, lm_val, cfg, vocab_texts=vocab_texts, progress=progress)
    lm_dir = out_dir / LM_DIR
    lm.save_pretrained(lm_dir)
    tokenizer.save_pretrained(lm_dir)

    peft_lm, prefix, g2r_hist = train_gaze2report(lm, tokenizer, train_cases, val_cases, cfg, references=case_refs,
                                                  progress=progress)
    cfg.history = {"lm": lm_hist, "gaze2report": g2r_hist}
    config = {k: v for k, v in asdict(cfg).items() if k != "history"}
    config["lm_dir"] = LM_DIR
    config["prefix"] = prefix.config.to_dict()
    config["lora_targets"] = g2r_hist["lora_targets"]
    return save_checkpoint(out_dir / CHECKPOINT_FILE, CHECKPOINT_KIND, config,
                           {"prefix": prefix.state_dict(), "lora": get_peft_model_state_dict(peft_lm)},
                           history=cfg.history, synthetic=synthetic, dataset=dataset,
                           iu_reports={"train": len(iu_train), "val": len(iu_val)})
