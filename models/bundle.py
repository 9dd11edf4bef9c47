"""MONAI bundles of GazeLabel models: ``gazelabel export-bundle MODEL --out DIR`` and what the bundle runs.

Layout (the MONAI Bundle specification's)::

    DIR/configs/metadata.json         mandatory keys, network_data_format, SYNTHETIC flag of the training data
    DIR/configs/inference.json        `python -m monai.bundle run --config_file configs/inference.json --image X`
    DIR/configs/metadata_schema.json  the specification's mandatory keys as a JSON schema (see below)
    DIR/models/model.pt               the family's checkpoint (weights_only-loadable; report: with models/lm/)
    DIR/models/<companion>            the models the family's answer needs (report: the classifier, and the
                                      scanpath model when there is one), taken from beside MODEL
    DIR/docs/README.md                what it is, how to run it, where the weights came from

A bundle answers as the server's infer task of its family does: ``inference.json`` loads the bundle's
models and calls :meth:`models.pipeline.Pipeline.run` (the one place models are composed) with that task's
families and options, writing ``<output_dir>/<image id>.json``, the same Case ``gazelabel predict --task
<task> --json`` writes. So the scores are the pipeline's, not a re-implementation's.

Verification offline: ``metadata.json`` names MONAI's published schema URL in ``schema``, which
``verify_metadata`` downloads; this machine cannot. ``metadata_schema.json`` is GazeLabel's JSON schema of
the keys the specification lists as mandatory (and of each tensor specifier's keys), so
``python -m monai.bundle verify_metadata --meta_file configs/metadata.json --filepath
configs/metadata_schema.json`` checks them here (an existing ``--filepath`` is not downloaded again); where
the network reaches GitHub, pass another ``--filepath`` to check against MONAI's own schema.

The bundle needs GazeLabel installed (``inference.json`` imports ``models``); nothing else is fetched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from models.checkpoint import CheckpointError, load_checkpoint
from models.families import FAMILIES, ModelFamily
from models.vocab import FINDINGS

MONAI_SCHEMA_URL = ("https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
                    "meta_schema_20240725.json")
TASK_OF = {"classifier": "gaze_classifier", "scanpath": "scanpath", "report": "report", "vqa": "vqa"}
PRIMARY = "model.pt"
TENSOR_KEYS = ("type", "format", "modality", "num_channels", "spatial_shape", "dtype", "value_range",
               "is_patch_data", "channel_def")
# The specification's mandatory keys; its "optional_packages_version" is "required_packages_version" in the
# MONAI that reads bundles now (monai.bundle renames the old key when it loads one).
MANDATORY = ("version", "monai_version", "pytorch_version", "numpy_version", "required_packages_version", "task",
             "description", "authors", "copyright", "network_data_format")


class BundleError(ValueError):
    """A model that cannot be exported (the message names the file and what is missing)."""


def _family_of(model: Path) -> ModelFamily:
    for family in FAMILIES.values():
        ckpt = family.checkpoint(model) if model.is_dir() else model
        if not ckpt.is_file():
            continue
        try:
            load_checkpoint(ckpt, family.kind)
        except CheckpointError:
            continue
        return family
    raise BundleError(f"{model}: not a GazeLabel model (expected classifier.pt, scanpath.pt, vqa.pt or a report/ "
                      "folder written by `gazelabel train`)")


def metadata_schema() -> dict:
    """JSON schema of the MONAI Bundle specification's mandatory ``metadata.json`` keys (module docstring)."""
    tensor = {"type": "object", "required": list(TENSOR_KEYS),
              "properties": {"type": {"type": "string"}, "format": {"type": "string"}, "modality": {"type": "string"},
                             "num_channels": {"type": "integer", "minimum": 0}, "spatial_shape": {"type": "array"},
                             "dtype": {"type": "string"}, "value_range": {"type": "array"},
                             "is_patch_data": {"type": "boolean"}, "channel_def": {"type": "object"}}}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "MONAI bundle metadata: the mandatory keys of the MONAI Bundle specification (GazeLabel's schema)",
        "type": "object",
        "required": ["schema", *MANDATORY],
        "properties": {
            "schema": {"type": "string"},
            **{k: {"type": "string", "minLength": 1} for k in ("version", "monai_version", "pytorch_version",
                                                               "numpy_version", "task", "description", "authors",
                                                               "copyright")},
            "required_packages_version": {"type": "object", "additionalProperties": {"type": "string"}},
            "network_data_format": {"type": "object", "required": ["inputs", "outputs"],
                                    "properties": {"inputs": {"type": "object", "minProperties": 1,
                                                              "additionalProperties": tensor},
                                                   "outputs": {"type": "object", "minProperties": 1,
                                                               "additionalProperties": tensor}}},
        },
    }


