"""Evaluate VQA models on one split with held-out phrasings: accuracy per question type with bootstrap CIs over
images, grounding IoU and pointing game, calibration (ECE), refusals, and the baselines.

Systems compared on the same questions:

- ``model``: ``<models>/vqa.pt``;
- ``no_gaze``: ``<models>/vqa_no_gaze.pt`` (gaze tokens and coverage ablated, trained the same), when present;
- ``question_only``: ``<models>/vqa_question_only.pt`` (the language prior), when present;
- ``rule``: the pipeline's predicted Case (``<models>/classifier.pt`` + ``scanpath.pt``) read by
  :func:`models.vqa.questions.answer_from_case` (``strict=False``), the question parsed by its nearest training
  question's kind (frozen MiniLM) and the lexicon's slots.

Protocol. Questions come from :func:`models.vqa.questions.generate` on the split's Cases, each rendered in one
seeded phrasing of the chosen phrasing group (default ``test``: never seen in training or validation). The gaze
every system gets, and that "which regions were not inspected" questions are about, is the pipeline's: the
predicted scanpath (T=0.3, seed 0) when a scanpath model is there (``gaze="auto"``/``"predicted"``), or the
record's reader (``"recorded"``). A refusal counts as wrong. CIs: percentile bootstrap over images (all of an
image's questions together); deltas are paired.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from models.metrics.classification import bootstrap_ci
from models.schema import ANSWER_TYPES
from models.vqa.questions import (CANNOT_ANSWER, KINDS, PHRASING_SPLITS, SLOTS, TYPE_OF_KIND, QAItem, Spec, answer_from_case,
                                  generate, phrasings, render)

SYSTEMS = ("model", "no_gaze", "question_only", "rule")
BASELINE_FILES = {"model": "vqa.pt", "no_gaze": "vqa_no_gaze.pt", "question_only": "vqa_question_only.pt"}
GROUNDED_KINDS = ("presence", "region", "side", "size", "larger")  # evidence = the finding's boxes
ECE_BINS = 10
# Questions no system should answer: (category, question).
UNANSWERABLE = (
    ("gibberish", "asdkj qwe zzz"), ("gibberish", "xqz vbn plm rtt?"),
    ("off_topic", "What is the patient's name?"), ("off_topic", "What will the weather be tomorrow?"),
    ("off_topic", "Write a poem about lungs."),
    ("unknown_finding", "Is there a pneumoperitoneum?"), ("unknown_finding", "Where is the hiatus hernia?"),
    ("unknown_finding", "How large is the aortic aneurysm?"),
    ("non_spatial", "Where is the No Finding?"), ("non_spatial", "Which side is the cardiomegaly on?"),
)


def _nan_none(x):
    return None if x is None or (isinstance(x, float) and not np.isfinite(x)) else x


def interval(values: dict) -> dict:
    return {k: _nan_none(v) for k, v in values.items()}


def image_accuracy_ci(images: np.ndarray, correct: np.ndarray, n_boot: int, seed: int) -> dict:
    """Accuracy of items with a percentile bootstrap over images (cluster bootstrap)."""
    if len(correct) == 0:
        return {"estimate": None, "low": None, "high": None, "n": 0, "images": 0}
    ids = np.unique(images)
    c = np.array([correct[images == i].sum() for i in ids], np.float64)
    n = np.array([(images == i).sum() for i in ids], np.float64)
    ci = bootstrap_ci(lambda cc, nn: cc.sum() / nn.sum(), c, n, n=n_boot, seed=seed).to_dict()
    return {**interval(ci), "n": int(len(correct)), "images": int(len(ids))}


def paired_delta_ci(images: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict:
    """Accuracy of ``a`` minus ``b`` on the same items, bootstrap over images."""
    if len(a) == 0:
        return {"estimate": None, "low": None, "high": None}
    ids = np.unique(images)
    ca = np.array([a[images == i].sum() for i in ids], np.float64)
    cb = np.array([b[images == i].sum() for i in ids], np.float64)
    n = np.array([(images == i).sum() for i in ids], np.float64)
    ci = bootstrap_ci(lambda x, y, nn: (x.sum() - y.sum()) / nn.sum(), ca, cb, n, n=n_boot, seed=seed).to_dict()
    return interval(ci)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with equal-width confidence bins: sum over bins of |accuracy - mean confidence| x share of items."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, np.float64)
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(ece)


def ece_ci(images: np.ndarray, confidence: np.ndarray, correct: np.ndarray, n_boot: int, seed: int) -> dict:
    if len(confidence) == 0:
        return {"estimate": None, "low": None, "high": None, "n": 0}
    ids = np.unique(images)
    groups = [np.flatnonzero(images == i) for i in ids]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = np.concatenate([groups[k] for k in rng.integers(0, len(groups), len(groups))])
        values.append(expected_calibration_error(confidence[pick], correct[pick]))
    low, high = np.percentile(values, [2.5, 97.5]) if len(values) >= 10 else (float("nan"), float("nan"))
    return interval({"estimate": expected_calibration_error(confidence, correct), "low": float(low), "high": float(high),
                     "n": int(len(confidence))})


def box_iou(a, b) -> float:
    if a is None or b is None:
        return 0.0
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def union_box(boxes) -> list[float]:
    b = np.asarray(boxes, np.float64)
    return [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]


def point_in(point, boxes) -> float:
    if point is None:
        return 0.0
    x, y = point
    return float(any(x1 <= x <= x2 and y1 <= y <= y2 for x1, y1, x2, y2 in boxes))


def rule_answer(predictor, parsed, case, fixations) -> str:
    """The rule baseline's answer: kind of the nearest training question, slots from the lexicon, the answer from
    the predicted Case; "cannot answer" when the slots do not fit the kind."""
    if not predictor.bank_kinds or parsed.nearest >= len(predictor.bank_kinds):
        return CANNOT_ANSWER
    kind = predictor.bank_kinds[parsed.nearest]
    need = SLOTS[kind]
    findings, regions = parsed.findings, parsed.regions
    if len(findings) < need.count("finding") or len(regions) < need.count("region"):
        return CANNOT_ANSWER
    spec = Spec(kind, tuple(findings[: need.count("finding")]), regions[0] if need.count("region") else None)
    truth = answer_from_case(spec, case, fixations, strict=False)
    return CANNOT_ANSWER if truth is None else truth.answer


def _summary(rows: list[dict], system: str, n_boot: int, seed: int) -> dict:
    images = np.array([r["image"] for r in rows])
    correct = np.array([float(r[system]["correct"]) for r in rows])
    by_type = {}
    for t in ANSWER_TYPES:
        m = np.array([TYPE_OF_KIND[r["kind"]] == t for r in rows], bool)
        by_type[t] = image_accuracy_ci(images[m], correct[m], n_boot, seed)
    by_kind = {}
    for k in KINDS:
        m = np.array([r["kind"] == k for r in rows], bool)
        by_kind[k] = image_accuracy_ci(images[m], correct[m], n_boot, seed)
    macro = [v["estimate"] for v in by_type.values() if v["estimate"] is not None]
    refused = np.array([not r[system]["answerable"] for r in rows], np.float64)
    return {"overall": image_accuracy_ci(images, correct, n_boot, seed),
            "macro_over_types": float(np.mean(macro)) if macro else None,
            "per_type": by_type, "per_kind": by_kind, "refused": float(refused.mean()) if len(rows) else None}


def evaluate_vqa(models_dir: str | Path, source, split: str = "test", *, phrasing: str = "test", gaze: str = "auto",
                 n_boot: int = 1000, seed: int = 0, device: str = "cpu", systems: Sequence[str] = SYSTEMS,
                 log: Callable[[str], None] | None = print, max_images: int | None = None) -> dict:
    """Evaluate the VQA model and whichever baselines ``models_dir`` holds; returns the JSON-ready report."""
    from models.classifier.predict import ClassifierPredictor
    from models.families import FAMILIES
    from models.imaging import read_image
    from models.pipeline import Pipeline
    from models.scanpath.predict import ScanpathPredictor
    from models.vqa.predict import VQAPredictor

    if phrasing not in PHRASING_SPLITS:
        raise ValueError(f"phrasing must be one of {', '.join(PHRASING_SPLITS)}, got {phrasing!r}")
    if gaze not in ("auto", "predicted", "recorded"):
        raise ValueError(f"gaze must be auto, predicted or recorded, got {gaze!r}")
    models_dir = Path(models_dir)
    say = log or (lambda message: None)
    if not (models_dir / BASELINE_FILES["model"]).is_file():
        raise FileNotFoundError(f"{models_dir / BASELINE_FILES['model']}: no vqa model; train one with `gazelabel train vqa`")
    predictors = {name: VQAPredictor.from_checkpoint(models_dir / f, device=device)
                  for name, f in BASELINE_FILES.items() if name in systems and (models_dir / f).is_file()}
    classifier_path, scanpath_path = FAMILIES["classifier"].path(models_dir), FAMILIES["scanpath"].path(models_dir)
    classifier = ClassifierPredictor.from_checkpoint(classifier_path, device=device) if classifier_path.is_file() else None
    scanpath = ScanpathPredictor.from_checkpoint(scanpath_path, device=device) if scanpath_path.is_file() else None
    if gaze == "predicted" and scanpath is None:
        raise FileNotFoundError(f"{scanpath_path}: gaze=predicted needs a scanpath model")
    gaze_mode = "predicted" if gaze in ("auto", "predicted") and scanpath is not None else "recorded"
    pipeline = Pipeline(classifier=classifier, scanpath=scanpath)
    cases = [c for c in source.split(split) if c.image.path]
    if max_images:
        cases = cases[:max_images]
    if not cases:
        raise ValueError(f"{source.name}: the {split!r} split has no cases with an image")
    rng = np.random.default_rng(seed)
    main = predictors["model"]
    rows: list[dict] = []
    oov_rows: list[dict] = []
    train_phrased: list[str] = []
    for ci, case in enumerate(cases):
        image = read_image(case.image.path)
        if gaze_mode == "predicted":
            predicted = pipeline.run(image, case_id=case.id, families=("classifier", "scanpath"), gaze="predicted").case
        else:
            predicted = pipeline.run(image, case_id=case.id, families=("classifier", "scanpath"), gaze="recorded",
                                     recorded_gaze=case.fixations).case if case.fixations else None
        fixations = list(predicted.fixations) if predicted is not None else list(case.fixations)
        items: list[QAItem] = generate(case, [fixations] if fixations else [], seed=seed)
        if not items:
            continue
        texts = []
        for item in items:
            options = phrasings(item.kind, phrasing)
            texts.append(render(item, options[int(rng.integers(len(options)))]))
            train_options = phrasings(item.kind, "train")
            train_phrased.append(render(item, train_options[int(rng.integers(len(train_options)))]))
        start = len(rows)
        for item, text in zip(items, texts):
            rows.append({"image": ci, "case": case.id, "kind": item.kind, "question": text, "truth": item.truth.answer,
                         "truth_boxes": [list(b) for b in item.truth.boxes]})
        for name, predictor in predictors.items():
            feats = predictor.image_features([image])[0]
            details: list = []
            parsed = predictor.parse(texts)
            answers = predictor.answer_batch([feats] * len(items), parsed, [fixations] * len(items),
                                             gaze_sources=[gaze_mode] * len(items), details=details)
            for row, a, d, p in zip(rows[start:], answers, details, parsed):
                row[name] = {"answer": a.answer, "answerable": a.answerable, "confidence": a.confidence,
                             "correct": bool(a.answerable and a.answer == row["truth"]), "box": a.box, "peak": d["peak"],
                             "reason": a.reason}
            if name == "model":
                tp = main.parse(train_phrased[start:])
                again = predictor.answer_batch([feats] * len(items), tp, [fixations] * len(items))
                for row, a in zip(rows[start:], again):
                    row["model_train_phrasing"] = bool(a.answerable and a.answer == row["truth"])
            oov = predictor.answer_batch([feats] * len(UNANSWERABLE), [q for _, q in UNANSWERABLE],
                                         [fixations] * len(UNANSWERABLE))
            for (category, q), a in zip(UNANSWERABLE, oov):
                oov_rows.append({"system": name, "category": category, "question": q, "refused": not a.answerable,
                                 "answer": a.answer})
        if predicted is not None and "rule" in systems and classifier is not None:
            parsed = main.parse(texts)
            for row, p in zip(rows[start:], parsed):
                answer = rule_answer(main, p, predicted, fixations)
                item_box = None
                if row["kind"] in GROUNDED_KINDS and p.findings:
                    boxes = [b.xyxy for b in predicted.boxes if b.finding == p.findings[0]]
                    item_box = list(boxes[0]) if boxes else None
                row["rule"] = {"answer": answer, "answerable": answer != CANNOT_ANSWER, "confidence": None,
                               "correct": answer == row["truth"], "box": item_box,
                               "peak": None if item_box is None else ((item_box[0] + item_box[2]) / 2, (item_box[1] + item_box[3]) / 2)}
        say(f"[vqa eval] {ci + 1}/{len(cases)} images, {len(rows)} questions")

    if any("rule" in r for r in rows):
        for r in rows:  # images without a predicted Case: the rule has nothing to read
            r.setdefault("rule", {"answer": CANNOT_ANSWER, "answerable": False, "confidence": None, "correct": False,
                                  "box": None, "peak": None})
    present = [s for s in systems if rows and s in rows[0]]
    report = {"synthetic": bool(source.synthetic or any(p.info.get("synthetic") for p in predictors.values())),
              "dataset": source.name, "split": split, "phrasing": phrasing, "gaze": gaze_mode,
              "n_images": len({r["image"] for r in rows}), "n_questions": len(rows),
              "bootstrap": {"n": n_boot, "seed": seed, "level": 0.95, "unit": "image"},
              "systems": {s: (str(models_dir / BASELINE_FILES[s]) if s in BASELINE_FILES else
                              "rule over the pipeline's predicted Case (classifier + scanpath)") for s in present},
              "counts": {k: sum(r["kind"] == k for r in rows) for k in KINDS},
              "accuracy": {s: _summary(rows, s, n_boot, seed) for s in present}}
    images = np.array([r["image"] for r in rows])
    deltas = {}
    for base in [s for s in present if s != "model"]:
        deltas[base] = {}
        for t in ANSWER_TYPES + ("overall",):
            m = np.array([t == "overall" or TYPE_OF_KIND[r["kind"]] == t for r in rows], bool)
            a = np.array([float(r["model"]["correct"]) for r in rows])[m]
            b = np.array([float(r[base]["correct"]) for r in rows])[m]
            deltas[base][t] = paired_delta_ci(images[m], a, b, n_boot, seed)
    report["model_minus"] = deltas
    # Language generalisation: the same questions in training phrasings.
    if rows and "model_train_phrasing" in rows[0]:
        tp = np.array([float(r["model_train_phrasing"]) for r in rows])
        report["model_train_phrasings"] = {
            "overall": image_accuracy_ci(images, tp, n_boot, seed),
            "per_type": {t: image_accuracy_ci(images[m], tp[m], n_boot, seed) for t in ANSWER_TYPES
                         for m in [np.array([TYPE_OF_KIND[r["kind"]] == t for r in rows], bool)]}}
    grounding = {}
    g_rows = [r for r in rows if r["kind"] in GROUNDED_KINDS and r["truth_boxes"]]
    for s in present:
        if not g_rows:
            break
        gi = np.array([r["image"] for r in g_rows])
        iou = np.array([box_iou(r[s]["box"], union_box(r["truth_boxes"])) for r in g_rows])
        hit = np.array([point_in(r[s]["peak"], r["truth_boxes"]) for r in g_rows])
        grounding[s] = {"n": len(g_rows), "iou": image_accuracy_ci(gi, iou, n_boot, seed),
                        "iou_at_0.5": image_accuracy_ci(gi, (iou >= 0.5).astype(float), n_boot, seed),
                        "pointing_game": image_accuracy_ci(gi, hit, n_boot, seed)}
    report["grounding"] = {"definition": "questions whose answer rests on a finding's boxes (presence yes, region, side, "
                                         "size, larger); iou: the answer's evidence box vs the bounding box of the "
                                         "truth boxes (0 when the system gives no box); pointing game: the grounding "
                                         "map's peak cell (rule: its box centre) inside a truth box", **grounding}
    calibration = {}
    for s in [s for s in present if s != "rule"]:
        answered = [r for r in rows if r[s]["answerable"] and r[s]["confidence"] is not None]
        if answered:
            ai = np.array([r["image"] for r in answered])
            conf = np.array([r[s]["confidence"] for r in answered], np.float64)
            ok = np.array([float(r[s]["correct"]) for r in answered])
            calibration[s] = {"ece": ece_ci(ai, conf, ok, n_boot, seed), "mean_confidence": float(conf.mean()),
                              "accuracy_answered": float(ok.mean()), "bins": ECE_BINS}
    report["calibration"] = calibration
    report["unanswerable"] = {s: {"refused": float(np.mean([o["refused"] for o in oov_rows if o["system"] == s])),
                                  "per_category": {c: float(np.mean([o["refused"] for o in oov_rows if o["system"] == s and o["category"] == c]))
                                                   for c in sorted({c for c, _ in UNANSWERABLE})},
                                  "questions": len([o for o in oov_rows if o["system"] == s])}
                              for s in predictors}
    report["examples"] = rows[:12]
    return report


def format_table(report: dict) -> str:
    """The per-type accuracy table as text (estimate [low, high])."""
    systems = list(report["accuracy"])

    def cell(ci):
        if ci["estimate"] is None:
            return "n/a"
        span = f" [{ci['low']:.2f}, {ci['high']:.2f}]" if ci["low"] is not None else ""
        return f"{ci['estimate']:.2f}{span}"

    lines = [f"{'type':<15}{'n':>5}  " + "".join(f"{s:<22}" for s in systems)]
    for t in ANSWER_TYPES + ("overall",):
        first = report["accuracy"][systems[0]]
        n = first["overall"]["n"] if t == "overall" else first["per_type"][t]["n"]
        cells = [cell(report["accuracy"][s]["overall"] if t == "overall" else report["accuracy"][s]["per_type"][t])
                 for s in systems]
        lines.append(f"{t:<15}{n:>5}  " + "".join(f"{c:<22}" for c in cells))
    return "\n".join(lines)


__all__ = ["BASELINE_FILES", "SYSTEMS", "UNANSWERABLE", "box_iou", "ece_ci", "evaluate_vqa", "expected_calibration_error",
           "format_table", "image_accuracy_ci", "paired_delta_ci", "rule_answer"]
