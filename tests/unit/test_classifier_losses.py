"""Classifier losses: each term carries gradient, the gaze loss is minimal at agreement, edge cases."""

import pytest
import torch

from models.classifier.losses import (
    ClassifierLoss,
    GazeAttentionLoss,
    GazeLossWeights,
    LossConfig,
    box_attention_loss,
    box_masks,
    combine_attention,
    gaze_terms,
    gaze_to_grid,
    info_nce,
    masked_bce,
    resolve_uncertain,
)
from models.classifier.network import ClassifierConfig, GazeAttentionNet

GRID = 12


def blob(cx, cy, grid=GRID, sigma=1.5):
    ys, xs = torch.meshgrid(torch.arange(grid) + 0.5, torch.arange(grid) + 0.5, indexing="ij")
    m = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
    return m / m.sum()


def gaze_image(cx, cy, size=48):
    """A (1, 1, S, S) heatmap whose pooled GRID version peaks at grid cell (cx, cy)."""
    scale = size / GRID
    return blob(cx * scale, cy * scale, size, 1.5 * scale)[None, None]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GazeAttentionNet(ClassifierConfig(size=64, width=4, embed_dim=8))


@pytest.fixture()
def batch():
    torch.manual_seed(1)
    b = 3
    boxes = torch.zeros(b, 16, 5)
    boxes[0, 0] = torch.tensor([2.0, 8, 8, 40, 40])
    boxes[1, 0] = torch.tensor([5.0, 0, 0, 32, 64])
    return {
        "image": torch.rand(b, 1, 64, 64),
        "labels": torch.tensor([[1.0] + [0] * 13, [0, 1, 0, -1] + [1] * 10, [0.0] * 14]),
        "label_mask": torch.ones(b, 14),
        "gaze": torch.rand(b, 1, 64, 64),
        "has_gaze": torch.tensor([1.0, 1.0, 0.0]),
        "boxes": boxes,
        "n_boxes": torch.tensor([1, 1, 0]),
        "has_report": torch.tensor([1.0, 1.0, 1.0]),
    }


def _term_loss(term, model, batch):
    """One loss term alone, from a fresh forward pass."""
    out = model(batch["image"])
    targets, mask = resolve_uncertain(batch["labels"], batch["label_mask"], "positive")
    if term == "bce":
        return masked_bce(out.logits, targets, mask)
    if term == "contrastive":
        text = model.embed_text(torch.randn(3, 384))
        return info_nce(out.image_embedding, text, batch["has_report"], model.logit_scale)
    if term == "box":
        return box_attention_loss(out.attention, batch["boxes"], batch["n_boxes"], 64)
    if term == "prior":  # the default gaze target: the shared attention prior
        return GazeAttentionLoss()(out.prior, batch["gaze"], batch["has_gaze"])[0]
    weights = GazeLossWeights(**{k: float(k == term) for k in ("mse", "kl", "cc", "com")})
    combined = combine_attention(out.attention, targets, mask)
    return GazeAttentionLoss(weights)(combined, batch["gaze"], batch["has_gaze"])[0]


@pytest.mark.parametrize("term", ["bce", "mse", "kl", "cc", "com", "prior", "contrastive", "box"])
def test_gradient_flows_through_each_term(model, batch, term):
    model.zero_grad()
    loss = _term_loss(term, model, batch)
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    loss.backward()
    param = {"bce": model.class_weight, "contrastive": model.text_projection.weight,
             "prior": model.prior_logits.weight}.get(term, model.attention_logits.weight)
    assert param.grad is not None and float(param.grad.abs().sum()) > 0
    assert float(model.encoder.stem[0].weight.grad.abs().sum()) > 0  # reaches the encoder too


def test_full_objective_reports_every_part(model, batch):
    cfg = LossConfig(contrastive_weight=0.5, box_weight=0.5)
    out = model(batch["image"])
    loss, parts = ClassifierLoss(cfg)(out, batch, 0.0, model.embed_text(torch.randn(3, 384)), model.logit_scale)
    expected = {"bce", "gaze", "gaze_mse", "gaze_kl", "gaze_cc", "gaze_com", "contrastive", "box", "total"}
    assert set(parts) == expected
    manual = parts["bce"] + parts["gaze"] + 0.5 * parts["contrastive"] + 0.5 * parts["box"]
    assert float(loss.detach()) == pytest.approx(float(manual), rel=1e-5)


def test_gaze_loss_minimal_at_agreement_and_grows_with_distance():
    loss = GazeAttentionLoss()
    has = torch.ones(1)
    gaze = gaze_image(3, 4)
    same, _ = loss(gaze_to_grid(gaze, (GRID, GRID)), gaze, has)
    assert float(same) < 1e-5
    values = []
    for shift in (0, 1, 2, 4, 6):
        total, parts = loss(blob(3 + shift, 4)[None], gaze, has)
        values.append((float(total), {k: float(v) for k, v in parts.items()}))
    assert values[0][0] < 0.01
    for (a, pa), (b, pb) in zip(values, values[1:]):
        assert b > a
        for k in ("gaze_kl", "gaze_cc", "gaze_com"):
            assert pb[k] >= pa[k] - 1e-6, k


def test_gaze_terms_zero_for_identical_maps():
    m = blob(5, 6)[None]
    for name, value in gaze_terms(m, m).items():
        assert float(value) == pytest.approx(0.0, abs=1e-5), name


