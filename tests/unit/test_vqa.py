"""The VQA family: the QA generator on hand-built Cases, the parser and phrasing groups, the network's shapes and
ablations, a tiny training (loss goes down, the checkpoint gives identical outputs), refusals, and `gazelabel ask`
(JSON with answer and evidence; bad input is one line and exit 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.schema import Answer, Box, Case, CaseError, Fixation, ImageRef, Prediction
from models.vocab import FINDINGS, REGION_NAMES, region_box_pixels
from models.vqa import questions as Q

W = H = 512
CHEST = [0.0, 0.0, 512.0, 512.0]


def region_centre(name: str) -> tuple[float, float]:
    x1, y1, x2, y2 = region_box_pixels(name, W, H)
    return (x1 + x2) / 2, (y1 + y2) / 2


def box_in(region: str, fraction_of_chest: float) -> tuple[float, float, float, float]:
    """A square box of the given area fraction centred in ``region``."""
    cx, cy = region_centre(region)
    side = math.sqrt(fraction_of_chest * W * H)
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def hand_case() -> Case:
    """Effusion (left CP angle, large), pneumothorax (right upper zone, small), bilateral edema, cardiomegaly absent,
    pneumonia uncertain; fixations on the right upper zone and the heart only."""
    findings = {f: 0 for f in FINDINGS}
    findings.update({"Pleural Effusion": 1, "Pneumothorax": 1, "Edema": 1, "Pneumonia": -1, "No Finding": 0})
    lo, hi = Q.SIZE_CUTS["Pleural Effusion"]
    effusion = box_in("left costophrenic angle", hi * 1.3)
    pneumothorax = box_in("right upper zone", Q.SIZE_CUTS["Pneumothorax"][0] * 0.5)
    boxes = [Box("Pleural Effusion", *effusion, region="left costophrenic angle"),
             Box("Pneumothorax", *pneumothorax, region="right upper zone"),
             Box("Edema", *box_in("right mid zone", 0.07), region="right mid zone"),
             Box("Edema", *box_in("left mid zone", 0.07), region="left mid zone")]
    fixations = [Fixation(*region_centre("right upper zone"), t=0.0, duration=0.3),
                 Fixation(*region_centre("heart"), t=0.3, duration=0.4)]
    return Case(id="hand_000001", image=ImageRef("", W, H, synthetic=True), findings=findings, boxes=boxes,
                fixations=fixations, extra={"chest_box": CHEST})


def truth(spec, case=None, fixations=None):
    return Q.answer_from_case(spec, case or hand_case(), fixations)


# ------------------------------------------------------------------------------------------ answers
def test_answers_match_the_case():
    case = hand_case()
    assert truth(Q.Spec("presence", ("Pleural Effusion",))).answer == "yes"
    assert truth(Q.Spec("presence", ("Cardiomegaly",))).answer == "no"
    assert truth(Q.Spec("presence", ("Pneumonia",))) is None  # uncertain: no ground truth
    assert truth(Q.Spec("region", ("Pleural Effusion",))).answer == "left costophrenic angle"
    assert truth(Q.Spec("region", ("Edema",))) is None  # two regions: not settled
    assert truth(Q.Spec("region", ("Cardiomegaly",))).answer == "none"
    assert truth(Q.Spec("side", ("Pleural Effusion",))).answer == "left"
    assert truth(Q.Spec("side", ("Pneumothorax",))).answer == "right"
    assert truth(Q.Spec("side", ("Edema",))).answer == "both"
    assert truth(Q.Spec("side", ("Cardiomegaly",))) is None  # not lateralised
    assert truth(Q.Spec("size", ("Pleural Effusion",))).answer == "large"
    assert truth(Q.Spec("size", ("Pneumothorax",))).answer == "small"
    assert truth(Q.Spec("size", ("Fracture",))) is None
    assert truth(Q.Spec("count")) is None  # an uncertain finding leaves the count open
    case.findings["Pneumonia"] = 0
    assert truth(Q.Spec("count"), case).answer == "3"
    assert truth(Q.Spec("both", ("Pleural Effusion", "Pneumothorax"))).answer == "yes"
    assert truth(Q.Spec("both", ("Pleural Effusion", "Cardiomegaly"))).answer == "no"
    assert truth(Q.Spec("larger", ("Pneumothorax", "Edema"))).answer == "Edema"
    assert truth(Q.Spec("larger", ("Edema", "Pleural Effusion"))).answer == "Edema"
    assert truth(Q.Spec("larger", ("Pneumothorax", "Pleural Effusion"))) is None  # within 1.5x: not settled
    assert Q.answer_from_case(Q.Spec("larger", ("Pneumothorax", "Pleural Effusion")), case, strict=False).answer == "Pneumothorax"
    # the evidence of a located finding is its boxes
    assert truth(Q.Spec("side", ("Edema",))).boxes == [b.xyxy for b in case.boxes if b.finding == "Edema"]


def test_inspection_answers_follow_the_given_gaze():
    case = hand_case()
    missed = truth(Q.Spec("missed"))
    assert "left costophrenic angle" in missed.regions and "right upper zone" not in missed.regions
    assert missed.answer == ", ".join(missed.regions)
    assert truth(Q.Spec("inspected", region="right upper zone")).answer == "yes"
    assert truth(Q.Spec("inspected", region="left costophrenic angle")).answer == "no"
    everywhere = [Fixation(*region_centre(r), duration=0.2) for r in REGION_NAMES]
    assert truth(Q.Spec("missed"), case, everywhere).answer == "none"
    assert truth(Q.Spec("inspected", region="left costophrenic angle"), case, everywhere).answer == "yes"
    assert truth(Q.Spec("missed"), case, []) is None  # an empty scanpath inspected nothing we can ask about
    case.fixations = []
    assert truth(Q.Spec("missed"), case) is None  # no gaze, no answer


def test_generator_items_agree_with_the_case():
    case = hand_case()
    gaze = [case.fixations, [Fixation(*region_centre(r), duration=0.2) for r in REGION_NAMES[:6]]]
    items = Q.generate(case, gaze, seed=3)
    kinds = {i.kind for i in items}
    assert kinds >= {"presence", "region", "side", "size", "missed", "inspected", "both", "larger"}
    for item in items:
        fixations = gaze[item.gaze] if item.gaze is not None else None
        again = Q.answer_from_case(item.spec, case, fixations)
        assert again is not None and again.answer == item.truth.answer, item
        if item.kind in ("missed", "inspected"):
            assert item.gaze is not None
        assert item.kind in Q.KINDS and (item.kind == "missed" or item.truth.answer in Q.SPACES[item.kind]
                                         or item.kind == "larger" and item.truth.answer in item.spec.findings)
    presence = {i.spec.findings[0]: i.truth.answer for i in items if i.kind == "presence"}
    assert presence["Pleural Effusion"] == "yes" and presence["Pneumothorax"] == "yes"
    assert "Pneumonia" not in presence  # uncertain findings are not asked about
    assert sum(a == "no" for a in presence.values()) >= 2  # absent findings are asked about too
    assert len([i for i in items if i.kind == "missed"]) == 2  # one per gaze source
    assert Q.generate(case, gaze, seed=3) == items  # reproducible


def test_phrasing_groups_are_disjoint_and_parse_back_to_their_slots():
    for kind in Q.KINDS:
        groups = [set(Q.phrasings(kind, split)) for split in Q.PHRASING_SPLITS]
        assert all(groups) and not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    # every phrasing with every spelling of its slots reads back as exactly those slots
    for kind in Q.KINDS:
        for split in Q.PHRASING_SPLITS:
            for template in Q.phrasings(kind, split):
                if kind == "inspected":
                    cases = [((), region, (s,)) for region, surfaces in Q.REGION_SURFACES.items() for s in surfaces]
                elif Q.SLOTS[kind]:
                    spatial = [f for f in Q.SPATIAL_FINDINGS]
                    cases = [((f, g), None, (sf, sg)) for f, g in zip(spatial, spatial[1:] + spatial[:1])
                             for sf in Q.FINDING_SURFACES[f] for sg in Q.FINDING_SURFACES[g][:1]]
                    cases = [(c[0][: len(Q.SLOTS[kind])], None, c[2][: len(Q.SLOTS[kind])]) for c in cases]
                else:
                    cases = [((), None, ())]
                for findings, region, surfaces in cases:
                    item = Q.QAItem("x", Q.Spec(kind, findings, region), Q.Truth("yes"), surfaces)
                    mentions = Q.find_mentions(Q.render(item, template))
                    assert [m.name for m in mentions if m.kind == "finding"] == list(findings), (template, surfaces)
                    assert [m.name for m in mentions if m.kind == "region"] == ([region] if region else []), (template, surfaces)


def test_finding_words_need_word_boundaries():
    assert Q.find_mentions("How many abnormal findings are present?") == []  # "normal" inside "abnormal"
    assert [m.name for m in Q.find_mentions("Is the pleural effusion larger than the effusion?")] == ["Pleural Effusion"] * 2
    assert [m.name for m in Q.find_mentions("Is there a widened mediastinum?")] == ["Enlarged Cardiomediastinum"]
    assert [m.kind for m in Q.find_mentions("Was the mediastinum looked at?")] == ["region"]


def test_answer_block_is_validated():
    ok = Answer(question="Where is the effusion?", answer="left costophrenic angle", type="location", kind="region",
                confidence=0.8, box=[10.0, 10.0, 50.0, 60.0], fixations=[0])
    case = Case("a", ImageRef("", 100, 100), fixations=[Fixation(20, 20, 0, 0.2)], prediction=Prediction(answer=ok))
    back = Case.from_dict(case.to_dict())
    assert back.prediction.answer == ok
    for change, field in (({"confidence": 1.5}, "confidence"), ({"box": [50, 10, 10, 60]}, "box"),
                          ({"type": "weather"}, "type"), ({"question": "x" * 301}, "question"), ({"mood": 1}, "mood"),
                          ({"fixations": [3]}, "fixations"), ({"box": [10, 10, 500, 60]}, "box")):
        d = case.to_dict()
        d["prediction"]["answer"].update(change)
        with pytest.raises(CaseError, match=field):
            Case.from_dict(d)


# ------------------------------------------------------------------------------------------ network
def _random_batch(b=3, d=16, h=8, w=8, k=10, generator=None):
    g = generator or torch.Generator().manual_seed(0)
    att = torch.rand(b, 14, h, w, generator=g)
    return {"feats": torch.randn(b, d, h, w, generator=g), "pooled": torch.randn(b, 14, d, generator=g),
            "logits": torch.randn(b, 14, generator=g), "attention": att / att.sum((2, 3), keepdim=True),
            "gaze": torch.rand(b, k, 4, generator=g), "gaze_mask": torch.rand(b, k, generator=g) > 0.3,
            "coverage": torch.rand(b, 2 * len(REGION_NAMES), generator=g),
            "question": torch.randn(b, 384, generator=g), "slots": torch.randn(b, 3, 384, generator=g),
            "slot_kind": torch.tensor([[1, 0, 0], [1, 1, 0], [2, 0, 0]][:b])}


@pytest.mark.parametrize("inputs", ["all", "no_gaze", "question_only"])
def test_network_shapes(inputs):
    from models.vqa.config import VQAConfig
    from models.vqa.network import VQANet

    net = VQANet(VQAConfig(d_model=32, heads=4, ff=64, pool=2, max_fixations=10, inputs=inputs), feature_dim=16).eval()
    out = net(_random_batch())
    assert out.answer.shape == (3, len(Q.ANSWERS)) and out.regions.shape == (3, len(REGION_NAMES))
    assert out.kind.shape == (3, len(Q.KINDS)) and out.grounding.shape == (3, 8, 8)
    assert torch.isfinite(out.answer).all() and torch.isfinite(out.grounding).all()


def test_ablations_do_not_see_what_they_ablate():
    from models.vqa.config import VQAConfig
    from models.vqa.network import VQANet

    a, b = _random_batch(), _random_batch(generator=torch.Generator().manual_seed(1))
    mixed_gaze = {**a, **{k: b[k] for k in ("gaze", "gaze_mask", "coverage")}}
    mixed_image = {**mixed_gaze, **{k: b[k] for k in ("feats", "pooled", "logits", "attention")}}
    torch.manual_seed(0)
    for inputs, other in (("no_gaze", mixed_gaze), ("question_only", mixed_image)):
        net = VQANet(VQAConfig(d_model=32, heads=4, ff=64, pool=2, max_fixations=10, inputs=inputs), feature_dim=16).eval()
        with torch.no_grad():
            x, y = net(a), net(other)
        assert torch.allclose(x.answer, y.answer, atol=1e-5) and torch.allclose(x.grounding, y.grounding, atol=1e-5)
    full = VQANet(VQAConfig(d_model=32, heads=4, ff=64, pool=2, max_fixations=10), feature_dim=16).eval()
    with torch.no_grad():
        assert not torch.allclose(full(a).answer, full(mixed_gaze).answer, atol=1e-5)  # the model does see gaze


def test_backbone_outputs_are_the_classifiers_own():
    from models.classifier.config import ClassifierConfig
    from models.classifier.network import GazeAttentionNet
    from models.vqa.inputs import backbone_outputs

    net = GazeAttentionNet(ClassifierConfig(size=64, width=4, embed_dim=0)).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        mine, theirs = backbone_outputs(net, x), net(x)
    assert torch.allclose(mine["logits"], theirs.logits, atol=1e-5)
    assert torch.allclose(mine["attention"], theirs.attention, atol=1e-6)
    assert mine["feats"].shape == (2, 32, 8, 8) and mine["pooled"].shape == (2, 14, 32)


def test_gaze_arrays_in_the_grid_frame():
    from models.imaging import Letterbox
    from models.vqa.inputs import gaze_arrays

    lb = Letterbox.fit(200, 100, 64)  # letterboxed: the image fills the middle rows
    tokens, mask, cover = gaze_arrays([Fixation(100, 50, 0, 0.5), Fixation(30, 20, 0.5, 0.25)], lb, 8)
    assert mask.tolist() == [True, True] + [False] * 6
    # model frame: scale 0.32, 16 rows of padding above the image
    assert tokens[0, :2] == pytest.approx([0.5, 0.5]) and tokens[1, :2] == pytest.approx([0.15, (20 * 0.32 + 16) / 64])
    assert tokens[0, 2] == pytest.approx(0.5)
    dwell = dict(zip(REGION_NAMES, cover[len(REGION_NAMES):]))
    assert dwell["bones and soft tissues"] == pytest.approx(1.0)  # the whole-image region holds all the time
    assert dwell["right upper zone"] == pytest.approx(0.25 / 0.75)  # only the second fixation's foveal disc reaches it
    assert cover[REGION_NAMES.index("right upper zone")] == 1.0 and cover[REGION_NAMES.index("left lower zone")] == 0.0


# ------------------------------------------------------------------------------------------ a tiny trained model
@pytest.fixture(scope="module")
def tiny(phantom_store, tmp_path_factory):
    """A tiny classifier and VQA model trained on the 16-image phantom store (recorded gaze only)."""
    from models.datasets.store import CaseStore
    from models.families import FAMILIES
    from models.vqa.train import train_vqa

    models = tmp_path_factory.mktemp("vqa_models")
    source = CaseStore(phantom_store).source()
    clf = FAMILIES["classifier"]
    clf.train(source, clf.path(models), clf.make_config({"epochs": 1, "size": 64, "width": 4, "embed_dim": 0,
                                                         "device": "cpu", "batch_size": 8}), log=None)
    config = FAMILIES["vqa"].make_config({"epochs": 6, "d_model": 32, "ff": 64, "lr": 5e-3, "batch_size": 16, "kind_weight": 2.0,
                                          "device": "cpu", "gaze_samples": 0})
    summary = train_vqa(source, models / "vqa.pt", model_config=config["model"], train_config=config["train"], log=None)
    return source, models, summary


def test_tiny_training_lowers_the_loss_and_reloads_identically(tiny):
    from models.vqa.predict import VQAPredictor

    source, models, summary = tiny
    history = summary["history"]
    assert len(history) == 6
    assert history[-1]["answer"] < history[0]["answer"] and history[-1]["kind"] < history[0]["kind"]
    predictor = VQAPredictor.from_checkpoint(models / "vqa.pt")
    assert predictor.info["synthetic"] is True
    case = next(c for c in source.cases if c.fixations)
    from models.imaging import read_image

    features = predictor.image_features([read_image(case.image.path)])[0]
    parsed = predictor.parse(["Is there any pleural effusion?", "Which regions were not inspected?"])
    gaze = [predictor.gaze_inputs(case.fixations, features.letterbox)] * 2
    from models.vqa.inputs import slot_arrays
    from models.vqa.predict import SURFACE_INDEX, make_batch

    slots = [slot_arrays(p.mentions, SURFACE_INDEX) for p in parsed]
    batch = make_batch([features] * 2, gaze, torch.stack([p.embedding for p in parsed]), [s[0] for s in slots],
                       [s[1] for s in slots], predictor.surfaces, "cpu")
    with torch.no_grad():
        loaded, trained = predictor.model(batch), summary["network"](batch)
    for x, y in zip(loaded, trained):
        assert torch.equal(x, y)


def test_predictor_answers_and_refuses(tiny):
    from models.imaging import read_image
    from models.vqa.predict import VQAPredictor

    source, models, _ = tiny
    predictor = VQAPredictor.from_checkpoint(models / "vqa.pt")
    case = next(c for c in source.cases if c.fixations)
    image = read_image(case.image.path)
    features = predictor.image_features([image])[0]
    questions = ["Is there a pneumoperitoneum?", "asdkj qwe zzz", "Where is the No Finding?",
                 "Which side is the cardiomegaly on?", "Is there any pleural effusion or pneumothorax?"]
    answers = predictor.answer_batch([features] * len(questions), questions, [case.fixations] * len(questions))
    for q, a in zip(questions, answers):
        assert not a.answerable and a.answer == Q.CANNOT_ANSWER and a.reason and a.confidence is None, (q, a)
    assert "no finding this model knows" in answers[0].reason
    assert "unlike the questions" in answers[1].reason
    no_gaze = predictor.ask(features, "Which regions were not inspected?", [])
    assert not no_gaze.answerable and "fixations" in no_gaze.reason
    a = predictor.ask(features, "Is there any pleural effusion?", case.fixations, gaze_source="recorded", mc_samples=3)
    assert a.answerable and a.answer in ("yes", "no") and 0.0 <= a.confidence <= 1.0 and a.mc_samples == 3
    assert a.type == "presence" and a.findings == ["Pleural Effusion"] and a.gaze_source == "recorded"
    if a.box is not None:
        x1, y1, x2, y2 = a.box
        assert 0 <= x1 < x2 <= image.width and 0 <= y1 < y2 <= image.height
    assert all(0 <= i < len(case.fixations) for i in a.fixations)
    missed = predictor.ask(features, "Which regions were not inspected?", case.fixations)
    assert missed.answerable and all(r in REGION_NAMES for r in missed.regions)


def test_pipeline_puts_the_answer_into_the_case(tiny):
    from models.families import FAMILIES
    from models.pipeline import Pipeline, RunError

    source, models, _ = tiny
    case = next(c for c in source.cases if c.fixations)
    pipe = Pipeline(classifier=FAMILIES["classifier"].load(models / "classifier.pt"),
                    vqa=FAMILIES["vqa"].load(models / "vqa.pt"))
    result = pipe.run(case.image.path, families=("classifier", "scanpath", "vqa"), question="Where is the effusion?",
                      gaze="recorded", recorded_gaze=case.fixations)
    answer = result.case.prediction.answer
    assert answer is not None and answer.question == "Where is the effusion?" and answer.gaze_source == "recorded"
    assert "vqa" in result.case.prediction.models and "vqa" in result.case.prediction.timings
    Case.from_dict(result.case.to_dict())  # valid: box inside the image, fixation indices resolve
    plain = pipe.run(case.image.path, families=("classifier", "vqa"))
    assert plain.case.prediction.answer is None and "vqa" not in plain.case.prediction.models
    with pytest.raises(RunError, match="question"):
        pipe.run(case.image.path, families=("classifier",), question="Is there an effusion?")
    with pytest.raises(ValueError, match="question"):
        pipe.run(case.image.path, families=("classifier", "vqa"), question="   ")


def test_ask_command_writes_the_answer_with_evidence(tiny, tmp_path, capsys):
    from models.cli import main

    source, models, _ = tiny
    case = next(c for c in source.cases if c.fixations)
    record = tmp_path / "record.json"
    record.write_text(json.dumps(case.to_dict()))
    out = tmp_path / "answer.json"
    rc = main(["ask", case.image.path, "Which side is the pleural effusion on?", "--models", str(models),
               "--gaze-from", str(record), "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Q: Which side is the pleural effusion on?" in printed and "A: " in printed
    answered = Case.from_dict(json.loads(out.read_text()))
    a = answered.prediction.answer
    assert a.question == "Which side is the pleural effusion on?" and a.gaze_source == "recorded"
    assert a.answerable == (a.answer != Q.CANNOT_ANSWER)
    if a.answerable:
        assert a.answer in Q.SPACES["side"] and 0 <= a.confidence <= 1
    assert len(answered.fixations) == len(case.fixations)
    assert answered.prediction.synthetic is True


@pytest.mark.parametrize("argv, names", [
    (["ask", "/nonexistent/x.png", "Is there an effusion?"], "/nonexistent/x.png"),
    (["ask", "{image}", ""], "question"),
    (["ask", "{image}", "x" * 301], "question"),
    (["ask", "{image}", "Is there an effusion?", "--json", "{tmp}/out.txt"], "--json"),
    (["ask", "{image}", "Is there an effusion?", "--models", "{tmp}/empty"], "empty"),
    (["ask", "{image}", "Is there an effusion?", "--models", "{clf_only}"], "vqa"),
    (["ask", "{image}", "Is there an effusion?", "--mc-samples", "-1"], "mc_samples"),
    (["predict", "{image}", "--task", "vqa"], "--question"),
    (["predict", "{image}", "--task", "pipeline", "--question", "Is there an effusion?"], "question"),
])
def test_bad_input_is_one_line_and_exit_2(tiny, tmp_path, capsys, argv, names):
    from models.cli import main

    source, models, _ = tiny
    (tmp_path / "empty").mkdir()
    clf_only = tmp_path / "clf_only"
    clf_only.mkdir()
    (clf_only / "classifier.pt").write_bytes((models / "classifier.pt").read_bytes())
    image = next(c for c in source.cases if c.fixations).image.path
    args = [a.format(image=image, tmp=tmp_path, clf_only=clf_only) for a in argv]
    if "--models" not in args:
        args += ["--models", str(models)]
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and names in err, err


def test_evaluate_command_writes_per_type_accuracy_with_the_rule_baseline(tiny, phantom_store, tmp_path, capsys):
    """`gazelabel evaluate vqa`: a JSON with every question type's accuracy and CI for the model and for the rule
    over the pipeline's Case (the baselines' files are absent here, so they are left out, not invented)."""
    from models.cli import main
    from models.schema import ANSWER_TYPES

    source, models, _ = tiny
    out = tmp_path / "vqa_eval.json"
    rc = main(["evaluate", "vqa", "--data", str(phantom_store), "--models", str(models),
               "--json", str(out), "--n-boot", "50", "--split", "train", "--max-images", "4"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    report = json.loads(out.read_text())
    assert report["synthetic"] is True and report["phrasing"] == "test" and report["gaze"] == "recorded"
    assert set(report["accuracy"]) == {"model", "rule"}  # no vqa_no_gaze.pt / vqa_question_only.pt here
    assert report["n_questions"] > 0 and report["n_images"] >= 1
    per_type = report["accuracy"]["model"]["per_type"]
    assert set(per_type) == set(ANSWER_TYPES)
    total = 0
    for ci in per_type.values():
        if ci["estimate"] is not None:
            assert 0.0 <= ci["low"] <= ci["estimate"] <= ci["high"] <= 1.0
            total += ci["n"]
    assert total == report["n_questions"]
    assert "wrote" in printed.out

    rc = main(["evaluate", "vqa", "--data", str(phantom_store), "--models", str(models),
               "--json", str(tmp_path / "out.txt")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--json" in err, err


# ------------------------------------------------------------------------------------------ evaluation pieces
def test_temperature_scaling_undoes_overconfidence():
    from models.vqa.train import fit_temperature

    g = torch.Generator().manual_seed(0)
    calibrated = torch.randn(4000, 5, generator=g)
    targets = torch.multinomial(calibrated.softmax(-1), 1, generator=g)[:, 0]  # labels drawn from the softmax
    t, nll = fit_temperature(calibrated * 3.0, targets)  # three times too confident
    assert t == pytest.approx(3.0, abs=0.35) and nll["val_nll_calibrated"] < nll["val_nll_t1"]


def test_kind_confidence_keeps_validation_refusals_at_two_percent():
    from models.vqa.train import fit_kind_confidence

    probs = np.full((100, len(Q.KINDS)), 0.01)
    probs[:, 0] = 0.9
    assert fit_kind_confidence(probs) == 0.5
    probs[:10, 0] = 0.42  # 10% would be refused at 0.5 and 0.45
    assert fit_kind_confidence(probs) == 0.4


def test_ece_and_image_bootstrap():
    from models.vqa.evaluate import expected_calibration_error, image_accuracy_ci, paired_delta_ci

    conf = np.array([0.95, 0.95, 0.55, 0.55])
    ok = np.array([1.0, 1.0, 1.0, 0.0])
    assert expected_calibration_error(conf, ok) == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    images = np.array([0, 0, 1, 1, 2, 2])
    ci = image_accuracy_ci(images, np.array([1, 1, 1, 0, 0, 0.0]), n_boot=200, seed=0)
    assert ci["estimate"] == pytest.approx(0.5) and ci["images"] == 3 and ci["low"] <= 0.5 <= ci["high"]
    same = paired_delta_ci(images, np.ones(6), np.ones(6), n_boot=100, seed=0)
    assert same["estimate"] == 0.0 and same["low"] == same["high"] == 0.0
