"""Inference API of the VQA family: an image, a question and the fixations -> a :class:`models.schema.Answer`.

    predictor = VQAPredictor.from_checkpoint("models/vqa.pt")
    answer = predictor.ask(read_image("cxr.png"), "Which side is the pneumothorax on?", fixations)
    answer.answer, answer.confidence, answer.box, answer.fixations

The predictor refuses ("cannot answer", with the reason) instead of guessing when the question is unlike every
question it was trained on (MiniLM similarity under the threshold chosen on held-out phrasings), its kind is
unclear, it names no finding (or region) this model knows, names more than its kind takes, asks where or how large
"No Finding" is, asks the side or size of a finding the model does not lateralise or grade, or asks about
inspection with no fixations to answer from. Everything it returns is in original image pixels.

Loading never imports training code (:mod:`models.vqa.train`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from models.imaging import Letterbox, LoadedImage
from models.scanpath.coverage import DEFAULT_RADIUS_FRACTION
from models.schema import Answer, Fixation
from models.vocab import REGION_NAMES, region_box_pixels
from models.vqa.questions import (ANSWER_INDEX, ANSWERS, CANNOT_ANSWER, KINDS, NO_SIDE, NO_SIZE, SLOTS, SPACES,
                                  SPATIAL_FINDINGS, SURFACES, TYPE_OF_KIND, Mention, missed_text)

KIND_CONFIDENCE = 0.5  # default: below this kind probability the question's kind is "unclear"
# The kind of a question is the mean of the network's kind head and a nearest-neighbour vote: a softmax over each
# kind's best similarity to the training questions at this temperature (training-free, so it also holds for a
# barely trained model and for words the head never saw).
KIND_KNN_TEMPERATURE = 0.05


def knn_kinds(sims, bank_kinds):
    """``(N, B)`` similarities to the bank's templates -> ``(N, T)`` numpy kind distribution (softmax over each
    kind's best similarity at :data:`KIND_KNN_TEMPERATURE`)."""
    import torch

    sims = torch.as_tensor(sims, dtype=torch.float32)
    kinds = torch.as_tensor([KINDS.index(k) for k in bank_kinds], device=sims.device)
    per_kind = torch.full((sims.shape[0], len(KINDS)), -1.0, device=sims.device)
    per_kind = per_kind.scatter_reduce(1, kinds[None].expand(sims.shape[0], -1), sims, reduce="amax")
    return (per_kind / KIND_KNN_TEMPERATURE).softmax(-1).cpu().numpy()


def kind_distribution(head_probs: np.ndarray, knn: np.ndarray | None) -> np.ndarray:
    """The kind of a question: the mean of the kind head's softmax and the nearest-neighbour vote."""
    return head_probs if knn is None else 0.5 * (np.asarray(head_probs) + np.asarray(knn))
DEFAULT_SIMILARITY_THRESHOLD = 0.45
EVIDENCE_KINDS = ("presence", "region", "side", "size", "larger")
SURFACE_INDEX = {s: i + 1 for i, s in enumerate(SURFACES)}  # 0 = padding


@dataclass
class ImageFeatures:
    """The frozen backbone's outputs for one image (tensors on the predictor's device, no batch axis) and the
    letterbox that maps model pixels to original ones."""

    feats: "object"
    pooled: "object"
    logits: "object"
    attention: "object"
    letterbox: Letterbox


@dataclass
class Parsed:
    """A question read for the network: its MiniLM embedding, its template's similarity to the nearest training
    template (:func:`models.vqa.questions.masked`) and the findings and regions it names."""

    text: str
    embedding: "object"  # (384,) tensor
    similarity: float
    nearest: int
    mentions: list[Mention] = field(default_factory=list)
    kind_knn: np.ndarray | None = None  # (T,) the nearest-neighbour kind distribution, None without a bank

    @property
    def findings(self) -> list[str]:
        return [m.name for m in self.mentions if m.kind == "finding"]

    @property
    def regions(self) -> list[str]:
        return [m.name for m in self.mentions if m.kind == "region"]