def _image_spec(size: int | str) -> dict:
    return {"type": "image", "format": "magnitude", "modality": "DX", "num_channels": 1, "spatial_shape": [size, size],
            "dtype": "float32", "value_range": [0, 1], "is_patch_data": False,
            "channel_def": {"0": "chest radiograph, letterboxed to a square and scaled to [0, 1] (any size, "
                                 "DICOM, PNG, JPG or NIfTI is read and prepared by the bundle)"}}


def _outputs(family: str, info: dict) -> dict:
    if family == "classifier":
        return {"pred": {"type": "probabilities", "format": "classes", "modality": "n/a", "num_channels": len(FINDINGS),
                         "spatial_shape": [], "dtype": "float32", "value_range": [0, 1], "is_patch_data": False,
                         "channel_def": {str(i): f for i, f in enumerate(FINDINGS)}}}
    if family == "scanpath":
        return {"fixations": {"type": "tuples", "format": "points", "modality": "n/a", "num_channels": 3,
                              "spatial_shape": ["*"], "dtype": "float32", "value_range": [],
                              "is_patch_data": False,
                              "channel_def": {"0": "x (original pixels)", "1": "y (original pixels)",
                                              "2": "duration (seconds)"}}}
    text = "report (findings, impression) with evidence links" if family == "report" else "answer with evidence"
    return {"text": {"type": "series", "format": "sequence", "modality": "n/a", "num_channels": 1,
                     "spatial_shape": ["*"], "dtype": "str", "value_range": [], "is_patch_data": False,
                     "channel_def": {"0": text}}}


def _versions() -> dict:
    import numpy
    import torch

    import monai

    return {"monai_version": monai.__version__, "pytorch_version": torch.__version__.split("+")[0],
            "numpy_version": numpy.__version__}


def _gazelabel_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gazelabel")
    except PackageNotFoundError:
        return "0.0.0"


