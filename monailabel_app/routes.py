"""GazeLabel's own versions of the MONAI Label routes that take files, paths or JSON from a client.

MONAI Label 0.8.5's handlers copy every upload to ``tempfile.NamedTemporaryFile(...).name`` and delete it in
a background task that never runs when the request fails (a refused upload leaves its file behind), parse
form fields with ``json.loads`` (NaN, Infinity and deep nesting pass), let the infer ``params`` JSON set the
request's ``image`` (a path the server then reads) and join session ids into paths. These routes keep the
same paths, parameters and answers, and instead:

- spool each upload into the server's private upload folder (``GAZELABEL_UPLOAD_DIR``) and remove it in a
  ``finally``, so success, refusal, exception and client disconnect all leave nothing behind;
- parse every form field with :mod:`monailabel_app.parsing` (strict JSON, named errors);
- resolve images only through the datastore or the session store, by id: a path is never accepted, and the
  infer ``params`` may hold only the task's own parameters;
- read the heatmap result into memory and delete its file before answering.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess  # nosec B404: one fixed command (nvidia-smi)
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterator, Optional

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from monailabel.endpoints.infer import ResultType
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.utils.app import app_instance
from requests_toolbelt import MultipartEncoder

from .parsing import RequestError, only_keys, parse_choice, parse_id, parse_int, parse_json, parse_session_id

logger = logging.getLogger(__name__)
router = APIRouter()
# Request keys the infer route sets itself; a client's params cannot.
INFER_OWN_KEYS = ("heatmap",)
# Keys any client may send: the MONAI Label client adds its client id to every request.
INFER_CLIENT_KEYS = ("client_id",)
MAX_SESSION_EXPIRY_S = 24 * 3600


def upload_dir() -> Path:
    """The folder uploads are spooled into (``GAZELABEL_UPLOAD_DIR``; the launcher puts it in the work dir)."""
    path = Path(os.environ.get("GAZELABEL_UPLOAD_DIR") or Path(tempfile.gettempdir()) / f"gazelabel-uploads-{os.getuid()}")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def clean_folder(folder: Path, older_than_s: float = 0.0) -> int:
    """Empty a private temporary folder (uploads left by a server that was killed); returns the count."""
    now, removed = time.time(), 0
    if not folder.is_dir():
        return 0
    for p in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if now - p.lstat().st_mtime >= older_than_s:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                removed += 1
    return removed


def upload_suffix(filename: str | None, default: str) -> str:
    """The file type of an upload, from its name (``.nii.gz`` kept whole); only letters and digits."""
    name = Path(filename or "").name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    suffix = Path(name).suffix
    return suffix if suffix[1:].isalnum() and len(suffix) <= 8 else default


@contextlib.contextmanager
def spooled(upload: UploadFile, suffix: str) -> Iterator[Path]:
    """The upload copied to a private temporary file, removed when the block ends, however it ends."""
    fd, name = tempfile.mkstemp(suffix=suffix, dir=upload_dir())
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def upload_id(image: str | None, filename: str | None) -> str:
    """The image id of an upload: the ``image`` parameter, else the upload's file name without its type."""
    if image:
        return image
    name = Path(filename or "").name
    suffix = upload_suffix(name, "")
    return parse_id(name[: -len(suffix)] if suffix and name.lower().endswith(suffix) else name, "image (from the file name)")


# ---------------------------------------------------------------------------------------------- datastore
@router.get("/datastore/", summary="The datastore: stats (default), the training list (output=train) or the "
            "index (output=all; one page of it with offset and limit)")
