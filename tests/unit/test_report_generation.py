"""Structured plans, templates, evidence links, the graph prefix and LoRA wiring (no trained checkpoint)."""

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from models.imaging import LoadedImage
from models.report.evidence import check_evidence, report_sentences
from models.report.generate import ReportGenerator
from models.report.graph import EDGE_TYPES, build_adjacency
from models.labeling.labeler import label_report
from models.report.prompt import build_plan, keyword_for
from models.report.templates import render_sentences
from models.schema import Box, Case, Fixation, ImageRef

W = H = 400


@dataclass
class StandIn:
    scores: dict
    boxes: list = field(default_factory=list)


def _fixations():
    # Reader looks at the heart, then the left costophrenic angle (image right), then the right upper zone.
    pts = [(230, 260, 0.3), (240, 270, 0.4), (360, 340, 0.5), (365, 345, 0.3), (100, 80, 0.2)]
    return [Fixation(x, y, i * 0.4, d) for i, (x, y, d) in enumerate(pts)]


def _result():
    boxes = [Box("Cardiomegaly", 160, 200, 300, 320, region="heart", score=0.9)]
    return StandIn({"Cardiomegaly": 0.92, "Pleural Effusion": 0.55, "Pneumothorax": 0.05, "Edema": 0.2}, boxes)


def _image():
    return LoadedImage(np.zeros((H, W), dtype=np.float32))


def test_keywords_and_plan_regions():
    assert [keyword_for("Edema", p) for p in (0.9, 0.7, 0.5, 0.1)] == ["likely", "likely", "possible", "no"]
    plan = build_plan(_result().scores, _result().boxes, _fixations(), W, H)
    by = {s.finding: s for s in plan.statements}
    assert by["Cardiomegaly"].keyword == "likely" and by["Cardiomegaly"].box == 0
    assert by["Cardiomegaly"].fixations == [0, 1]  # the two fixations on the heart box
    # No box for the effusion: the usual region the reader dwelt on.
    assert by["Pleural Effusion"].region == "left costophrenic angle"
    assert by["Pleural Effusion"].fixations == [2, 3]
    assert by["Pneumothorax"].keyword == "no"
    assert "Edema" not in by  # non-routine negatives stay out of the report
    controls = [u.control for u in render_sentences(plan)]
    assert controls[:2] == ["findings : likely cardiomegaly @ heart",
                            "findings : possible pleural effusion @ left costophrenic angle"]


def test_template_is_deterministic_and_reads_back():
    gen = ReportGenerator()
    a = gen(_image(), _result(), _fixations(), mode="template")
    b = gen(_image(), _result(), _fixations(), mode="template")
    assert a == b
    labels = label_report(a.text)
    assert labels["Cardiomegaly"] == 1 and labels["Pleural Effusion"] == -1 and labels["Pneumothorax"] == 0
    assert "left costophrenic angle" in a.findings
    normal = gen(_image(), StandIn({"Cardiomegaly": 0.1}), [], mode="template")
    assert label_report(normal.text).get("No Finding") == 1


def test_evidence_links_are_valid():
    result, fix = _result(), _fixations()
    report = ReportGenerator()(_image(), result, fix, mode="template")
    n_sent = len(report_sentences(report))
    assert {e.sentence for e in report.evidence} == set(range(n_sent))  # every sentence has a link
    check_evidence(report, len(result.boxes), len(fix))
    case = Case("c", ImageRef("", W, H), boxes=result.boxes, fixations=fix, report=report)
    case.validate()  # the schema's own cross-reference check agrees
    ev = next(e for e in report.evidence if e.finding == "Cardiomegaly")
    assert (ev.region, ev.box, ev.fixations) == ("heart", 0, [0, 1])


def test_bad_input_is_a_clear_error():
    gen = ReportGenerator()
    with pytest.raises(ValueError, match="mode"):
        gen(_image(), _result(), [], mode="poem")
    with pytest.raises(ValueError, match="needs a trained report model"):
        gen(_image(), _result(), [], mode="gaze2report")
    with pytest.raises(ValueError, match=r"scores\['Cardiomegaly'\]"):
        gen(_image(), StandIn({"Cardiomegaly": 1.5}), [], mode="template")
    with pytest.raises(ValueError, match="unknown finding"):
        gen(_image(), StandIn({"Dragons": 0.5}), [], mode="template")
    with pytest.raises(ValueError, match=r"fixations\[0\]"):
        gen(_image(), _result(), [(1, 2)], mode="template")
    with pytest.raises(ValueError, match="LoadedImage"):
        gen(np.zeros((4, 4)), _result(), [], mode="template")
    with pytest.raises(ValueError, match=".scores"):
        gen(_image(), object(), [], mode="template")


