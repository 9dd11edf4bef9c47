"""Train the VQA model on QA generated from a CaseSource's train split (validation: the val split, held-out
phrasings).

1. The frozen backbone (a trained classifier's network) runs once over every training and validation image;
   its outputs are cached (:class:`Prepared`). The gaze sources per image are its recorded readers
   (``case.fixations`` and ``case.readers``) and, when a scanpath model is given, ``gaze_samples`` paths
   sampled at T=0.3 as the pipeline shows them.
2. :func:`models.vqa.questions.generate` makes the questions and answers of each image; every epoch each
   question gets one of its kind's *train* phrasings and, unless its answer depends on one, a random gaze source.
3. Loss: cross-entropy of the answer within the kind's answer space, binary cross-entropy of the region set
   ("missed"), cross-entropy of the kind, and the grounding map's cross-entropy against the evidence boxes
   (uniform over the grid cells inside them).
4. Validation questions (val split, *val* phrasings) give the accuracy per kind, the similarity threshold
   below which a question is refused as out of vocabulary, the answer-softmax temperature (temperature scaling:
   lowest validation NLL) and the kind-confidence threshold (at most 2% of validation questions refused).

The checkpoint (``kind="vqa"``) holds the VQA weights, a copy of the backbone's, the MiniLM embeddings of the
training questions (for the similarity test) and of the lexicon's surfaces.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from models.checkpoint import save_checkpoint
from models.datasets.base import CaseSource, DatasetError
from models.distributed import init_distributed, cleanup
from models.imaging import read_image
from models.runtime import seed_everything
from models.train_result import TrainResult
from models.training import LoopConfig, fit
from models.vocab import REGION_NAMES
from models.vqa.config import KIND, VQAConfig, VQATrainConfig
from models.vqa.inputs import gaze_arrays, question_slots
from models.vqa.network import VQANet
from models.vqa.predict import SURFACE_INDEX, ImageFeatures, make_batch
from models.vqa.questions import (ANSWER_INDEX, ANSWERS, KINDS, SPACES, SURFACES, QAItem, generate, masked, phrasings,
                                  render)

SCANPATH_TEMPERATURE = 0.3
KIND_INDEX = {k: i for i, k in enumerate(KINDS)}


@dataclass
class Prepared:
    """Cached inputs of one split group (train or val): per image its backbone outputs and gaze sources, and
    the QA items.

    ``features[i]``: ImageFeatures of image i; ``gaze[i]``: list of ``(tokens, mask, coverage)`` per source;
    ``kinds_of_source[i]``: "recorded" or "predicted" per source; ``items``: (image index, QAItem);
    ``targets[j]``: the grounding target of item j ``(h * w,)`` (sums to 1) or None."""

    ids: list[str]
    features: list[ImageFeatures]
    gaze: list[list[tuple]]
    kinds_of_source: list[list[str]]
    fixations: list[list[list]]
    items: list[tuple[int, QAItem]]
    targets: list[np.ndarray | None] = field(default_factory=list)


def find_model(option: str | None, out: Path, artifact: str, required: bool) -> Path | None:
    """The checkpoint named by an option, or ``artifact`` beside ``out``; None (or ValueError when required)."""
    if option:
        p = Path(option)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such model file")
        return p
    p = Path(out).parent / artifact
    if p.is_file():
        return p
    if required:
        raise ValueError(f"vqa: needs a trained classifier as its image backbone: pass --classifier, or train one "
                         f"into {p} first (gazelabel train classifier --out {p})")
    return None


def grounding_target(boxes, letterbox, h: int, w: int) -> np.ndarray | None:
    """``(h * w,)`` uniform over the grid cells whose centre lies in a box (model space); the cell under a box's
    centre when no centre does; None without boxes."""
    if not boxes:
        return None
    b = letterbox.boxes_to_model(np.asarray(boxes, np.float64)) / letterbox.size  # fractions
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    mask = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in b:
        inside = ((ys >= y1) & (ys <= y2))[:, None] & ((xs >= x1) & (xs <= x2))[None, :]
        if not inside.any():
            cy, cx = (y1 + y2) / 2, (x1 + x2) / 2
            inside = np.zeros((h, w), bool)
            inside[min(int(cy * h), h - 1), min(int(cx * w), w - 1)] = True
        mask |= inside
    t = mask.astype(np.float32).ravel()
    return t / t.sum()


def prepare(cases, backbone_predictor, scanpath_predictor, model_cfg: VQAConfig, train_cfg: VQATrainConfig,
            log=print, batch_size: int = 16) -> Prepared:
    """Backbone outputs, gaze sources and QA items of ``cases`` (see :class:`Prepared`)."""
    ids, features, gaze, source_kinds, all_fix, items, targets = [], [], [], [], [], [], []
    t0 = time.time()
    for start in range(0, len(cases), batch_size):
        chunk = cases[start:start + batch_size]
        images = [read_image(c.image.path) for c in chunk]
        feats = backbone_predictor.image_features(images)
        predicted = [[] for _ in chunk]
        if scanpath_predictor is not None and train_cfg.gaze_samples > 0:
            predicted = scanpath_predictor.predict_batch(images, n_samples=train_cfg.gaze_samples, seed=train_cfg.seed + start,
                                                         temperature=SCANPATH_TEMPERATURE, include_mean=False)
        for case, image, f, paths in zip(chunk, images, feats, predicted):
            recorded = [list(case.fixations)] + [list(v) for v in case.readers.values()]
            recorded = [r for r in recorded if r]
            sources = [list(p) for p in paths if p] + recorded  # predicted first: the evaluation's source
            kinds = ["predicted"] * len([p for p in paths if p]) + ["recorded"] * len(recorded)
            i = len(ids)
            ids.append(case.id)
            features.append(f)
            gaze.append([gaze_arrays(s, f.letterbox, model_cfg.max_fixations) for s in sources])
            source_kinds.append(kinds)
            all_fix.append(sources)
            h, w = f.feats.shape[-2:]
            for item in generate(case, sources, seed=train_cfg.seed, negatives=train_cfg.negatives):
                items.append((i, item))
                targets.append(grounding_target(item.truth.boxes, f.letterbox, h, w))
    if log:
        log(f"[vqa] prepared {len(ids)} images, {len(items)} questions in {time.time() - t0:.0f}s")
    return Prepared(ids, features, gaze, source_kinds, all_fix, items, targets)


class QuestionTable:
    """MiniLM embeddings of question strings, computed once per distinct string."""

    def __init__(self, device="cpu"):
        self.index: dict[str, int] = {}
        self.rows: list[torch.Tensor] = []
        self.device = device

    def add(self, texts) -> None:
        from models.text_encoder import encode_texts

        new = sorted({t for t in texts if t not in self.index})
        if not new:
            return
        emb = encode_texts(new).cpu()
        for t, e in zip(new, emb):
            self.index[t] = len(self.rows)
            self.rows.append(e)

    def __getitem__(self, text: str) -> torch.Tensor:
        return self.rows[self.index[text]]

    def matrix(self, texts) -> torch.Tensor:
        return torch.stack([self[t] for t in texts])


def question_texts(prepared: Prepared, split: str) -> list[list[str]]:
    """All phrasings of each item in the phrasing group ``split``."""
    return [[render(item, ph) for ph in phrasings(item.kind, split)] for _, item in prepared.items]


def answer_mask(item: QAItem) -> np.ndarray:
    """``(A,)`` bool: the answers the item's kind allows (for "larger": the two findings it names)."""
    mask = np.zeros(len(ANSWERS), bool)
    space = SPACES[item.kind] if item.kind != "larger" else item.spec.findings
    mask[[ANSWER_INDEX[a] for a in space]] = True
    return mask