def datastore_listing(output: Optional[str] = None, offset: Optional[int] = None, limit: Optional[int] = None):
    """MONAI Label's listing, plus pages: ``output=all&offset=O&limit=L`` answers ``{"total", "offset",
    "limit", "objects"}`` with at most L images in id order (one indexed query, whatever the store's size);
    without ``offset``/``limit`` the whole index, in ``datastore_v2.json``'s shape, as before."""
    kind = parse_choice(output or "stats", "output", ("stats", "train", "all"))
    datastore = app_instance().datastore()
    if offset is not None or limit is not None:
        if kind != "all":
            raise RequestError("offset/limit: pages are of output=all; leave them out for stats and train")
        if not hasattr(datastore, "page"):
            raise RequestError("offset/limit: this datastore (DICOMweb) lists without pages; leave them out")
        return datastore.page(parse_int(0 if offset is None else offset, "offset", 0, 10**12),
                              parse_int(100 if limit is None else limit, "limit", 1, 10_000))
    if kind == "all":
        return datastore.json()
    if kind == "train":
        return datastore.datalist()
    return datastore.status()


@router.put("/datastore/image", summary="Upload a new image (CR/DX DICOM, PNG, JPG)")
def add_image(image: Optional[str] = None, params: str = Form("{}"), file: UploadFile = File(...)):
    info = parse_json(params, "params")
    image_id = upload_id(image, file.filename)
    with spooled(file, upload_suffix(file.filename, ".dcm")) as path:
        return {"image": app_instance().datastore().add_image(image_id, str(path), info)}


@router.put("/datastore/label", summary="Save a label (a Case JSON file)")
def save_label(image: str, params: str = Form("{}"), tag: str = DefaultLabelTag.FINAL.value, label: UploadFile = File(...)):
    info = parse_json(params, "params")
    instance = app_instance()
    with spooled(label, upload_suffix(label.filename, ".json")) as path:
        label_id = instance.datastore().save_label(image, str(path), tag or DefaultLabelTag.FINAL.value, info)
    return {**(instance.on_save_label(image, label_id) or {}), "image": image, "label": label_id}


