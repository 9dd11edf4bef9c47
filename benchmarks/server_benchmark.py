"""Speed of a live GazeLabel server on a 200-image SYNTHETIC phantom store (loopback only).

Measures, against a real ``monailabel start_server`` subprocess started through ``monailabel_app.launcher``:

1. infer latency per task (gaze_classifier, scanpath, report, pipeline): ``--repeats`` requests each on
   different images after one warm-up request (model load), JSON output;
2. throughput with several concurrent clients (``--clients``, at most 8) on one task: requests/s and
   latency percentiles; the server runs ``--infer-workers`` inferences at once, the rest queue;
3. ``GET /info/`` and ``GET /datastore/`` latency while inferences run (p50/p95/max), against the idle
   baseline: MONAI Label 0.8.5 ran inference on the event loop and stalled both for the whole inference
   (``--compare-stock`` repeats this measurement on MONAI Label's stock routes, same app and models);
4. retrain turnaround: save ``--labels`` annotator labels (Case JSON, tag final), ``POST /train/gaze_classifier``,
   and poll an infer call until it reports the new classifier checkpoint; split into label upload, training
   task (subprocess start + training + publish) and first inference on the new model.

Models: ``--models-dir`` if given, else the ``quick`` default models (``models.quickstart``) trained once
into ``--work``. Numbers depend on the machine and its load; the JSON records the CPU count and load average.

Run (about 10 minutes on 2 CPU cores, plus ~5 minutes the first time for the store and models):
    python benchmarks/server_benchmark.py --json benchmarks/results/server_benchmark.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monailabel_app.launcher import ServerProcess, ServerSettings, free_port  # noqa: E402

TASKS = ("gaze_classifier", "scanpath", "report", "pipeline")
MAX_CLIENTS = 8


def summary(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "max": float(a.max())}


class Client:
    def __init__(self, url: str, headers: dict):
        self.url, self.headers = url, headers
        self.session = requests.Session()

    def infer(self, task: str, image_id: str, params: dict | None = None) -> tuple[float, dict]:
        start = time.perf_counter()
        r = self.session.post(f"{self.url}/infer/{task}?image={image_id}&output=json", headers=self.headers,
                              data={"params": json.dumps(params or {})}, timeout=600)
        elapsed = time.perf_counter() - start
        r.raise_for_status()
        return elapsed, r.json()

    def timed_get(self, path: str) -> float:
        start = time.perf_counter()
        self.session.get(self.url + path, headers=self.headers, timeout=600).raise_for_status()
        return time.perf_counter() - start


def prepare(work: Path, n_images: int, models_dir: str | None) -> tuple[Path, Path]:
    from models.quickstart import ensure_sample_store, train_default_models

    store = ensure_sample_store(work / f"store_{n_images}", n=n_images, seed=0, progress=True)
    if models_dir:
        return store, Path(models_dir)
    models = work / "models_quick"
    train_default_models(store, models, profile="quick", device="cpu")
    return store, models


def fresh_store_copy(store: Path, dest: Path) -> Path:
    """A copy of the store without labels or datastore state, so each run starts unlabelled."""
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(store, dest, ignore=shutil.ignore_patterns("labels", "datastore_v2.json", ".lock", "gazelabel_index.sqlite3*", ".gazelabel_store_id"))
    return dest


def bench_latency(client: Client, ids: list[str], repeats: int) -> dict:
    out = {}
    for k, task in enumerate(TASKS):
        warm, _ = client.infer(task, ids[k])
        times = [client.infer(task, ids[(k * repeats + i + 7) % len(ids)])[0] for i in range(repeats)]
        out[task] = {"first_request_s": warm, **summary(times)}
        print(f"  {task:16s} first {warm:6.2f} s   p50 {out[task]['p50']:6.2f} s   p95 {out[task]['p95']:6.2f} s")
    return out


def bench_throughput(client: Client, ids: list[str], task: str, levels: list[int], per_client: int) -> dict:
    out = {}
    for level in levels:
        jobs = [ids[(level * 31 + i) % len(ids)] for i in range(level * per_client)]
        clients = [Client(client.url, client.headers) for _ in range(level)]
        start = time.perf_counter()
        with ThreadPoolExecutor(level) as pool:
            latencies = list(pool.map(lambda ij: clients[ij[0] % level].infer(task, ij[1])[0], enumerate(jobs)))
        wall = time.perf_counter() - start
        out[str(level)] = {"requests": len(jobs), "wall_s": wall, "requests_per_s": len(jobs) / wall, "latency": summary(latencies)}
        print(f"  {level} client(s): {len(jobs) / wall:5.2f} req/s   latency p50 {out[str(level)]['latency']['p50']:6.2f} s"
              f"   p95 {out[str(level)]['latency']['p95']:6.2f} s")
    return out


def bench_responsiveness(client: Client, ids: list[str], task: str, duration: float, busy_clients: int) -> dict:
    idle = {p: summary([client.timed_get(p) for _ in range(20)]) for p in ("/info/", "/datastore/")}
    stop = threading.Event()
    infer_times: list[float] = []

    def busy(worker: int):
        c = Client(client.url, client.headers)
        i = worker
        while not stop.is_set():
            infer_times.append(c.infer(task, ids[i % len(ids)])[0])
            i += busy_clients

    threads = [threading.Thread(target=busy, args=(w,)) for w in range(busy_clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    during = {"/info/": [], "/datastore/": []}
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        for path, values in during.items():
            values.append(client.timed_get(path))
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    out = {"task": task, "busy_clients": busy_clients, "inference": summary(infer_times),
           "idle": idle, "during_inference": {p: summary(v) for p, v in during.items()}}
    for p in during:
        print(f"  {p:12s} idle p95 {idle[p]['p95'] * 1000:7.1f} ms   during {task} p95 "
              f"{out['during_inference'][p]['p95'] * 1000:7.1f} ms (max {out['during_inference'][p]['max'] * 1000:.0f} ms);"
              f" inference p50 {out['inference'].get('p50', float('nan')):.2f} s")
    return out


def bench_retrain(client: Client, store: Path, ids: list[str], n_labels: int, options: dict) -> dict:
    s = client.session
    probe = ids[-1]
    _, before = client.infer("gaze_classifier", probe)
    start = time.perf_counter()
    for image_id in ids[:n_labels]:
        label = json.loads((store / "cases" / f"{image_id}.json").read_text())
        s.put(f"{client.url}/datastore/label?image={image_id}&tag=final", headers=client.headers,
              files={"label": (f"{image_id}.json", json.dumps(label))}, timeout=60).raise_for_status()
    labels_saved = time.perf_counter()
    s.post(f"{client.url}/train/gaze_classifier", headers=client.headers, json=options, timeout=60).raise_for_status()
    while True:
        status = s.get(f"{client.url}/train/", headers=client.headers, timeout=60).json()
        if status.get("status") not in ("SUBMITTED", "RUNNING"):
            break
        time.sleep(0.5)
    trained = time.perf_counter()
    if status.get("status") != "DONE":
        raise RuntimeError(f"training failed: {status}")
    while True:
        _, after = client.infer("gaze_classifier", probe)
        if after["models"]["classifier"] != before["models"]["classifier"]:
            break
        time.sleep(0.2)
    serving = time.perf_counter()
    out = {"labels": n_labels, "train_options": options, "label_upload_s": labels_saved - start,
           "train_task_s": trained - labels_saved, "first_inference_on_new_model_s": serving - trained,
           "labels_to_new_model_serving_s": serving - start}
    print(f"  {n_labels} labels saved in {out['label_upload_s']:.1f} s, training task {out['train_task_s']:.1f} s, "
          f"first inference on the new model {out['first_inference_on_new_model_s']:.1f} s: "
          f"turnaround {out['labels_to_new_model_serving_s']:.1f} s")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default="benchmarks/results/server_benchmark.json")
    p.add_argument("--work", default=".gazelabel/benchmarks/server", help="store, models and server logs")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--models-dir", default=None, help="use these models instead of training the quick defaults")
    p.add_argument("--repeats", type=int, default=5, help="timed requests per task")
    p.add_argument("--clients", default="1,2,4", help="concurrent client counts (each at most 8)")
    p.add_argument("--per-client", type=int, default=3, help="requests per client in the throughput test")
    p.add_argument("--throughput-task", default="pipeline", choices=TASKS)
    p.add_argument("--infer-workers", type=int, default=2)
    p.add_argument("--busy-seconds", type=float, default=20.0, help="how long /info/ is polled during inference")
    p.add_argument("--labels", type=int, default=20, help="labels saved before retraining")
    p.add_argument("--train-epochs", type=int, default=2)
    p.add_argument("--compare-stock", action="store_true",
                   help="also measure /info/ during inference on MONAI Label's stock (unhardened) routes")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    if not all(1 <= c <= MAX_CLIENTS for c in levels):
        raise SystemExit(f"--clients: each count must be 1..{MAX_CLIENTS}")

    work = Path(args.work).resolve()
    store, models = prepare(work, args.images, args.models_dir)
    run_store = fresh_store_copy(store, work / "run_store")
    run_models = work / "run_models"  # retraining must not overwrite the source models
    import shutil

    if run_models.exists():
        shutil.rmtree(run_models)
    shutil.copytree(models, run_models, symlinks=True)
    settings = ServerSettings(studies=str(run_store), models_dir=run_models, work_dir=work / "server",
                              port=free_port(), infer_workers=args.infer_workers)
    ids = sorted(q.name[:-4] for q in run_store.glob("*.png"))
    result = {"synthetic": True, "images": len(ids), "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "load_average_start": os.getloadavg(), "infer_workers": args.infer_workers, "models": str(models)}
    started = time.perf_counter()
    with ServerProcess(settings) as server:
        result["server_start_s"] = time.perf_counter() - started
        print(f"server {server.url} ready in {result['server_start_s']:.1f} s ({len(ids)} SYNTHETIC images)")
        client = Client(server.url, server.headers)
        print("infer latency per task:")
        result["latency"] = bench_latency(client, ids, args.repeats)
        print(f"throughput ({args.throughput_task}):")
        result["throughput"] = bench_throughput(client, ids, args.throughput_task, levels, args.per_client)
        print("responsiveness during inference:")
        result["responsiveness"] = bench_responsiveness(client, ids, "pipeline", args.busy_seconds, args.infer_workers)
        print("retrain turnaround:")
        result["retrain"] = bench_retrain(client, run_store, ids, args.labels,
                                          {"epochs": args.train_epochs, "size": 224, "batch_size": 8})
    if args.compare_stock:
        stock = ServerSettings(studies=str(run_store), models_dir=run_models, work_dir=work / "server_stock",
                               port=free_port(), uvicorn_app="monailabel.app:app")
        with ServerProcess(stock) as server:
            print("responsiveness during inference, MONAI Label stock routes (for comparison):")
            client = Client(server.url, server.headers)
            client.infer("pipeline", ids[0])  # load the models before measuring
            result["responsiveness_stock_routes"] = bench_responsiveness(client, ids, "pipeline", args.busy_seconds, 1)
    result["load_average_end"] = os.getloadavg()
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
