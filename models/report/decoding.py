"""Sentence decoding at inference: every sentence of a report decoded together, one batch, one KV cache.

A report is 5-15 one-sentence units, and each unit may need its greedy sentence plus a few seeded samples
(:meth:`~models.report.generate.ReportGenerator.realise`). Decoded one at a time, that is hundreds of LM
calls, each one mostly Python overhead for a 1 M-parameter LM. Here all the sentences of one round are rows
of one batch: the rows are left-padded (padding is masked and each row's positions start at 0, so a row's
logits are the ones it would get alone), prefilled in one call and extended one token per call, and a row
stops at ``[EOS]`` or at an unknown word (a sentence with ``[UNK]`` is never shown, see
:func:`~models.report.lm.decode_sentence`).

Sampling is the exponential-race form of a categorical draw: ``argmax(p / E)`` with ``E ~ Exp(1)`` per
vocabulary entry, which picks entry ``i`` with probability ``p_i``. Each sampled attempt ``a`` has its own
generator seeded ``seed + a`` and draws one ``E`` per step, shared by every row of that attempt: exactly
what a row decoded alone with its own freshly seeded generator would draw (PyTorch's CPU
``torch.multinomial(p, 1)`` is the same race, so samples match the one-sentence-at-a-time decoder).

Two LM back-ends compute the logits:

- :class:`Gpt2Runner`: for GPT-2 (the default report LM), the forward pass written out in a few tensor ops
  over the model's own parameters (LoRA merged into them), about 8x less overhead per token than the
  transformers module on CPU. It reads the weights when it runs, so a merge or unmerge is seen at once.
- any other causal LM (``--lm PATH``: Llama, Qwen2, ...) goes through transformers with an attention mask,
  explicit position ids and its own cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F


# Each attempt's noise is drawn this many steps at a time: one call instead of one per step (the draws are
# the same: a generator fills a (steps, V) tensor with the values that successive (V,) draws would get),
# without drawing 40 steps of a 150k-word vocabulary for sentences that end after 10.
NOISE_CHUNK = 8


@dataclass
class Row:
    """One sentence to decode: the index of its prompt in :class:`Prompts` and its attempt (0 = greedy,
    ``a > 0`` = the sample seeded ``seed + a``)."""

    prompt: int
    attempt: int = 0


def race_sample(probs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``probs`` ``(R, V)``, ``noise`` ``(V,)`` or ``(R, V)`` Exp(1) draws -> ``(R,)`` sampled indices,
    ``argmax(p / E)``."""
    return (probs / noise).argmax(-1)


def _unwrap(module):
    """A peft LoRA layer's base layer (its weight holds the merged adapter once merged), else the module."""
    return getattr(module, "base_layer", module)


class Gpt2Runner:
    """The GPT-2 forward pass for incremental decoding, over the parameters of a ``GPT2LMHeadModel`` (or a
    peft model around one). Use :meth:`supports` first: other architectures and GPT-2 variants with
    non-default attention options go through transformers instead."""

    def __init__(self, model):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.config = c = base.config
        t = base.transformer
        self.wte, self.wpe, self.ln_f, self.head = t.wte, t.wpe, t.ln_f, base.lm_head
        # The parameters themselves, collected once (module attribute lookups cost more than the ops at
        # small batches); merging or unmerging LoRA changes their values in place, so this sees it.
        self.blocks = [tuple(p for module in (b.ln_1, _unwrap(b.attn.c_attn), _unwrap(b.attn.c_proj), b.ln_2,
                                              _unwrap(b.mlp.c_fc), _unwrap(b.mlp.c_proj))
                             for p in (module.weight, module.bias)) for b in t.h]
        self.ln_f_params = (self.ln_f.weight, self.ln_f.bias)
        self.width = c.n_embd
        self.heads = c.n_head
        self.eps = c.layer_norm_epsilon

    @staticmethod
    def supports(model) -> bool:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        c = getattr(base, "config", None)
        return (type(base).__name__ == "GPT2LMHeadModel" and c.activation_function == "gelu_new"
                and c.scale_attn_weights and not c.scale_attn_by_inverse_layer_idx
                and not c.reorder_and_upcast_attn and not c.add_cross_attention)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.wte(ids)

    def prefill(self, hidden: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, capacity: int):
        """``hidden`` ``(B, S, H)`` embeddings, ``positions`` ``(B, S)``, ``valid`` ``(B, S)`` (False =
        padding) -> last-position logits ``(B, V)`` and a cache with room for ``capacity`` positions."""
        b, s, _ = hidden.shape
        causal = torch.ones(s, s, dtype=torch.bool, device=hidden.device).tril()
        eye = torch.eye(s, dtype=torch.bool, device=hidden.device)
        # Padding queries attend to themselves only: finite values that no real position ever reads.
        mask = ((causal[None] & valid[:, None, :]) | eye[None])[:, None]  # (B, 1, S, S)
        hd = hidden.shape[-1] // self.heads
        cache = _KVCache([hidden.new_empty(2, b, self.heads, capacity, hd) for _ in self.blocks], 0)
        return self._forward(hidden, positions, mask, cache), cache

    def step(self, hidden: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, cache: "_KVCache"):
        """One new position per row: ``hidden`` ``(B, 1, H)``, ``valid`` ``(B, S)`` over cached + new."""
        return self._forward(hidden, positions, valid[:, None, None, :], cache), cache

    @staticmethod
    def select(cache: "_KVCache", index: torch.Tensor, copy: bool = False) -> "_KVCache":
        """The cache of rows ``index`` (repeats allowed; always a new cache: ``index_select`` copies, several
        times faster than advanced indexing here)."""
        return _KVCache([kv.index_select(1, index) for kv in cache.layers], cache.length)

    def _forward(self, hidden, positions, mask, cache: "_KVCache") -> torch.Tensor:
        b, n, _ = hidden.shape
        start, end = cache.length, cache.length + n
        h = hidden + self.wpe(positions)
        width = (self.width,)
        for (l1w, l1b, aw, ab, pw, pb, l2w, l2b, fw, fb, mw, mb), kv in zip(self.blocks, cache.layers):
            x = F.layer_norm(h, width, l1w, l1b, self.eps)
            qkv = _conv1d(aw, ab, x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, heads, n, hd)
            kv[:, :, :, start:end] = qkv[1:]  # keys and values in one copy
            a = F.scaled_dot_product_attention(qkv[0], kv[0, :, :, :end], kv[1, :, :, :end], attn_mask=mask)
            h = h + _conv1d(pw, pb, a.transpose(1, 2).reshape(b, n, -1))  # a: (B, heads, T, hd)
            x = F.layer_norm(h, width, l2w, l2b, self.eps)
            h = h + _conv1d(mw, mb, F.gelu(_conv1d(fw, fb, x), approximate="tanh"))
        cache.length = end
        last = F.layer_norm(h[:, -1], width, *self.ln_f_params, self.eps)
        return last @ self.head.weight.T


