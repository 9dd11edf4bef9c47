"""Datastore cost at scale (issue 22 item 5): a live GazeLabel server over probe stores of 200 to 100,000 images.

The SYNTHETIC phantom generator writes ``--base-images`` real images once into ``--work`` (or fewer: a base
left partly generated is used as it is, and the JSON says how many real images there were); bigger stores
are a *probe store of hard links*: the real images (and their ``cases/<id>.json`` records) linked again under
new ids, so 100,000 entries cost no disk. Models: the tiny profile (as the tests' ``tiny_models`` fixture),
trained once into ``--work``.

Per size, against a real server (``monailabel_app.launcher``, loopback):

- first start (index built from the folder) and restart (index exists, scores written into it meanwhile);
- ``POST /activelearning/uncertainty`` with nothing scored (first call, scores ``max_compute`` images) and
  with every image's score written beforehand by ``StoreIndex.put_scores`` under the stamp the server
  computes (``stamp_text`` of the classifier file's stamp); the answer must say ``"computed": 0``;
- ``/activelearning/random`` p50; warm ``POST /infer/pipeline`` p50 (after one warm-up);
- ``GET /datastore/?output=stats`` p50, one page (``output=all&offset&limit=100``) p50, ``output=all`` once;
- ``PUT /datastore/label`` p50/p95 (distinct images, tag final);
- ``GET /info/`` p50/p95 while 2 threads save labels and 1 thread calls the uncertainty strategy;
- at the end, warm ``/infer/pipeline`` on the smallest and the largest store with both servers up and the
  calls alternating (``--paired-rounds``): the target's infer ratio comes from this paired run.

The JSON holds each size's numbers, machine facts, the issue's targets at the largest size with pass/fail,
and the issue's "before" table (MONAI Label's JSON index).

    python benchmarks/datastore_scale.py --work /tmp/dsscale
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monailabel_app.launcher import ServerProcess, ServerSettings, free_port  # noqa: E402

BEFORE = {
    "note": "measured earlier on the previous datastore (MONAI Label 0.8.5's whole-file JSON index, "
            "datastore_v2.json), as reported in issue 22; not re-measured by this script",
    "sizes": [200, 2000, 20000, 100000],
    "label_save_p50_s": [0.007, 0.020, 0.158, 1.07],
    "uncertainty_call_s": [0.83, 1.30, 7.7, 39.0],
    "restart_s": [6.5, 6.6, 9.5, 73.0],
    "warm_pipeline_infer_s": [0.92, 0.90, 1.06, 2.08],
    "datastore_stats_p50_s": {"100000_during_uncertainty_call": 0.719, "100000_idle": 0.024},
}


def summary(values) -> dict:
    a = np.asarray(values, dtype=float)
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max())}


def case_json(image_id: str, width: int = 512, height: int = 512) -> str:
    return json.dumps({"schema": "gazelabel.case/1", "id": image_id, "image": {"width": width, "height": height},
                       "findings": {"Cardiomegaly": 1}})


def prepare(work: Path, base_images: int) -> tuple[Path, Path, list[str], bool]:
    """The real phantom images (generated once) and the tiny models (trained once)."""
    from models.datasets.phantom.generate import generate_store
    from models.quickstart import PROFILES, ensure_sample_store, train_default_models

    models = work / "models"
    if not (models / "classifier.pt").exists():
        tiny = ensure_sample_store(work / "tiny_store", n=PROFILES["tiny"]["images"], seed=11, progress=False)
        train_default_models(tiny, models, profile="tiny", device="cpu", progress=False)
    base = work / "phantom_base"
    if not base.exists():
        generate_store(base, n=base_images, seed=5, size=512, progress=True)
    complete = (base / "dataset.json").exists()
    ids = sorted(p.name[:-4] for p in base.glob("*.png") if (base / "cases" / (p.name[:-4] + ".json")).exists())
    return base, models, ids, complete


def build_probe_store(base: Path, base_ids: list[str], dest: Path, size: int) -> tuple[Path, int]:
    """``size`` entries: the real images first, then hard links to them under new ids. Returns (dest, links)."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "cases").mkdir(parents=True)
    links = 0
    for k in range(size):
        src = base_ids[k % len(base_ids)]
        new = src if k < len(base_ids) else f"{src}-x{k // len(base_ids)}"
        os.link(base / f"{src}.png", dest / f"{new}.png")
        os.link(base / "cases" / f"{src}.json", dest / "cases" / f"{new}.json")
        links += k >= len(base_ids)
    return dest, links


