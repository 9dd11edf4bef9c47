"""Train tasks: retrain one model family on the annotators' labels and publish it for the infer tasks.

``POST /train/<family>`` (classifier | scanpath | report) runs, in MONAI Label's train subprocess:

1. export the datastore's final labels (Case JSON; recorded gaze from the dataset record when the label has
   none; with ``include_records`` also the records of unlabelled images) as a temporary case store with
   symlinked images and a train/val split;
2. ``gazelabel train <family> --data <that store> --out <tmp>`` through the family's own CLI functions
   (``models/<family>/cli.py``), with request keys that name its options (``epochs``, ``size`` ...);
3. publish the result atomically into the models folder: the infer tasks pick it up on their next request;
4. write ``train_stats_<family>.json`` (numbers only, NaN/inf mapped to 0 so ``/info/`` stays valid JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from monailabel.interfaces.tasks.train import TrainTask

from models.datasets.base import hash_split
from models.files import atomic_json
from models.schema import Case, save_case

from ..configs.models import MODEL_FILES, checkpoint_file, model_path, stamp, stamp_text
from ..datastores.records import Records
from .publish import publish

logger = logging.getLogger(__name__)
CHECKPOINT_KINDS = {"classifier": "classifier", "scanpath": "scanpath", "report": "report"}
# The number /info/ shows as best_metric, per family (its key in checkpoint_metrics).
KEY_METRICS = {"classifier": "val_macro_auc", "scanpath": "val_loss", "report": "gaze2report_val_loss"}
# Quick CPU defaults for retraining from the server; a request may override any of the family's options.
DEFAULTS = {
    "classifier": {"epochs": 5, "size": 224, "batch_size": 8},
    "scanpath": {"epochs": 5, "size": 128, "batch_size": 8},
    "report": {"epochs": 2},
}


def finite(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by 0.0 (recursively), for JSON that ``/info/`` can send."""
    if isinstance(value, float):
        return value if math.isfinite(value) else 0.0
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def export_cases(datastore, records: Records, include_records: bool) -> list[Case]:
    """The training Cases: final labels (gaze merged from records), plus unlabelled records if asked.

    An unreadable label is quarantined by :meth:`Records.label` and skipped (logged), never fatal."""
    cases, labelled = [], set()
    for item in datastore.datalist():
        image_id = Path(item["label"]).name[: -len(".json")]
        case = records.label(image_id)
        if case is None:
            logger.warning(f"train: skipping {image_id}: its final label is missing or was quarantined")
            continue
        case.id, case.image.path = image_id, item["image"]
        cases.append(case)
        labelled.add(image_id)
    if include_records:
        for image_id in datastore.list_images():
            case = None if image_id in labelled else records.case(image_id)
            if case is not None and (case.findings or case.fixations or case.report):
                cases.append(case)
    return cases


def write_training_store(cases: list[Case], root: Path, synthetic: bool, val_fraction: float) -> Path:
    """A case store of ``cases`` at ``root`` (images symlinked) with a hash-based train/val split."""
    (root / "cases").mkdir(parents=True)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for case in cases:
        image = Path(case.image.path)
        suffix = "".join(image.suffixes[-2:]) if image.name.endswith(".nii.gz") else image.suffix
        os.symlink(image.resolve(), root / f"{case.id}{suffix}")
        case.image.path = f"{case.id}{suffix}"
        save_case(case, root / "cases" / f"{case.id}.json")
        splits[hash_split(case.id, (1.0 - val_fraction, val_fraction, 0.0))].append(case.id)
    if not splits["train"]:
        splits = {"train": splits["val"], "val": [], "test": []}
    atomic_json(root / "dataset.json", {"name": "gazelabel-datastore", "synthetic": synthetic, "splits": splits})
    return root


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_training(work: Path) -> int:
    """Remove ``.training/<family>-<pid>-*`` folders whose training process is gone (killed trainings);
    returns how many. Folders of a live process, or not of that form, stay."""
    removed = 0
    for folder in work.glob("*-*-*") if work.is_dir() else []:
        parts = folder.name.split("-")
        if folder.is_dir() and len(parts) >= 3 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        logger.info(f"removed {removed} folder(s) of interrupted trainings from {work}")
    return removed