def make_batch(features: Sequence[ImageFeatures], gaze: Sequence[tuple], questions, slot_ids, slot_kinds, surfaces,
               device) -> dict:
    """Stack per-question inputs into the dict :meth:`VQANet.forward` takes.

    Args:
        features: one ImageFeatures per question; gaze: ``(tokens (K, 4), mask (K,), coverage (2R,))`` numpy per
        question; questions ``(B, 384)`` tensor; slot_ids/slot_kinds ``(B, 3)`` int arrays; surfaces ``(S+1, 384)``.
    """
    import torch

    ids = torch.as_tensor(np.asarray(slot_ids), dtype=torch.long, device=device)
    return {
        "feats": torch.stack([f.feats for f in features]),
        "pooled": torch.stack([f.pooled for f in features]),
        "logits": torch.stack([f.logits for f in features]),
        "attention": torch.stack([f.attention for f in features]),
        "gaze": torch.as_tensor(np.stack([g[0] for g in gaze]), device=device),
        "gaze_mask": torch.as_tensor(np.stack([g[1] for g in gaze]), device=device),
        "coverage": torch.as_tensor(np.stack([g[2] for g in gaze]), device=device),
        "question": questions.to(device),
        "slots": surfaces.to(device)[ids],
        "slot_kind": torch.as_tensor(np.asarray(slot_kinds), dtype=torch.long, device=device),
    }


def grounding_box(prob_grid: np.ndarray, letterbox: Letterbox, threshold: float = 0.5):
    """``(h, w)`` grounding probabilities -> ``[x1, y1, x2, y2]`` original pixels around the largest blob above
    ``threshold`` x peak (after bilinear upsampling to the model input), or None."""
    import torch
    import torch.nn.functional as F

    from models.classifier.boxes import largest_component_box

    up = F.interpolate(torch.as_tensor(prob_grid, dtype=torch.float32)[None, None], size=(letterbox.size, letterbox.size),
                       mode="bilinear", align_corners=False)[0, 0].numpy()
    xyxy = largest_component_box(up, threshold)
    if xyxy is None:
        return None
    x1, y1, x2, y2 = letterbox.boxes_to_original(np.array([xyxy]))[0]
    return [float(x1), float(y1), float(x2), float(y2)] if x2 > x1 and y2 > y1 else None


def grid_peak(prob_grid: np.ndarray, letterbox: Letterbox) -> tuple[float, float]:
    """The grounding map's most probable cell centre in original pixels (the pointing game's point)."""
    h, w = prob_grid.shape
    row, col = np.unravel_index(int(np.argmax(prob_grid)), prob_grid.shape)
    xy = letterbox.to_original(np.array([[(col + 0.5) / w * letterbox.size, (row + 0.5) / h * letterbox.size]]))[0]
    return float(xy[0]), float(xy[1])


def fixations_on(box, fixations: Sequence[Fixation], width: float, height: float) -> list[int]:
    """Indices of the fixations whose foveal disc (the coverage radius) overlaps ``box``."""
    if box is None:
        return []
    radius = DEFAULT_RADIUS_FRACTION * max(width, height)
    x1, y1, x2, y2 = box
    out = []
    for i, f in enumerate(fixations):
        dx, dy = max(x1 - f.x, 0.0, f.x - x2), max(y1 - f.y, 0.0, f.y - y2)
        if dx * dx + dy * dy <= radius * radius:
            out.append(i)
    return out


