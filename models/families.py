"""The model families: the one table every consumer reads.

A family (classifier, scanpath, report, vqa) declares once what the rest of the system needs to know: its name
and server task, the artifact it publishes in a models folder (a file, or a folder with the checkpoint
inside), its checkpoint kind, its config sections (dataclasses in ``models/<family>/config.py``, cheap to
import), its key metric, and where its trainer and predictor live (imported only when used: loading a
model never imports training code). The CLI (``gazelabel train|evaluate``), ``models.quickstart``, the
server's train tasks and model cache, and :meth:`models.pipeline.Pipeline.from_dir` all go through here.

    family = FAMILIES["classifier"]
    config = family.make_config({"epochs": 5, "size": 128})   # flat options -> {section: dataclass}
    result = family.train(source, "models/classifier.pt", config)   # TrainResult(path, metrics, key_metric)
    predictor = family.load("models/classifier.pt")               # predictor.info: synthetic, dataset, stamp
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from models.classifier import config as classifier_config
from models.report import config as report_config
from models.scanpath import config as scanpath_config
from models.vqa import config as vqa_config
from models.train_result import TrainResult


def _resolve(target: str):
    module, _, name = target.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """A request/CLI value as the field's type (ints, floats, bools, strings, tuples; None for Optional)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], name) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        return int(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value
    return value


