"""Inference API: one image + classifier result + scanpath -> a :class:`~models.schema.Report` with evidence.

    generator = ReportGenerator.from_checkpoint("models/report", device="cpu")
    report = generator(image, classifier_result, fixations, mode="gaze2report")   # or "prompt", "template"
    ReportGenerator()(image, classifier_result, fixations, mode="template")        # no checkpoint needed

``classifier_result`` needs only ``.scores`` (finding -> probability) and ``.boxes`` (list of Box, original
pixels). ``fixations`` are original-pixel fixations (recorded, or predicted: pass ``fixations=None`` to a
generator built with ``scanpath_predictor=...``).

All modes cut the plan into the same one-sentence units (:func:`~models.report.templates.render_sentences`).
"template" keeps their template sentences; "prompt" (path a) has the LM write each sentence from its
control; "gaze2report" (path b) does the same with the graph prefix in front and the LoRA adapters on. A
sentence the labeler does not read as its unit's statements is sampled again, then replaced by the
template sentence (:mod:`models.report.sentences`); :meth:`ReportGenerator.write` returns how often with
the report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from models.report import templates
from models.report.evidence import unit_evidence
from models.report.lm import sequence_text
from models.decision import DecisionRule
from models.report.prompt import ReportPlan, build_plan
from models.schema import Box, Fixation, Report

MODES = ("gaze2report", "prompt", "template")


def _scores_and_boxes(classifier_result, boxes) -> tuple[dict, list[Box]]:
    scores = getattr(classifier_result, "scores", None)
    if scores is None:
        raise ValueError("classifier_result must have .scores (finding -> probability), got "
                         f"{type(classifier_result).__name__}")
    if boxes is None:
        boxes = list(getattr(classifier_result, "boxes", None) or [])
    for i, b in enumerate(boxes):
        if not isinstance(b, Box):
            raise ValueError(f"boxes[{i}]: expected a models.schema.Box, got {type(b).__name__}")
    return dict(scores), list(boxes)


def _cache_kwargs(out) -> dict:
    """The KV cache of ``out`` as the next call's keyword: ``cache`` in transformers 5 (``past_key_values``,
    deprecated there and warned about on every call, before)."""
    if "cache" in out:
        return {"cache": out["cache"]}
    return {"past_key_values": out["past_key_values"]}


def _check_fixations(fixations) -> list[Fixation]:
    if fixations is None:
        return []
    out = list(fixations)
    for i, f in enumerate(out):
        if not isinstance(f, Fixation):
            raise ValueError(f"fixations[{i}]: expected a models.schema.Fixation, got {type(f).__name__}")
    return out


class ReportGenerator:
    """Report generator for the three modes; build with :meth:`from_checkpoint` (LM modes) or plainly
    (template mode only).

    Args:
        lm: a peft-wrapped causal LM (LoRA adapters for gaze2report; disabled for prompt mode) or None.
        tokenizer: its tokenizer.
        prefix: the :class:`~models.report.gaze2report.Gaze2ReportPrefix` or None.
        rule: the decision rule for scores that bring none (a classifier result's own ``rule`` wins);
            default :meth:`DecisionRule.uniform`.
        scanpath_predictor: called on the image when ``fixations`` is None (returns a list of scanpaths;
            the first, the mean path, is used).
        info: checkpoint facts (synthetic, dataset) passed through to callers.
        samples, sample_temperature, seed: how many seeded samples a sentence gets after a greedy one the
            labeler refused, before the template sentence is used.
    """

    def __init__(self, lm=None, tokenizer=None, prefix=None, *, rule: DecisionRule | None = None,
                 device: str = "cpu", scanpath_predictor=None, info: dict | None = None,
                 samples: int = 4, sample_temperature: float = 0.8, seed: int = 0):
        self.lm, self.tokenizer, self.prefix = lm, tokenizer, prefix
        self.rule = rule or DecisionRule.uniform()
        self.device = device
        self.scanpath_predictor = scanpath_predictor
        self.info = info or {}
        self.samples, self.sample_temperature, self.seed = samples, sample_temperature, seed

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs) -> "ReportGenerator":
        """Load ``<dir>/report.pt`` + ``<dir>/lm`` (``path`` is the folder or the .pt file)."""
        from peft import set_peft_model_state_dict

        from models.checkpoint import CheckpointError, config_of, load_checkpoint
        from models.report.config import CHECKPOINT_NAME, KIND, ReportConfig
        from models.report.gaze2report import Gaze2ReportPrefix, PrefixConfig
        from models.report.lm import load_lm
        from models.report.lora import attach_lora
        from models.runtime import resolve_device

        path = Path(path)
        ckpt_path = path / CHECKPOINT_NAME if path.is_dir() else path
        ckpt = load_checkpoint(ckpt_path, KIND)
        config = ckpt["config"]
        train = config_of(ReportConfig, config.get("train"), ckpt_path, "train")
        dev = resolve_device(device)
        lm, tokenizer = load_lm(ckpt_path.parent / config.get("lm_dir", "lm"))
        try:
            peft_lm, _ = attach_lora(lm, train.lora_r, train.lora_alpha, 0.0)
            set_peft_model_state_dict(peft_lm, ckpt["state"]["lora"])
            prefix = Gaze2ReportPrefix(config_of(PrefixConfig, config["prefix"], ckpt_path, "prefix"))
            prefix.load_state_dict(ckpt["state"]["prefix"])
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise CheckpointError(f"{ckpt_path}: weights do not match the report model ({type(e).__name__}: {e})") from None
        info = {"synthetic": bool(ckpt["info"].get("synthetic", False)), "dataset": ckpt["info"].get("dataset"),
                "use_gaze": train.use_gaze, "path": str(ckpt_path), "metrics": ckpt["metrics"]}
        return cls(peft_lm.to(dev).eval(), tokenizer, prefix.to(dev).eval(),
                   device=str(dev), info=info, **kwargs)

    # ------------------------------------------------------------------ planning
    def plan(self, classifier_result, fixations: Sequence[Fixation], width: int, height: int, boxes=None) -> ReportPlan:
        scores, boxes = _scores_and_boxes(classifier_result, boxes)
        rule = getattr(classifier_result, "rule", None) or self.rule
        return build_plan(scores, boxes, fixations, width, height, rule=rule)

    # ------------------------------------------------------------------ generation
    def _decode(self, lm, ids, prefix_tokens=None, max_new_tokens: int = 40, generator=None) -> list[int]:
        """Greedy (``generator=None``) or sampled decoding with the KV cache; ``ids`` ``(1, T)`` ends with
        ``[SEP]``."""
        import torch

        eos = self.tokenizer.eos_token_id
        with torch.no_grad():
            emb = lm.get_input_embeddings()(ids)
            if prefix_tokens is not None:
                emb = torch.cat([prefix_tokens.to(emb.dtype), emb], dim=1)
            out = lm(inputs_embeds=emb, use_cache=True)
            generated: list[int] = []
            for _ in range(max_new_tokens):
                logits = out.logits[0, -1].float()
                if generator is None:
                    nxt = int(logits.argmax())
                else:
                    probs = torch.softmax(logits / self.sample_temperature, dim=-1)
                    nxt = int(torch.multinomial(probs.cpu(), 1, generator=generator))
                if nxt == eos:
                    break
                generated.append(nxt)
                step = torch.tensor([[nxt]], device=ids.device)
                out = lm(input_ids=step, use_cache=True, **_cache_kwargs(out))
        return generated

    def _control_ids(self, control: str):
        import torch

        enc = self.tokenizer(sequence_text(control, ""), add_special_tokens=False)["input_ids"]
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return torch.tensor([bos + enc], device=self.device)

    def write_sentence(self, unit: templates.RenderedSentence, *, prefix_tokens=None, adapters: bool = True,
                       max_new_tokens: int = 40, check: bool = True, avoid=frozenset()) -> tuple[str, bool, int]:
        """The LM's sentence for one unit: greedy first, then up to ``self.samples`` seeded samples, each read
        back by the labeler (:func:`~models.report.sentences.check_sentence`); the unit's template sentence
        when none says what the unit says. A sentence in ``avoid`` (already said in this section) is
        sampled again too. ``check=False`` keeps the greedy sentence unread (the measurement of what the LM
        does on its own). Returns ``(text, written by the LM, tokens)``."""
        import contextlib

        import torch

        from models.labeling.labeler import default_labeler
        from models.report.lm import decode_sentence
        from models.report.sentences import check_sentence

        ids = self._control_ids(unit.control)
        tokens = 0
        context = contextlib.nullcontext() if adapters else self.lm.disable_adapter()
        with context:
            for attempt in range(1 + self.samples):
                generator = None if attempt == 0 else torch.Generator().manual_seed(self.seed + attempt)
                out = self._decode(self.lm, ids, prefix_tokens, max_new_tokens, generator)
                tokens += len(out)
                text = decode_sentence(self.tokenizer.decode(out, skip_special_tokens=False))
                if not text or (check and text in avoid):
                    continue
                if not check or check_sentence(text, unit.statements, default_labeler(), unit.topic) is None:
                    return text, True, tokens
        return unit.text, False, tokens

    def realise(self, plan: ReportPlan, *, mode: str = "prompt", prefix_tokens=None, max_new_tokens: int = 40,
                check: bool = True) -> tuple[list[templates.RenderedSentence], int, int]:
        """The plan's units with their sentences written in ``mode`` (no image needed: "gaze2report" takes
        ``prefix_tokens``); returns ``(units, tokens generated, sentences the LM wrote)``."""
        units = templates.render_sentences(plan)
        tokens = written = 0
        if mode == "template":
            return units, 0, 0
        for i, unit in enumerate(units):
            said = {u.text for u in units[:i] if u.section == unit.section}
            text, by_lm, n = self.write_sentence(unit, prefix_tokens=prefix_tokens, adapters=mode == "gaze2report",
                                                 max_new_tokens=max_new_tokens, check=check, avoid=said)
            unit.text = text
            tokens += n
            written += by_lm
        return units, tokens, written

    def _prefix_tokens(self, image, fixations: Sequence[Fixation], use_gaze: bool):
        import torch

        from models.preprocess import MAX_FIXATIONS, prepare_image

        size = self.prefix.config.image_size
        tensor, lb = prepare_image(image.array, size)
        fix = list(fixations)[:MAX_FIXATIONS]
        arr = torch.zeros(1, max(len(fix), 1), 3)
        if fix:
            xy = lb.to_model([[f.x, f.y] for f in fix])
            arr[0, : len(fix), :2] = torch.as_tensor(xy, dtype=torch.float32)
            arr[0, : len(fix), 2] = torch.tensor([f.duration for f in fix])
        n = torch.tensor([len(fix)])
        with torch.no_grad():
            tokens, _ = self.prefix(tensor[None].to(self.device), arr.to(self.device), n.to(self.device),
                                    use_gaze=use_gaze and bool(fix))
        return tokens

    def write(self, image, classifier_result, fixations: Sequence[Fixation] | None, *, mode: str = "gaze2report",
              boxes: Sequence[Box] | None = None, use_gaze: bool = True, max_new_tokens: int = 40,
              check: bool = True) -> tuple[Report, dict]:
        """Write the report of one image (see module docstring); ``use_gaze=False`` leaves the fixation
        tokens out of gaze2report's prefix; ``check=False`` keeps the LM's greedy sentences unread.

        Returns ``(report, stats)``: ``stats`` holds ``mode``, ``tokens``, ``seconds``, ``sentences``,
        ``lm_sentences`` (written by the LM), ``fallback`` (replaced by the template) and ``controls``."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        array = getattr(image, "array", None)
        if array is None or getattr(array, "ndim", 0) != 2:
            raise ValueError("image must be a models.imaging.LoadedImage with a 2D array")
        if mode != "template" and self.lm is None:
            raise ValueError(f"mode {mode!r} needs a trained report model: use ReportGenerator.from_checkpoint, "
                             "or mode='template'")
        if fixations is None and self.scanpath_predictor is not None:
            fixations = self.scanpath_predictor(image)[0]
        fixations = _check_fixations(fixations)
        height, width = array.shape
        plan = self.plan(classifier_result, fixations, width, height, boxes)
        t0 = time.perf_counter()
        prefix = self._prefix_tokens(image, fixations, use_gaze) if mode == "gaze2report" else None
        units, tokens, written = self.realise(plan, mode=mode, prefix_tokens=prefix, max_new_tokens=max_new_tokens,
                                              check=check)
        report = Report(*templates.join_sections(units))
        report.evidence = unit_evidence(units, fixations, width, height)
        stats = {"mode": mode, "tokens": tokens, "seconds": time.perf_counter() - t0,
                 "sentences": len(units), "lm_sentences": written,
                 "fallback": len(units) - written if mode != "template" else 0,
                 "controls": [u.control for u in units]}
        return report, stats

    def __call__(self, image, classifier_result, fixations: Sequence[Fixation] | None, **kwargs) -> Report:
        """:meth:`write` without the statistics."""
        return self.write(image, classifier_result, fixations, **kwargs)[0]


def writer_summary(stats: dict) -> dict:
    """Who wrote a report, from :meth:`ReportGenerator.write`'s stats: ``{"mode", "lm_sentences",
    "template_sentences"}``."""
    written = stats.get("lm_sentences", 0)
    return {"mode": stats.get("mode"), "lm_sentences": written, "template_sentences": stats.get("sentences", 0) - written}
