"""Active learning, measured: does the uncertainty strategy beat random sampling, with and without gaze?

Simulated annotation rounds on the SYNTHETIC phantom against a live GazeLabel server (loopback only), one
server per (seed, strategy, arm):

1. a pool of ``--pool`` phantom images is the server's store; its records hold the images only (no findings,
   no gaze), so everything a training learns comes from the labels the simulated annotator saves;
2. round 0 labels ``--start`` images chosen at random; every later round asks the server's strategy
   (``POST /activelearning/<strategy>``: ``uncertainty``, ``random`` or ``diverse``) for the next image
   ``--step`` times, labelling each one before asking again, as an annotator does;
3. a label is the phantom's ground truth findings and boxes (the simulated annotator is always right) and,
   in the ``captured`` arm, the annotator's gaze: the phantom's simulated reader's fixations are turned into
   raw samples on a 1920x1080 screen (the image letterboxed) at ``--rate`` Hz, streamed through a real Lab
   Streaming Layer outlet on loopback, received by the extension's capture (``GazeLabelLib.capture``:
   inlet -> view mapping -> fixation detection) and saved with the label as ``readers[<annotator id>]``,
   exactly as the Slicer extension saves them; the ``none`` arm saves no gaze;
4. after each round ``POST /train/gaze_classifier`` retrains from the labels (the train stats say how many
   cases carried recorded gaze), and the published classifier is scored on ``--test`` held-out phantom
   images: macro AUC over the findings present in the test set.

Output: learning curves (macro AUC per round, mean and 95% interval over seeds: mean ± t·sd/√n) in a JSON and
a PNG. All data are SYNTHETIC; the simulated readers look where the phantom's lesions are (see issue on
honest measurement), so the "captured" arm measures the capture path and gaze supervision on phantom gaze,
not the value of real radiologists' gaze.

    python benchmarks/active_learning.py            # defaults below; about 40 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "slicer_extension" / "GazeLabel"))

from monailabel_app.launcher import ServerProcess, ServerSettings, free_port  # noqa: E402

STRATEGIES = ("uncertainty", "random", "diverse")
ARMS = ("none", "captured")
SCREEN = (1920, 1080)
ANNOTATOR = "annotator-benchmark"


# ------------------------------------------------------------------------------------------------ data
def make_stores(work: Path, pool: int, test: int, seed: int, size: int):
    """``(server store with bare records, ground-truth cases by id, test cases)`` for one seed (SYNTHETIC)."""
    from models.datasets.phantom import generate_store
    from models.datasets.store import CaseStore
    from models.schema import Case, save_case

    full = work / f"phantom-{seed}"
    if not full.exists():
        generate_store(full, n=pool + test, seed=1000 + seed, size=size, readers=1, splits=(1.0, 0.0, 0.0), progress=False)
    cases = CaseStore(full).source().cases
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cases))
    pool_cases = [cases[i] for i in order[:pool]]
    test_cases = [cases[i] for i in order[pool:pool + test]]
    return full, {c.id: c for c in pool_cases}, test_cases


def bare_store(full: Path, truth: dict, dest: Path) -> Path:
    """A store of the pool's images whose records say nothing but the image (the annotator labels them)."""
    from models.schema import Case, save_case

    (dest / "cases").mkdir(parents=True)
    for cid, case in truth.items():
        image = Path(case.image.path)
        shutil.copy(image, dest / image.name)
        save_case(Case(id=cid, image=type(case.image)(image.name, case.image.width, case.image.height,
                                                      synthetic=True)), dest / "cases" / f"{cid}.json")
    manifest = json.loads((full / "dataset.json").read_text())
    (dest / "dataset.json").write_text(json.dumps({"name": "phantom-al", "synthetic": True,
                                                   "splits": {"train": sorted(truth), "val": [], "test": []},
                                                   "generator": manifest.get("generator")}))
    return dest


# ------------------------------------------------------------------------------------------------ gaze capture
def captured_reader(case, rate: float, rng) -> tuple[list[dict], dict]:
    """The simulated reader's fixations of ``case`` through the real capture path (see module docstring):
    raw screen samples -> LSL outlet (loopback) -> GazeLabelLib.capture -> fixations in image pixels."""
    from GazeLabelLib.simulated_tracker import simulate_reading

    return simulate_reading(case.fixations, (case.image.width, case.image.height), SCREEN, rate=rate, rng=rng)


