"""Inference speed-ups that must not change answers: batched sentence decoding with one KV cache (GPT-2's
written-out forward and transformers' own for other LMs), LoRA merged at load, and scanpath decoding with
cached keys/values. Each is checked against the plain computation it replaces."""

import math

import pytest
import torch

from models.report.decoding import Gpt2Runner, Prompts, Row, decode_rows, prefill, race_sample, runner_for


def _tokenizer():
    from models.report.lm import train_tokenizer

    words = ("findings : impression : likely possible no cardiomegaly pleural effusion pneumothorax @ heart "
             "left right costophrenic angle [SEP] the heart is enlarged normal lungs are clear small .")
    return train_tokenizer([words] * 2, min_frequency=1)


def _gpt2(tok, seed=0, std=0.3):
    from models.report.lm import small_gpt2

    torch.manual_seed(seed)
    lm = small_gpt2(len(tok), n_layer=2, n_embd=32, n_head=4, pad_token_id=tok.pad_token_id,
                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id).eval()
    with torch.no_grad():  # peakier logits than the default init: samples are not ties
        for p in lm.parameters():
            if p.dim() > 1:
                p.normal_(0.0, std)
    return lm


def _llama(tok, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    lm = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in lm.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return lm


def _prompts(tok):
    controls = ["findings : likely cardiomegaly @ heart", "findings : no pneumothorax",
                "impression : possible pleural effusion @ left costophrenic angle"]
    return [[tok.bos_token_id] + tok(f"{c} [SEP]", add_special_tokens=False)["input_ids"] for c in controls]


def _one_at_a_time(lm, ids, prefix, generator, temperature, eos, max_new=12):
    """The decoder this module replaced: one sentence, transformers' forward, torch.multinomial."""
    with torch.no_grad():
        emb = lm.get_input_embeddings()(torch.tensor([ids]))
        if prefix is not None:
            emb = torch.cat([prefix, emb], dim=1)
        out = lm(inputs_embeds=emb, use_cache=True)
        key = "cache" if "cache" in out else "past_key_values"
        generated = []
        for _ in range(max_new):
            logits = out.logits[0, -1].float()
            if generator is None:
                nxt = int(logits.argmax())
            else:
                nxt = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator))
            if nxt == eos:
                break
            generated.append(nxt)
            out = lm(input_ids=torch.tensor([[nxt]]), use_cache=True, **{key: out[key]})
    return generated


def test_race_sampling_is_torch_multinomial():
    """argmax(p / E), E ~ Exp(1) drawn from the generator, picks what torch.multinomial(p, 1) picks."""
    g = torch.Generator().manual_seed(0)
    for seed in range(50):
        p = torch.softmax(torch.randn(30, generator=g) * 2, -1)
        want = int(torch.multinomial(p, 1, generator=torch.Generator().manual_seed(seed)))
        noise = torch.empty(30).exponential_(1, generator=torch.Generator().manual_seed(seed))
        assert int(race_sample(p[None], noise)[0]) == want
    # and it is a correct sampler: frequencies follow p
    p = torch.tensor([0.6, 0.3, 0.1])
    gen = torch.Generator().manual_seed(1)
    draws = torch.stack([race_sample(p[None], torch.empty(3).exponential_(1, generator=gen))[0] for _ in range(4000)])
    freq = torch.bincount(draws, minlength=3).float() / 4000
    assert torch.allclose(freq, p, atol=0.03)


@pytest.mark.parametrize("with_prefix", [False, True])
def test_gpt2_runner_matches_transformers_with_padding_and_prefix(with_prefix):
    tok = _tokenizer()
    lm = _gpt2(tok)
    assert Gpt2Runner.supports(lm)
    runner = Gpt2Runner(lm)
    prompts = _prompts(tok)
    prefix = torch.randn(1, 3, 32) if with_prefix else None
    cached = prefill(runner, prompts, prefix=prefix, max_new_tokens=5, pad_id=tok.pad_token_id)
    for i, ids in enumerate(prompts):  # each row's logits are those of the row alone, unpadded
        emb = lm.get_input_embeddings()(torch.tensor([ids]))
        if prefix is not None:
            emb = torch.cat([prefix, emb], 1)
        with torch.no_grad():
            want = lm(inputs_embeds=emb).logits[0, -1]
        assert torch.allclose(cached.logits[i], want, atol=1e-4), i
    assert cached.valid.sum(1).tolist() == [len(p) + (3 if with_prefix else 0) for p in prompts]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("with_prefix", [False, True])