@router.get("/datastore/dataset", summary="Download the labelled images and their labels as one ZIP archive")
def download_dataset(limit_cases: Optional[int] = None):
    limit = None if limit_cases is None else parse_int(limit_cases, "limit_cases", 1, 10**9)
    datastore = app_instance().datastore()
    items = datastore.datalist()
    if not items:
        raise HTTPException(status_code=404, detail="no labelled images yet: nothing to put in the archive")
    archive = tempfile.TemporaryFile(dir=upload_dir())  # no name on disk: nothing can be left behind
    try:
        with zipfile.ZipFile(archive, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
            for item in items[:limit]:
                for key in ("image", "label"):
                    zf.write(item[key], arcname=f"{key}/{os.path.basename(item[key])}")
            zf.writestr("metadata.json", json.dumps(datastore.json(), default=str))
        archive.seek(0)
    except BaseException:
        archive.close()
        raise

    def chunks():
        with archive:
            while chunk := archive.read(1 << 20):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="dataset.zip"'})


@router.head("/datastore/image", summary="Check that an image exists (and, with check_sum, that it matches)")
def check_image(image: str, check_sum: Optional[str] = None):
    """``check_sum`` is ``[SHA256|SHA512|MD5:]<hex digest>`` (SHA256 without a prefix); 404 when the image is
    missing or its digest differs, 400 for another algorithm."""
    from monailabel.utils.others.generic import file_checksum

    path = app_instance().datastore().get_image_uri(parse_id(image, "image"))
    if not path or not os.path.isfile(path):
        raise HTTPException(status_code=404, detail="Image NOT Found")
    if check_sum:
        algo, sep, digest = check_sum.partition(":")
        algo, digest = (algo, digest) if sep else ("SHA256", check_sum)
        if algo not in ("SHA256", "SHA512", "MD5"):
            raise RequestError(f"check_sum: algorithm {algo!r} is not one of SHA256, SHA512, MD5")
        if file_checksum(path, algo=algo) != f"{algo}:{digest}":
            raise HTTPException(status_code=404, detail="Image NOT Found (checksum failed)")
    return {}


@router.put("/datastore/image/info", summary="Update image info")
def update_image_info(image: str, info: str = Form("{}")):
    return app_instance().datastore().update_image_info(image, parse_json(info, "info"))


@router.put("/datastore/label/info", summary="Update label info")
def update_label_info(label: str, tag: str, info: str = Form("{}")):
    return app_instance().datastore().update_label_info(label, tag, parse_json(info, "info"))


@router.put("/datastore/updatelabelinfo", include_in_schema=False, deprecated=True)
def update_label_info_legacy(label: str, tag: str, params: str = Form("{}")):
    return app_instance().datastore().update_label_info(label, tag, parse_json(params, "params"))


# ---------------------------------------------------------------------------------------------- training
@router.post("/train/{model}", summary="Retrain a model family on the final labels")
def start_training(model: str, params: Optional[dict] = None, run_sync: Optional[bool] = False,
                   enqueue: Optional[bool] = False):
    """MONAI Label's train start, after the options are checked against the family's config: a typo or a
    wrong type is a 400 naming it, not a training that fails in its subprocess."""
    from monailabel.endpoints import train as ml_train

    from models.families import BY_TASK

    from .lib.trainers.family import train_options

    family = BY_TASK.get(parse_id(model, "model"))
    if family is None or model not in app_instance()._trainers:
        raise HTTPException(status_code=404, detail=f"no train task {model!r}; see GET /info/ for the trainers")
    try:
        train_options(family, dict(params or {}))
    except ValueError as e:
        raise RequestError(f"train {model}: {e}") from None
    return ml_train.run_model(model, params, run_sync, enqueue)


# ---------------------------------------------------------------------------------------------- logs
@router.get("/logs/gpu", summary="GPU status (nvidia-smi)")
def gpu_info():
    """``nvidia-smi`` output; 404 on a server without NVIDIA tools (0.8.5 answered 500)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        raise HTTPException(status_code=404, detail="no nvidia-smi on this server (no NVIDIA GPU tools installed)")
    run = subprocess.run([tool], capture_output=True, text=True, timeout=30)  # fixed command, no client input
    return Response(content=run.stdout or run.stderr, media_type="text/plain")


# ---------------------------------------------------------------------------------------------- sessions
def _sessions():
    sessions = app_instance().sessions()
    if sessions is None:
        raise HTTPException(status_code=406, detail="sessions are not enabled on this server")
    return sessions


def session_image(session_id: str) -> str:
    """The image file of a session, by its id; 404 when there is none (an unsafe id never gets here)."""
    info = _sessions().get_session(parse_session_id(session_id), update_ts=True)
    if not info:
        raise HTTPException(status_code=404, detail=f"no session {session_id!r}")
    root = os.path.realpath(_sessions().store_path)
    image = os.path.realpath(info.image)
    if os.path.commonpath([root, image]) != root or not os.path.isfile(image):
        raise HTTPException(status_code=404, detail=f"no session {session_id!r}")
    return image


@router.put("/session/", summary="Create a session holding one uploaded image")
def create_session(uncompress: bool = False, expiry: int = 0, files: list[UploadFile] = File(...)):
    if uncompress:  # the guard refuses it first; kept so the route is safe on its own
        raise RequestError("uncompress=true is disabled (archive extraction can write outside the session folder)")
    expiry = parse_int(expiry, "expiry", 0, MAX_SESSION_EXPIRY_S)
    if len(files) != 1:
        raise RequestError(f"files: send exactly one image file, got {len(files)}")
    upload = files[0]
    from .lib.datastores.uploads import check_image_upload

    with spooled(upload, upload_suffix(upload.filename, ".dcm")) as path:
        check_image_upload(path, upload_suffix(upload.filename, ""))
        # add_session moves the file into a fresh uuid-named session folder.
        session_id, info = _sessions().add_session(str(path), expiry)
    return {"session_id": session_id, "session_info": info.to_json()}


@router.get("/session/{session_id}", summary="Get a session (or its image with image=true)")
def get_session(session_id: str, update_ts: bool = False, image: bool = False):
    path = session_image(session_id)
    if image:
        return FileResponse(path, filename=os.path.basename(path))
    return _sessions().get_session(session_id, update_ts=update_ts).to_json()


@router.delete("/session/{session_id}", summary="Delete a session")
def remove_session(session_id: str):
    session_image(session_id)
    info = _sessions().get_session(session_id, update_ts=False).to_json()
    _sessions().remove_session(session_id)
    return info


# ---------------------------------------------------------------------------------------------- infer
def infer_params(model: str, params: str) -> dict:
    """The client's infer params: a strict JSON object whose keys are parameters of the GazeLabel tasks.

    A key no task declares is refused (400 naming it): MONAI Label reads keys such as ``image``, ``label``,
    ``session`` or ``label_tag`` from the same dict as paths and settings. A parameter of another task is
    accepted and ignored, so one params object can serve every task."""
    request = parse_json(params, "params")
    tasks = app_instance()._infers
    if parse_id(model, "model") not in tasks:
        raise HTTPException(status_code=404, detail=f"no infer task {model!r}; see GET /info/ for the models")
    request.pop("save_label", None)  # model outputs are never saved as labels here
    declared = {k for task in tasks.values() for k in (task.config() or {})} - set(INFER_OWN_KEYS)
    return only_keys(request, declared | set(INFER_CLIENT_KEYS), "params")


def heatmap_response(result_file: str | None, result_json: dict, output: ResultType | None) -> Response:
    """JSON, the label image, or both (multipart) for one inference; the result file is deleted first."""
    data = None
    if result_file:
        try:
            data = Path(result_file).read_bytes()
        finally:
            Path(result_file).unlink(missing_ok=True)
    if output == ResultType.json or data is None:
        return JSONResponse(result_json)
    if output == ResultType.image:
        return Response(data, media_type="application/gzip",
                        headers={"Content-Disposition": 'attachment; filename="heatmap.nii.gz"'})
    encoder = MultipartEncoder(fields={"params": (None, json.dumps(result_json), "application/json"),
                                       "image": ("heatmap.nii.gz", data, "application/gzip")})
    return Response(content=encoder.to_string(), media_type=encoder.content_type)


def run_infer(model: str, image: str, session_id: str, params: str, file: UploadFile | None,
              label: UploadFile | None, output: ResultType | None, *, before_run=None) -> Response:
    """``POST /infer/{model}``: the image comes from the datastore (``image``), a session (``session_id``)
    or the upload (``file``); never from a path in the request."""
    if output == ResultType.dicom_seg:
        raise RequestError("output=dicom_seg is not produced by GazeLabel tasks; use json, image or all")
    if label is not None:
        raise RequestError("label: GazeLabel infer tasks take no label upload")
    if sum(bool(x) for x in (image, session_id, file)) != 1:
        raise RequestError("send exactly one of: image=<id>, session_id=<id> or a file upload")
    request = infer_params(model, params)
    request["heatmap"] = output in (ResultType.image, ResultType.all)
    instance = app_instance()
    with contextlib.ExitStack() as stack:
        if file is not None:
            suffix = upload_suffix(file.filename, ".dcm")
            path = str(stack.enter_context(spooled(file, suffix)))
        elif session_id:
            path = session_image(session_id)
        else:
            path = instance.datastore().get_image_uri(parse_id(image, "image"))
            if not path or not os.path.isfile(path):
                raise HTTPException(status_code=404, detail=f"no image with id {image!r} in the datastore")
        if before_run is not None:
            stack.enter_context(before_run())
        result = instance.infer({**request, "model": model, "image": path})
    return heatmap_response(result.get("file"), result.get("params") or {}, output)