def _conv1d(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """transformers' GPT-2 ``Conv1D`` (``x @ weight + bias``, weight ``(in, out)``) on ``(..., in)``."""
    return torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight).reshape(*x.shape[:-1], -1)


@dataclass
class _KVCache:
    """Per layer a ``(2, B, heads, capacity, head_dim)`` buffer of keys and values; ``length`` filled."""

    layers: list
    length: int


class _HFRunner:
    """Any transformers causal LM, driven with an attention mask, explicit positions and its own cache."""

    def __init__(self, model):
        self.model = model
        self.cache_key = None  # "cache" (transformers 5) or "past_key_values", whichever the model returns

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)

    def _call(self, hidden, positions, valid, cache):
        kwargs = {} if cache is None else {self.cache_key: cache}
        out = self.model(inputs_embeds=hidden, attention_mask=valid.long(), position_ids=positions,
                         use_cache=True, **kwargs)
        self.cache_key = "cache" if "cache" in out else "past_key_values"
        return out.logits[:, -1].float(), out[self.cache_key]

    def prefill(self, hidden, positions, valid, capacity):
        return self._call(hidden, positions, valid, None)

    def step(self, hidden, positions, valid, cache):
        return self._call(hidden, positions, valid, cache)

    @staticmethod
    def select(cache, index, copy: bool = False):
        """The cache of rows ``index`` (repeats allowed); ``copy`` leaves ``cache`` as it was (later rounds
        start from it again). None when this cache type cannot drop rows (they are then decoded on)."""
        import copy as copying

        if not hasattr(cache, "batch_select_indices"):
            if copy:
                raise TypeError(f"a {type(cache).__name__} cannot select batch rows; decode with transformers' "
                                "DynamicCache")
            return None
        if copy:
            cache = copying.deepcopy(cache)
        cache.batch_select_indices(index)
        return cache


def runner_for(lm):
    """The fastest back-end that computes ``lm``'s logits exactly (see module docstring)."""
    return Gpt2Runner(lm) if Gpt2Runner.supports(lm) else _HFRunner(lm)


@dataclass
class Prompts:
    """Prompts run through the LM once (:func:`prefill`), so that every attempt at a sentence starts from
    the same cache: ``logits`` ``(P, V)`` of each prompt's last position, ``valid`` ``(P, S)`` (False =
    left padding), ``positions`` ``(P, 1)`` of the first generated token."""

    cache: object
    logits: torch.Tensor
    valid: torch.Tensor
    positions: torch.Tensor
    capacity: int