@lru_cache(maxsize=100_000)
def _slots(text: str) -> tuple[np.ndarray, np.ndarray]:
    _, ids, kinds = question_slots(text, SURFACE_INDEX)
    return ids, kinds


def _batch(prepared: Prepared, rows: list[int], texts: list[str], table: QuestionTable, surfaces: torch.Tensor,
           sources: list[int], device, max_fixations: int) -> dict:
    slot_ids, slot_kinds = zip(*(_slots(t) for t in texts))
    feats = [prepared.features[prepared.items[r][0]] for r in rows]
    gaze = []
    for r, s in zip(rows, sources):
        image = prepared.items[r][0]
        if s < 0 or not prepared.gaze[image]:
            gaze.append(gaze_arrays([], feats[0].letterbox, max_fixations))
        else:
            gaze.append(prepared.gaze[image][s])
    batch = make_batch(feats, gaze, table.matrix(texts), slot_ids, slot_kinds, surfaces, device)
    items = [prepared.items[r][1] for r in rows]
    batch["answer_target"] = torch.tensor([ANSWER_INDEX.get(it.truth.answer, -100) if it.kind != "missed" else -100
                                           for it in items], dtype=torch.long, device=device)
    batch["answer_mask"] = torch.as_tensor(np.stack([answer_mask(it) for it in items]), device=device)
    batch["is_missed"] = torch.tensor([it.kind == "missed" for it in items], dtype=torch.bool, device=device)
    batch["region_target"] = torch.tensor([[r in it.truth.regions for r in REGION_NAMES] for it in items],
                                          dtype=torch.float32, device=device)
    batch["kind_target"] = torch.tensor([KIND_INDEX[it.kind] for it in items], dtype=torch.long, device=device)
    h, w = feats[0].feats.shape[-2:]
    targets = [prepared.targets[r] for r in rows]
    batch["has_ground"] = torch.tensor([t is not None for t in targets], dtype=torch.bool, device=device)
    batch["ground_target"] = torch.as_tensor(np.stack([t if t is not None else np.zeros(h * w, np.float32) for t in targets]),
                                             device=device)
    return batch