def test_graph_adjacency_edges():
    fix = torch.tensor([[[8.0, 8.0], [24.0, 8.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    adj = build_adjacency(fix, mask, grid=2, size=32, radius=9.0)
    assert adj.shape == (1, len(EDGE_TYPES), 7, 7)
    assert adj[0, 0, :4, :4].sum() == 8  # 2x2 grid: 4 undirected neighbour pairs
    assert adj[0, 1, 5, 4] == 1 and adj[0, 2, 4, 5] == 1  # fixation 0 -> 1 in time
    assert adj[0, 1, 6, 5] == 0  # padded fixation has no edges
    assert adj[0, 3, 4, 0] == 1 and adj[0, 3, 0, 4] == 1  # fixation 0 sits on patch 0
    assert adj[0, 3, 4, 1] == 0 and adj[0, 3, 6].sum() == 0


def test_prefix_shapes_and_gaze_ablation():
    from models.report.gaze2report import Gaze2ReportPrefix, PrefixConfig

    torch.manual_seed(0)
    prefix = Gaze2ReportPrefix(PrefixConfig(image_size=64, grid=4, prefix_tokens=3, lm_hidden=16)).eval()
    image = torch.rand(2, 1, 64, 64)
    fix = torch.rand(2, 5, 3) * torch.tensor([64.0, 64.0, 0.5])
    n = torch.tensor([5, 2])
    tokens, aux = prefix(image, fix, n)
    assert tokens.shape == (2, 3, 16) and aux.shape == (2, 14)
    no_gaze, _ = prefix(image, fix, n, use_gaze=False)
    assert not torch.allclose(tokens, no_gaze)  # gaze tokens change the prefix
    moved = fix.clone()
    moved[1, 3:] = 0.0  # beyond n_fixations: must not matter
    assert torch.allclose(prefix(image, moved, n)[0][1], tokens[1], atol=1e-5)


def test_lora_trains_only_adapters_and_prefix():
    from models.report.lm import small_gpt2
    from models.report.lora import attach_lora

    torch.manual_seed(0)
    lm = small_gpt2(50, n_layer=2, n_embd=32, n_head=2)
    base = {n: p.detach().clone() for n, p in lm.named_parameters()}
    peft_lm, targets = attach_lora(lm, 4, 16, 0.05)
    assert set(targets) == {"c_attn", "c_proj", "c_fc"}
    trainable = [n for n, p in peft_lm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert sum(p.numel() for p in peft_lm.parameters() if not p.requires_grad) == sum(v.numel() for v in base.values())
    # One optimisation step moves adapters only; the base LM is untouched.
    opt = torch.optim.SGD([p for p in peft_lm.parameters() if p.requires_grad], lr=1.0)
    ids = torch.randint(0, 50, (2, 6))
    for _ in range(2):  # LoRA B starts at zero: the second step moves A as well
        opt.zero_grad()
        peft_lm(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    for n, p in peft_lm.get_base_model().named_parameters():
        if "lora_" not in n:
            key = n.replace(".base_layer", "")
            assert torch.equal(p, base[key]), n
    assert any(p.abs().sum() > 0 for n, p in peft_lm.named_parameters() if "lora_B" in n)


def test_local_llama_folder_loads_and_gets_lora(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from models.report.lm import SEP, load_lm, train_tokenizer
    from models.report.lora import attach_lora
    from models.checkpoint import CheckpointError

    tok = train_tokenizer(["likely cardiomegaly @ heart", "the heart is enlarged ."], min_frequency=1)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "llama")
    tok.save_pretrained(tmp_path / "llama")
    lm, tokenizer = load_lm(tmp_path / "llama")
    assert SEP in tokenizer.get_vocab()
    peft_lm, targets = attach_lora(lm, 2, 16, 0.05)
    assert targets == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert all("lora_" in n for n, p in peft_lm.named_parameters() if p.requires_grad)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_lm(tmp_path)
