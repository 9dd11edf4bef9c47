"""Sentence units: training pairs from labelled reference sentences, the read-back check, and the
generator's keep-or-fall-back rule (with a stand-in decoder, no trained LM)."""

import numpy as np
import pytest
import torch

from models.imaging import LoadedImage
from models.labeling.labeler import default_labeler
from models.report.prompt import Statement, build_plan, control_text
from models.report.sentences import check_sentence, read_references, training_pairs
from models.report.templates import render_sentences


def test_training_pairs_read_controls_from_the_sentences():
    refs = read_references([(
        "Small left pleural effusion. The heart is enlarged. The lungs are clear. No pneumothorax. "
        "Degenerative changes of the spine.",
        "Possible pneumonia. No acute cardiopulmonary abnormality.")], default_labeler())[0]
    plan = build_plan({"Pleural Effusion": 0.9}, [], [], 400, 400)
    pairs = training_pairs(refs, plan)
    assert pairs == [
        ("findings : likely pleural effusion @ left costophrenic angle", "Small left pleural effusion."),
        ("findings : likely cardiomegaly @ heart", "The heart is enlarged."),  # the region it names
        ("findings : normal lungs", "The lungs are clear."),
        ("findings : no pneumothorax", "No pneumothorax."),
        ("impression : possible pneumonia", "Possible pneumonia."),
        ("impression : normal", "No acute cardiopulmonary abnormality."),
    ]  # "Degenerative changes" affirms an abnormality outside CheXpert-14: no control fits it


def test_control_text_orders_statements_and_names_topics():
    sts = [Statement("Pleural Effusion", "no", 0.1), Statement("Pneumothorax", "no", 0.1)]
    assert control_text("findings", sts) == "findings : no pneumothorax ; no pleural effusion"
    assert control_text("findings", (), "bones") == "findings : normal bones"
    assert control_text("impression", (), "chest") == "impression : normal"


@pytest.mark.parametrize("text, reason", [
    ("There is a small left pleural effusion.", None),
    ("Left pleural effusion with adjacent consolidation.", "Consolidation: not in the plan"),
    ("Possible left pleural effusion.", "wanted 1, read -1"),
    ("There is a right pleural effusion.", "the plan says left"),
    ("Bilateral pleural effusions.", "the sentence says bilateral"),
    ("There is a pleural effusion in the left lower zone.", "the sentence says left lower zone"),
    ("Effusion blunting the left costophrenic angle.", None),
    ("The the left pleural effusion.", "a word repeated"),
    ("Effusion", "not a sentence"),
    ("effusion.", "not a sentence"),
    (".", "not a sentence"),
    ("Effusion.", None),  # a terse impression item, as the templates write "Cardiomegaly."
])
def test_check_sentence_refuses_what_the_plan_does_not_say(text, reason):
    st = [Statement("Pleural Effusion", "likely", 0.9, region="left costophrenic angle")]
    got = check_sentence(text, st, default_labeler())
    assert got is None if reason is None else reason in got


def test_check_sentence_for_normal_and_negative_units():
    lab = default_labeler()
    assert check_sentence("The lungs are clear.", [], lab, "lungs") is None
    assert "not about the lungs" in check_sentence("No acute osseous abnormality.", [], lab, "lungs")
    assert "abnormality" in check_sentence("Emphysema of the lungs.", [], lab, "lungs")
    assert check_sentence("Opacity in the lungs.", [], lab, "lungs").startswith("Lung Opacity")
    negs = [Statement("Pneumothorax", "no", 0.1), Statement("Pleural Effusion", "no", 0.1)]
    assert check_sentence("No pleural effusion or pneumothorax.", negs, lab) is None
    assert "Pleural Effusion" in check_sentence("No pneumothorax.", negs, lab)
    # A consolidation may read as an opacity too (CheXpert's parent): allowed.
    assert check_sentence("There is focal consolidation with airspace opacity.",
                          [Statement("Consolidation", "likely", 0.9)], lab) is None


@pytest.fixture()
def stub_generator():
    """A generator on an untrained tiny LM whose decoder always 'writes' one fixed sentence."""
    from models.report.generate import ReportGenerator
    from models.report.lm import small_gpt2, train_tokenizer
    from models.report.lora import attach_lora

    tok = train_tokenizer(["findings : likely cardiomegaly [SEP] the heart is enlarged ."] * 2, min_frequency=1)
    torch.manual_seed(0)
    lm = small_gpt2(len(tok), n_layer=1, n_embd=16, n_head=2, pad_token_id=tok.pad_token_id,
                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    peft_lm, _ = attach_lora(lm, 2, 16, 0.05)
    gen = ReportGenerator(peft_lm.eval(), tok, samples=2)
    sentence = tok("the heart is enlarged .", add_special_tokens=False)["input_ids"]
    calls = []

    def fake_decoder(adapters, prompts, prefix_tokens=None, max_new_tokens=40):
        def decode(rows):
            calls.extend(r.attempt > 0 for r in rows)
            return [list(sentence) for _ in rows]
        return decode

    gen._decoder = fake_decoder
    return gen, calls


def test_lm_sentences_are_kept_only_when_they_read_back(stub_generator):
    from dataclasses import dataclass, field

    from models.report.evidence import check_evidence

    @dataclass
    class Result:
        scores: dict
        boxes: list = field(default_factory=list)

    gen, calls = stub_generator
    image = LoadedImage(np.zeros((300, 300), dtype=np.float32))
    result = Result({"Cardiomegaly": 0.9, "Pleural Effusion": 0.1})
    report, stats = gen.write(image, result, [], mode="prompt")
    units = render_sentences(gen.plan(result, [], 300, 300))
    # Cardiomegaly: the stand-in sentence says it -> kept (findings only: the impression unit reads
    # "likely cardiomegaly" too). Every other unit refuses it 3 times (greedy + 2 samples) -> template.
    assert report.findings.startswith("The heart is enlarged.")
    assert stats["lm_sentences"] == 2 and stats["fallback"] == len(units) - 2
    assert calls.count(False) == len(units) and calls.count(True) == 2 * (len(units) - 2)
    template = gen(image, result, [], mode="template")
    assert report.findings.split(". ", 1)[1] == template.findings.split(". ", 1)[1]
    check_evidence(report, 0, 0)
    assert [e.finding for e in report.evidence] == [e.finding for e in template.evidence]


@pytest.mark.parametrize("decoded, sentence", [
    ("endotracheal tube terminates 2 . 5 cm above the carina . [EOS]", "Endotracheal tube terminates 2.5 cm above the carina."),
    ("linear plate - like opacity . the heart is enlarged .", "Linear plate-like opacity."),
    ("no pneumothorax", "No pneumothorax."),
    ("[UNK] effusion .", ""),
    ("[EOS]", ""),
])
def test_decode_sentence_keeps_the_first_tidy_sentence(decoded, sentence):
    from models.report.lm import decode_sentence

    assert decode_sentence(decoded) == sentence