def losses(out, batch, cfg: VQATrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted training loss of one batch and its named terms."""
    masked = out.answer.masked_fill(~batch["answer_mask"], -1e4)
    answer = F.cross_entropy(masked, batch["answer_target"], ignore_index=-100) if (batch["answer_target"] >= 0).any() \
        else out.answer.sum() * 0
    missed = batch["is_missed"]
    region = F.binary_cross_entropy_with_logits(out.regions[missed], batch["region_target"][missed]) if missed.any() \
        else out.regions.sum() * 0
    kind = F.cross_entropy(out.kind, batch["kind_target"])
    g = batch["has_ground"]
    if g.any():
        logp = out.grounding.flatten(1)[g].log_softmax(-1)
        ground = -(batch["ground_target"][g] * logp).sum(-1).mean()
    else:
        ground = out.grounding.sum() * 0
    total = answer + cfg.region_weight * region + cfg.kind_weight * kind + cfg.grounding_weight * ground
    return total, {k: float(v.detach()) for k, v in (("answer", answer), ("region", region), ("kind", kind), ("ground", ground))}


def evaluate_items(model, prepared: Prepared, table: QuestionTable, surfaces, split: str, device, seed: int = 0,
                   batch_size: int = 256) -> dict:
    """Accuracy per kind on ``prepared`` with one ``split`` phrasing per item (seeded) and each image's first gaze
    source; answers taken within the true kind's space (the kind head is scored separately)."""
    rng = np.random.default_rng(seed)
    texts_all = question_texts(prepared, split)
    texts = [t[int(rng.integers(len(t)))] for t in texts_all]
    table.add(texts)
    correct: dict[str, list[float]] = {}
    kind_ok, kind_probs, logits, targets = [], [], [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            rows = list(range(start, min(start + batch_size, len(texts))))
            sources = [prepared.items[r][1].gaze if prepared.items[r][1].gaze is not None else 0 for r in rows]
            batch = _batch(prepared, rows, [texts[r] for r in rows], table, surfaces, sources, device,
                           model.config.max_fixations)
            out = model(batch)
            pred = out.answer.masked_fill(~batch["answer_mask"], -1e4).argmax(-1)
            sets = torch.sigmoid(out.regions) > 0.5
            kind_ok += (out.kind.argmax(-1) == batch["kind_target"]).float().tolist()
            kind_probs.append(out.kind.softmax(-1).cpu())
            keep = batch["answer_target"] >= 0
            logits.append(out.answer.masked_fill(~batch["answer_mask"], -1e4)[keep].cpu())
            targets.append(batch["answer_target"][keep].cpu())
            for j, r in enumerate(rows):
                item = prepared.items[r][1]
                if item.kind == "missed":
                    ok = bool((sets[j] == (batch["region_target"][j] > 0.5)).all())
                else:
                    ok = int(pred[j]) == int(batch["answer_target"][j])
                correct.setdefault(item.kind, []).append(float(ok))
    every = [v for vs in correct.values() for v in vs]
    return {"accuracy": float(np.mean(every)) if every else float("nan"),
            "kind_accuracy": float(np.mean(kind_ok)) if kind_ok else float("nan"),
            "per_kind": {k: float(np.mean(v)) for k, v in correct.items()}, "n": len(every), "texts": texts,
            "kind_probs": torch.cat(kind_probs) if kind_probs else torch.zeros(0, len(KINDS)),
            "logits": torch.cat(logits) if logits else torch.zeros(0, len(ANSWERS)),
            "targets": torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long)}


TEMPERATURES = np.round(np.arange(0.5, 5.01, 0.05), 2)
KIND_THRESHOLDS = (0.5, 0.45, 0.4, 0.35, 0.3)
MAX_VAL_KIND_REFUSALS = 0.02


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, dict]:
    """The answer-softmax temperature with the lowest NLL on validation (held-out phrasings): temperature
    scaling, so the confidences mean what they say. 1.0 without validation questions."""
    if len(targets) == 0:
        return 1.0, {}
    nll = [float(F.cross_entropy(logits / t, targets)) for t in TEMPERATURES]
    best = float(TEMPERATURES[int(np.argmin(nll))])
    return best, {"val_nll_t1": float(F.cross_entropy(logits, targets)), "val_nll_calibrated": float(min(nll))}


