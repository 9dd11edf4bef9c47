"""`gazelabel predict-store STORE --models DIR --out DIR`: the classifier over every image of a case store,
in batches, one Case JSON per image, and (with an index) the uncertainty scores the server ranks by.

* Batched: B images are read and letterboxed, then run through the network as one ``(B, 1, S, S)`` tensor
  (:meth:`ClassifierPredictor.predict_tensor`, the library's batch API); each image's result is then built
  exactly as ``ClassifierPredictor.__call__`` builds it (the same maps, boxes, decisions), and its Case
  by :meth:`models.pipeline.Pipeline.run` itself, fed the precomputed result, so ``--out/<id>.json`` is what
  ``gazelabel predict --task gaze_classifier --mc-samples K --json`` writes for that image (only
  ``prediction.timings.classifier`` differs: the image's share of its batch's time).
* Written atomically (:func:`models.files.atomic_json`) and resumable: an image whose output exists, was
  made by the same classifier file (its stamp in ``prediction.models.classifier``) and, with an index,
  has a score of that model and ``--mc-samples`` there, is skipped. (A Case does not record the MC sample
  count: without an index, change ``--out`` when changing ``--mc-samples``.)
* Sharded under ``torchrun --nproc_per_node N -m models.cli predict-store ...`` with
  :mod:`models.distributed`: rank r takes ids ``sorted_ids[r::N]``; without torchrun, one process.
* The index: ``--db URL``, else the store's own SQLite index ``<STORE>/gazelabel_index.sqlite3`` when it
  exists (the one ``gazelabel serve`` keeps for that store), else none; ``--no-db`` turns it off. Scores go
  in with :meth:`StoreIndex.put_scores` as ``{"value", "mc_samples", "model", "ts", "probs"}``, the dict the
  server's ``score_image`` stores, ``model`` being the server's stamp text of the same file:
  ``"-".join(FAMILIES["classifier"].stamp(models_dir))`` (``ModelCache.served`` returns that family stamp;
  :meth:`ModelFamily.load` writes the same text to ``predictor.info["stamp"]``). Images the index does not
  list yet (added after the server's last scan) are counted, not scored there; rerun after the server has
  indexed them.

MC dropout (``--mc-samples`` K > 0) samples dropout masks from torch's global generator, as the server does
(unseeded there). Here the generator is seeded per batch from ``--seed`` and the batch's first id, so a rerun
with the same batch size reproduces every number; with batch size 1 the numbers equal a single-image
``predictor(image, mc_samples=K)`` after ``torch.manual_seed`` of the same seed. With K = 0 the result does
not depend on the batch size (up to float rounding, ~1e-7).
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HELP = "Run the classifier over a whole case store in batches (Case JSON per image, scores into the index)"
FAMILY_CHOICES = ("classifier",)
DEFAULT_MC_SAMPLES = 8  # the server's uncertainty strategy default: its ranking reads these scores as they are


def add_arguments(p) -> None:
    p.add_argument("store", help="a case store folder (images at its top level)")
    p.add_argument("--models", required=True, help="models folder (classifier.pt), as `gazelabel predict --models`")
    p.add_argument("--out", required=True, help="folder for one Case JSON per image, <id>.json")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    p.add_argument("--mc-samples", type=int, default=DEFAULT_MC_SAMPLES,
                   help=f"MC-dropout passes (default {DEFAULT_MC_SAMPLES}, as the server's uncertainty strategy)")
    p.add_argument("--db", default=None, metavar="URL",
                   help="index database (SQLAlchemy URL) to put the scores in; default the store's "
                        "gazelabel_index.sqlite3 when it exists")
    p.add_argument("--no-db", action="store_true", help="write no scores to any index")
    p.add_argument("--families", nargs="+", default=["classifier"], choices=FAMILY_CHOICES,
                   help="model families to run (only the classifier is batched so far)")
    p.add_argument("--seed", type=int, default=0, help="seed of the MC-dropout masks, drawn per batch from it and the batch's first id (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (under torchrun each rank takes GPU LOCAL_RANK)")


def stamp_text(stamp) -> str | None:
    """The server's text of a family stamp ``(inode, mtime_ns, size)`` (``ModelCache`` / ``stamp_text``)."""
    return None if stamp is None else "-".join(str(v) for v in stamp)


def model_stamp(models_dir: str | Path, family: str = "classifier") -> str | None:
    """What the server stores as ``"model"`` for the scores of the ``family`` file in ``models_dir``."""
    from models.families import FAMILIES

    return stamp_text(FAMILIES[family].stamp(models_dir))


def load_classifier(models_dir: Path, device: str = "cpu"):
    """(predictor, stamp text) of ``models_dir``'s classifier; the stamp is the loaded file's (checked after
    the load, so a training that publishes meanwhile is not mislabelled)."""
    from models.families import FAMILIES

    family = FAMILIES["classifier"]
    for _ in range(3):
        before = model_stamp(models_dir)
        if before is None:
            raise FileNotFoundError(f"{family.checkpoint(models_dir)}: no classifier model; point --models at a "
                                    "models folder or train one with `gazelabel train classifier`")
        predictor = family.load(family.path(models_dir), device=device)
        if predictor.info.get("stamp") == before == model_stamp(models_dir):
            return predictor, before
    raise FileNotFoundError(f"{family.checkpoint(models_dir)}: the classifier file keeps changing while it loads")


