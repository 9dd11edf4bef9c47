"""Latency of the whole answer (``Pipeline.run``: findings, heatmap, boxes, scanpath, report with evidence)
on CPU, against a bare torchvision DenseNet-121 forward (CheXNet's backbone) at 224 and 512 px.

In one process, for each torch thread count (``--threads``, default 1 and 2): every test-split image of the
SYNTHETIC phantom store (512 px) is read and run through the pipeline, and each run is followed by one
DenseNet-121 forward at 224 and one at 512 px (random init, 14 outputs, 3-channel input), so that load from
other processes hits all three alike; ``--repeats`` rounds over the images. Per-step medians: read (the PNG
from disk), classifier, scanpath, report (``Pipeline.run``'s own timings), the whole answer (read + run),
as wall time and as process CPU time (robust on a shared machine). The JSON records the thread count, the
load average before and after, the models' sizes and the report's sentence counts (what its cost scales
with), and ``accuracy``: the CE-F1 of the timed reports against the store's references (both conventions)
and each model's validation metric from its checkpoint, so that a latency is never read without what the
answers are worth.

``--server``: the same images through a live server's ``POST /infer/pipeline`` (loopback, started here;
the server runs each request with 1 torch thread), each request alternating with the same image answered in
this process at 1 thread; p50 of both.

Models: ``--models-dir``, else the ``quick`` default models that ``gazelabel serve`` starts with, trained once
into ``--work`` (a few minutes). Goal (issue 21): whole answer <= 1.0x DenseNet-121@224 on 1 thread, report
<= 0.5x.

    python benchmarks/pipeline_latency.py --server --json benchmarks/results/pipeline_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_WHOLE, GOAL_REPORT = 1.0, 0.5
STEPS = ("read", "classifier", "scanpath", "report")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _median(values) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def prepare(work: Path, models_dir: str | None, store: str | None = None) -> tuple[Path, Path]:
    from models.quickstart import PROFILES, ensure_sample_store, train_default_models

    store = Path(store) if store else ensure_sample_store(work / "store", n=PROFILES["quick"]["images"], seed=0,
                                                          progress=True)
    if models_dir:
        return store, Path(models_dir)
    models = work / "models_quick"
    train_default_models(store, models, profile="quick", device="cpu")
    return store, models


def test_images(store: Path, n: int) -> list[Path]:
    split = json.loads((store / "dataset.json").read_text())["splits"]["test"]
    return [store / f"{case_id}.png" for case_id in split[:n]]


def _blas_limit(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not installed: numpy's BLAS keeps its own thread count (recorded in the JSON)
        return None
    return threadpool_limits(limits=threads)


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def bench_threads(pipeline, images: list[Path], threads: int, repeats: int) -> dict:
    import torch
    import torchvision

    from models.imaging import read_image

    torch.set_num_threads(threads)
    blas = _blas_limit(threads)  # numpy's BLAS (the fixation heatmap's product) keeps to the same count
    torch.manual_seed(0)
    densenet = torchvision.models.densenet121(weights=None, num_classes=14).eval()
    inputs = {224: torch.rand(1, 3, 224, 224), 512: torch.rand(1, 3, 512, 512)}
    wall = {k: [] for k in (*STEPS, "whole", "densenet121_224", "densenet121_512")}
    cpu = {k: [] for k in ("whole", "densenet121_224", "densenet121_512")}
    units, lm_units = [], []
    reports: dict[str, str] = {}  # image id -> the report drafted (the same every round: fixed seeds)
    load_before = os.getloadavg()
    with torch.inference_mode():
        for size in inputs:  # warm-up: first calls allocate
            densenet(inputs[size])
        pipeline.run(read_image(images[0]))
        for _ in range(repeats):
            for path in images:
                image, t_read, c_read = _timed(lambda: read_image(path))
                result, t_run, c_run = _timed(lambda: pipeline.run(image))
                wall["read"].append(t_read)
                for step in STEPS[1:]:
                    wall[step].append(result.timings.get(step, 0.0))
                wall["whole"].append(t_read + t_run)
                cpu["whole"].append(c_read + c_run)
                report = result.case.report
                reports[path.stem] = f"{report.findings} {report.impression}".strip() if report else ""
                writer = result.case.prediction.report_writer or {}
                units.append(writer.get("lm_sentences", 0) + writer.get("template_sentences", 0))
                lm_units.append(writer.get("lm_sentences", 0))
                for size, x in inputs.items():
                    _, t, c = _timed(lambda: densenet(x))
                    wall[f"densenet121_{size}"].append(t)
                    cpu[f"densenet121_{size}"].append(c)
    if blas is not None:
        blas.restore_original_limits()
    med = {k: _median(v) * 1000 for k, v in wall.items()}
    med_cpu = {k: _median(v) * 1000 for k, v in cpu.items()}
    ref = med["densenet121_224"]
    out = {
        "threads": threads, "blas_threads_limited": blas is not None, "runs": len(wall["whole"]), "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "median_ms": med, "median_cpu_ms": med_cpu,
        "p95_whole_ms": float(np.percentile(wall["whole"], 95) * 1000),
        "ratio_to_densenet121_224": {k: med[k] / ref for k in (*STEPS, "whole")},
        "ratio_to_densenet121_512": med["whole"] / med["densenet121_512"],
        "cpu_ratio_whole_to_densenet121_224": med_cpu["whole"] / med_cpu["densenet121_224"],
        "report_sentences_median": _median(units), "report_lm_sentences_median": _median(lm_units),
        "reports": reports,
    }
    r = out["ratio_to_densenet121_224"]
    print(f"{threads} thread(s), {out['runs']} runs: " + "  ".join(f"{k} {med[k]:.1f} ms" for k in (*STEPS, "whole"))
          + f"  | DenseNet-121 224: {ref:.1f} ms, 512: {med['densenet121_512']:.1f} ms")
    print(f"   whole / DenseNet@224 = {r['whole']:.2f}x (goal <= {GOAL_WHOLE}), report {r['report']:.2f}x "
          f"(goal <= {GOAL_REPORT}); CPU-time ratio {out['cpu_ratio_whole_to_densenet121_224']:.2f}x; "
          f"load {load_before[0]:.2f} -> {out['load_average_after'][0]:.2f}")
    return out


def paired_accuracy(store: Path, reports: dict[str, str], pipeline) -> dict:
    """What the timed answers are worth, on the same images: CE-F1 of the drafted reports against the
    store's reference reports (our labeler, both conventions, named), and each model's validation metric as
    its checkpoint recorded it. Printed next to the latency so that a speed-up is never read without it."""
    from models.datasets.store import CaseStore
    from models.metrics.report import clinical_efficacy_from_text

    cases = CaseStore(store)
    ids = [i for i in reports if cases.case(i).report is not None]
    refs = [f"{cases.case(i).report.findings} {cases.case(i).report.impression}".strip() for i in ids]
    ce = clinical_efficacy_from_text(refs, [reports[i] for i in ids]) if ids else {}
    validation = {}
    for family, predictor in (("classifier", pipeline.classifier), ("scanpath", pipeline.scanpath),
                              ("report", pipeline.report)):
        metrics = (getattr(predictor, "info", None) or {}).get("metrics") or {}
        validation[family] = {k: float(v) for k, v in metrics.items()
                              if isinstance(v, (int, float)) and ("val" in k or "auc" in k)}
    return {"images": len(ids), "labeler": "GazeLabel medspaCy CheXpert-14 labeler (not CheXbert)",
            "ce_f1_micro14_positive_only": ce.get("ce_f1_micro14_positive_only"),
            "ce_f1_micro5_uncertain_positive": ce.get("ce_f1_micro5_uncertain_positive"),
            "validation_from_checkpoints": validation,
            "note": "SYNTHETIC phantom; CE-F1 over the timed images only (few: wide uncertainty)"}


def bench_server(pipeline, store: Path, models: Path, work: Path, images: list[Path], repeats: int) -> dict:
    """``POST /infer/pipeline`` p50 on a live server, each request alternating with the same image answered
    in this process (read + run, 1 torch thread), so that both see the same machine load."""
    import requests
    import torch

    from models.imaging import read_image
    from monailabel_app.launcher import ServerProcess, ServerSettings, free_port

    torch.set_num_threads(1)
    settings = ServerSettings(studies=str(store), models_dir=models, work_dir=work / "server", port=free_port(),
                              infer_workers=1)
    remote, local = [], []
    with ServerProcess(settings) as server:
        session = requests.Session()

        def infer(case_id: str) -> float:
            start = time.perf_counter()
            r = session.post(f"{server.url}/infer/pipeline?image={case_id}&output=json", headers=server.headers,
                             data={"params": "{}"}, timeout=600)
            r.raise_for_status()
            return time.perf_counter() - start

        infer(images[0].stem)  # model load
        for _ in range(repeats):
            for path in images:
                remote.append(infer(path.stem))
                _, wall, _ = _timed(lambda: pipeline.run(read_image(path)))
                local.append(wall)
    return {"runs": len(remote), "p50_ms": _median(remote) * 1000, "p95_ms": float(np.percentile(remote, 95) * 1000),
            "in_process_alternating_p50_ms": _median(local) * 1000,
            "ratio_to_in_process": _median(remote) / _median(local), "torch_threads_per_request": 1}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=".gazelabel/benchmarks/pipeline", help="store and quick models")
    p.add_argument("--models-dir", default=None, help="use these models instead of the quick defaults")
    p.add_argument("--store", default=None, help="a phantom store with a test split (default: made in --work)")
    p.add_argument("--images", type=int, default=12, help="test-split images")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--server", action="store_true", help="also time POST /infer/pipeline on a live server")
    p.add_argument("--json", default="benchmarks/results/pipeline_latency.json")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    if not threads or any(t < 1 for t in threads):
        raise SystemExit("--threads: comma-separated counts >= 1")

    import torch

    from models.pipeline import Pipeline, RunOptions

    work = Path(args.work).resolve()
    store, models = prepare(work, args.models_dir, args.store)
    images = test_images(store, args.images)
    pipeline = Pipeline.from_dir(models)
    sizes = {name: sum(q.numel() for q in getattr(pred, attr).parameters())
             for name, pred, attr in (("classifier", pipeline.classifier, "model"), ("scanpath", pipeline.scanpath, "model"),
                                      ("report_lm", pipeline.report, "lm")) if pred is not None and hasattr(pred, attr)}
    result = {"synthetic": True, "store": str(store), "models": str(models), "images": len(images),
              "image_size": "512 x 512 px phantom radiographs (SYNTHETIC), test split", "repeats": args.repeats,
              "cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
              "parameters": sizes, "report_samples": RunOptions().report_samples, "goals": {"whole_to_densenet121_224": GOAL_WHOLE, "report_to_densenet121_224": GOAL_REPORT},
              "by_threads": {}}
    for t in threads:
        result["by_threads"][str(t)] = bench_threads(pipeline, images, t, args.repeats)
    reports = result["by_threads"][str(threads[0])].pop("reports")
    for t in threads[1:]:
        result["by_threads"][str(t)].pop("reports")
    acc = result["accuracy"] = paired_accuracy(store, reports, pipeline)
    val = acc["validation_from_checkpoints"]
    print(f"accuracy of these answers ({acc['images']} images, SYNTHETIC): report CE-F1 "
          f"{_fmt(acc['ce_f1_micro14_positive_only'])} (micro, 14 findings, positive only) / "
          f"{_fmt(acc['ce_f1_micro5_uncertain_positive'])} (CheXbert's 5, uncertain = positive); classifier val "
          f"macro AUC {_fmt(val['classifier'].get('val_macro_auc'))} (from its checkpoint)")
    if args.server:
        server = result["server"] = bench_server(pipeline, store, models, work, images, args.repeats)
        print(f"server POST /infer/pipeline: p50 {server['p50_ms']:.1f} ms, p95 {server['p95_ms']:.1f} ms = "
              f"{server['ratio_to_in_process']:.2f}x the same images in process "
              f"({server['in_process_alternating_p50_ms']:.1f} ms, alternating)")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