def fit_kind_confidence(kind_probs: np.ndarray) -> float:
    """The highest of :data:`KIND_THRESHOLDS` under which at most 2% of the validation questions (held-out
    phrasings) would be refused as of unclear kind; ``kind_probs`` ``(N, T)`` the predictor's kind distribution."""
    if len(kind_probs) == 0:
        return KIND_THRESHOLDS[0]
    top = kind_probs.max(-1)
    for t in KIND_THRESHOLDS:
        if (top < t).mean() <= MAX_VAL_KIND_REFUSALS:
            return t
    return KIND_THRESHOLDS[-1]


def similarity_threshold(table: QuestionTable, train_texts: list[str], val_texts: list[str]) -> tuple[float, dict]:
    """The out-of-vocabulary threshold: 0.05 under the lowest similarity of a held-out (val) phrasing's template
    to its nearest training template (:func:`models.vqa.questions.masked`), kept within [0.4, 0.6] (off-topic
    English questions score about 0.4, gibberish under 0.2 on the phantom's phrasings)."""
    from models.vqa.predict import DEFAULT_SIMILARITY_THRESHOLD

    if not val_texts or not train_texts:
        return DEFAULT_SIMILARITY_THRESHOLD, {}
    bank = table.matrix(train_texts)
    sims = (table.matrix(sorted(set(val_texts))) @ bank.T).max(-1).values.numpy()
    q2 = float(np.quantile(sims, 0.02))
    return float(np.clip(sims.min() - 0.05, 0.4, 0.6)), {"val_similarity_min": float(sims.min()), "val_similarity_q02": q2,
                                                  "val_similarity_median": float(np.median(sims))}


def load_backbone(path: Path, device):
    from models.classifier.predict import ClassifierPredictor

    classifier = ClassifierPredictor.from_checkpoint(path, device=str(device))
    return classifier