def predict_batch(predictor, images, *, mc_samples: int = 0) -> list:
    """``ClassifierResult`` of each LoadedImage, the network run once over the batch; the per-image steps are
    those of :meth:`ClassifierPredictor.__call__` (one image's slice at a time, so they match it)."""
    import numpy as np
    import torch

    from models.classifier.boxes import attention_boxes
    from models.classifier.network import attention_to_model_space
    from models.classifier.predict import NON_SPATIAL, ClassifierResult
    from models.decision import NEGATIVE, DecisionRule
    from models.preprocess import prepare_image
    from models.vocab import FINDING_INDEX, FINDINGS

    tensors, boxes_of = [], []
    for image in images:
        array = np.asarray(image.array)
        if array.ndim != 2:
            raise ValueError(f"{image.path}: expected a 2D (H, W) radiograph, got an array of shape {array.shape}")
        tensor, lb = prepare_image(array.astype(np.float32), predictor.size)
        tensors.append(tensor)
        boxes_of.append(lb)
    pred = predictor.predict_tensor(torch.stack(tensors), mc_samples=mc_samples)
    thresholds = {f: float(predictor.thresholds[i]) for i, f in enumerate(FINDINGS)}
    rule = DecisionRule.from_thresholds(thresholds)
    out = []
    for i, lb in enumerate(boxes_of):
        maps = attention_to_model_space(torch.from_numpy(pred["attention"][i:i + 1]), predictor.size)[0].numpy()
        prior = attention_to_model_space(torch.from_numpy(pred["prior"][i:i + 1])[:, None], predictor.size)[0, 0].numpy()
        scores = {f: float(pred["probs"][i, j]) for j, f in enumerate(FINDINGS)}
        decisions = rule.decide(scores)
        present = {f: s for f, s in scores.items() if decisions[f] != NEGATIVE and f not in NON_SPATIAL}
        boxes = attention_boxes(maps, lb, present, FINDING_INDEX, predictor.box_threshold)
        out.append(ClassifierResult(scores, maps, lb, dict(thresholds), boxes, float(pred["uncertainty"][i]), prior,
                                    predictor.name, predictor.synthetic))
    return out


def score_dict(result, model: str, mc_samples: int) -> dict:
    """The score the server's ``score_image`` stores for this result."""
    return {"value": float(result.uncertainty), "mc_samples": mc_samples, "model": model, "ts": int(time.time()),
            "probs": [round(float(result.scores[f]), 6) for f in sorted(result.scores)]}


class _Precomputed:
    """A stand-in classifier that answers with a result computed in a batch, so that
    :meth:`Pipeline.run` builds the Case exactly as for a single image."""

    def __init__(self, predictor):
        self.info = predictor.info
        self.name = predictor.name
        self.synthetic = predictor.synthetic
        self.result = None

    def __call__(self, image, *, mc_samples: int = 0):
        return self.result


def case_of(pipeline, shim, image_id: str, image, result, mc_samples: int, seconds: float):
    from models.pipeline import RunOptions

    import numpy as np

    # The pipeline's heatmap is not part of the Case (only `gazelabel predict --overlay` draws it): skip
    # its upsampling to the original size, ~10% of an image's time here.
    shim.result = result
    result.heatmap = lambda finding=None: np.zeros((1, 1), np.float32)
    case = pipeline.run(image, case_id=image_id, families=("classifier",), options=RunOptions(mc_samples=mc_samples)).case
    case.prediction.timings["classifier"] = seconds
    return case


def _done_by(path: Path, model: str) -> bool:
    """``path`` is a Case JSON whose classifier is ``model``."""
    try:
        d = json.loads(path.read_text())
        return ((d.get("prediction") or {}).get("models") or {}).get("classifier") == model
    except (OSError, ValueError, AttributeError):
        return False


def _index(args, store_root: Path):
    """The StoreIndex to put scores in, or None (see the module docstring)."""
    from models.datasets.index import SQLITE_NAME, StoreIndex, StoreIndexError, sqlite_url

    if args.no_db:
        return None
    if args.db:
        url = args.db
    elif (store_root / SQLITE_NAME).is_file():
        url = sqlite_url(str(store_root))
    else:
        return None
    try:
        index = StoreIndex(url)
    except StoreIndexError as e:
        raise ValueError(f"--db: {e}") from None
    id_file = store_root / ".gazelabel_store_id"  # the server's guard: one database indexes one store
    known = index.get_meta("store_id")
    if known is not None and id_file.is_file() and id_file.read_text().strip() != known:
        raise ValueError(f"--db {index.shown}: this database indexes another store than {store_root}")
    return index