# ------------------------------------------------------------------------------------------------ one run
def label_of(truth, gaze: list[dict] | None) -> dict:
    case = {"id": truth.id, "image": {"path": "", "width": truth.image.width, "height": truth.image.height,
                                      "synthetic": True},
            "findings": dict(truth.findings), "boxes": [vars(b) for b in truth.boxes]}
    if gaze:
        case["readers"] = {ANNOTATOR: gaze}
    return case


def save_label(session: requests.Session, url: str, image_id: str, case: dict) -> None:
    r = session.put(f"{url}/datastore/label", params={"image": image_id, "tag": "final"},
                    files={"label": (f"{image_id}.json", json.dumps(case), "application/json")}, data={"params": "{}"})
    r.raise_for_status()


def train(session, url: str, options: dict, timeout: float = 900.0) -> dict:
    r = session.post(f"{url}/train/gaze_classifier", json=options)
    r.raise_for_status()
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(2.0)
        status = session.get(f"{url}/train/").json()
        if status.get("status") in ("DONE", "ERROR"):
            if status["status"] == "ERROR":
                raise RuntimeError(f"training failed: {status.get('details')}")
            return session.get(f"{url}/info/").json()["train_stats"]["gaze_classifier"]
    raise TimeoutError("training did not finish")


def macro_auc(models_dir: Path, test_cases) -> float:
    from models.classifier.predict import ClassifierPredictor
    from models.imaging import read_image
    from models.metrics.classification import roc_auc
    from models.vocab import FINDINGS

    predictor = ClassifierPredictor.from_checkpoint(models_dir / "classifier.pt")
    scores = {f: [] for f in FINDINGS}
    labels = {f: [] for f in FINDINGS}
    for case in test_cases:
        result = predictor(read_image(case.image.path))
        for f in FINDINGS:
            if case.findings.get(f) in (0, 1):
                scores[f].append(result.scores[f])
                labels[f].append(case.findings[f])
    aucs = [roc_auc(np.array(labels[f]), np.array(scores[f])) for f in FINDINGS
            if len(set(labels[f])) == 2]
    return float(np.nanmean(aucs))


def run(args, seed: int, strategy: str, arm: str, work: Path, truth: dict, full: Path, test_cases, captures: dict) -> dict:
    run_dir = work / f"run-{seed}-{strategy}-{arm}"
    shutil.rmtree(run_dir, ignore_errors=True)
    store = bare_store(full, truth, run_dir / "store")
    models_dir = run_dir / "models"
    models_dir.mkdir()
    server = ServerProcess(ServerSettings(str(store), models_dir, run_dir / "server", port=free_port(),
                                          infer_workers=1)).start(timeout=300)
    session, url = requests.Session(), server.settings.url
    rng = np.random.default_rng(seed)
    labelled: list[str] = []
    curve, gaze_counts, seconds = [], [], []
    options = {"epochs": args.epochs, "size": args.size, "batch_size": 8, "val_fraction": 0.0}
    try:
        for round_ in range(args.rounds + 1):
            start = time.time()
            if round_ == 0:
                picks = [str(i) for i in rng.choice(sorted(truth), args.start, replace=False)]
            else:
                picks = []
                for _ in range(args.step):
                    params = {"mc_samples": args.mc_samples, "max_compute": len(truth), "seed": seed}
                    r = session.post(f"{url}/activelearning/{strategy}", json=params)
                    r.raise_for_status()
                    image_id = r.json()["id"]
                    picks.append(image_id)
                    save_label(session, url, image_id, label_of(truth[image_id], captures.get(image_id) if arm == "captured" else None))
                    labelled.append(image_id)
            if round_ == 0:
                for image_id in picks:
                    save_label(session, url, image_id, label_of(truth[image_id], captures.get(image_id) if arm == "captured" else None))
                    labelled.append(image_id)
            stats = train(session, url, options)
            auc = macro_auc(models_dir, test_cases)
            curve.append(auc)
            gaze_counts.append(stats.get("gaze", {}))
            seconds.append(time.time() - start)
            print(f"seed {seed} {strategy:11s} {arm:8s} round {round_}: {len(labelled):3d} labels, macro AUC {auc:.3f} "
                  f"(gaze {stats.get('gaze', {}).get('recorded', 0)} recorded) {seconds[-1]:.0f} s", flush=True)
    finally:
        server.stop()
    return {"seed": seed, "strategy": strategy, "arm": arm, "labels": [args.start + k * args.step for k in range(args.rounds + 1)],
            "macro_auc": curve, "gaze": gaze_counts, "seconds": seconds}