def export_bundle(model: str | Path, out: str | Path, *, version: str = "0.1.0") -> Path:
    """Write the MONAI bundle of ``model`` (a family checkpoint file or the report folder) into ``out``
    (module docstring); returns ``out``. Companion models come from ``model``'s folder."""
    model, out = Path(model), Path(out)
    if not model.exists():
        raise BundleError(f"{model}: no such model")
    family = _family_of(model)
    task_name = TASK_OF[family.name]
    from models.pipeline import TASKS

    task = TASKS[task_name]
    home = model.parent  # companions sit beside the model, as `gazelabel train vqa` finds them
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out}: not empty; choose a new folder for the bundle")
    (out / "configs").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    (out / "docs").mkdir(exist_ok=True)

    primary_ckpt = family.checkpoint(model) if model.is_dir() else model
    shutil.copy2(primary_ckpt, out / "models" / PRIMARY)
    if family.checkpoint_name:  # the report: its LM folder beside the checkpoint
        ckpt = load_checkpoint(primary_ckpt, family.kind)
        lm_dir = primary_ckpt.parent / ckpt["config"].get("lm_dir", "lm")
        shutil.copytree(lm_dir, out / "models" / "lm")
    companions = {}
    for name in task.families:
        if name == family.name:
            continue
        other = FAMILIES[name]
        if other.exists(home):
            shutil.copy2(other.checkpoint(home), out / "models" / other.artifact)
            companions[name] = other.artifact
        elif name in task.required_families:
            raise BundleError(f"{model}: the {family.name} bundle needs the {name} model beside it "
                              f"({other.checkpoint(home)} is missing)")

    ckpt = load_checkpoint(out / "models" / PRIMARY, family.kind)
    info = ckpt.get("info") or {}
    synthetic = bool(info.get("synthetic", False))
    size = ((ckpt.get("config") or {}).get("model") or {}).get("size", "*")
    meta = {
        "schema": MONAI_SCHEMA_URL,
        "version": version,
        "changelog": {version: "exported by gazelabel export-bundle"},
        **_versions(),
        "required_packages_version": {"gazelabel": _gazelabel_version()},
        "name": f"gazelabel_{family.name}",
        "task": family.description,
        "description": (f"GazeLabel {family.name} model ({task_name} task: {', '.join(task.families)}) for chest "
                        "radiographs; runs models.pipeline.Pipeline.run on one image and writes its Case JSON."),
        "authors": "GazeLabel",
        "copyright": "Copyright (c) GazeLabel contributors",
        "intended_use": "Research and annotation support; not for diagnostic use.",
        "data_source": str(info.get("dataset") or "unknown"),
        "synthetic": synthetic,
        "data_type": "SYNTHETIC phantom radiographs" if synthetic else "chest radiographs",
        "gazelabel": {"family": family.name, "task": task_name, "families": list(task.families),
                      "models": {"primary": PRIMARY, **companions}, "metrics": ckpt.get("metrics") or {}},
        "network_data_format": {"inputs": {"image": _image_spec(size)}, "outputs": _outputs(family.name, info)},
    }
    (out / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2, default=str))
    (out / "configs" / "metadata_schema.json").write_text(json.dumps(metadata_schema(), indent=2))
    inference = {
        "imports": ["$import models.bundle as gazelabel_bundle"],
        "bundle_root": ".",
        "image": "",
        "question": "",
        "device": "cpu",
        "output_dir": "$@bundle_root + '/eval'",
        "pipeline": "$gazelabel_bundle.load_pipeline(@bundle_root, @device)",
        "run": ["$gazelabel_bundle.run_bundle(@pipeline, @bundle_root, @image, @output_dir, @question)"],
    }
    (out / "configs" / "inference.json").write_text(json.dumps(inference, indent=2))
    question = " --question 'Is there a pleural effusion?'" if task.needs_question else ""
    (out / "docs" / "README.md").write_text(
        f"# GazeLabel {family.name} bundle\n\n"
        f"{family.description}.{' Trained on SYNTHETIC data: not for any clinical use.' if synthetic else ''}\n\n"
        "Run it on one image (DICOM, PNG, JPG or NIfTI; GazeLabel must be installed):\n\n"
        f"    python -m monai.bundle run --config_file configs/inference.json --meta_file configs/metadata.json "
        f"--image IMAGE --output_dir OUT{question}\n\n"
        "It writes `OUT/<image id>.json`, the Case that `gazelabel predict --task "
        f"{task_name} --json` writes. Check the metadata offline with\n\n"
        "    python -m monai.bundle verify_metadata --meta_file configs/metadata.json --filepath "
        "configs/metadata_schema.json\n\n"
        "(the specification's mandatory keys; pass another --filepath where GitHub is reachable to check "
        "against MONAI's own schema).\n")
    return out


def _meta(bundle_root: str | Path) -> dict:
    path = Path(bundle_root) / "configs" / "metadata.json"
    try:
        meta = json.loads(path.read_text())
        return meta["gazelabel"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise BundleError(f"{path}: not a GazeLabel bundle's metadata ({type(e).__name__}: {e})") from None


def load_pipeline(bundle_root: str | Path, device: str = "cpu"):
    """The bundle's models as a :class:`~models.pipeline.Pipeline` (each by its family's own loader)."""
    from models.pipeline import Pipeline

    meta, models = _meta(bundle_root), Path(bundle_root) / "models"
    predictors = {meta["family"]: FAMILIES[meta["family"]].load(models / PRIMARY, device=device)}
    for name, artifact in meta["models"].items():
        if name != "primary":
            predictors[name] = FAMILIES[name].load(models / artifact, device=device)
    return Pipeline.from_predictors(**predictors)


def run_bundle(pipeline, bundle_root: str | Path, image: str | Path, output_dir: str | Path,
               question: str = "") -> Path:
    """Answer one image as the bundle's task does and write ``<output_dir>/<image id>.json``."""
    from models.files import atomic_json
    from models.imaging import read_image
    from models.pipeline import TASKS

    if not image:
        raise BundleError("no image: pass --image PATH to `python -m monai.bundle run`")
    meta = _meta(bundle_root)
    task = TASKS[meta["task"]]
    options = task.defaults if not task.needs_question else replace(task.defaults, question=question or None)
    if task.needs_question and not question:
        raise BundleError("this bundle answers a question: pass --question \"...\"")
    result = pipeline.run(read_image(image), families=task.families, options=options)
    out = Path(output_dir) / f"{result.case.id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_json(out, result.case.to_dict())
    print(f"wrote {out}")
    return out


__all__ = ["BundleError", "MONAI_SCHEMA_URL", "export_bundle", "load_pipeline", "metadata_schema", "run_bundle"]