class Client:
    def __init__(self, url: str, headers: dict):
        self.url, self.headers = url, headers
        self.s = requests.Session()

    def call(self, method: str, path: str, **kw) -> tuple[float, requests.Response]:
        start = time.perf_counter()
        r = self.s.request(method, self.url + path, headers=self.headers, timeout=900, **kw)
        elapsed = time.perf_counter() - start
        if r.status_code != 200:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return elapsed, r

    def save(self, image_id: str) -> float:
        return self.call("PUT", f"/datastore/label?image={image_id}&tag=final",
                         files={"label": (f"{image_id}.json", case_json(image_id))})[0]

    def uncertainty(self) -> tuple[float, dict]:
        t, r = self.call("POST", "/activelearning/uncertainty", json={"mc_samples": 8})
        return t, r.json()


def write_scores(store: Path, ids: list[str], models: Path) -> tuple[str, float]:
    from models.datasets.index import StoreIndex, sqlite_url
    from models.families import FAMILIES
    from monailabel_app.lib.configs.models import stamp_text

    stamp = stamp_text(FAMILIES["classifier"].stamp(models))
    rng = random.Random(0)
    now = int(time.time())
    items = {i: {"value": rng.random(), "mc_samples": 8, "model": stamp, "ts": now,
                 "probs": [round(rng.random(), 6) for _ in range(14)]} for i in ids}
    index = StoreIndex(sqlite_url(str(store)))
    start = time.perf_counter()
    stored = index.put_scores(items)
    elapsed = time.perf_counter() - start
    index.close()
    if stored != len(ids):
        raise RuntimeError(f"put_scores stored {stored} of {len(ids)}")
    return stamp, elapsed


def bench_size(size: int, base: Path, base_ids: list[str], models: Path, work: Path, reps: int) -> dict:
    out: dict = {"size": size}
    t = time.perf_counter()
    store, links = build_probe_store(base, base_ids, work / f"store_{size}", size)
    out["real_images"], out["hard_links"], out["build_store_s"] = size - links, links, time.perf_counter() - t
    ids = sorted(p.name[:-4] for p in store.glob("*.png"))
    settings = ServerSettings(studies=str(store), models_dir=models, work_dir=work / f"server_{size}", port=free_port())
    server = ServerProcess(settings)
    t = time.perf_counter()
    server.start(timeout=900)
    out["first_start_s"] = time.perf_counter() - t
    try:
        c = Client(server.url, server.headers)
        t1, first = c.uncertainty()
        out["uncertainty_unscored_first_call"] = {"s": t1, "computed": first.get("computed"),
                                                  "scoring_in_background": first.get("scoring_in_background")}
    finally:
        server.stop()
    stamp, put_s = write_scores(store, ids, models)
    out["put_scores_s"], out["model_stamp"] = put_s, stamp
    settings.port = free_port()
    t = time.perf_counter()
    server.start(timeout=900)
    out["restart_s"] = time.perf_counter() - t
    try:
        c = Client(server.url, server.headers)
        times, computed = [], set()
        for _ in range(reps):
            dt, body = c.uncertainty()
            times.append(dt)
            computed.add(body.get("computed"))
        out["uncertainty_precomputed"] = {**summary(times), "computed_values": sorted(computed),
                                          "computed_zero": computed == {0}}
        out["random"] = summary([c.call("POST", "/activelearning/random", json={})[0] for _ in range(reps)])
        c.call("POST", f"/infer/pipeline?image={ids[1]}&output=json", data={"params": "{}"})  # warm-up
        out["pipeline_infer_warm"] = summary([c.call("POST", f"/infer/pipeline?image={ids[(k * 7 + 3) % len(ids)]}"
                                                     "&output=json", data={"params": "{}"})[0] for k in range(5)])
        out["stats"] = summary([c.call("GET", "/datastore/?output=stats")[0] for _ in range(reps)])
        out["page_100"] = summary([c.call("GET", f"/datastore/?output=all&offset={(k * 97) % max(1, size - 100)}"
                                           "&limit=100")[0] for k in range(reps)])
        dt, r = c.call("GET", "/datastore/?output=all")
        out["all_once"] = {"s": dt, "bytes": len(r.content), "objects": len(r.json().get("objects", {}))}
        save_ids = ids[-50:]
        out["label_save"] = summary([c.save(i) for i in save_ids])
        out["concurrent"] = concurrent(c, ids[-250:-50], seconds=8.0)
    finally:
        server.stop()
    return out


