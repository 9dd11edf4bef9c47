"""`--lm PATH` with a BPE tokenizer (issue 16, item 2): a byte-level BPE trained here with `tokenizers`, the way
GPT-2's is built (one <|endoftext|> token for BOS and EOS, no pad token, no post-processor that adds them),
under random-init GPT-2, Llama and Qwen2 configs from transformers. The report family trains on each (LM
stage, then Gaze2Report with LoRA) on the SYNTHETIC phantom store, loads for inference with the adapters
merged, and writes reports whose sentences are read back as with our word-level LM. The LMs are toys trained
a few steps: what is tested is the plumbing (tokens, controls, LoRA, decoding, read-back), not their prose."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

pytestmark = pytest.mark.integration

END = "<|endoftext|>"


def _bpe_tokenizer(texts):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=[END],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=END, eos_token=END, model_max_length=256)


def _model(kind: str, vocab: int, end: int):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=256,
                                          bos_token_id=end, eos_token_id=end))
    small = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=256, bos_token_id=end, eos_token_id=end)
    return LlamaForCausalLM(LlamaConfig(**small)) if kind == "llama" else Qwen2ForCausalLM(Qwen2Config(**small))


@pytest.fixture(scope="module")
def report_texts(phantom_store):
    from models.datasets.store import CaseStore
    from models.report.evidence import split_sentences

    source = CaseStore(phantom_store).source()
    return [s for c in source.cases if c.report for s in split_sentences(c.report.text)]


def test_encode_batch_ends_every_row_with_eos_for_a_tokenizer_that_adds_none(report_texts):
    from models.report.lm import SEP, encode_batch, ensure_special_tokens, sequence_text

    tok = _bpe_tokenizer(report_texts)
    ensure_special_tokens(_model("gpt2", len(tok), tok.eos_token_id), tok)
    assert tok.pad_token == END and SEP in tok.get_vocab()
    texts = [sequence_text("findings : likely cardiomegaly @ heart", report_texts[0]),
             sequence_text("impression :", report_texts[1])]
    ids, mask, labels = encode_batch(tok, texts, 160)
    sep, end = tok.convert_tokens_to_ids(SEP), tok.convert_tokens_to_ids(END)
    for row in range(2):
        n = int(mask[row].sum())
        assert ids[row, 0] == end and ids[row, n - 1] == end  # [BOS] ... [EOS], as our tokenizer gives
        first_sep = int((ids[row] == sep).nonzero()[0])
        assert (labels[row, : first_sep + 1] == -100).all() and (labels[row, first_sep + 1: n] != -100).all()
    cut, _, _ = encode_batch(tok, texts, 12)
    assert cut.shape[1] == 12 and (cut[:, -1] == end).all()  # truncated rows keep their end


@pytest.mark.parametrize("kind", ["gpt2", "llama", "qwen2"])
def test_a_bpe_lm_folder_trains_with_lora_and_writes_checked_reports(kind, phantom_store, report_texts, tmp_path):
    from models.datasets.store import CaseStore
    from models.families import REPORT
    from models.report.decoding import Gpt2Runner
    from models.report.generate import ReportGenerator
    from models.report.lm import LORA_TARGETS, SEP, sequence_text

    tok = _bpe_tokenizer(report_texts + [sequence_text("findings : likely cardiomegaly @ heart", "")])
    folder = tmp_path / kind
    model = _model(kind, len(tok), tok.eos_token_id)
    model.save_pretrained(folder)  # safetensors: load_lm reads nothing else
    tok.save_pretrained(folder)
    source = CaseStore(phantom_store).source()
    out = tmp_path / "report"
    config = REPORT.make_config({"lm_path": str(folder), "lm_epochs": 2, "g2r_epochs": 1, "max_train_steps": 10,
                                 "batch_size": 16, "g2r_batch_size": 4, "device": "cpu", "seed": 0})
    REPORT.train(source, out, config, log=None)

    gen = ReportGenerator.from_checkpoint(out)
    assert SEP in gen.tokenizer.get_vocab() and gen.tokenizer.eos_token == END
    assert Gpt2Runner.supports(gen.lm) == (kind == "gpt2")  # the written-out forward only where it is exact
    store = CaseStore(phantom_store)
    case = source.cases[0]
    image = store.load_image(case.id)
    findings = SimpleNamespace(scores={"Cardiomegaly": 0.9, "Pleural Effusion": 0.6, "Edema": 0.1}, boxes=[])
    report, stats = gen.write(image, findings, case.fixations, mode="gaze2report", samples=2)
    adapted = {n.rsplit(".", 1)[-1] for n, m in gen.lm.named_modules() if hasattr(m, "lora_A")}
    assert adapted and adapted <= set(LORA_TARGETS[kind])
    assert all(m.merged for m in gen.lm.modules() if hasattr(m, "lora_A") and hasattr(m, "merged"))
    assert stats["sentences"] >= 3 and report.findings and report.impression
    assert "Ġ" not in report.text and SEP not in report.text and END not in report.text  # byte-level text decoded

    # Every sentence the LM wrote reads back as its unit's statements; the rest are the unit's template.
    plan = gen.plan(findings, case.fixations, image.array.shape[1], image.array.shape[0])
    from models.report.templates import render_sentences

    units, _, written = gen.realise(plan, mode="prompt", samples=1)
    templates = [u.text for u in render_sentences(plan)]
    for unit, template in zip(units, templates):
        assert unit.text == template or gen._reads_back(unit.text, unit), unit.text
    assert written == sum(u.text != t for u, t in zip(units, templates))
    # Unchecked, whatever the LM decoded stands (a toy LM trained a few steps writes little that is a
    # sentence: those units keep their template); generation ran through this LM and its tokenizer.
    raw, tokens, own = gen.realise(plan, mode="gaze2report", check=False)
    assert tokens > 0 and len(raw) == len(templates)
    assert own >= sum(u.text != t for u, t in zip(raw, templates))
    again, _ = ReportGenerator.from_checkpoint(out).write(image, findings, case.fixations, mode="gaze2report", samples=2)
    assert again.text == report.text  # seeded: the same report from a fresh load