def test_batched_rows_decode_what_each_row_decodes_alone(family, with_prefix):
    """Greedy and seeded samples of several prompts in one batch = each decoded alone with its own
    freshly seeded generator (the previous decoder), for the GPT-2 runner and transformers' path."""
    tok = _tokenizer()
    lm = _gpt2(tok) if family == "gpt2" else _llama(tok)
    runner = runner_for(lm)
    assert isinstance(runner, Gpt2Runner) == (family == "gpt2")
    prompts = _prompts(tok)
    hidden = lm.get_input_embeddings().weight.shape[1]
    prefix = torch.randn(1, 4, hidden) * 0.5 if with_prefix else None
    temperature, seed = 0.8, 3
    cached = prefill(runner, prompts, prefix=prefix, max_new_tokens=12, pad_id=tok.pad_token_id)
    rows = [Row(p, a) for a in range(4) for p in range(len(prompts))]
    # An untrained LM seldom writes [EOS]: let its most frequent word end the rows, so they end at different steps.
    written = torch.tensor(sum(decode_rows(runner, cached, rows, eos_id=-1, max_new_tokens=12, seed=seed), []))
    eos = int(torch.bincount(written).argmax())
    got = decode_rows(runner, cached, rows, eos_id=eos, max_new_tokens=12, temperature=temperature, seed=seed)
    again = decode_rows(runner, cached, rows[::-1], eos_id=eos, max_new_tokens=12, temperature=temperature, seed=seed)
    assert again[::-1] == got  # the prefilled prompts are reused, not consumed
    lengths = set()
    for row, tokens in zip(rows, got):
        gen = None if row.attempt == 0 else torch.Generator().manual_seed(seed + row.attempt)
        assert tokens == _one_at_a_time(lm, prompts[row.prompt], prefix, gen, temperature, eos), row
        lengths.add(len(tokens))
    assert len(lengths) > 1  # rows ended at different steps: the batch shrank on the way


def test_a_row_that_writes_an_unknown_word_stops():
    tok = _tokenizer()
    lm = _gpt2(tok)
    with torch.no_grad():  # make [UNK] the most likely next token everywhere
        lm.lm_head.weight[tok.unk_token_id] = 0.0
        lm.transformer.ln_f.bias.zero_()
    runner = runner_for(lm)
    cached = prefill(runner, _prompts(tok), max_new_tokens=8, pad_id=tok.pad_token_id)
    logits = cached.logits.clone()
    logits[:, tok.unk_token_id] = 1e4
    forced = Prompts(cached.cache, logits, cached.valid, cached.positions, cached.capacity)
    out = decode_rows(runner, forced, [Row(0, 0), Row(1, 0)], eos_id=tok.eos_token_id, unk_id=tok.unk_token_id,
                      max_new_tokens=8)
    assert out == [[tok.unk_token_id], [tok.unk_token_id]]


def _peft_with_trained_adapters(tok):
    from models.report.lora import attach_lora

    lm = _gpt2(tok, std=0.2)
    peft_lm, _ = attach_lora(lm, 4, 16, 0.0)
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in peft_lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.3)  # B starts at zero: make the adapters change the LM
    return peft_lm.eval()


def test_merged_lora_decodes_like_peft_and_switches_off_for_prompt_mode():
    from models.report.generate import ReportGenerator

    tok = _tokenizer()
    peft_lm = _peft_with_trained_adapters(tok)
    prompts = _prompts(tok)
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        with_lora = peft_lm(input_ids=ids).logits[0, -1].clone()
        with peft_lm.disable_adapter():
            without = peft_lm(input_ids=ids).logits[0, -1].clone()
    assert not torch.allclose(with_lora, without, atol=1e-3)

    gen = ReportGenerator(peft_lm, tok, merge_lora=True)
    for adapters, want in ((True, with_lora), (False, without), (True, with_lora), (False, without)):
        runner, context = gen._adapters(adapters)
        assert isinstance(runner, Gpt2Runner)
        with context():
            got = prefill(runner, prompts[:1], max_new_tokens=2, pad_id=tok.pad_token_id).logits[0]
        assert torch.allclose(got, want, atol=1e-4), adapters
    merged = [m.merged for m in peft_lm.modules() if hasattr(m, "lora_A") and hasattr(m, "merged")]
    assert merged and not any(merged)  # left unmerged after prompt mode

    # Without merge_lora (a model still in training) peft's own forward adds the adapters.
    plain = ReportGenerator(peft_lm, tok)
    runner, context = plain._adapters(True)
    with context():
        got = prefill(runner, prompts[:1], max_new_tokens=2, pad_id=tok.pad_token_id).logits[0]
    assert torch.allclose(got, with_lora, atol=1e-4)
    assert not any(m.merged for m in peft_lm.modules() if hasattr(m, "lora_A") and hasattr(m, "merged"))