def concurrent(c: Client, save_ids: list[str], seconds: float) -> dict:
    stop = threading.Event()
    saves: list[float] = []
    scoring: list[float] = []
    errors: list[str] = []

    def saver(k: int):
        cl = Client(c.url, c.headers)
        for i in save_ids[k::2]:
            if stop.is_set():
                return
            try:
                saves.append(cl.save(i))
            except Exception as e:  # recorded, the measurement goes on
                errors.append(str(e)[:200])

    def scorer():
        cl = Client(c.url, c.headers)
        while not stop.is_set():
            try:
                scoring.append(cl.uncertainty()[0])
            except Exception as e:
                errors.append(str(e)[:200])

    threads = [threading.Thread(target=saver, args=(k,)) for k in range(2)] + [threading.Thread(target=scorer)]
    for t in threads:
        t.start()
    info = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info.append(c.call("GET", "/info/")[0])
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    return {"info": summary(info), "saves_during": summary(saves), "uncertainty_during": summary(scoring),
            "errors": errors[:5]}


def paired_infer(work: Path, models: Path, sizes: tuple[int, int], rounds: int) -> dict:
    """Warm ``/infer/pipeline`` on the smallest and the largest store, two servers up at once and requests
    alternating between them, so that the machine's drift and load fall on both alike (one size after the
    other, five calls each, the ratio moved by +-20% between runs on this VM)."""
    servers, ids = {}, {}
    try:
        for size in sizes:
            store = work / f"store_{size}"
            ids[size] = sorted(p.name[:-4] for p in store.glob("*.png"))
            servers[size] = ServerProcess(ServerSettings(studies=str(store), models_dir=models,
                                                         work_dir=work / f"server_{size}", port=free_port()))
            servers[size].start(timeout=900)
        clients = {size: Client(s.url, s.headers) for size, s in servers.items()}
        times: dict[int, list[float]] = {size: [] for size in sizes}
        for size, c in clients.items():
            c.call("POST", f"/infer/pipeline?image={ids[size][1]}&output=json", data={"params": "{}"})  # warm-up
        for k in range(rounds):
            for size in (sizes if k % 2 == 0 else sizes[::-1]):
                image = ids[size][(k * 7 + 3) % len(ids[size])]
                times[size].append(clients[size].call("POST", f"/infer/pipeline?image={image}&output=json",
                                                      data={"params": "{}"})[0])
    finally:
        for s in servers.values():
            s.stop()
    small, big = sizes
    out = {str(size): summary(times[size]) for size in sizes}
    out["ratio_p50"] = out[str(big)]["p50"] / out[str(small)]["p50"]
    out["rounds"] = rounds
    return out


def targets(results: dict, paired: dict | None = None) -> dict:
    big, small = results[str(max(map(int, results)))], results[str(min(map(int, results)))]
    infer_ratio = paired["ratio_p50"] if paired else big["pipeline_infer_warm"]["p50"] / small["pipeline_infer_warm"]["p50"]
    rows = {
        "label_save_p50_s<=0.020": (big["label_save"]["p50"], big["label_save"]["p50"] <= 0.020),
        "next_sample_precomputed_p50_s<=0.200": (big["uncertainty_precomputed"]["p50"],
                                                 big["uncertainty_precomputed"]["p50"] <= 0.200),
        "restart_s<=15": (big["restart_s"], big["restart_s"] <= 15.0),
        "warm_infer_p50_ratio_to_smallest<=1.10" + (" (paired, alternating)" if paired else ""):
            (infer_ratio, infer_ratio <= 1.10),
        "info_p95_s_under_saves_and_scoring<0.100": (big["concurrent"]["info"]["p95"],
                                                     big["concurrent"]["info"]["p95"] < 0.100),
    }
    return {"at_size": big["size"], **{k: {"measured": v, "pass": bool(ok)} for k, (v, ok) in rows.items()}}


