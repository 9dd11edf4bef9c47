"""First-run setup: the embedded SYNTHETIC sample store and quickly trained default models.

Used by ``gazelabel serve`` (no ``--studies``) and by the test suite. Training goes through each family's
own trainer (:mod:`models.families`), as ``gazelabel train ...`` does, so the defaults are ordinary models,
just small.
"""

from __future__ import annotations

from pathlib import Path

from models.families import FAMILIES

# Per profile: phantom images, then the options of each family (fields of its config sections).
PROFILES = {
    # ~1 minute on 2 CPU cores: for tests that need *a* model, not a good one.
    "tiny": {
        "images": 24,
        "classifier": {"epochs": 2, "size": 128, "width": 8},
        "scanpath": {"epochs": 1, "size": 128, "slots": 24},
        "report": {"lm_epochs": 1, "g2r_epochs": 1},
        "vqa": {"epochs": 2, "d_model": 32, "ff": 64, "gaze_samples": 1},
    },
    # a few minutes on 2 CPU cores: the defaults `gazelabel serve` starts with.
    "quick": {
        "images": 200,
        "classifier": {"epochs": 12, "size": 128},
        "scanpath": {"epochs": 12, "size": 128},
        "report": {"g2r_epochs": 4, "lm_epochs": 12},  # fewer LM epochs: most sentences fall back
        "vqa": {"epochs": 10},
    },
}


def ensure_sample_store(root: str | Path, n: int = 120, seed: int = 0, progress: bool = True) -> Path:
    """Generate the SYNTHETIC phantom store at ``root`` unless one is already there."""
    from models.datasets.phantom import generate_store

    root = Path(root)
    if (root / "dataset.json").exists():
        return root
    generate_store(root, n=n, seed=seed, progress=progress)
    return root


def train_default_models(store: str | Path, models_dir: str | Path, profile: str = "quick", *,
                         only_missing: bool = True, device: str = "auto", progress: bool = True) -> dict[str, Path]:
    """Train classifier, scanpath, report and vqa models on ``store`` into ``models_dir`` (the layout
    :func:`models.pipeline.Pipeline.from_dir` reads; the vqa model reads the classifier and scanpath trained
    before it). Returns name -> path of each model."""
    from models.datasets.store import CaseStore

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    source = CaseStore(store).source()
    out = {}
    for name, family in FAMILIES.items():
        target = family.path(models_dir)
        if not (family.exists(models_dir) and only_missing):
            if progress:
                print(f"[gazelabel] training the default {name} model ({profile} profile) -> {target}", flush=True)
            config = family.make_config({**PROFILES[profile][name], "device": device})
            family.train(source, target, config, log=print if progress else None)
        out[name] = target
    return out