def test_realise_picks_what_the_unit_by_unit_loop_picks():
    """The batched rounds choose, for every unit, the sentence the former loop chose: the first attempt
    (greedy, then samples) that is new in its section and reads back; a stand-in read-back makes both
    choices depend on the attempts' texts."""
    from models.report.generate import ReportGenerator
    from models.report.lm import decode_sentence
    from models.report.prompt import build_plan
    from models.report.templates import render_sentences

    tok = _tokenizer()
    peft_lm = _peft_with_trained_adapters(tok)
    gen = ReportGenerator(peft_lm, tok, merge_lora=True, samples=3)
    accepted = lambda text, unit: len(text) % 3 == 0  # noqa: E731 (depends on the text only)
    gen._reads_back = accepted
    plan = build_plan({"Cardiomegaly": 0.9, "Pleural Effusion": 0.55, "Edema": 0.6}, [], [], 300, 300)
    units, _, written = gen.realise(plan, mode="gaze2report")
    assert all(m.merged for m in peft_lm.modules() if hasattr(m, "lora_A") and hasattr(m, "merged"))

    expected, said_by_section = [], {}
    for unit in render_sentences(plan):
        said = said_by_section.setdefault(unit.section, set())
        ids = [tok.bos_token_id] + tok(f"{unit.control} [SEP]", add_special_tokens=False)["input_ids"]
        choice = unit.text
        for attempt in range(1 + gen.samples):
            g = None if attempt == 0 else torch.Generator().manual_seed(gen.seed + attempt)
            text = decode_sentence(tok.decode(_one_at_a_time(peft_lm, ids, None, g, gen.sample_temperature,
                                                             tok.eos_token_id, 40), skip_special_tokens=False))
            if text and text not in said and accepted(text, unit):
                choice = text
                break
        said.add(choice)
        expected.append(choice)
    assert 0 < written < len(units)  # some LM sentences kept, some units fell back to their template
    assert [u.text for u in units] == expected
    assert written == sum(e != t.text for e, t in zip(expected, render_sentences(plan)))


def test_scanpath_cached_decoding_matches_the_full_decoder():
    from models.scanpath.config import ScanpathConfig
    from models.scanpath.network import ScanpathNet

    torch.manual_seed(0)
    net = ScanpathNet(ScanpathConfig(size=64, slots=12, d_model=32, heads=4, ff=64, channels=[8, 16, 32],
                                     decoder_layers=2)).eval()
    image = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        memory = net.memory(image)
        previous = torch.rand(2, 7, 3)
        full = net._decode(memory, previous)
        step = net._stepper(memory)
        for i in range(7):
            out = step(previous[:, i: i + 1])
            for key in ("mix_logit", "mean_xy", "logvar_xy", "mean_dur", "logvar_dur", "stop_logit"):
                assert torch.allclose(out[key][:, 0], full[key][:, i], atol=1e-5), (i, key)
        paths, lengths = net.generate(image, n_samples=3, temperature=0.5, generator=torch.Generator().manual_seed(0))
        again, lengths2 = net.generate(image, n_samples=3, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(paths, again) and torch.equal(lengths, lengths2)
    assert paths.shape == (2, 3, 12, 3) and (lengths >= 1).all()
    assert math.isfinite(float(paths.sum()))


def test_concurrent_reports_in_both_modes_get_their_own_weights():
    """A server's infer workers may write a gaze2report (adapters merged) and a prompt-mode report
    (adapters off) at the same time: each gets what it gets alone."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from models.report.generate import ReportGenerator
    from models.report.prompt import build_plan

    tok = _tokenizer()
    gen = ReportGenerator(_peft_with_trained_adapters(tok), tok, merge_lora=True, samples=2)
    read = threading.local()
    gen._reads_back = lambda text, unit: read.texts.append(text) and False  # every attempt decoded and kept
    plan = build_plan({"Cardiomegaly": 0.9, "Pleural Effusion": 0.55}, [], [], 300, 300)
    prefix = torch.randn(1, 3, 32)

    def write(mode):
        read.texts = []
        units, tokens, _ = gen.realise(plan, mode=mode, prefix_tokens=prefix if mode == "gaze2report" else None)
        return tokens, read.texts

    alone = {mode: write(mode) for mode in ("gaze2report", "prompt")}
    assert alone["gaze2report"][1] and alone["gaze2report"] != alone["prompt"]
    modes = ["gaze2report", "prompt"] * 8
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(write, modes))
    assert together == [alone[m] for m in modes]


def test_a_reports_sample_budget_is_the_generators_for_that_report_only():
    """``realise(samples=k)`` (the pipeline's ``report_samples``) writes what a generator built with
    ``samples=k`` writes; 0 keeps greedy sentences or templates; a budget outside 0..8 is refused by name."""
    from models.report.generate import ReportGenerator
    from models.report.prompt import build_plan

    tok = _tokenizer()
    peft_lm = _peft_with_trained_adapters(tok)
    plan = build_plan({"Cardiomegaly": 0.9, "Pleural Effusion": 0.55, "Edema": 0.6}, [], [], 300, 300)
    accepted = lambda text, unit: len(text) % 3 == 0  # noqa: E731 (a stand-in read-back that refuses some)

    def texts(gen, **kwargs):
        gen._reads_back = accepted
        units, _, written = gen.realise(plan, mode="gaze2report", **kwargs)
        return [u.text for u in units], written

    default = ReportGenerator(peft_lm, tok, merge_lora=True)
    assert default.samples == 0
    greedy, written0 = texts(default)
    three, written3 = texts(default, samples=3)
    assert three == texts(ReportGenerator(peft_lm, tok, merge_lora=True, samples=3))[0]
    assert texts(default)[0] == greedy  # the generator's own budget is untouched
    assert written3 >= written0 and three != greedy  # samples rescued some refused sentences here
    for bad in (-1, 9, 1.5, True):
        with pytest.raises(ValueError, match="samples must be an integer in 0..8"):
            default.realise(plan, mode="gaze2report", samples=bad)
