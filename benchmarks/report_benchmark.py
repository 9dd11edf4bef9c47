"""Report-generation benchmark: template vs structured prompting (a) vs Gaze2Report (b), gaze ablations, and
the LM on IU X-ray text. Prints tables and writes JSON (default ``benchmarks/results/report_benchmark.json``).

Phantom (SYNTHETIC) part, on the store's test split:
    template | (a) prompt | (b) gaze2report with recorded gaze | (b) with predicted gaze (``--scanpath``)
    | (b) without gaze tokens: a model trained without them (``--model-nogaze``), else the gaze model with
    its fixation tokens left out at inference (labelled). The classifier is ``--classifier`` or the
    simulated one of :mod:`models.report.evaluate` (ground truth + N(0, ``--noise``), no boxes; labelled in
    the output; ``--noise 0`` is the oracle plan, which measures the writer alone).
    95 % bootstrap CIs (1000 resamples of reports) for CE F1 under both conventions of
    :mod:`models.metrics.report` (micro over 14 findings, positive only; micro over CheXbert's 5 findings,
    uncertain = positive; 0.0 where nothing is positive, as everywhere there) and ROUGE-L, and paired CIs
    for (b) minus (a), (a) minus template and gaze minus no-gaze. Each LM row says how many of its sentences the
    LM wrote (the rest fell back to the template after the labeler refused the LM's samples).
IU X-ray part (deterministic 7:1:2 hash split of the 2,955 R2Gen-rule reports; not R2Gen's split):
    LM perplexity on the test report sentences (after their controls, and with the control reduced to the
    section); text baselines given each report's own labeler keywords (oracle): most-common training
    report, nearest-neighbour retrieval (training report with the most similar label set), the template
    and the LM in prompt mode.
CPU timing: tokens/s and whole-report latency per mode.

    python benchmarks/report_benchmark.py --data STORE --model MODEL_DIR [--model-nogaze DIR] [--n-test 80]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.argtypes import nonnegative_int  # noqa: E402
from models.metrics.report import CE_CONVENTIONS, ce_label_matrix, micro_f1  # noqa: E402

# The CE-F1 conventions with CIs, by the key they get: "ce_f1_micro14_positive_only", "ce_f1_micro5_uncertain_positive".
CE_CI = {c.key("f1", "micro"): c for c in CE_CONVENTIONS}


def ce_matrices(labels: list[dict]) -> dict[str, np.ndarray]:
    """Per CE convention key, the ``(N, findings)`` 0/1 matrix of :func:`models.metrics.report.ce_label_matrix`."""
    return {key: ce_label_matrix(labels, c) for key, c in CE_CI.items()}


def metrics_row(metrics: dict) -> dict:
    """The score dict without its per-finding CE tables (``ce_per_finding*``: bulky, recomputable from labels)."""
    return {k: v for k, v in metrics.items() if not k.startswith("ce_per_finding")}


def ci(fn, *arrays) -> dict:
    from models.metrics.classification import bootstrap_ci

    return bootstrap_ci(fn, *arrays, n=1000, seed=0).to_dict()


def phantom_part(args, scorer) -> dict:
    from models.datasets.store import CaseStore
    from models.report.evaluate import SIMULATED_NOTE, generate_reports, timing_summary
    from models.report.generate import ReportGenerator
    from models.labeling.labeler import default_labeler
    from models.report.corpus import split_cases

    source = CaseStore(args.data).source()
    cases = split_cases(source.cases, source.splits)["test"][: args.n_test]
    gen = ReportGenerator.from_checkpoint(args.model)
    gen_nogaze = ReportGenerator.from_checkpoint(args.model_nogaze) if args.model_nogaze else gen
    if args.samples is not None:  # the sample budget of a refused sentence (default: the generator's own)
        gen.samples = gen_nogaze.samples = args.samples
    if args.model_nogaze and gen_nogaze.info.get("use_gaze", True):
        raise SystemExit(f"--model-nogaze {args.model_nogaze}: that model was trained with gaze tokens")
    classifier = scanpath = None
    if args.classifier:
        from models.classifier.predict import ClassifierPredictor

        classifier = ClassifierPredictor.from_checkpoint(args.classifier)
    if args.scanpath:
        from models.scanpath.predict import ScanpathPredictor

        scanpath = ScanpathPredictor.from_checkpoint(args.scanpath)
    systems = {
        "template": dict(mode="template"),
        "(a) prompt": dict(mode="prompt"),
        "(b) gaze2report, recorded gaze": dict(mode="gaze2report"),
        "(b) gaze2report, no gaze tokens": dict(mode="gaze2report", use_gaze=False, generator=gen_nogaze),
        # No gaze anywhere: the no-gaze model, and a plan whose regions are the findings' usual sites.
        "(b) gaze2report, no gaze at all": dict(mode="gaze2report", gaze="none", use_gaze=False, generator=gen_nogaze),
        # What the LM writes on its own: greedy sentences kept without the labeler's read-back.
        "(a) prompt, unchecked": dict(mode="prompt", check=False),
        "(b) gaze2report, recorded gaze, unchecked": dict(mode="gaze2report", check=False),
    }
    if scanpath is not None:
        systems["(b) gaze2report, predicted gaze"] = dict(mode="gaze2report", gaze="predicted")
    lab = default_labeler()
    refs = [c.report.text for c in cases]
    ref_m = ce_matrices(lab.label_many(refs))
    out, per = {}, {}
    for name, kw in systems.items():
        t0 = time.time()
        generator = kw.pop("generator", gen)
        run = generate_reports(generator, cases, classifier=classifier, scanpath=scanpath, seed=args.seed,
                               noise=args.noise, **kw)
        metrics = scorer.score(run["references"], run["hypotheses"])
        from pycocoevalcap.rouge.rouge import Rouge

        # Per-report ROUGE-L on the scorer's own (R2Gen) cleaning, so its CI matches the corpus ROUGE-L.
        _, rouge_each = Rouge().compute_score({i: [scorer.clean(r)] for i, r in enumerate(refs)},
                                              {i: [scorer.clean(h)] for i, h in enumerate(run["hypotheses"])})
        hyp_m = ce_matrices(lab.label_many(run["hypotheses"]))
        per[name] = {"ce": hyp_m, "rouge": np.asarray(rouge_each)}
        out[name] = {
            "metrics": metrics_row(metrics),
            **{f"{key}_ci": ci(micro_f1, ref_m[key], hyp_m[key]) for key in CE_CI},
            "rouge_l_ci": ci(np.mean, np.asarray(rouge_each)),
            "timing_cpu": timing_summary(run),
            "example": {"id": cases[0].id, "reference": refs[0], "generated": run["hypotheses"][0],
                        "evidence": [e.__dict__ for e in run["reports"][0].evidence]},
            "seconds": time.time() - t0,
        }
        print(f"  {name}: CE-F1 micro14 positive-only {out[name]['ce_f1_micro14_positive_only_ci']['estimate']:.3f}, "
              f"micro5 uncertain-positive {out[name]['ce_f1_micro5_uncertain_positive_ci']['estimate']:.3f} "
              f"({time.time() - t0:.0f}s)", flush=True)

    def delta(a: str, b: str) -> dict:
        d = {key: ci(lambda r, x, y: micro_f1(r, x) - micro_f1(r, y), ref_m[key], per[a]["ce"][key], per[b]["ce"][key])
             for key in CE_CI}
        d["rouge_l"] = ci(lambda x, y: float(np.mean(x - y)), per[a]["rouge"], per[b]["rouge"])
        return d

    deltas = {
        "(b) recorded gaze - (a)": delta("(b) gaze2report, recorded gaze", "(a) prompt"),
        "(b) unchecked - (a) unchecked": delta("(b) gaze2report, recorded gaze, unchecked", "(a) prompt, unchecked"),
        "(a) - template": delta("(a) prompt", "template"),
        "(b) unchecked - template": delta("(b) gaze2report, recorded gaze, unchecked", "template"),
        "(b) recorded gaze - (b) no gaze": delta("(b) gaze2report, recorded gaze", "(b) gaze2report, no gaze tokens"),
        "(b) recorded gaze - (b) no gaze at all": delta("(b) gaze2report, recorded gaze",
                                                        "(b) gaze2report, no gaze at all"),
    }
    if scanpath is not None:
        deltas["(b) predicted gaze - (b) no gaze"] = delta("(b) gaze2report, predicted gaze",
                                                           "(b) gaze2report, no gaze tokens")
        deltas["(b) predicted gaze - (b) no gaze at all"] = delta("(b) gaze2report, predicted gaze",
                                                                  "(b) gaze2report, no gaze at all")
    return {"synthetic": True, "dataset": source.name, "n_test": len(cases),
            "classifier": args.classifier or SIMULATED_NOTE.format(noise=args.noise),
            "no_gaze_model": args.model_nogaze or "the gaze model with its fixation tokens left out at inference",
            "scanpath": args.scanpath or "not given: predicted-gaze row skipped",
            "samples_per_refused_sentence": gen.samples, "systems": out, "paired_deltas": deltas}


def iu_part(args, scorer) -> dict:
    import random

    import torch

    from models.report.corpus import iu_reports
    from models.report.generate import ReportGenerator
    from models.labeling.labeler import default_labeler
    from models.report.prompt import plan_from_labels
    from models.report.sentences import read_references
    from models.report.templates import join_sections, render, render_sentences
    from models.report.train import lm_loss, sentence_texts

    reports = iu_reports()
    train = [r for r in reports if r.split == "train"]
    test_all = [r for r in reports if r.split == "test"]
    test = test_all[: args.n_iu]
    lab = default_labeler()
    train_lab = lab.label_many([r.text for r in train])
    test_lab = lab.label_many([r.text for r in test])
    gen = ReportGenerator.from_checkpoint(args.model)
    lm, tok = gen.lm, gen.tokenizer
    refs_all = read_references([(r.findings, r.impression) for r in test_all], lab)
    rng = random.Random(0)
    with lm.disable_adapter():
        prompted = [t for refs in refs_all for t in sentence_texts(refs, None, rng, 0.0)]
        plain = [t for refs in refs_all for t in sentence_texts(refs, None, rng, 1.0)]
        nll_p = lm_loss(lm, tok, prompted, 160, torch.device("cpu"))
        nll_u = lm_loss(lm, tok, plain, 160, torch.device("cpu"))

    refs = [r.text for r in test]
    counts: dict[str, int] = {}
    for r in train:
        counts[r.text] = counts.get(r.text, 0) + 1
    most_common = max(counts, key=counts.get)

    def jaccard(a: dict, b: dict) -> float:
        ka = {(f, v) for f, v in a.items()}
        kb = {(f, v) for f, v in b.items()}
        return len(ka & kb) / max(len(ka | kb), 1)

    nn = [train[int(np.argmax([jaccard(l, t) for t in train_lab]))].text for l in test_lab]
    plans = [plan_from_labels(l, with_regions=False) for l in test_lab]
    template = [" ".join(render(p)[:2]) for p in plans]
    lm_out, secs, toks, written, total = [], [], [], 0, 0
    for plan in plans:
        t0 = time.perf_counter()
        units, n_tok, n_lm = gen.realise(plan, mode="prompt")
        secs.append(time.perf_counter() - t0)
        toks.append(n_tok)
        written += n_lm
        total += len(units)
        lm_out.append(" ".join(join_sections(units)))
    results = {}
    for name, hyps in (("most-common train report", [most_common] * len(test)),
                       ("nearest-neighbour retrieval (oracle keywords)", nn),
                       ("template (oracle keywords)", template),
                       ("LM prompt mode (oracle keywords)", lm_out)):
        m = scorer.score(refs, hyps)
        results[name] = metrics_row(m)
    return {"split": "deterministic 7:1:2 hash split of the 2,955 R2Gen-rule reports (NOT R2Gen's assignment)",
            "n_train": len(train), "n_test_total": len(test_all), "n_test_generated": len(test),
            "perplexity_test_prompted": math.exp(nll_p), "perplexity_test_unprompted": math.exp(nll_u),
            "perplexity_unit": "per token of the test reports' sentences, after their control (prompted) or "
                               "after the section name only (unprompted)",
            "lm_params": sum(p.numel() for p in lm.get_base_model().parameters()),
            "lm_sentence_share": written / max(total, 1),
            "systems": results,
            "lm_timing_cpu": {"tokens_per_s": float(sum(toks) / sum(secs)), "report_latency_s_mean": float(np.mean(secs))},
            "example": {"controls": [u.control for u in render_sentences(plans[0])],
                        "reference": refs[0], "generated": lm_out[0]}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="phantom case store (SYNTHETIC)")
    p.add_argument("--model", required=True, help="folder from `gazelabel train report`")
    p.add_argument("--model-nogaze", default=None,
                   help="folder from `gazelabel train report --no-gaze` for the no-gaze-tokens row")
    p.add_argument("--classifier", default=None)
    p.add_argument("--noise", type=float, default=0.15,
                   help="sd of the simulated classifier's noise when --classifier is not given (0: oracle plan)")
    p.add_argument("--scanpath", default=None, help="scanpath checkpoint for the predicted-gaze row")
    p.add_argument("--n-test", type=int, default=80)
    p.add_argument("--samples", type=nonnegative_int, default=None,
                   help="seeded samples a refused LM sentence gets before its template (default: the generator's)")
    p.add_argument("--n-iu", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-iu", action="store_true")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 avoids thread contention on a shared machine (timings depend on it)")
    p.add_argument("--out", default="benchmarks/results/report_benchmark.json")
    args = p.parse_args(argv)
    import torch

    from models.metrics.report import ReportScorer

    torch.set_num_threads(args.threads)
    t0 = time.time()
    result = {"note": "phantom rows are SYNTHETIC data; IU rows are real report text (CC BY-NC-ND 4.0)",
              "cpu_threads": torch.get_num_threads()}
    with ReportScorer() as scorer:
        print("phantom (SYNTHETIC):", flush=True)
        result["phantom"] = phantom_part(args, scorer)
        if not args.skip_iu:
            print("IU X-ray:", flush=True)
            result["iu_xray"] = iu_part(args, scorer)
    result["seconds"] = time.time() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    print_tables(result)
    print(f"wrote {out} ({result['seconds']:.0f}s)")
    return 0


def print_tables(result: dict) -> None:
    ph = result["phantom"]
    print(f"\nPhantom test (SYNTHETIC, n={ph['n_test']}; classifier: {ph['classifier'][:60]}...)")
    print("CE-F1 conventions: micro14 pos-only = 14 findings, positive only; micro5 unc+pos = CheXbert's 5 "
          "findings, uncertain = positive; macro14 pos-only = mean over all 14 (0.0 where undefined)")
    print(f"{'system':42s} {'B-1':>6s} {'B-4':>6s} {'MET':>6s} {'R-L':>6s} {'CIDEr':>6s} {'BERTS':>6s} "
          f"{'CE-F1 micro14 pos-only [95% CI]':>31s} {'micro5 unc+pos [95% CI]':>26s} {'macro14 pos-only':>16s} "
          f"{'LM sent':>7s} {'tok/s':>7s} {'lat s':>6s}")
    for name, s in ph["systems"].items():
        m, c, c5, t = (s["metrics"], s["ce_f1_micro14_positive_only_ci"], s["ce_f1_micro5_uncertain_positive_ci"],
                       s["timing_cpu"])
        tps = f"{t['tokens_per_s']:.0f}" if t["tokens_per_s"] else "-"
        share = f"{t['lm_sentences'] / t['sentences']:.2f}" if t["lm_sentences"] else "-"
        print(f"{name:42s} {m['BLEU-1']:6.3f} {m['BLEU-4']:6.3f} {m.get('METEOR', float('nan')):6.3f} "
              f"{m['ROUGE-L']:6.3f} {m['CIDEr']:6.3f} {m.get('BERTScore (MiniLM-L6) F1', float('nan')):6.3f} "
              f"{c['estimate']:11.3f} [{c['low']:.3f}, {c['high']:.3f}]   {c5['estimate']:6.3f} [{c5['low']:.3f}, "
              f"{c5['high']:.3f}]   {m['ce_f1_macro14_positive_only']:16.3f} {share:>7s} {tps:>7s} "
              f"{t['report_latency_s_mean']:6.2f}")
    print("\nPaired differences (95% bootstrap CI)")
    for name, d in ph["paired_deltas"].items():
        ce, ce5, rl = d["ce_f1_micro14_positive_only"], d["ce_f1_micro5_uncertain_positive"], d["rouge_l"]
        print(f"{name:42s} CE-F1 micro14 pos-only {ce['estimate']:+.3f} [{ce['low']:+.3f}, {ce['high']:+.3f}]   "
              f"micro5 unc+pos {ce5['estimate']:+.3f} [{ce5['low']:+.3f}, {ce5['high']:+.3f}]   "
              f"ROUGE-L {rl['estimate']:+.3f} [{rl['low']:+.3f}, {rl['high']:+.3f}]")
    if "iu_xray" in result:
        iu = result["iu_xray"]
        print(f"\nIU X-ray test ({iu['n_test_generated']} of {iu['n_test_total']} generated; LM {iu['lm_params']:,} params): "
              f"perplexity prompted {iu['perplexity_test_prompted']:.2f}, unprompted {iu['perplexity_test_unprompted']:.2f}")
        print(f"LM wrote {iu['lm_sentence_share']:.2f} of the prompt-mode sentences (the rest: template fallback)")
        for name, m in iu["systems"].items():
            print(f"{name:46s} B-1 {m['BLEU-1']:.3f} B-4 {m['BLEU-4']:.3f} MET {m.get('METEOR', float('nan')):.3f} "
                  f"R-L {m['ROUGE-L']:.3f} CIDEr {m['CIDEr']:.3f} CE-F1 micro14 pos-only "
                  f"{m['ce_f1_micro14_positive_only']:.3f} micro5 unc+pos {m['ce_f1_micro5_uncertain_positive']:.3f}")
        print(f"LM timing (CPU): {iu['lm_timing_cpu']['tokens_per_s']:.0f} tokens/s, "
              f"{iu['lm_timing_cpu']['report_latency_s_mean']:.2f} s/report")


if __name__ == "__main__":
    sys.exit(main())