class VQAPredictor:
    """A loaded VQA model (its frozen backbone inside); call :meth:`ask`."""

    def __init__(self, model, backbone, question_bank, surfaces, *, info: dict | None = None, device="cpu",
                 similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD, bank_texts: Sequence[str] = ()):
        import torch

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.backbone = backbone.to(self.device).eval()
        self.size = int(backbone.config.size)
        self.question_bank = question_bank.to(self.device, torch.float32)
        self.surfaces = surfaces.to(self.device, torch.float32)
        self.similarity_threshold = float(similarity_threshold)
        self.bank_texts = list(bank_texts)
        self.info: dict = info or {}
        self.bank_kinds: list[str] = []  # the kind of each training question (the rule baseline's parser)
        self.answer_temperature = 1.0  # temperature scaling of the answer softmax (fitted on validation)
        self.kind_confidence = KIND_CONFIDENCE  # below it the question's kind is "unclear" (fitted on validation)
        self.name = "gazelabel-vqa"

    @property
    def inputs(self) -> str:
        return self.model.config.inputs

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "VQAPredictor":
        """Load a ``kind="vqa"`` checkpoint (CheckpointError names the file on any problem)."""
        from models.checkpoint import CheckpointError, config_of, load_checkpoint
        from models.classifier.config import ClassifierConfig
        from models.classifier.network import GazeAttentionNet
        from models.runtime import resolve_device
        from models.vqa.config import KIND, VQAConfig
        from models.vqa.network import VQANet

        ckpt = load_checkpoint(path, KIND)
        config = config_of(VQAConfig, ckpt["config"].get("model"), path, "model")
        backbone_config = config_of(ClassifierConfig, ckpt["config"].get("backbone"), path, "backbone")
        info = dict(ckpt["info"])
        if list(info.get("answers") or []) != list(ANSWERS) or list(info.get("kinds") or []) != list(KINDS) \
                or list(info.get("surfaces") or []) != list(SURFACES):
            raise CheckpointError(f"{path}: trained with another answer vocabulary, question kinds or lexicon; "
                                  "retrain it with `gazelabel train vqa`")
        try:
            backbone = GazeAttentionNet(backbone_config)
            backbone.load_state_dict(ckpt["state"]["backbone"])
            model = VQANet(config, backbone.encoder.out_channels, backbone_config.n_findings)
            model.load_state_dict(ckpt["state"]["model"])
            bank, surfaces = ckpt["state"]["questions"], ckpt["state"]["surfaces"]
        except (KeyError, TypeError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"{path}: vqa weights do not match the network ({type(e).__name__}: {e})") from None
        predictor = cls(model, backbone, bank, surfaces, info={"synthetic": bool(info.get("synthetic", False)),
                        "dataset": info.get("dataset"), "metrics": ckpt["metrics"], "inputs": config.inputs,
                        "similarity_threshold": info.get("similarity_threshold")},
                        device=resolve_device(device),
                        similarity_threshold=float(info.get("similarity_threshold", DEFAULT_SIMILARITY_THRESHOLD)),
                        bank_texts=info.get("bank_texts") or ())
        predictor.bank_kinds = list(info.get("bank_kinds") or [])
        predictor.answer_temperature = float(info.get("answer_temperature", 1.0))
        predictor.kind_confidence = float(info.get("kind_confidence", KIND_CONFIDENCE))
        predictor.name = f"gazelabel-vqa:{Path(path).name}"
        return predictor

    # ------------------------------------------------------------------ inputs
    def image_features(self, images: Sequence[LoadedImage | np.ndarray], batch_size: int = 16) -> list[ImageFeatures]:
        """Backbone outputs per image (any size; letterboxed to the backbone's input)."""
        import torch

        from models.preprocess import prepare_image
        from models.vqa.inputs import backbone_outputs

        out = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            prepared = []
            for im in chunk:
                array = np.asarray(im.array if isinstance(im, LoadedImage) else im, dtype=np.float32)
                if array.ndim != 2:
                    raise ValueError(f"expected a 2D (H, W) radiograph, got an array of shape {array.shape}")
                prepared.append(prepare_image(array, self.size))
            batch = torch.stack([p[0] for p in prepared]).to(self.device)
            with torch.no_grad():
                o = backbone_outputs(self.backbone, batch)
            for i, (_, lb) in enumerate(prepared):
                out.append(ImageFeatures(o["feats"][i], o["pooled"][i], o["logits"][i], o["attention"][i], lb))
        return out

    def parse(self, questions: Sequence[str]) -> list[Parsed]:
        """Embed the questions (frozen MiniLM) and find their nearest training question and mentions."""
        import torch

        from models.text_encoder import encode_texts
        from models.vqa.questions import find_mentions, masked

        texts = [" ".join(str(q).split()) for q in questions]
        if not texts:
            return []
        both = encode_texts(texts + [masked(t) for t in texts], device=str(self.device)).to(self.device, torch.float32)
        emb, templates = both[: len(texts)], both[len(texts):]
        sims = templates @ self.question_bank.T if len(self.question_bank) else torch.zeros(len(texts), 1, device=self.device)
        best, index = sims.max(-1)
        knn = [None] * len(texts)
        if len(self.bank_kinds) == len(self.question_bank) and len(self.bank_kinds):
            knn = list(knn_kinds(sims, self.bank_kinds))
        return [Parsed(t, e, float(s), int(i), find_mentions(t), k)
                for t, e, s, i, k in zip(texts, emb, best.tolist(), index.tolist(), knn)]

    def gaze_inputs(self, fixations: Sequence[Fixation] | None, letterbox: Letterbox) -> tuple:
        from models.vqa.inputs import gaze_arrays

        return gaze_arrays(fixations or [], letterbox, self.model.config.max_fixations)

    # ------------------------------------------------------------------ answering
    def forward(self, features: Sequence[ImageFeatures], parsed: Sequence[Parsed], gaze: Sequence[tuple],
                mc_samples: int = 0) -> dict[str, np.ndarray]:
        """Network outputs for a batch (numpy): ``answer`` ``(B, A)`` logits, ``regions`` ``(B, R)`` sigmoid,
        ``kind`` ``(B, T)`` softmax, ``grounding`` ``(B, h, w)`` softmax; with ``mc_samples`` also each dropout
        pass's ``answer_mc`` ``(M, B, A)`` logits and ``regions_mc`` ``(M, B, R)`` sigmoids."""
        import torch

        from models.vqa.inputs import slot_arrays

        slots = [slot_arrays(p.mentions, SURFACE_INDEX) for p in parsed]
        batch = make_batch(features, gaze, torch.stack([p.embedding for p in parsed]), [s[0] for s in slots],
                           [s[1] for s in slots], self.surfaces, self.device)
        with torch.no_grad():
            out = self.model(batch)
            result = {"answer": out.answer.cpu().numpy(), "regions": torch.sigmoid(out.regions).cpu().numpy(),
                      "kind": out.kind.softmax(-1).cpu().numpy(),
                      "grounding": out.grounding.flatten(1).softmax(-1).view_as(out.grounding).cpu().numpy()}
            if mc_samples > 0:
                self.model.train()  # dropout on (VQANet has no batch norm)
                try:
                    passes = [self.model(batch) for _ in range(mc_samples)]
                finally:
                    self.model.eval()
                result["answer_mc"] = np.stack([p.answer.cpu().numpy() for p in passes])
                result["regions_mc"] = np.stack([torch.sigmoid(p.regions).cpu().numpy() for p in passes])
        return result

    def ask(self, image: LoadedImage | ImageFeatures, question: str, fixations: Sequence[Fixation] | None = None, *,
            gaze_source: str | None = None, mc_samples: int = 0) -> Answer:
        """Answer one question about one image. ``fixations``: the gaze the answer may rest on (original
        pixels; a recorded reading or a predicted scanpath), None or [] for none."""
        features = image if isinstance(image, ImageFeatures) else self.image_features([image])[0]
        return self.answer_batch([features], [question], [list(fixations or [])], gaze_sources=[gaze_source],
                                 mc_samples=mc_samples)[0]

    def answer_batch(self, features: Sequence[ImageFeatures], questions: Sequence[str | Parsed],
                     fixations: Sequence[Sequence[Fixation]], *, gaze_sources: Sequence[str | None] | None = None,
                     mc_samples: int = 0, details: list | None = None) -> list[Answer]:
        """Answer many questions (question ``i`` about ``features[i]`` with ``fixations[i]``) in one pass.

        ``details``, when a list, receives per question ``{"grounding": (h, w) probabilities, "peak": (x, y)}``
        (original pixels) for the evaluation's grounding metrics."""
        if not (len(features) == len(questions) == len(fixations)):
            raise ValueError("answer_batch: features, questions and fixations must have the same length")
        if mc_samples < 0:
            raise ValueError(f"mc_samples must be >= 0, got {mc_samples}")
        if not questions:
            return []
        parsed = [q if isinstance(q, Parsed) else None for q in questions]
        todo = [i for i, p in enumerate(parsed) if p is None]
        for i, p in zip(todo, self.parse([questions[i] for i in todo])):
            parsed[i] = p
        gaze = [self.gaze_inputs(fix, f.letterbox) for fix, f in zip(fixations, features)]
        out = self.forward(features, parsed, gaze, mc_samples)
        sources = list(gaze_sources) if gaze_sources is not None else [None] * len(questions)
        answers = []
        for i, p in enumerate(parsed):
            answers.append(self._decide(i, p, out, features[i], list(fixations[i]), sources[i], mc_samples))
            if details is not None:
                details.append({"grounding": out["grounding"][i], "peak": grid_peak(out["grounding"][i], features[i].letterbox)})
        return answers

    def _refuse(self, p: Parsed, reason: str, kind: str | None, source) -> Answer:
        return Answer(question=p.text, answer=CANNOT_ANSWER, answerable=False, reason=reason, kind=kind,
                      type=TYPE_OF_KIND.get(kind) if kind else None, findings=p.findings, regions=p.regions,
                      gaze_source=source, similarity=round(p.similarity, 4))

    def _check(self, p: Parsed, kind: str, kind_probs: np.ndarray, fixations) -> str | None:
        """Why the question cannot be answered, or None."""
        kind_p = float(kind_probs.max())
        if not p.text:
            return "the question is empty"
        if p.similarity < self.similarity_threshold:
            nearest = self.bank_texts[p.nearest] if p.nearest < len(self.bank_texts) else "?"
            return (f"the question is unlike the questions this model was trained on (closest: {nearest!r}, "
                    f"similarity {p.similarity:.2f} < {self.similarity_threshold:.2f}); it answers presence, location, "
                    "size, count, inspection and comparison questions about the CheXpert findings")
        finding_kinds = sum(float(q) for k, q in zip(KINDS, kind_probs) if "finding" in SLOTS[k])
        if not p.findings and not p.regions and finding_kinds >= 0.5:
            return f"the question names no finding this model knows (it knows: {', '.join(SPATIAL_FINDINGS)})"
        if kind_p < self.kind_confidence:
            return f"the kind of question is unclear (most likely {kind!r} at p={kind_p:.2f})"
        need = SLOTS[kind]
        n_find, n_region = need.count("finding"), need.count("region")
        found, regions = p.findings, p.regions
        if "No Finding" in found:
            return "'No Finding' is the absence of findings: it has no presence, place, side or size to ask about; ask how many findings there are"
        if n_find and not found:
            return f"the question names no finding this model knows (it knows: {', '.join(SPATIAL_FINDINGS)})"
        if len(found) < n_find:
            return f"a {TYPE_OF_KIND[kind]} question of this kind needs {n_find} findings, the question names {len(found)}"
        if len(found) > n_find:
            what = "a count of all findings" if kind == "count" else f"{n_find} finding(s)"
            return (f"the question names {len(found)} findings ({', '.join(found)}) but this model answers {what} "
                    "here; ask about one at a time")
        if n_region and not regions:
            return f"the question names no region this model knows (regions: {', '.join(REGION_NAMES)})"
        if regions and not n_region:
            return (f"the question names a region ({', '.join(regions)}); this model answers {TYPE_OF_KIND[kind]} "
                    "questions about the whole image, not within a region")
        if len(regions) > n_region:
            return f"the question names {len(regions)} regions; ask about one at a time"
        if kind == "larger" and len(set(found)) < 2:
            return "a comparison needs two different findings"
        if kind == "side" and found[0] in NO_SIDE:
            return f"{found[0]} has no side in this model's vocabulary (it lies in the midline or the whole image)"
        if kind == "size" and found[0] in NO_SIZE:
            return f"this model does not grade the size of {found[0]}"
        if kind in ("missed", "inspected") and not fixations:
            return "there are no fixations to answer an inspection question from (no recorded gaze and no scanpath model)"
        return None

    def _decide(self, i: int, p: Parsed, out: dict, features: ImageFeatures, fixations, source, mc_samples) -> Answer:
        kind_probs = kind_distribution(out["kind"][i], p.kind_knn)
        kind = KINDS[int(np.argmax(kind_probs))]
        reason = self._check(p, kind, kind_probs, fixations)
        if reason is not None:
            return self._refuse(p, reason, kind if p.similarity >= self.similarity_threshold else None, source)
        lb = features.letterbox
        w, h = lb.width, lb.height
        box, regions, alternatives = None, p.regions, []
        if kind == "missed":
            probs = out["regions_mc"][:, i].mean(0) if mc_samples > 0 else out["regions"][i]
            chosen = [r for r, q in zip(REGION_NAMES, probs) if q > 0.5]
            confidence = float(np.prod(np.where(probs > 0.5, probs, 1 - probs)))
            answer, regions = missed_text(chosen), chosen
            evidence: list[int] = []
        else:
            space = list(SPACES[kind]) if kind != "larger" else list(dict.fromkeys(p.findings))
            idx = [ANSWER_INDEX[a] for a in space]
            logits = out["answer_mc"][:, i][:, idx] if mc_samples > 0 else out["answer"][i][None, idx]
            logits = logits / self.answer_temperature
            z = logits - logits.max(-1, keepdims=True)
            probs = (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).mean(0)
            order = np.argsort(-probs)
            answer, confidence = space[int(order[0])], float(probs[order[0]])
            alternatives = [{"answer": space[int(k)], "p": round(float(probs[k]), 4)} for k in order[1:3]]
            if kind == "inspected":
                box = [float(v) for v in region_box_pixels(p.regions[0], w, h)]
            elif kind in EVIDENCE_KINDS and answer not in ("no", "none"):
                box = grounding_box(out["grounding"][i], lb)
            evidence = fixations_on(box, fixations, w, h)
            if kind == "inspected" and answer == "no":
                evidence = []
        return Answer(question=p.text, answer=answer, answerable=True, type=TYPE_OF_KIND[kind], kind=kind,
                      confidence=round(min(max(confidence, 0.0), 1.0), 4), alternatives=alternatives,
                      findings=p.findings, regions=list(regions), box=box, fixations=evidence, gaze_source=source,
                      similarity=round(p.similarity, 4), mc_samples=int(mc_samples))


__all__ = ["ImageFeatures", "Parsed", "VQAPredictor", "fixations_on", "grid_peak", "grounding_box", "kind_distribution",
           "knn_kinds", "make_batch"]