@dataclass(frozen=True)
class ModelFamily:
    """One model family (see module docstring)."""

    name: str
    task: str  # the MONAI Label infer/train task name
    artifact: str  # published name in a models folder
    kind: str  # checkpoint kind
    sections: Mapping[str, type]  # config section -> dataclass
    key_metric: str  # the number /info/ shows as best_metric
    trainer: str  # "module:function" (source, out, config, log) -> TrainResult
    predictor: str  # "module:Class" with from_checkpoint(path, device)
    checkpoint_name: str | None = None  # the checkpoint file inside a folder artifact
    description: str = ""
    # Libraries the predictor imports lazily. A server imports them once at start-up, in one thread: importing
    # transformers/peft/accelerate from two request threads at once fails with "partially initialized module".
    runtime_imports: tuple[str, ...] = ()
    # Options that name files or folders on the machine that trains (an LM folder, other models'
    # checkpoints). A command line may set them; a server never takes them from a request.
    path_options: tuple[str, ...] = ()

    # ---------------------------------------------------------------- where it lives
    def path(self, models_dir: str | Path) -> Path:
        """The published artifact (file, or folder) in ``models_dir``."""
        return Path(models_dir) / self.artifact

    def checkpoint(self, models_dir_or_artifact: str | Path) -> Path:
        """The checkpoint file of the family in a models folder, or inside an artifact path."""
        p = Path(models_dir_or_artifact)
        if p.name != self.artifact and not p.suffix:
            p = p / self.artifact
        return p / self.checkpoint_name if self.checkpoint_name else p

    def exists(self, models_dir: str | Path) -> bool:
        return self.checkpoint(models_dir).is_file()

    def stamp(self, models_dir: str | Path) -> tuple[int, int, int] | None:
        """``(inode, mtime_ns, size)`` of the checkpoint: changes whenever a training publishes a new one."""
        try:
            st = os.stat(self.checkpoint(models_dir))
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    # ---------------------------------------------------------------- configuration
    def options(self) -> dict[str, tuple[str, dataclasses.Field]]:
        """Every option name (a field of one section; names are unique across sections) -> (section, field)."""
        out = {}
        for section, cls in self.sections.items():
            for f in dataclasses.fields(cls):
                assert f.name not in out, f"{self.name}: option {f.name!r} in two config sections"
                out[f.name] = (section, f)
        return out

    def default(self, option: str) -> Any:
        """The default of one option (the CLI's defaults come from here)."""
        f = self.options()[option][1]
        return f.default if f.default is not dataclasses.MISSING else f.default_factory()

    def make_config(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{section: dataclass}`` from flat ``options`` (defaults for the rest).

        Raises:
            ValueError: an unknown option (the message lists the accepted ones) or a value of the wrong type.
        """
        known = self.options()
        hints = {section: typing.get_type_hints(cls) for section, cls in self.sections.items()}
        values: dict[str, dict] = {s: {} for s in self.sections}
        for key, value in (options or {}).items():
            if key not in known:
                raise ValueError(f"{self.name}: unknown option {key!r}; accepted: {', '.join(sorted(known))}")
            section, _ = known[key]
            values[section][key] = _coerce(value, hints[section][key], key)
        return {section: cls(**values[section]) for section, cls in self.sections.items()}

    def config_dict(self, config: Mapping[str, Any]) -> dict[str, dict]:
        """The config as stored in a checkpoint: ``{section: {field: value}}``."""
        return {section: dataclasses.asdict(value) for section, value in config.items()}

    # ---------------------------------------------------------------- training and loading
    def import_predictor(self) -> None:
        """Import the predictor's module and :attr:`runtime_imports` now (no weights are read)."""
        _resolve(self.predictor)
        for module in self.runtime_imports:
            importlib.import_module(module)

    def train(self, source, out: str | Path, config: Mapping[str, Any] | None = None,
              log: Callable[[str], None] | None = print) -> TrainResult:
        """Train on a :class:`~models.datasets.base.CaseSource` (its train/val splits) and write ``out``."""
        config = dict(config) if config is not None else self.make_config()
        return _resolve(self.trainer)(source, Path(out), config, log)

    def load(self, path: str | Path, device: str = "cpu"):
        """The family's predictor for a checkpoint file or artifact folder; ``predictor.info`` holds
        ``synthetic``, ``dataset`` and ``stamp``. CheckpointError names a bad file."""
        predictor = _resolve(self.predictor).from_checkpoint(path, device=device)
        try:
            st = os.stat(self.checkpoint(path) if Path(path).is_dir() else path)
            predictor.info["stamp"] = f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
        except FileNotFoundError:
            pass
        return predictor


CLASSIFIER = ModelFamily(
    name="classifier", task="gaze_classifier", artifact="classifier.pt", kind="classifier",
    sections=classifier_config.SECTIONS, key_metric="val_macro_auc",
    trainer="models.classifier.train:train", predictor="models.classifier.predict:ClassifierPredictor",
    path_options=("weights",),  # a backbone weight file on the training machine
    description="Gaze-supervised CheXpert-14 classifier: scores, boxes, attention heatmap")
SCANPATH = ModelFamily(
    name="scanpath", task="scanpath", artifact="scanpath.pt", kind="scanpath",
    sections=scanpath_config.SECTIONS, key_metric="val_loss",
    trainer="models.scanpath.train:train", predictor="models.scanpath.predict:ScanpathPredictor",
    path_options=("weights",),  # a backbone weight file on the training machine
    description="Scanpath predictor: ordered fixations (x, y, duration) with sampling")
REPORT = ModelFamily(
    name="report", task="report", artifact="report", kind=report_config.KIND, checkpoint_name=report_config.CHECKPOINT_NAME,
    sections=report_config.SECTIONS, key_metric="gaze2report_val_loss",
    trainer="models.report.train:train", predictor="models.report.generate:ReportGenerator",
    runtime_imports=("transformers", "peft"), path_options=("lm_path", "weights"),
    description="Gaze-conditioned report with evidence links (sentences -> findings, boxes, fixations)")

VQA = ModelFamily(
    name="vqa", task="vqa", artifact="vqa.pt", kind=vqa_config.KIND,
    sections=vqa_config.SECTIONS, key_metric="val_accuracy",
    trainer="models.vqa.train:train", predictor="models.vqa.predict:VQAPredictor",
    runtime_imports=("transformers",),  # the frozen MiniLM question encoder
    path_options=("classifier", "scanpath"),  # the frozen backbone and the gaze model it trains with
    description="Grounded question answering: answer, confidence, evidence box and fixations (or 'cannot answer')")

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (CLASSIFIER, SCANPATH, REPORT, VQA)}
BY_TASK: dict[str, ModelFamily] = {f.task: f for f in FAMILIES.values()}


def family(name: str) -> ModelFamily:
    """The family called ``name`` (or whose task is ``name``); ValueError lists the families."""
    found = FAMILIES.get(name) or BY_TASK.get(name)
    if found is None:
        raise ValueError(f"unknown model family {name!r}; expected one of {', '.join(FAMILIES)}")
    return found


__all__ = ["BY_TASK", "FAMILIES", "ModelFamily", "TrainResult", "family"]