def interval(values: list[float]) -> dict:
    from scipy import stats

    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return {"mean": float(a.mean()), "low": float("nan"), "high": float("nan"), "n": int(len(a))}
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))
    return {"mean": float(a.mean()), "low": float(a.mean() - half), "high": float(a.mean() + half), "n": int(len(a))}


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ARMS), figsize=(11, 4), sharey=True)
    for ax, arm in zip(np.atleast_1d(axes), ARMS):
        for strategy, curve in summary.get(arm, {}).items():
            x = curve["labels"]
            m = [p["mean"] for p in curve["macro_auc"]]
            lo = [p["low"] for p in curve["macro_auc"]]
            hi = [p["high"] for p in curve["macro_auc"]]
            ax.plot(x, m, marker="o", label=strategy)
            ax.fill_between(x, lo, hi, alpha=0.2)
        ax.set_title(f"gaze: {arm}")
        ax.set_xlabel("labelled images")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("test macro AUC (mean, 95% CI over seeds)")
    np.atleast_1d(axes)[0].legend()
    fig.suptitle("Active learning on the SYNTHETIC phantom (GazeLabel server, tiny classifier)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", type=int, default=120)
    p.add_argument("--test", type=int, default=80)
    p.add_argument("--start", type=int, default=10)
    p.add_argument("--step", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5, help="rounds after the first (6 trainings with the default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--size", type=int, default=96, help="classifier input size")
    p.add_argument("--image-size", type=int, default=256, help="phantom image size")
    p.add_argument("--mc-samples", type=int, default=4)
    p.add_argument("--rate", type=float, default=120.0, help="simulated tracker rate (Hz)")
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "active_learning.json"))
    p.add_argument("--png", default=str(ROOT / "benchmarks" / "results" / "active_learning.png"))
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    if "captured" in args.arms:
        from GazeLabelLib.simulated_tracker import loopback_lsl

        loopback_lsl()  # before pylsl loads: nothing leaves 127.0.0.1
    work = Path(args.work or tempfile.mkdtemp(prefix="gazelabel-al-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    runs = []
    capture_stats = []
    for seed in args.seeds:
        full, truth, test_cases = make_stores(work, args.pool, args.test, seed, args.image_size)
        captures = {}
        if "captured" in args.arms:
            rng = np.random.default_rng(seed)
            for cid, case in truth.items():
                fixations, info = captured_reader(case, args.rate, rng)
                captures[cid] = fixations
                capture_stats.append(info)
        for arm in args.arms:
            for strategy in args.strategies:
                runs.append(run(args, seed, strategy, arm, work, truth, full, test_cases, captures))
    summary: dict = {}
    for arm in args.arms:
        for strategy in args.strategies:
            mine = [r for r in runs if r["arm"] == arm and r["strategy"] == strategy]
            curves = np.array([r["macro_auc"] for r in mine])
            summary.setdefault(arm, {})[strategy] = {
                "labels": mine[0]["labels"],
                "macro_auc": [interval(list(curves[:, k])) for k in range(curves.shape[1])],
                "area_under_curve": interval(list(curves.mean(axis=1))),
            }
    out = {
        "synthetic": True,
        "what": "active learning on the SYNTHETIC phantom through a live GazeLabel server: test macro AUC per round",
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "png", "work")},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "capture": {"readings": len(capture_stats),
                    "dropped_samples": int(sum(sum((c.get("dropped") or {}).values()) for c in capture_stats)),
                    "samples": int(sum(c.get("samples", 0) for c in capture_stats))},
        "summary": summary,
        "runs": runs,
        "seconds": time.time() - started,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    plot(summary, Path(args.png))
    for arm in args.arms:
        for strategy, s in summary[arm].items():
            auc = s["area_under_curve"]
            print(f"{arm:8s} {strategy:11s} mean AUC over rounds {auc['mean']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}]")
    print(f"wrote {args.json} and {args.png} ({out['seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
