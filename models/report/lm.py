"""The language model: a word-level tokenizer trained on our report text and a small GPT-2 trained from
scratch (about 1-2 M parameters, CPU-trainable in minutes), or any local transformers causal-LM folder.

Sequences the LM sees: one report sentence after its control (:mod:`models.report.sentences`); the
tokenizer adds ``[BOS]``/``[EOS]``::

    findings : likely cardiomegaly @ heart [SEP] the heart is enlarged .     (path a; path b after its prefix)
    findings : [SEP] the heart is enlarged .                                 (control dropped: plain language)

Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set before transformers is imported and local folders are
opened with ``local_files_only=True``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from models.report.evidence import split_sentences

PAD, BOS, EOS, UNK, SEP = "[PAD]", "[BOS]", "[EOS]", "[UNK]", "[SEP]"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, SEP)
# Attention/MLP linear layers LoRA adapts, per transformers ``model_type``; unknown types fall back to every
# linear layer inside the transformer blocks.
LORA_TARGETS = {
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "gpt_neox": ["query_key_value", "dense"],
    "gptj": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "bloom": ["query_key_value", "dense"],
    "falcon": ["query_key_value", "dense"],
}


def offline() -> None:
    """Forbid hub downloads for everything transformers/huggingface_hub does in this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def normalise_text(text: str) -> str:
    """One line, ``|||`` and IU's de-identification ``XXXX`` removed, spaces collapsed."""
    text = str(text).replace("|||", " ")
    text = re.sub(r"\bX{2,}\b", " ", text)
    return " ".join(text.split())


def sequence_text(control: str, sentence: str) -> str:
    """The training/inference string of one sentence (see module docstring); ``sentence=""`` gives the
    inference prompt's text."""
    return f"{normalise_text(control)} {SEP} {normalise_text(sentence)}".rstrip()


def decode_sentence(text: str) -> str:
    """Decoded continuation after ``[SEP]`` -> its first sentence, tidied ("" when nothing usable)."""
    if UNK in text:
        return ""  # a word the tokenizer never saw: not a sentence to show
    for token in (EOS, PAD, BOS, SEP):
        text = text.replace(token, " ")
    first = next(iter(split_sentences(_tidy(text))), "")
    return first if first.endswith(".") else (f"{first}." if first else "")


def _tidy(text: str) -> str:
    """Word-level decoding leaves "heart is normal ." -> "Heart is normal." with capitalised sentences."""
    text = " ".join(text.split())
    text = re.sub(r"\s+([.,;:])", r"\1", text)
    text = re.sub(r"\s*-\s*", "-", text)  # "plate - like" -> "plate-like"
    text = re.sub(r"(\d)\.\s+(\d)", r"\1.\2", text)  # "2 . 5 cm" -> "2.5 cm", not two sentences
    sentences = [s.strip() for s in re.split(r"(?<=\.)\s+", text) if s.strip()]
    return " ".join(s[0].upper() + s[1:] for s in sentences)


