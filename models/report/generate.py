"""Inference API: one image + classifier result + scanpath -> a :class:`~models.schema.Report` with evidence.

    generator = ReportGenerator.from_checkpoint("models/report", device="cpu")
    report = generator(image, classifier_result, fixations, mode="gaze2report")   # or "prompt", "template"
    ReportGenerator()(image, classifier_result, fixations, mode="template")        # no checkpoint needed

``classifier_result`` needs only ``.scores`` (finding -> probability) and ``.boxes`` (list of Box, original
pixels). ``fixations`` are original-pixel fixations (recorded, or predicted: pass ``fixations=None`` to a
generator built with ``scanpath_predictor=...``). A generated text that comes out empty falls back to the
template text of the same plan.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from models.report import templates
from models.report.evidence import anatomy_evidence, link_generated, report_sentences, statement_evidence
from models.report.lm import SEP, sequence_text, split_generated
from models.report.prompt import DEFAULT_THRESHOLDS, ReportPlan, build_plan
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
        thresholds: (likely, possible) probability thresholds of the prompt keywords.
        scanpath_predictor: called on the image when ``fixations`` is None (returns a list of scanpaths;
            the first, the mean path, is used).
        info: checkpoint facts (synthetic, dataset) passed through to callers.
    """

    def __init__(self, lm=None, tokenizer=None, prefix=None, *, thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
                 max_length: int = 160, device: str = "cpu", scanpath_predictor=None, info: dict | None = None):
        self.lm, self.tokenizer, self.prefix = lm, tokenizer, prefix
        self.thresholds = thresholds
        self.max_length = max_length
        self.device = device
        self.scanpath_predictor = scanpath_predictor
        self.info = info or {}
        self.last_stats: dict = {}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs) -> "ReportGenerator":
        """Load ``<dir>/report.pt`` + ``<dir>/lm`` (``path`` is the folder or the .pt file)."""
        from peft import set_peft_model_state_dict

        from models.report.gaze2report import Gaze2ReportPrefix, PrefixConfig
        from models.report.lm import load_lm
        from models.report.train import CHECKPOINT_FILE, CHECKPOINT_KIND, TrainConfig, attach_lora
        from models.runtime import CheckpointError, load_checkpoint, resolve_device

        path = Path(path)
        ckpt_path = path / CHECKPOINT_FILE if path.is_dir() else path
        ckpt = load_checkpoint(ckpt_path, CHECKPOINT_KIND)
        config = ckpt["config"]
        dev = resolve_device(device)
        lm, tokenizer = load_lm(ckpt_path.parent / config.get("lm_dir", "lm"))
        cfg = TrainConfig(lora_r=config["lora_r"], lora_alpha=config["lora_alpha"], lora_dropout=0.0)
        try:
            peft_lm, _ = attach_lora(lm, cfg)
            set_peft_model_state_dict(peft_lm, ckpt["state_dict"]["lora"])
            prefix = Gaze2ReportPrefix(PrefixConfig(**config["prefix"]))
            prefix.load_state_dict(ckpt["state_dict"]["prefix"])
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise CheckpointError(f"{ckpt_path}: weights do not match the report model ({type(e).__name__}: {e})") from None
        info = {"synthetic": ckpt.get("synthetic", False), "dataset": ckpt.get("dataset"),
                "use_gaze": config.get("use_gaze", True), "path": str(ckpt_path)}
        return cls(peft_lm.to(dev).eval(), tokenizer, prefix.to(dev).eval(), max_length=config.get("max_length", 160),
                   device=str(dev), info=info, **kwargs)

    # ------------------------------------------------------------------ planning
    def plan(self, classifier_result, fixations: Sequence[Fixation], width: int, height: int, boxes=None) -> ReportPlan:
        scores, boxes = _scores_and_boxes(classifier_result, boxes)
        return build_plan(scores, boxes, fixations, width, height, thresholds=self.thresholds)

    # ------------------------------------------------------------------ generation
    def _greedy(self, lm, ids, prefix_tokens=None, max_new_tokens: int = 120) -> list[int]:
        """Greedy decoding with the KV cache; ``ids`` ``(1, T)`` ends with ``[SEP]``."""
        import torch

        eos = self.tokenizer.eos_token_id
        with torch.no_grad():
            emb = lm.get_input_embeddings()(ids)
            if prefix_tokens is not None:
                emb = torch.cat([prefix_tokens.to(emb.dtype), emb], dim=1)
            out = lm(inputs_embeds=emb, use_cache=True)
            generated: list[int] = []
            limit = min(max_new_tokens, self.max_length + (0 if prefix_tokens is None else prefix_tokens.shape[1]))
            for _ in range(limit):
                nxt = int(out.logits[0, -1].argmax())
                if nxt == eos:
                    break
                generated.append(nxt)
                step = torch.tensor([[nxt]], device=ids.device)
                out = lm(input_ids=step, past_key_values=out.past_key_values, use_cache=True)
        return generated

    def _prompt_ids(self, plan: ReportPlan):
        import torch

        text = sequence_text(plan.prompt_text(), "", "").split(SEP)[0] + SEP
        enc = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return torch.tensor([bos + enc], device=self.device)

    def _prefix_tokens(self, image, fixations: Sequence[Fixation], use_gaze: bool):
        import torch

        from models.datasets.torch_data import MAX_FIXATIONS, prepare_image

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

    def __call__(self, image, classifier_result, fixations: Sequence[Fixation] | None, *, mode: str = "gaze2report",
                 boxes: Sequence[Box] | None = None, use_gaze: bool = True, max_new_tokens: int = 120) -> Report:
        """Write the report of one image (see module docstring); ``use_gaze=False`` is the no-gaze ablation
        of gaze2report. ``self.last_stats`` holds tokens, seconds and whether the template fallback ran."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        array = getattr(image, "array", None)
        if array is None or getattr(array, "ndim", 0) != 2:
            raise ValueError("image must be a models.imaging.LoadedImage with a 2D array")
        if fixations is None and self.scanpath_predictor is not None:
            fixations = self.scanpath_predictor(image)[0]
        fixations = _check_fixations(fixations)
        height, width = array.shape
        plan = self.plan(classifier_result, fixations, width, height, boxes)
        _, boxes_used = _scores_and_boxes(classifier_result, boxes)
        t0 = time.perf_counter()
        if mode == "template" or self.lm is None:
            if mode != "template":
                raise ValueError(f"mode {mode!r} needs a trained report model: use ReportGenerator.from_checkpoint, "
                                 "or mode='template'")
            return self._template_report(plan, fixations, width, height, t0)
        ids = self._prompt_ids(plan)
        if mode == "prompt":
            with self.lm.disable_adapter():
                out_ids = self._greedy(self.lm, ids, None, max_new_tokens)
        else:
            out_ids = self._greedy(self.lm, ids, self._prefix_tokens(image, fixations, use_gaze), max_new_tokens)
        text = " ".join(self.tokenizer.convert_ids_to_tokens(out_ids))
        findings, impression = split_generated(text)
        if not findings:
            return self._template_report(plan, fixations, width, height, t0, fallback=True)
        report = Report(findings=findings, impression=impression)
        report.evidence = link_generated(report_sentences(report), plan, fixations, boxes_used, width, height)
        self.last_stats = {"tokens": len(out_ids), "seconds": time.perf_counter() - t0, "fallback": False,
                           "prompt": plan.prompt_text()}
        return report

    def _template_report(self, plan: ReportPlan, fixations, width: int, height: int, t0: float,
                         fallback: bool = False) -> Report:
        findings, impression, sentences = templates.render(plan)
        report = Report(findings=findings, impression=impression)
        report.evidence = [statement_evidence(i, s.statement) if s.statement is not None
                           else anatomy_evidence(i, s.text, fixations, width, height)
                           for i, s in enumerate(sentences)]
        self.last_stats = {"tokens": 0, "seconds": time.perf_counter() - t0, "fallback": fallback,
                           "prompt": plan.prompt_text()}
        return report
