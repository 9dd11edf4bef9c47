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

At inference the work is grouped, not changed (:mod:`models.report.decoding`): a report's prompts run
through the LM once; its greedy sentences are decoded together as one batch with a KV cache, then all the
samples of the units whose greedy sentence was refused, as a second batch; the read-back is remembered per
sentence. A generator loaded with :meth:`ReportGenerator.from_checkpoint` merges the LoRA adapters into the
LM's weights while they are on, so no adapter work is done per token.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Sequence

from models.report import templates
from models.report.evidence import unit_evidence
from models.report.lm import sequence_text
from models.decision import DecisionRule
from models.report.config import INFERENCE_SAMPLES, check_samples
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


def _check_fixations(fixations) -> list[Fixation]:
    if fixations is None:
        return []
    out = list(fixations)
    for i, f in enumerate(out):
        if not isinstance(f, Fixation):
            raise ValueError(f"fixations[{i}]: expected a models.schema.Fixation, got {type(f).__name__}")
    return out


class _MemoLabeler:
    """The labeler's ``label`` remembered per text: sampled sentences repeat within a report and across
    reports, and the same sentence is read back for several units."""

    def __init__(self, labeler, size: int = 50_000):
        self.labeler, self.size, self.seen = labeler, size, {}

    def label(self, text: str) -> dict:
        labels = self.seen.get(text)
        if labels is None:
            if len(self.seen) >= self.size:
                self.seen.clear()
            labels = self.seen[text] = self.labeler.label(text)
        return dict(labels)


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
            labeler refused, before the template sentence is used (default
            :data:`~models.report.config.INFERENCE_SAMPLES`; :meth:`write` can ask for more per report).
        merge_lora: merge the adapters into the LM's weights while they are on (inference: no LoRA work per
            token; :meth:`from_checkpoint` sets it). Leave False for a model that is still being trained.
    """

    def __init__(self, lm=None, tokenizer=None, prefix=None, *, rule: DecisionRule | None = None,
                 device: str = "cpu", scanpath_predictor=None, info: dict | None = None,
                 samples: int | None = None, sample_temperature: float = 0.8, seed: int = 0,
                 merge_lora: bool = False):
        self.lm, self.tokenizer, self.prefix = lm, tokenizer, prefix
        self.merge_lora = merge_lora
        self._verdicts: dict = {}
        self._labeler = None
        self._mode_change = threading.Condition()
        self._users, self._users_mode = 0, None  # reports decoding now, and whether with adapters on
        self.rule = rule or DecisionRule.uniform()
        self.device = device
        self.scanpath_predictor = scanpath_predictor
        self.info = info or {}
        self.samples = INFERENCE_SAMPLES if samples is None else check_samples(samples)
        self.sample_temperature, self.seed = sample_temperature, seed

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
        kwargs.setdefault("merge_lora", True)
        return cls(peft_lm.to(dev).eval(), tokenizer, prefix.to(dev).eval(),
                   device=str(dev), info=info, **kwargs)

    # ------------------------------------------------------------------ planning
    def plan(self, classifier_result, fixations: Sequence[Fixation], width: int, height: int, boxes=None) -> ReportPlan:
        scores, boxes = _scores_and_boxes(classifier_result, boxes)
        rule = getattr(classifier_result, "rule", None) or self.rule
        return build_plan(scores, boxes, fixations, width, height, rule=rule)

    # ------------------------------------------------------------------ generation
    def _adapters(self, on: bool):
        """The decoding back-end (:mod:`models.report.decoding`) with the LoRA adapters on or off, and (a
        factory of) the context to decode in. With ``merge_lora`` (inference loading) the adapters are merged
        into the base weights while on (no LoRA matmuls per token) and unmerged while off (prompt mode). Call
        through :meth:`_lm_mode`, which keeps concurrent reports from switching under each other."""
        from models.report.decoding import Gpt2Runner, _HFRunner, runner_for

        lm = self.lm
        if not hasattr(lm, "disable_adapter"):  # a plain LM: nothing to switch
            return runner_for(lm), contextlib.nullcontext
        if self.merge_lora:
            merged = any(getattr(m, "merged", False) for m in lm.modules() if hasattr(m, "lora_A"))
            if on and not merged:
                lm.merge_adapter()
            elif not on and merged:
                lm.unmerge_adapter()
            runner = runner_for(lm)
        else:  # peft adds the LoRA product in its own forward
            runner = _HFRunner(lm) if on else runner_for(lm)
        if isinstance(runner, Gpt2Runner):
            return runner, contextlib.nullcontext  # reads the (merged or base) weights directly
        return runner, contextlib.nullcontext if on else lm.disable_adapter

    @contextlib.contextmanager
    def _lm_mode(self, adapters: bool):
        """Hold the LM with the adapters on or off for one report: concurrent reports (a server's infer
        workers) in the same mode share it; a report in the other mode waits until they are done, since
        merging or unmerging changes the weights in place."""
        with self._mode_change:
            while self._users and self._users_mode != adapters:
                self._mode_change.wait()
            self._users += 1
            self._users_mode = adapters
            try:
                backend = self._adapters(adapters)
            except BaseException:
                self._users -= 1
                self._mode_change.notify_all()
                raise
        try:
            yield backend
        finally:
            with self._mode_change:
                self._users -= 1
                self._mode_change.notify_all()

    def _decoder(self, backend, prompts, prefix_tokens=None, max_new_tokens: int = 40):
        """``decode(rows) -> generated ids per row`` over ``prompts`` (token id lists) prefilled once: every
        round of attempts starts from the same prompt cache (:mod:`models.report.decoding`). ``backend``:
        what :meth:`_lm_mode` yields."""
        from models.report.decoding import decode_rows, prefill

        runner, context = backend
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with context():
            cached = prefill(runner, prompts, prefix=prefix_tokens, max_new_tokens=max_new_tokens, pad_id=pad,
                             device=self.device)

        def decode(rows):
            with context():
                return decode_rows(runner, cached, rows, eos_id=tok.eos_token_id, unk_id=tok.unk_token_id,
                                   max_new_tokens=max_new_tokens, temperature=self.sample_temperature, seed=self.seed)
        return decode

    def _control_ids(self, control: str) -> list[int]:
        enc = self.tokenizer(sequence_text(control, ""), add_special_tokens=False)["input_ids"]
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return bos + enc

    def _reads_back(self, text: str, unit: templates.RenderedSentence) -> bool:
        """The labeler reads ``text`` as saying what ``unit`` says (memoised: reports repeat sentences)."""
        from models.labeling.labeler import default_labeler
        from models.report.sentences import check_sentence

        key = (text, unit.control, unit.topic)
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) > 50_000:
                self._verdicts.clear()
            if self._labeler is None:
                self._labeler = _MemoLabeler(default_labeler())
            verdict = self._verdicts[key] = check_sentence(text, unit.statements, self._labeler, unit.topic) is None
        return verdict

    def realise(self, plan: ReportPlan, *, mode: str = "prompt", prefix_tokens=None, max_new_tokens: int = 40,
                check: bool = True, samples: int | None = None) -> tuple[list[templates.RenderedSentence], int, int]:
        """The plan's units with their sentences written in ``mode`` (no image needed: "gaze2report" takes
        ``prefix_tokens``); returns ``(units, tokens generated, sentences the LM wrote)``.

        Each unit gets the first of its attempts (greedy, then ``samples`` seeded samples) that is a
        sentence, is not already said in its section, and reads back as the unit's statements
        (``check``; without it the first non-empty one); else its template sentence. ``samples``: this
        report's sample budget instead of the generator's. Attempts are decoded in
        rounds, each one batch over all units: first every unit's greedy sentence, then all samples of the
        units whose greedy sentence was refused. The choice is the one a unit-by-unit, attempt-by-attempt
        loop makes; only the work is grouped."""
        units = templates.render_sentences(plan)
        if mode == "template":
            return units, 0, 0
        with self._lm_mode(mode == "gaze2report") as backend:
            return self._realise(units, backend, prefix_tokens, max_new_tokens, check, samples)

    def _realise(self, units, backend, prefix_tokens, max_new_tokens: int, check: bool, samples: int | None = None):
        from models.report.decoding import Row
        from models.report.lm import decode_sentence

        n_attempts = 1 + (self.samples if samples is None else check_samples(samples))
        controls = list(dict.fromkeys(u.control for u in units))  # units with the same control share a prompt
        decode = self._decoder(backend, [self._control_ids(c) for c in controls], prefix_tokens, max_new_tokens)
        texts: list[list[str | None]] = [[None] * n_attempts for _ in units]
        final: list[tuple[str, bool] | None] = [None] * len(units)
        tokens = 0
        need = [(i, 0) for i in range(len(units))]
        while need:
            outs = decode([Row(controls.index(units[i].control), a) for i, a in need])
            for (i, a), out in zip(need, outs):
                tokens += len(out)
                texts[i][a] = decode_sentence(self.tokenizer.decode(out, skip_special_tokens=False))
            need = self._choose(units, texts, final, check)
        for unit, (text, _) in zip(units, final):
            unit.text = text
        return units, tokens, sum(by_lm for _, by_lm in final)

    def _choose(self, units, texts, final, check: bool) -> list[tuple[int, int]]:
        """Fix every unit whose sentence can be chosen from the attempts decoded so far (in order, so a unit
        knows what its section already says); returns the (unit, attempt) pairs still to decode."""
        need = []
        for i, unit in enumerate(units):
            if final[i] is not None:
                continue
            earlier = [j for j in range(i) if units[j].section == unit.section]
            known = all(final[j] is not None for j in earlier)
            said = {final[j][0] for j in earlier if final[j] is not None}
            missing = candidate = None
            for a, text in enumerate(texts[i]):
                if text is None:
                    missing = a
                    break
                if not text or (check and text in said):
                    continue
                if not check or self._reads_back(text, unit):
                    candidate = text
                    break
            if known and candidate is not None:
                final[i] = (candidate, True)
            elif known and missing is None:
                final[i] = (unit.text, False)  # every attempt refused: the template sentence
            elif candidate is None and missing is not None:
                need += [(i, a) for a in range(missing, len(texts[i]))]
        return need

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
              check: bool = True, samples: int | None = None) -> tuple[Report, dict]:
        """Write the report of one image (see module docstring); ``use_gaze=False`` leaves the fixation
        tokens out of gaze2report's prefix; ``check=False`` keeps the LM's greedy sentences unread;
        ``samples``: seeded samples of a refused sentence for this report (default: the generator's).

        Returns ``(report, stats)``: ``stats`` holds ``mode``, ``tokens``, ``seconds``, ``sentences``,
        ``lm_sentences`` (written by the LM), ``fallback`` (replaced by the template), ``samples`` (the
        sample budget used) and ``controls``."""
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
                                              check=check, samples=samples)
        report = Report(*templates.join_sections(units))
        report.evidence = unit_evidence(units, fixations, width, height)
        stats = {"mode": mode, "tokens": tokens, "seconds": time.perf_counter() - t0,
                 "sentences": len(units), "lm_sentences": written,
                 "fallback": len(units) - written if mode != "template" else 0,
                 "samples": self.samples if samples is None else samples, "controls": [u.control for u in units]}
        return report, stats

    def __call__(self, image, classifier_result, fixations: Sequence[Fixation] | None, **kwargs) -> Report:
        """:meth:`write` without the statistics."""
        return self.write(image, classifier_result, fixations, **kwargs)[0]


def writer_summary(stats: dict) -> dict:
    """Who wrote a report, from :meth:`ReportGenerator.write`'s stats: ``{"mode", "lm_sentences",
    "template_sentences"}``."""
    written = stats.get("lm_sentences", 0)
    return {"mode": stats.get("mode"), "lm_sentences": written, "template_sentences": stats.get("sentences", 0) - written}