def family_arguments(family: str, options: dict[str, Any], data: Path, out: Path) -> argparse.Namespace:
    """Parse ``--data``/``--out`` plus the options the family's CLI knows (others are ignored)."""
    cli = importlib.import_module(f"models.{family}.cli")
    parser = argparse.ArgumentParser(prog=f"gazelabel train {family}", exit_on_error=False, allow_abbrev=False)
    cli.add_train_arguments(parser)
    argv = ["--data", str(data), "--out", str(out)]
    for key, value in options.items():
        if key in ("data", "out") or value is None or value is False or isinstance(value, (dict, list)):
            continue
        argv += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            args, _unknown = parser.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit) as e:
        raise ValueError(f"train {family}: bad option ({e or err.getvalue().strip()})") from None
    return args


def _numbers(src: Any, prefix: str = "", depth: int = 0) -> dict[str, float]:
    """Numeric facts of a (nested) dict: scalars, and the last value of number lists (per-epoch histories)."""
    out: dict[str, float] = {}
    if not isinstance(src, dict) or depth > 1:
        return out
    for key, value in src.items():
        name = f"{prefix}{key}"
        if isinstance(value, list) and value and isinstance(value[-1], (int, float)):
            value = value[-1]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, dict):
            out.update(_numbers(value, f"{name}_", depth + 1))
    return out


def checkpoint_metrics(models_dir: Path, family: str) -> dict[str, float]:
    """Numeric training facts stored in the published checkpoint (``summary``, ``training``, ``history``)."""
    from models.runtime import load_checkpoint

    ckpt = load_checkpoint(checkpoint_file(models_dir, family), CHECKPOINT_KINDS[family])
    history = ckpt.get("history")
    if isinstance(history, list):  # a list of per-epoch dicts: the last epoch
        history = history[-1] if history and isinstance(history[-1], dict) else None
    metrics: dict[str, float] = {}
    for src in (ckpt.get("summary"), ckpt.get("training"), history):
        metrics.update(_numbers(src))
    return finite(metrics)


class FamilyTrainTask(TrainTask):
    """Retrain ``family`` (classifier | scanpath | report) from the datastore and publish it into ``models_dir``."""

    def __init__(self, family: str, models_dir: str | Path, records: Records):
        if family not in MODEL_FILES:
            raise ValueError(f"unknown model family {family!r}; expected one of {', '.join(MODEL_FILES)}")
        super().__init__(f"Retrain the {family} on the final labels (gazelabel train {family})")
        self.family = family
        self.models_dir = Path(models_dir)
        self.records = records

    def config(self) -> dict[str, Any]:
        return {**DEFAULTS[self.family], "include_records": False, "val_fraction": 0.2}

    @property
    def stats_path(self) -> Path:
        return self.models_dir / f"train_stats_{self.family}.json"

    def stats(self) -> dict[str, Any]:
        try:
            return finite(json.loads(self.stats_path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def __call__(self, request: dict, datastore) -> dict[str, Any]:
        start = time.time()
        options = {**self.config(), **request}
        val_fraction = float(options.pop("val_fraction"))
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        cases = export_cases(datastore, self.records, bool(options.pop("include_records")))
        if not cases:
            raise ValueError(f"train {self.family}: no final labels yet; save labels with PUT /datastore/label?tag=final")
        synthetic = self.records.synthetic() or any(c.image.synthetic for c in cases)
        work = self.models_dir / ".training"
        work.mkdir(parents=True, exist_ok=True)
        clean_stale_training(work)
        with tempfile.TemporaryDirectory(dir=work, prefix=f"{self.family}-{os.getpid()}-") as tmp:
            data = write_training_store(cases, Path(tmp) / "data", synthetic, val_fraction)
            out = Path(tmp) / "out" / MODEL_FILES[self.family]
            out.parent.mkdir()
            cli = importlib.import_module(f"models.{self.family}.cli")
            cli.train(family_arguments(self.family, options, data, out))
            publish(out, model_path(self.models_dir, self.family))
        stats = {
            "family": self.family,
            "total_time": f"{time.time() - start:.1f}s",
            "seconds": time.time() - start,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "cases": len(cases),
            "synthetic": synthetic,
            "model": stamp_text(stamp(self.models_dir, self.family)),
            "metrics": checkpoint_metrics(self.models_dir, self.family),
        }
        stats["best_metric"] = stats["metrics"].get(KEY_METRICS[self.family], 0.0)
        atomic_json(self.stats_path, finite(stats))
        return stats