@torch.no_grad()
def prefill(runner, prompts: Sequence[Sequence[int]], *, prefix=None, max_new_tokens: int = 40,
            pad_id: int = 0, device: str | torch.device = "cpu") -> Prompts:
    """Run the prompt token ids (``[BOS]`` control ``[SEP]``), left-padded, behind ``prefix`` ``(1, K, H)``
    (Gaze2Report's graph prefix: ``[pad .. pad][prefix][prompt]``) or none, through the LM in one batch."""
    device = torch.device(device)
    n, width = len(prompts), max(len(p) for p in prompts)
    k = 0 if prefix is None else prefix.shape[1]
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    valid = torch.zeros(n, k + width, dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(list(p))
        valid[i, width - len(p):] = True  # the prefix's k positions and the prompt, right-aligned
    ids, valid = ids.to(device), valid.to(device)
    hidden = runner.embed(ids)  # (P, W, H)
    if prefix is not None:
        full = hidden.new_zeros(n, k + width, hidden.shape[-1])
        for i, p in enumerate(prompts):
            start = width - len(p)
            full[i, start: start + k] = prefix[0].to(hidden.dtype)
            full[i, start + k:] = hidden[i, start:]
        hidden = full
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)  # (P, S): each row's own positions from 0
    capacity = hidden.shape[1] + max_new_tokens
    logits, cache = runner.prefill(hidden, positions, valid, capacity)
    return Prompts(cache, logits.float().cpu(), valid, positions[:, -1:] + 1, capacity)


@torch.no_grad()
def decode_rows(runner, prompts: Prompts, rows: Sequence[Row], *, eos_id: int, unk_id: int | None = None,
                max_new_tokens: int = 40, temperature: float = 0.8, seed: int = 0) -> list[list[int]]:
    """Decode every row from its prefilled prompt (see module docstring); returns each row's generated token
    ids, without ``[EOS]`` (``[unk_id]`` alone for a row that wrote an unknown word).

    Args:
        runner: :func:`runner_for` the LM, with the adapters as they were for :func:`prefill`.
        rows: prompt index and attempt of each sentence.
        temperature: of the sampled attempts.
    """
    if not rows:
        return []
    n = len(rows)
    index = torch.tensor([r.prompt for r in rows])
    device = prompts.valid.device
    cache = runner.select(prompts.cache, index.to(device), copy=True)
    logits, next_pos = prompts.logits[index], prompts.positions[index.to(device)]
    width = prompts.valid.shape[1]  # valid[:, :width]: the positions the next step attends to
    valid = torch.ones(n, width + max_new_tokens, dtype=torch.bool, device=device)
    valid[:, :width] = prompts.valid[index.to(device)]

    attempts = sorted({r.attempt for r in rows if r.attempt > 0})
    generators = [torch.Generator().manual_seed(seed + a) for a in attempts]
    slot_of = {a: i for i, a in enumerate(attempts)}
    batch = torch.arange(n)  # original row of each batch row (ended rows are dropped from the batch)
    slot = torch.tensor([slot_of.get(r.attempt, -1) for r in rows])  # sampled rows: their attempt's noise
    tokens = torch.full((n, max_new_tokens), eos_id, dtype=torch.long)
    unknown = torch.zeros(n, dtype=torch.bool)
    live = torch.ones(n, dtype=torch.bool)  # batch rows still writing (ended rows are fed until dropped)
    noise = None
    for t in range(max_new_tokens):
        logits = logits.float().cpu()
        nxt = logits.argmax(-1)
        if attempts:
            if t % NOISE_CHUNK == 0:  # the next draws of each attempt's stream, a few steps at a time
                steps = min(NOISE_CHUNK, max_new_tokens - t)
                noise = torch.stack([torch.empty(steps, logits.shape[-1]).exponential_(1, generator=g)
                                     for g in generators])  # (A, steps, V)
            row_slot = slot[batch]
            sampled = (row_slot >= 0).nonzero()[:, 0]
            if len(sampled):
                probs = torch.softmax(logits[sampled] / temperature, dim=-1)
                nxt[sampled] = race_sample(probs, noise[row_slot[sampled], t % NOISE_CHUNK])
        ended = nxt == eos_id
        if unk_id is not None:
            unknown[batch[live & (nxt == unk_id)]] = True
            ended |= nxt == unk_id
        tokens[batch[live], t] = nxt[live]
        live &= ~ended
        if not live.any():
            break
        width += 1  # the token fed next is valid for every row (an ended row is fed until dropped; its output is ignored)
        if (~live).sum() * 2 >= len(batch):  # half the batch has ended: drop those rows (and their cache)
            keep = live.nonzero()[:, 0]
            kept = runner.select(cache, keep.to(device))
            if kept is not None:
                cache, batch, nxt, live = kept, batch[keep], nxt[keep], live[keep]
                valid, next_pos = valid[keep.to(device)], next_pos[keep.to(device)]
        logits, cache = runner.step(runner.embed(nxt[:, None].to(device)), next_pos, valid[:, :width], cache)
        next_pos = next_pos + 1
    out = []
    for i in range(n):
        if unknown[i]:
            out.append([unk_id])  # decodes to "" whatever follows
            continue
        row = tokens[i].tolist()
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out