def train_vqa(source: CaseSource, out: str | Path, *, model_config: VQAConfig | None = None,
              train_config: VQATrainConfig | None = None, log: Callable[[str], None] | None = print,
              prepared: tuple | None = None, progress: bool = False) -> dict:
    """Train and save ``out``; returns the summary (the checkpoint's metrics, ``history`` and the trained
    ``network`` in eval mode).

    ``prepared``: ``(train Prepared, val Prepared, backbone ClassifierPredictor, QuestionTable, info)`` from
    :func:`prepare_all`, so several models (the baselines) can share one preparation."""
    mcfg, tcfg = model_config or VQAConfig(), train_config or VQATrainConfig()
    out = Path(out)
    ctx = init_distributed(tcfg.device)
    say = log or (lambda message: None)
    try:
        seed_everything(tcfg.seed)
        if prepared is None:
            prepared = prepare_all(source, out, mcfg, tcfg, ctx.device, say)
        train_data, val_data, classifier, table, info = prepared
        surfaces = surface_table(table)
        train_texts = question_texts(train_data, "train")
        flat_train = sorted({t for ts in train_texts for t in ts})
        table.add(flat_train)
        # the bank: each training question with its findings and regions masked (its template), and its kind
        kind_of_template = {}
        for (_, item), texts in zip(train_data.items, train_texts):
            for t in texts:
                kind_of_template.setdefault(masked(t), item.kind)
        templates = sorted(kind_of_template)
        table.add(templates)
        backbone = classifier.model
        model = VQANet(mcfg, backbone.encoder.out_channels, backbone.config.n_findings).to(ctx.device)
        rng = np.random.default_rng(tcfg.seed)
        n = len(train_data.items)
        if n == 0:
            raise DatasetError(f"{source.name}: no questions could be generated from the train split")
        steps = max(1, int(np.ceil(n / tcfg.batch_size)))

        def batches(epoch):
            order = rng.permutation(n)
            for start in range(0, n, tcfg.batch_size):
                rows = [int(r) for r in order[start:start + tcfg.batch_size]]
                texts = [train_texts[r][int(rng.integers(len(train_texts[r])))] for r in rows]
                sources = []
                for r in rows:
                    image, item = train_data.items[r]
                    k = len(train_data.gaze[image])
                    sources.append(item.gaze if item.gaze is not None else (int(rng.integers(k)) if k else -1))
                yield _batch(train_data, rows, texts, table, surfaces, sources, ctx.device, mcfg.max_fixations)

        def step(batch):
            output = model(batch)
            loss, parts = losses(output, batch, tcfg)
            return loss, parts, int(batch["kind_target"].shape[0])

        say(f"[vqa] training {mcfg.inputs!r} on {n} questions about {len(train_data.ids)} images "
            f"({source.name}{', SYNTHETIC' if source.synthetic else ''}), {len(val_data.items)} validation questions")
        loop = LoopConfig(epochs=tcfg.epochs, lr=tcfg.lr, weight_decay=tcfg.weight_decay, warmup=tcfg.warmup,
                          grad_clip=tcfg.grad_clip, amp=tcfg.amp)
        start = time.time()
        history = fit(list(model.parameters()), batches, step, loop, ctx, modules=[model], steps_per_epoch=steps,
                      log=say, name=f"vqa:{mcfg.inputs}", progress=progress)
        model.eval()
        val = evaluate_items(model, val_data, table, surfaces, "val", ctx.device, tcfg.seed) if val_data.items else \
            {"accuracy": float("nan"), "kind_accuracy": float("nan"), "per_kind": {}, "n": 0, "texts": [],
             "kind_probs": torch.zeros(0, len(KINDS)), "logits": torch.zeros(0, len(ANSWERS)),
             "targets": torch.zeros(0, dtype=torch.long)}
        val_templates = sorted({masked(t) for t in val["texts"]})
        table.add(val_templates)
        threshold, sim_stats = similarity_threshold(table, templates, val_templates)
        temperature, nll = fit_temperature(val["logits"], val["targets"])
        kind_confidence = KIND_THRESHOLDS[0]
        if val["texts"]:
            from models.vqa.predict import kind_distribution, knn_kinds

            sims = table.matrix([masked(t) for t in val["texts"]]) @ table.matrix(templates).T
            knn = knn_kinds(sims, [kind_of_template[t] for t in templates])
            kind_confidence = fit_kind_confidence(kind_distribution(val["kind_probs"].numpy(), knn))
        metrics = {**{k: v for k, v in history[-1].items() if k != "epoch"}, "val_accuracy": val["accuracy"],
                   "val_kind_accuracy": val["kind_accuracy"], "val_questions": val["n"],
                   **{f"val_accuracy_{k}": v for k, v in val["per_kind"].items()}, "train_questions": n,
                   "train_images": len(train_data.ids), "seconds": time.time() - start, **sim_stats, **nll,
                   "answer_temperature": temperature, "kind_confidence": kind_confidence}
        bank = table.matrix(templates).to(torch.float16)
        save_checkpoint(
            out, KIND,
            config={"model": mcfg.to_dict(), "train": asdict(tcfg), "backbone": classifier.model.config.to_dict()},
            state={"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                   "backbone": {k: v.detach().cpu() for k, v in backbone.state_dict().items()},
                   "questions": bank, "surfaces": surfaces.cpu()},
            info={**info, "answers": list(ANSWERS), "kinds": list(KINDS), "surfaces": list(SURFACES),
                  "similarity_threshold": threshold, "bank_texts": templates, "inputs": mcfg.inputs,
                  "answer_temperature": temperature, "kind_confidence": kind_confidence,
                  "bank_kinds": [kind_of_template[t] for t in templates], "train_question_strings": len(flat_train),
                  "history": history},
            metrics=metrics)
        say(f"[vqa] saved {out} (val accuracy {val['accuracy']:.3f}, kind {val['kind_accuracy']:.3f}, "
            f"similarity threshold {threshold:.2f}, answer temperature {temperature:.2f}, kind confidence {kind_confidence:.2f})")
        return {**metrics, "history": history, "synthetic": info["synthetic"], "dataset": info["dataset"], "network": model}
    finally:
        cleanup(ctx)