def table(results: dict) -> None:
    cols = [("first start s", lambda r: r["first_start_s"]), ("restart s", lambda r: r["restart_s"]),
            ("save p50 ms", lambda r: 1000 * r["label_save"]["p50"]), ("save p95 ms", lambda r: 1000 * r["label_save"]["p95"]),
            ("next p50 ms", lambda r: 1000 * r["uncertainty_precomputed"]["p50"]),
            ("next p95 ms", lambda r: 1000 * r["uncertainty_precomputed"]["p95"]),
            ("unscored 1st s", lambda r: r["uncertainty_unscored_first_call"]["s"]),
            ("random p50 ms", lambda r: 1000 * r["random"]["p50"]), ("infer p50 s", lambda r: r["pipeline_infer_warm"]["p50"]),
            ("stats p50 ms", lambda r: 1000 * r["stats"]["p50"]), ("page p50 ms", lambda r: 1000 * r["page_100"]["p50"]),
            ("all s", lambda r: r["all_once"]["s"]), ("all MB", lambda r: r["all_once"]["bytes"] / 1e6),
            ("/info/ p50 ms", lambda r: 1000 * r["concurrent"]["info"]["p50"]),
            ("/info/ p95 ms", lambda r: 1000 * r["concurrent"]["info"]["p95"])]
    sizes = sorted(results, key=int)
    print(f"{'':16s}" + "".join(f"{s:>10s}" for s in sizes))
    for name, f in cols:
        print(f"{name:16s}" + "".join(f"{f(results[s]):10.3f}" if f(results[s]) < 100 else f"{f(results[s]):10.1f}"
                                      for s in sizes))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="200,2000,20000,100000")
    p.add_argument("--out", default="benchmarks/results/datastore_scale.json")
    p.add_argument("--work", default=".gazelabel/benchmarks/datastore_scale", help="scratch: stores, models, logs")
    p.add_argument("--base-images", type=int, default=2000, help="real phantom images generated once")
    p.add_argument("--reps", type=int, default=15, help="timed calls per latency (label saves: 50)")
    p.add_argument("--paired-rounds", type=int, default=20,
                   help="warm infer calls per store with the smallest and largest store served at once (0: skip)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    base, models, base_ids, complete = prepare(work, args.base_images)
    result = {"synthetic": True, "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "python": sys.version.split()[0], "load_average_start": os.getloadavg(),
              "store": {"real_images": len(base_ids), "base_images_requested": args.base_images,
                        "generation_complete": complete,
                        "note": "SYNTHETIC phantom images (512 px PNG); sizes above the real count are a probe "
                                "store of hard links (the real images and cases/<id>.json linked under new ids)"},
              "models": "tiny profile (models.quickstart PROFILES['tiny']), as the tests' tiny_models fixture",
              "index": "SQLite <store>/gazelabel_index.sqlite3 (IndexedCaseDatastore)",
              "reps": args.reps, "sizes": {}}
    if not complete:
        result["store"]["note"] += (f"; generation of {args.base_images} was stopped early for time, "
                                    f"{len(base_ids)} real images used")
    for size in sizes:
        print(f"--- {size} entries", flush=True)
        t = time.perf_counter()
        result["sizes"][str(size)] = r = bench_size(size, base, base_ids, models, work, args.reps)
        r["wall_s"] = time.perf_counter() - t
        print(json.dumps({k: r[k] for k in ("first_start_s", "restart_s", "label_save", "uncertainty_precomputed")}),
              flush=True)
    if len(sizes) > 1 and args.paired_rounds:
        print("--- warm infer, smallest and largest store alternating", flush=True)
        result["infer_paired"] = paired_infer(work, models, (min(sizes), max(sizes)), args.paired_rounds)
    result["targets"] = targets(result["sizes"], result.get("infer_paired"))
    result["before"] = BEFORE
    result["load_average_end"] = os.getloadavg()
    table(result["sizes"])
    if "infer_paired" in result:
        pi = result["infer_paired"]
        print("paired warm infer p50 s: " + ", ".join(f"{k} {v['p50']:.3f}" for k, v in pi.items() if isinstance(v, dict))
              + f"; ratio {pi['ratio_p50']:.3f}")
    print(json.dumps(result["targets"], indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