def test_cases_without_gaze_contribute_nothing():
    att = blob(2, 2)[None].repeat(2, 1, 1).requires_grad_(True)
    gaze = torch.cat([gaze_image(9, 9), torch.zeros(1, 1, 48, 48)])
    total_one, _ = GazeAttentionLoss()(att[:1], gaze[:1], torch.ones(1))
    total_both, _ = GazeAttentionLoss()(att, gaze, torch.tensor([1.0, 0.0]))
    assert float(total_both.detach()) == pytest.approx(float(total_one.detach()), rel=1e-5)
    none, parts = GazeAttentionLoss()(att, gaze, torch.zeros(2))
    assert float(none.detach()) == 0.0
    none.backward()
    assert att.grad is not None and float(att.grad.abs().sum()) == 0.0


def test_gaze_loss_shape_errors():
    with pytest.raises(ValueError, match="B, 1, S, S"):
        gaze_to_grid(torch.rand(2, 48, 48), (12, 12))
    with pytest.raises(ValueError, match="B, h, w"):
        GazeAttentionLoss()(torch.rand(2, 14, 12, 12), torch.rand(2, 1, 48, 48), torch.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        GazeAttentionLoss(GazeLossWeights(mse=-1))


def test_combine_attention_modes():
    att = torch.stack([blob(2, 2), blob(9, 9), blob(5, 5)])[None]  # (1, 3, h, w)
    labels = torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.allclose(combine_attention(att, labels, torch.ones(1, 3)), att.mean(1))  # default "all"
    one = combine_attention(att, labels, torch.ones(1, 3), "positive")
    assert torch.allclose(one[0], blob(9, 9))
    none = combine_attention(att, torch.zeros(1, 3), torch.ones(1, 3), "positive")
    assert torch.allclose(none[0], att[0].mean(0))
    with pytest.raises(ValueError, match="gaze_target"):
        combine_attention(att, labels, torch.ones(1, 3), "some")


def test_masked_bce_and_uncertain_policies():
    logits = torch.tensor([[10.0, -10.0, 0.0]])
    labels = torch.tensor([[1.0, 1.0, -1.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    targets, m = resolve_uncertain(labels, mask, "ignore")
    assert m.tolist() == [[1.0, 0.0, 0.0]]
    assert float(masked_bce(logits, targets, m)) < 1e-3  # the wrong entry is masked out
    pos, _ = resolve_uncertain(labels, mask, "positive")
    neg, _ = resolve_uncertain(labels, mask, "negative")
    assert pos[0, 2] == 1 and neg[0, 2] == 0
    with pytest.raises(ValueError, match="uncertain policy"):
        resolve_uncertain(labels, mask, "maybe")
    with pytest.raises(ValueError, match="share a shape"):
        masked_bce(logits, targets[:, :2], m)
    assert float(masked_bce(logits, targets, torch.zeros_like(m))) == 0.0


def test_info_nce_prefers_matching_pairs_and_needs_two():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(2.659)
    aligned = info_nce(img, img, torch.ones(6), scale)
    shuffled = info_nce(img, img.roll(1, 0), torch.ones(6), scale)
    assert aligned < shuffled
    assert float(info_nce(img, img, torch.tensor([1.0, 0, 0, 0, 0, 0]), scale)) == 0.0


def test_box_loss_rewards_attention_inside_and_handles_no_boxes():
    boxes = torch.zeros(1, 16, 5)
    boxes[0, 0] = torch.tensor([1.0, 0, 0, 16, 16])  # finding 1, top-left quarter of a 32 px input
    inside = torch.zeros(1, 3, 4, 4); inside[0, 1, 0, 0] = 1.0
    outside = torch.zeros(1, 3, 4, 4); outside[0, 1, 3, 3] = 1.0
    n = torch.tensor([1])
    assert float(box_attention_loss(inside, boxes, n, 32)) == pytest.approx(0.0)
    assert float(box_attention_loss(outside, boxes, n, 32)) == pytest.approx(1.0)
    assert float(box_attention_loss(outside, boxes, torch.tensor([0]), 32)) == 0.0
    masks = box_masks(boxes, n, (4, 4), 32)
    assert float(masks[0, 0].sum()) == pytest.approx(4.0)  # 2x2 cells fully covered
    assert float(masks[0, 1].sum()) == 0.0  # padding row


def test_loss_config_validation_and_curriculum(model, batch):
    cfg = LossConfig(gaze_weight=2.0, gaze_warmup_epochs=4)
    assert cfg.gaze_weight_at(0) == 0.0
    assert cfg.gaze_weight_at(2) == pytest.approx(1.0)
    assert cfg.gaze_weight_at(10) == 2.0
    assert LossConfig(gaze_weight=3).gaze_weight_at(0) == 3
    with pytest.raises(ValueError, match="gaze_weight"):
        ClassifierLoss(LossConfig(gaze_weight=-1))
    with pytest.raises(ValueError, match="uncertain"):
        ClassifierLoss(LossConfig(uncertain="sometimes"))
    with pytest.raises(ValueError, match="gaze_target"):
        ClassifierLoss(LossConfig(gaze_target="corner"))
    out = model(batch["image"])
    with pytest.raises(ValueError, match="contrastive"):
        ClassifierLoss(LossConfig(contrastive_weight=1))(out, batch, 0.0)
    _, warm = ClassifierLoss(cfg)(out, batch, 0.0)
    assert "gaze" not in warm  # weight 0 at epoch 0: the term is skipped
    assert LossConfig(**cfg.to_dict()) == cfg