def run(args) -> int:
    from models.datasets.store import CaseStore

    # Every input is checked before torch or a model loads.
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.mc_samples < 0:
        raise ValueError(f"--mc-samples must be >= 0, got {args.mc_samples}")
    store_root = Path(args.store)
    if not store_root.is_dir():
        raise FileNotFoundError(f"{store_root}: no such case store folder")
    models_dir = Path(args.models)
    if not models_dir.is_dir():
        raise FileNotFoundError(f"{models_dir}: no such models folder (--models)")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: --out must be a folder")
    paths = CaseStore(store_root.resolve()).image_paths()
    if model_stamp(models_dir) is None:
        from models.families import FAMILIES

        raise FileNotFoundError(f"{FAMILIES['classifier'].checkpoint(models_dir)}: no classifier model; point --models "
                                "at a models folder or train one with `gazelabel train classifier`")
    index = _index(args, store_root)

    import torch

    from models.distributed import cleanup, gather_objects, init_distributed
    from models.files import atomic_json
    from models.imaging import ImageError, read_image
    from models.pipeline import Pipeline

    ctx = init_distributed(args.device)
    tag = f"[rank {ctx.rank}/{ctx.world_size}] " if ctx.distributed else ""
    try:
        predictor, model = load_classifier(models_dir, device=ctx.device)
        shim = _Precomputed(predictor)
        pipeline = Pipeline.from_predictors(classifier=shim)
        ids = sorted(paths)[ctx.rank::ctx.world_size]
        scored = index.scored_ids(model, args.mc_samples) if index is not None else None
        out_dir.mkdir(parents=True, exist_ok=True)
        todo = [i for i in ids if not ((out_dir / f"{i}.json").is_file() and _done_by(out_dir / f"{i}.json", model)
                                       and (scored is None or i in scored))]
        skipped = len(ids) - len(todo)
        print(f"{tag}predict-store: {len(ids)} images of {len(paths)} on this rank, {skipped} already done by model "
              f"{model}; batch {args.batch_size}, mc_samples {args.mc_samples}, "
              f"index {index.shown if index is not None else 'none'}", flush=True)
        done = failed = not_indexed = 0
        started = last_print = time.perf_counter()
        chunks = [todo[b:b + args.batch_size] for b in range(0, len(todo), args.batch_size)]

        def read_batch(chunk):
            got, errors = [], []
            for image_id in chunk:
                try:
                    got.append((image_id, read_image(paths[image_id])))
                except (ImageError, OSError) as e:
                    errors.append(f"{paths[image_id]}: {e}")
            return got, errors

        # One reader thread decodes the next batch while the network runs on this one (PIL and pydicom
        # decoding release the GIL); the shards are torchrun's processes, not a pool of ours.
        with torch.inference_mode(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict-store-read") as reader:
            pending = reader.submit(read_batch, chunks[0]) if chunks else None
            for n_batch in range(len(chunks)):
                t0 = time.perf_counter()
                got, errors = pending.result()
                pending = reader.submit(read_batch, chunks[n_batch + 1]) if n_batch + 1 < len(chunks) else None
                for message in errors:
                    failed += 1
                    print(f"{tag}predict-store: skipped {message}", file=sys.stderr, flush=True)
                if not got:
                    continue
                batch_ids, images = [i for i, _ in got], [im for _, im in got]
                torch.manual_seed(zlib.crc32(f"{args.seed}:{batch_ids[0]}".encode()))
                results = predict_batch(predictor, images, mc_samples=args.mc_samples)
                share = (time.perf_counter() - t0) / len(images)
                batch_scores = {}
                for image_id, image, result in zip(batch_ids, images, results):
                    case = case_of(pipeline, shim, image_id, image, result, args.mc_samples, share)
                    atomic_json(out_dir / f"{image_id}.json", case.to_dict())
                    batch_scores[image_id] = score_dict(result, model, args.mc_samples)
                if index is not None:
                    not_indexed += len(batch_scores) - index.put_scores(batch_scores)
                done += len(images)
                now = time.perf_counter()
                if now - last_print >= 2.0 or n_batch + 1 == len(chunks):
                    last_print = now
                    print(f"{tag}predict-store: {done + failed}/{len(todo)} "
                          f"({done / max(now - started, 1e-9):.2f} images/s)", flush=True)
        elapsed = time.perf_counter() - started
        totals = gather_objects((done, skipped, failed, not_indexed, elapsed), ctx)
    finally:
        if index is not None:
            index.close()
        cleanup(ctx)
    if ctx.is_main:
        done, skipped, failed, not_indexed = (sum(t[k] for t in totals) for k in range(4))
        elapsed = max(t[4] for t in totals)
        if not_indexed:
            print(f"predict-store: {not_indexed} scores not stored: those images are not in the index yet (the server "
                  "indexes new images at its next scan); rerun predict-store then", file=sys.stderr)
        if failed:
            print(f"predict-store: {failed} images could not be read (listed above)", file=sys.stderr)
        print(f"predict-store: {done} predicted, {skipped} skipped, {failed} unreadable in {elapsed:.2f} s: "
              f"{done / max(elapsed, 1e-9):.2f} images/s (world size {ctx.world_size}, batch {args.batch_size}, "
              f"mc_samples {args.mc_samples}, {torch.get_num_threads()} threads per process)", flush=True)
    return 2 if any(t[2] for t in totals) else 0
