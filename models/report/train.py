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
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

from models.train_result import TrainResult
from models.report.config import ReportConfig
from models.report.corpus import TextReport, split_cases
from models.report.lm import sequence_text
from models.report.prompt import ReportPlan, plan_from_labels
from models.report.sentences import ReferenceSentence, read_references, training_pairs
from models.schema import Case
from models.training import LoopConfig, fit, loader_options
from models.vocab import FINDINGS, REGION_NAMES

LM_DIR = "lm"


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


def train_language_model(train_texts: Sequence[str], val_texts: Sequence[str], cfg: ReportConfig, ctx, *,
                         vocab_texts: Sequence[str], progress=None):
    """Stage 1: ``(model, tokenizer, history)``. Under torchrun each rank trains on its share of the
    sentences (DDP averages the gradients)."""
    import torch

    from models.distributed import unwrap_model, wrap_model
    from models.report.lm import batches, count_parameters, encode_batch, load_lm, small_gpt2, train_tokenizer

    device = ctx.device
    if cfg.lm_path:
        model, tokenizer = load_lm(cfg.lm_path)
    else:
        tokenizer = train_tokenizer(vocab_texts, min_frequency=cfg.min_frequency, max_length=cfg.max_length)
        model = small_gpt2(len(tokenizer), n_layer=cfg.n_layer, n_embd=cfg.n_embd,
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id)
    model.to(device)
    net = wrap_model(model, ctx)
    shard = list(train_texts)[ctx.rank::ctx.world_size]
    gen = torch.Generator().manual_seed(cfg.seed)
    initial = lm_loss(model, tokenizer, list(val_texts), cfg.max_length, device)

    def step(batch):
        ids, mask, labels = encode_batch(tokenizer, batch, cfg.max_length)
        loss = net(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
        return loss, {"train_loss": float(loss)}, 1

    def validate() -> dict:
        val = lm_loss(unwrap_model(net), tokenizer, list(val_texts), cfg.max_length, device)
        return {"val_loss": val, "ppl": math.exp(min(val, 50.0))}

    loop = LoopConfig(epochs=cfg.lm_epochs, lr=cfg.lm_lr, weight_decay=0.01, warmup=cfg.warmup, grad_clip=cfg.grad_clip,
                      max_steps=cfg.max_train_steps, amp=cfg.amp)
    epochs = fit(list(model.parameters()), lambda epoch: batches(shard, cfg.batch_size, gen), step, loop, ctx,
                 modules=[net], steps_per_epoch=math.ceil(len(shard) / cfg.batch_size), validate=validate,
                 log=progress, name="lm")
    history = {"params": count_parameters(model), "vocab": len(tokenizer), "initial_val_loss": initial,
               "train_loss": [e.get("train_loss", float("nan")) for e in epochs], "val_loss": [e["val_loss"] for e in epochs],
               "seconds": epochs[-1]["seconds"] if epochs else 0.0, "source": cfg.lm_path or "trained from scratch"}
    return model.eval(), tokenizer, history


# ------------------------------------------------------------------------------------------ stage 2
def prefix_config(cfg: ReportConfig, lm_hidden: int):
    from models.report.gaze2report import PrefixConfig

    return PrefixConfig(image_size=cfg.image_size, grid=max(cfg.image_size // 16, 1), prefix_tokens=cfg.prefix_tokens,
                        lm_hidden=lm_hidden, backbone=cfg.backbone)


def lm_hidden_size(model) -> int:
    return int(model.get_input_embeddings().embedding_dim)


def prefixed_forward(lm, prefix_tokens, ids, mask, labels=None):
    """LM forward on ``[prefix (B, K, H)] + token embeddings``; the prefix gets no loss. ``lm`` may be
    DDP-wrapped: the (frozen) embedding table is read from the wrapped model, the forward goes through the
    wrapper so that the LoRA gradients are all-reduced."""
    import torch

    from models.distributed import unwrap_model

    emb = unwrap_model(lm).get_input_embeddings()(ids)
    inputs = torch.cat([prefix_tokens.to(emb.dtype), emb], dim=1)
    pmask = torch.ones(ids.shape[0], prefix_tokens.shape[1], dtype=mask.dtype, device=mask.device)
    full_mask = torch.cat([pmask, mask], dim=1)
    full_labels = None
    if labels is not None:
        full_labels = torch.cat([torch.full_like(pmask, -100), labels], dim=1)
    return lm(inputs_embeds=inputs, attention_mask=full_mask, labels=full_labels)


def train_gaze2report(lm, tokenizer, train_cases: Sequence[Case], val_cases: Sequence[Case], cfg: ReportConfig, ctx, *,
                      references: dict[str, list[ReferenceSentence]], progress=None):
    """Stage 2: ``(peft_lm, prefix, history)`` (see module docstring); ``references`` holds each case's
    labelled report sentences by case id. Under torchrun the images are sharded (DistributedSampler)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from models.datasets.torch_data import CaseDataset, collate
    from models.distributed import make_sampler, wrap_model
    from models.report.gaze2report import Gaze2ReportPrefix
    from models.report.lm import count_parameters, encode_batch
    from models.report.lora import attach_lora

    device = ctx.device
    peft_lm, targets = attach_lora(lm, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
    from models.classifier.backbones import training_weights

    pcfg = prefix_config(cfg, lm_hidden_size(lm))
    state, _, norm = training_weights(cfg.weights, cfg.backbone, pcfg.input_norm)  # the file decides the scaling
    prefix = Gaze2ReportPrefix(replace(pcfg, input_norm=norm))
    if state is not None:
        prefix.encoder[0].body.load_state_dict(state, strict=True)
    prefix = prefix.to(device)
    peft_lm.to(device)
    lm_net, prefix_net = wrap_model(peft_lm, ctx), wrap_model(prefix, ctx)
    params = [p for p in peft_lm.parameters() if p.requires_grad] + list(prefix.parameters())
    by_id = {c.id: c for c in list(train_cases) + list(val_cases)}
    train_ds = CaseDataset(train_cases, cfg.image_size)
    val_ds = CaseDataset(val_cases, cfg.image_size)
    sampler = make_sampler(train_ds, ctx, shuffle=True, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.g2r_batch_size, shuffle=sampler is None, sampler=sampler,
                        collate_fn=collate, generator=gen, **loader_options(ctx.device, cfg.workers))
    rng = random.Random(cfg.seed)

    def run_batch(batch, train: bool, lm_module, prefix_module):
        texts, owner = [], []
        for k, cid in enumerate(batch["id"]):
            plan = case_plan(by_id[cid], with_boxes=not train or rng.random() >= cfg.box_dropout)
            own = sentence_texts(references[cid], plan, rng, cfg.prompt_dropout if train else 0.0)
            texts += own
            owner += [k] * len(own)
        tokens, aux = prefix_module(batch["image"].to(device), batch["fixations"].to(device),
                                    batch["n_fixations"].to(device), use_gaze=cfg.use_gaze)
        ids, mask, labels = encode_batch(tokenizer, texts, cfg.max_length)
        tokens = tokens[torch.tensor(owner, device=device)]  # each sentence gets its image's prefix
        out = prefixed_forward(lm_module, tokens, ids.to(device), mask.to(device), labels.to(device))
        target = batch["labels"].to(device)
        weight = batch["label_mask"].to(device)
        aux_loss = (F.binary_cross_entropy_with_logits(aux, target, reduction="none") * weight).sum() / weight.sum().clamp(min=1)
        return out.loss, aux_loss

    def step(batch):
        lm_l, aux_l = run_batch(batch, True, lm_net, prefix_net)
        return lm_l + cfg.aux_weight * aux_l, {"train_loss": float(lm_l)}, 1

    def validate() -> dict:
        prefix.eval()
        peft_lm.eval()
        with torch.no_grad():
            val = [float(run_batch(batch, False, peft_lm, prefix)[0]) for batch in DataLoader(val_ds, batch_size=32, collate_fn=collate)]
        return {"val_loss": sum(val) / max(len(val), 1)}

    loop = LoopConfig(epochs=cfg.g2r_epochs, lr=cfg.g2r_lr, weight_decay=0.01, warmup=cfg.warmup, grad_clip=cfg.grad_clip,
                      max_steps=cfg.max_train_steps, amp=cfg.amp)
    epochs = fit(params, loader, step, loop, ctx, modules=[lm_net, prefix_net], sampler=sampler, validate=validate,
                 log=progress, name="gaze2report")
    history = {"lora_targets": targets, "trainable_params": count_parameters(peft_lm, True) + count_parameters(prefix),
               "lm_frozen_params": count_parameters(peft_lm) - count_parameters(peft_lm, True),
               "train_loss": [e.get("train_loss", float("nan")) for e in epochs], "val_loss": [e["val_loss"] for e in epochs],
               "use_gaze": cfg.use_gaze, "seconds": epochs[-1]["seconds"] if epochs else 0.0}
    return peft_lm.eval(), prefix.eval(), history


# ------------------------------------------------------------------------------------------ both
def train_report_generator(cases_by_split: dict[str, list[Case]], out_dir: str | Path, cfg: ReportConfig, *,
                           iu: Sequence[TextReport] = (), synthetic: bool = True, dataset: str = "phantom",
                           progress=None) -> Path:
    """Both stages; writes ``out_dir/lm`` and ``out_dir/report.pt`` (rank 0) and returns the checkpoint path."""
    from peft import get_peft_model_state_dict

    from models.checkpoint import save_checkpoint
    from models.distributed import barrier, cleanup, init_distributed
    from models.report.config import CHECKPOINT_NAME, KIND
    from models.labeling.labeler import default_labeler
    from models.runtime import seed_everything

    ctx = init_distributed(cfg.device)
    say = progress if (progress is not None and ctx.is_main) else None
    try:
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
        _log(say, f"[lm] {len(lm_train)} training sentences ({len(iu_train)} IU X-ray reports, "
                  f"{len(train_cases)} {dataset} reports x {cfg.case_repeat})")
        lm, tokenizer, lm_hist = train_language_model(lm_train, lm_val, cfg, ctx, vocab_texts=vocab_texts, progress=say)
        lm_dir = out_dir / LM_DIR
        if ctx.is_main:
            lm.save_pretrained(lm_dir)
            tokenizer.save_pretrained(lm_dir)

        peft_lm, prefix, g2r_hist = train_gaze2report(lm, tokenizer, train_cases, val_cases, cfg, ctx,
                                                      references=case_refs, progress=say)
        checkpoint = out_dir / CHECKPOINT_NAME
        if ctx.is_main:
            save_checkpoint(
                checkpoint, KIND,
                config={"train": asdict(cfg), "lm_dir": LM_DIR, "prefix": prefix.config.to_dict(),
                        "lora_targets": g2r_hist["lora_targets"]},
                state={"prefix": prefix.state_dict(), "lora": get_peft_model_state_dict(peft_lm)},
                info={"synthetic": synthetic, "dataset": dataset, "iu_reports": {"train": len(iu_train), "val": len(iu_val)},
                      "history": {"lm": lm_hist, "gaze2report": g2r_hist}},
                metrics={"lm_val_loss": lm_hist["val_loss"][-1], "gaze2report_val_loss": g2r_hist["val_loss"][-1],
                         "lm_params": lm_hist["params"], "trainable_params": g2r_hist["trainable_params"],
                         "seconds": lm_hist["seconds"] + g2r_hist["seconds"], "world_size": ctx.world_size},
            )
            _log(say, f"saved {checkpoint}" + (" (trained on SYNTHETIC data)" if synthetic else ""))
        barrier(ctx)
        return checkpoint
    finally:
        cleanup(ctx)


def train(source, out: Path, config: dict, log: Callable[[str], None] | None = print) -> TrainResult:
    """The report family's trainer (:mod:`models.families`): the cases of ``source`` that have a report (plus
    IU X-ray report text with ``iu``); ``config["train"]`` is a :class:`ReportConfig`."""
    from models.checkpoint import load_checkpoint
    from models.report.corpus import iu_reports

    cfg = config["train"]
    by_split = split_cases(source.cases, source.splits)
    path = train_report_generator(by_split, out, cfg, iu=iu_reports() if cfg.iu else [], synthetic=source.synthetic,
                                  dataset=source.name, progress=log)
    metrics = load_checkpoint(path, "report")["metrics"]
    return TrainResult(Path(out), metrics, "gaze2report_val_loss", {"synthetic": source.synthetic, "dataset": source.name})