# -------------------------------------------------------------------------------------- tokenizer
def train_tokenizer(texts: Iterable[str], *, min_frequency: int = 2, max_length: int = 160):
    """A lower-case word-level tokenizer (words and punctuation) over ``texts``, as a
    ``PreTrainedTokenizerFast`` with our special tokens; words seen fewer than ``min_frequency`` times map
    to ``[UNK]``."""
    offline()
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=min_frequency)
    tok.train_from_iterator(texts, trainer=trainer)
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A {EOS}",
                                                       special_tokens=[(BOS, bos), (EOS, eos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=PAD, model_max_length=max_length,
                                   additional_special_tokens=[SEP])
    return fast


# -------------------------------------------------------------------------------------- model
def small_gpt2(vocab_size: int, *, n_layer: int = 4, n_embd: int = 128, n_head: int = 4, n_positions: int = 256,
               pad_token_id: int = 0, bos_token_id: int = 1, eos_token_id: int = 2):
    """A from-scratch GPT-2 (defaults: 4 layers, width 128; ~0.8 M parameters plus 128 per vocabulary word)."""
    offline()
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
                        pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    return name_loss(GPT2LMHeadModel(config))


def name_loss(model):
    """Say which loss a causal LM uses (transformers 5 warns on every model whose ``loss_type`` is unset)."""
    if getattr(model, "loss_type", None) is None:
        model.loss_type = "ForCausalLM"
    return model


def load_lm(path: str | Path):
    """``(model, tokenizer)`` from a local folder (``save_pretrained`` layout); never touches a hub.

    Raises:
        CheckpointError: the folder is missing or holds no causal LM / tokenizer.
    """
    offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.checkpoint import CheckpointError

    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not a transformers model folder (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        # safetensors only: a pickled pytorch_model.bin could run code when loaded.
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot load a causal LM and its tokenizer ({type(e).__name__}: {e})") from None
    ensure_special_tokens(model, tokenizer)
    return name_loss(model), tokenizer


def ensure_special_tokens(model, tokenizer) -> None:
    """A foreign LM (``--lm PATH``) gets our ``[SEP]`` marker, an end-of-sequence token (every training
    sentence ends with it, so that generation stops) and a pad token if it lacks them."""
    missing = [t for t in (SEP,) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if tokenizer.eos_token is None:
        tokenizer.add_special_tokens({"eos_token": EOS})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or PAD
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))


def lora_targets(model) -> list[str]:
    """Module names LoRA should adapt in ``model`` (see ``LORA_TARGETS``)."""
    import torch

    model_type = getattr(model.config, "model_type", "")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    known = [t for t in LORA_TARGETS.get(model_type, []) if t in names]
    if known:
        return known
    linear_like = set()
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        is_linear = isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"
        if is_linear and leaf not in ("lm_head", "embed_out", "score"):
            linear_like.add(leaf)
    if not linear_like:
        raise ValueError(f"cannot find linear layers for LoRA in a {model_type or type(model).__name__} model")
    return sorted(linear_like)


def count_parameters(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def encode_batch(tokenizer, texts: Sequence[str], max_length: int):
    """Token ids ``(B, T)``, attention mask ``(B, T)`` and labels ``(B, T)`` with -100 on padding and on the
    prompt (everything up to and including ``[SEP]``), so the loss is on the report only.

    Each row is ``[BOS] text [EOS]`` whatever the tokenizer's own post-processing: ours adds both, but a
    GPT-2 / Llama / Qwen2 tokenizer (``--lm PATH``) adds no end-of-sequence token, and an LM that never saw
    one would never stop a sentence. Rows longer than ``max_length`` lose their end, never their
    ``[EOS]``; padding is on the right."""
    import torch

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-sequence token (load foreign LMs with load_lm)")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    head = [bos] if bos is not None else []
    room = max(1, max_length - len(head) - 1)
    rows = [head + body[:room] + [eos] for body in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    labels = ids.clone()
    labels[mask == 0] = -100
    sep = tokenizer.convert_tokens_to_ids(SEP)
    for row in range(ids.shape[0]):
        hits = (ids[row] == sep).nonzero()
        if len(hits):
            labels[row, : int(hits[0]) + 1] = -100
    return ids, mask, labels


def batches(items: Sequence[str], size: int, generator=None) -> Iterable[list]:
    """Mini-batches of similar length (less padding), in shuffled order: items are shuffled, cut into
    chunks of 50 batches, sorted by length inside a chunk, then the batches are shuffled."""
    import torch

    order = torch.randperm(len(items), generator=generator).tolist()
    chunk = size * 50
    groups = []
    for i in range(0, len(order), chunk):
        part = sorted(order[i: i + chunk], key=lambda j: len(items[j]))
        groups += [part[k: k + size] for k in range(0, len(part), size)]
    for g in torch.randperm(len(groups), generator=generator).tolist():
        yield [items[j] for j in groups[g]]