def surface_table(table: QuestionTable) -> torch.Tensor:
    """``(S + 1, 384)``: row 0 zeros (no slot), then the MiniLM embedding of each lexicon surface."""
    table.add(SURFACES)
    return torch.cat([torch.zeros(1, table.rows[0].shape[-1]), table.matrix(SURFACES)])


def prepare_all(source: CaseSource, out: Path, mcfg: VQAConfig, tcfg: VQATrainConfig, device, log=print) -> tuple:
    """Everything the training reads, once: ``(train Prepared, val Prepared, classifier, QuestionTable, info)``."""
    from models.scanpath.predict import ScanpathPredictor
    from models.vqa.predict import VQAPredictor

    classifier_path = find_model(tcfg.classifier, out, "classifier.pt", required=True)
    scanpath_path = find_model(tcfg.scanpath, out, "scanpath.pt", required=False)
    classifier = load_backbone(classifier_path, device)
    scanpath = ScanpathPredictor.from_checkpoint(scanpath_path, device=str(device)) if scanpath_path else None
    if scanpath is None and log:
        log("[vqa] no scanpath model: the gaze tokens train on recorded readers only")
    # The backbone's outputs through the predictor's own code path (what inference will compute).
    extractor = VQAPredictor(VQANet(mcfg, classifier.model.encoder.out_channels), classifier.model,
                             torch.zeros(0, mcfg.text_dim), torch.zeros(1, mcfg.text_dim), device=device)
    usable = [c for c in source.split("train") if c.image.path]
    if tcfg.max_images:
        usable = usable[: tcfg.max_images]
    if not usable:
        raise DatasetError(f"{source.name}: the 'train' split has no cases with an image")
    val_cases = [c for c in source.split("val") if c.image.path]
    train_data = prepare(usable, extractor, scanpath, mcfg, tcfg, log)
    val_data = prepare(val_cases, extractor, scanpath, mcfg, tcfg, log)
    table = QuestionTable()
    info = {"synthetic": bool(source.synthetic or classifier.info.get("synthetic")), "dataset": source.name,
            "classifier": {"path": str(classifier_path), "metrics": classifier.info.get("metrics", {})},
            "scanpath": None if scanpath_path is None else str(scanpath_path),
            "gaze_sources": "predicted (T=0.3) + recorded" if scanpath_path else "recorded"}
    return train_data, val_data, classifier, table, info


def train(source: CaseSource, out: Path, config: dict, log: Callable[[str], None] | None = print) -> TrainResult:
    """The VQA family's trainer (:mod:`models.families`): ``config`` holds its ``model`` and ``train`` sections."""
    summary = train_vqa(source, out, model_config=config["model"], train_config=config["train"], log=log)
    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return TrainResult(Path(out), metrics, "val_accuracy", {"synthetic": summary["synthetic"], "dataset": summary["dataset"]})


__all__ = ["Prepared", "QuestionTable", "evaluate_items", "prepare", "prepare_all", "train", "train_vqa"]
