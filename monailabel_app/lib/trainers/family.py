"""Train tasks: retrain one model family on the annotators' labels and publish it for the infer tasks.

``POST /train/<task>`` (gaze_classifier | scanpath | report) runs, in MONAI Label's train subprocess:

1. export the datastore's final labels (Case JSON; recorded gaze from the dataset record when the label has
   none; with ``include_records`` also the records of unlabelled images) as a temporary case store with
   symlinked images and a train/val split by image. The gaze the training learns from is the people's:
   the annotators' readings recorded by the capture (label ``readers``) and the dataset's, pooled per image
   (``gaze_readers`` "pooled", the default), one training case per reader ("per_reader") or none ("none");
   predicted scanpaths saved with a label are not supervision unless ``use_predicted_gaze`` is true
   (:func:`models.recorded_gaze.training_gaze`). How many cases carried recorded, only predicted or no gaze
   is logged and kept in the stats;
2. ``family.train`` (:mod:`models.families`) with the request's options, each a field of the family's config
   (``epochs``, ``size`` ...; an unknown one is refused with the accepted names);
3. publish the result atomically into the models folder: the infer tasks pick it up on their next request;
4. write ``train_stats_<family>.json`` (numbers only, NaN/inf mapped to 0 so ``/info/`` stays valid JSON).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from monailabel.interfaces.tasks.train import TrainTask

from models.datasets.base import hash_split
from models.datasets.store import CaseStore
from models.families import ModelFamily
from models.files import atomic_json
from models.recorded_gaze import GAZE_MODES, image_id_of, training_gaze
from models.schema import Case, save_case

from ...parsing import RequestError
from ..configs.models import stamp_text
from ..datastores.records import Records
from .publish import publish

logger = logging.getLogger(__name__)
# Quick CPU defaults for retraining from the server; a request may override any of the family's options.
DEFAULTS = {
    "classifier": {"epochs": 5, "size": 224, "batch_size": 8},
    "scanpath": {"epochs": 5, "size": 128, "batch_size": 8},
    "report": {"lm_epochs": 2, "g2r_epochs": 2},
    "vqa": {"epochs": 6, "batch_size": 64},
}
# Families whose training reads other published models of the server's models folder (never a path from the
# request): option -> family whose published checkpoint it is. The vqa model freezes the classifier as its
# image backbone and learns its gaze tokens from the scanpath model's samples (when there is one).
SERVER_PATHS = {"vqa": {"classifier": "classifier", "scanpath": "scanpath"}}


class NothingToTrain(RequestError):
    """A training asked for before there is anything to learn from (HTTP 409 for ``run_sync`` requests)."""

    status = 409


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
        # by image: the per-reader cases of one image stay in one split
        splits[hash_split(image_id_of(case.id), (1.0 - val_fraction, val_fraction, 0.0))].append(case.id)
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


# Keys MONAI Label and its clients add to every train request; not options of a family. ``gpus`` ("all" or
# "0,1") and ``local_rank`` are MONAI Label's: the GPUs of the training subprocess and its rank.
REQUEST_KEYS = ("model", "client_id", "name", "gpus", "local_rank")
_GPUS = re.compile(r"all|\d{1,2}(,\d{1,2}){0,15}")


@dataclass(frozen=True)
class ExportOptions:
    """The request's options about which cases and which gaze a training gets (not the family's)."""

    include_records: bool = False
    val_fraction: float = 0.2
    gaze_readers: str = "pooled"
    use_predicted_gaze: bool = False


def train_options(family: ModelFamily, request: dict) -> tuple[dict, ExportOptions]:
    """``(family options, export options)`` of a train request over the server's defaults.

    Raises:
        ValueError: an option the family does not have, or a value of the wrong type (names it)."""
    gpus = request.get("gpus", "all")
    if not isinstance(gpus, str) or not _GPUS.fullmatch(gpus):
        raise ValueError(f"gpus: expected \"all\" or GPU numbers like \"0,1\", got {gpus!r}")
    paths = sorted(k for k in request if k in family.path_options)
    if paths:
        raise ValueError(f"{paths[0]}: a path on the server is not accepted in a request (the server trains "
                         f"from its own models folder); set it with `gazelabel train {family.name}` instead")
    options = {**DEFAULTS[family.name], **{k: v for k, v in request.items() if k not in REQUEST_KEYS}}
    include_records = options.pop("include_records", False)
    val_fraction = options.pop("val_fraction", 0.2)
    gaze_readers = options.pop("gaze_readers", "pooled")
    use_predicted = options.pop("use_predicted_gaze", False)
    for name, value in (("include_records", include_records), ("use_predicted_gaze", use_predicted)):
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: must be a number in [0, 1), got {val_fraction!r}")
    if gaze_readers not in GAZE_MODES:
        raise ValueError(f"gaze_readers: must be one of {', '.join(GAZE_MODES)}, got {gaze_readers!r}")
    family.make_config(options)  # refuse unknown options and bad values now
    return options, ExportOptions(include_records, float(val_fraction), gaze_readers, use_predicted)


class FamilyTrainTask(TrainTask):
    """Retrain one :class:`~models.families.ModelFamily` from the datastore and publish it into ``models_dir``."""

    def __init__(self, family: ModelFamily, models_dir: str | Path, records: Records):
        super().__init__(f"Retrain the {family.name} on the final labels (gazelabel train {family.name})")
        self.family = family
        self.models_dir = Path(models_dir)
        self.records = records

    def config(self) -> dict[str, Any]:
        return {**DEFAULTS[self.family.name], **asdict(ExportOptions())}

    def server_paths(self) -> dict[str, str]:
        """The path options this family's training gets from the server's models folder (see SERVER_PATHS);
        NothingToTrain when a model it needs is not published yet."""
        from models.families import FAMILIES

        out = {}
        for option, name in SERVER_PATHS.get(self.family.name, {}).items():
            path = FAMILIES[name].path(self.models_dir)
            if path.exists():
                out[option] = str(path)
            elif name == "classifier":
                raise NothingToTrain(f"train {self.family.name}: needs the {name} model ({path.name}) in the "
                                     f"server's models folder; train {FAMILIES[name].task} first")
        return out

    @property
    def stats_path(self) -> Path:
        return self.models_dir / f"train_stats_{self.family.name}.json"

    def stats(self) -> dict[str, Any]:
        try:
            return finite(json.loads(self.stats_path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def __call__(self, request: dict, datastore) -> dict[str, Any]:
        start = time.time()
        family = self.family
        options, export = train_options(family, request)
        options.update(self.server_paths())
        cases = export_cases(datastore, self.records, export.include_records)
        if not cases:
            raise NothingToTrain(f"train {family.name}: no final labels yet; save labels with PUT /datastore/label?tag=final")
        images = len(cases)
        cases, gaze = training_gaze(cases, export.gaze_readers, family=family.name, use_predicted=export.use_predicted_gaze)
        logger.info(f"train {family.name}: {images} images; gaze recorded {gaze['recorded']}, only predicted "
                    f"{gaze['predicted']} ({'used' if export.use_predicted_gaze else 'not used'}), none {gaze['none']}; "
                    f"gaze_readers={export.gaze_readers}, {len(cases)} training cases")
        synthetic = self.records.synthetic() or any(c.image.synthetic for c in cases)
        work = self.models_dir / ".training"
        work.mkdir(parents=True, exist_ok=True)
        clean_stale_training(work)
        with tempfile.TemporaryDirectory(dir=work, prefix=f"{family.name}-{os.getpid()}-") as tmp:
            data = write_training_store(cases, Path(tmp) / "data", synthetic, export.val_fraction)
            out = Path(tmp) / "out" / family.artifact
            out.parent.mkdir()
            result = family.train(CaseStore(data).source(), out, family.make_config(options), log=logger.info)
            publish(out, family.path(self.models_dir))
        stats = {
            "family": family.name,
            "total_time": f"{time.time() - start:.1f}s",
            "seconds": time.time() - start,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "cases": images,
            "training_cases": len(cases),
            "gaze": {**gaze, "gaze_readers": export.gaze_readers, "use_predicted_gaze": export.use_predicted_gaze},
            "synthetic": synthetic,
            "model": stamp_text(family.stamp(self.models_dir)),
            "metrics": finite(result.metrics),
            "best_metric": finite(result.metrics.get(result.key_metric, 0.0)),
            "key_metric": result.key_metric,
        }
        atomic_json(self.stats_path, finite(stats))
        return stats
