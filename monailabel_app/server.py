"""The ASGI app of a GazeLabel server: MONAI Label's own routes and lifespan, hardened and made responsive.

Served with ``monailabel start_server --app monailabel_app --uvicorn_app monailabel_app.server:app`` (see
:mod:`monailabel_app.launcher`). Compared with ``monailabel.app.app`` it:

- puts :class:`~monailabel_app.security.GuardMiddleware` in front of every route (auth, disabled routes,
  unsafe ids, cross-site requests), has no ``POST /reload`` (it re-imports app code), no Keycloak login and
  no pathology (WSI) routes, and no CORS ``*``: only same-origin browser requests are served;
- serves ``/auth/``, ``/auth/token`` and ``/auth/token/valid`` for the token / basic-auth modes, so the MONAI
  Label client and Slicer plugin log in with their usual flow;
- runs the blocking MONAI Label endpoints in Starlette's threadpool: in 0.8.5 they are ``async def`` that
  block, so one inference froze ``/info/`` and the datastore listing for its whole duration;
- bounds concurrent inferences (``GAZELABEL_INFER_WORKERS``, default 2) so extra clients queue instead of
  thrashing the CPU, runs each with ``GAZELABEL_INFER_THREADS`` (default 1) torch threads, and answers
  unknown image ids with 404 before any model runs;
- turns the library's input errors into 4xx responses with their message.

Settings come from environment variables, which the launcher sets before this module is imported.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import threading
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, BackgroundTasks, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from monailabel import app as ml_app
from monailabel.endpoints import activelearning, batch_infer, datastore, info, logs, model, ohif, proxy, scoring, session, train
from monailabel.endpoints import infer as ml_infer
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException, MONAILabelException
from monailabel.interfaces.utils.app import app_instance

from models.imaging import ImageError
from models.runtime import CheckpointError
from models.schema import CaseError

from .lib.ids import UnsafeIdError
from .security import AuthConfig, GuardMiddleware

# MONAI Label endpoint modules served here (not wsi_infer: pathology; not login: Keycloak only, replaced below).
ROUTERS = (info, model, ml_infer, batch_infer, train, activelearning, scoring, datastore, logs, ohif, proxy, session)
# Routers whose 0.8.5 handlers are `async def` but do blocking work (models, files, subprocess start).
BLOCKING_PREFIXES = ("/info", "/model", "/batch", "/train", "/activelearning", "/scoring", "/datastore", "/session")
INFER_SLOTS = threading.BoundedSemaphore(max(1, int(os.environ.get("GAZELABEL_INFER_WORKERS", "2"))))
# Routes that run models in the request thread (inference, uncertainty strategy and scoring).
MODEL_PREFIXES = ("/infer", "/activelearning", "/scoring", "/batch")
INFER_THREADS = max(1, int(os.environ.get("GAZELABEL_INFER_THREADS", "1")))
AUTH = AuthConfig.from_env()


def _csv(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


# ---------------------------------------------------------------------------------------------- threadpool
def _limit_torch_threads() -> None:
    """One request = ``GAZELABEL_INFER_THREADS`` (default 1) torch threads; parallelism comes from
    concurrent requests. Batch-1 inference of small models gains little from intra-op threads, and on a busy
    CPU their OpenMP spinning made a pipeline call ~10x slower (1.4 s vs 10-30 s measured on 2 loaded cores).
    Set per request because worker threads may hold their own OpenMP settings."""
    import torch

    if torch.get_num_threads() != INFER_THREADS:
        torch.set_num_threads(INFER_THREADS)


def _in_threadpool(endpoint, limit_threads: bool = False):
    """A sync twin of an ``async def`` endpoint that never awaits: FastAPI runs sync endpoints in its
    threadpool, so the event loop keeps serving other requests. The copied signature keeps the same query,
    form and file parameters (no ``__wrapped__``: FastAPI would unwrap it and await the sync twin)."""

    def run(*args, **kwargs):
        if limit_threads:
            _limit_torch_threads()
        return asyncio.run(endpoint(*args, **kwargs))

    run.__signature__ = inspect.signature(endpoint)
    run.__name__, run.__qualname__, run.__doc__ = endpoint.__name__, endpoint.__qualname__, endpoint.__doc__
    return run


def infer(
    background_tasks: BackgroundTasks,
    model: str,
    image: str = "",
    session_id: str = "",
    params: str = Form("{}"),
    file: UploadFile = File(None),
    label: UploadFile = File(None),
    output: Optional[ml_infer.ResultType] = None,
):
    """``POST /infer/{model}``: MONAI Label's inference in a worker thread, at most GAZELABEL_INFER_WORKERS at once.

    ``output=image|all`` asks the task for the heatmap label image (``params["heatmap"] = true``); JSON only
    otherwise. Model outputs are never saved as labels here (``save_label`` is dropped)."""
    try:
        request_params = json.loads(params) if params else {}
    except json.JSONDecodeError as e:
        raise HTTPException(status_code=400, detail=f"params: not valid JSON ({e})") from None
    if not isinstance(request_params, dict):
        raise HTTPException(status_code=400, detail="params: expected a JSON object")
    request_params.pop("save_label", None)
    request_params["heatmap"] = output in (ml_infer.ResultType.image, ml_infer.ResultType.all)
    if image and not file and not session_id and not app_instance().datastore().get_image_uri(image):
        raise HTTPException(status_code=404, detail=f"no image with id {image!r} in the datastore")
    with INFER_SLOTS:
        _limit_torch_threads()
        return ml_infer.run_inference(background_tasks, model, image, session_id, json.dumps(request_params), file, label, output)


def gazelabel_router() -> APIRouter:
    """MONAI Label's routes, with ``POST /infer/{model}`` replaced and blocking handlers moved to the threadpool."""
    router = APIRouter()
    for module in ROUTERS:
        for route in module.router.routes:
            endpoint = route.endpoint
            if route.path == "/infer/{model}":
                endpoint = infer
            elif route.path.startswith(BLOCKING_PREFIXES) and inspect.iscoroutinefunction(endpoint):
                endpoint = _in_threadpool(endpoint, limit_threads=route.path.startswith(MODEL_PREFIXES))
            router.add_api_route(
                route.path, endpoint, methods=sorted(route.methods), name=route.name, summary=route.summary,
                description=route.description, tags=route.tags, responses=route.responses,
                include_in_schema=route.include_in_schema, deprecated=route.deprecated,
                response_class=route.response_class, dependencies=route.dependencies,
            )
    return router


app = FastAPI(title="GazeLabel (MONAI Label 0.8.5)", openapi_url="/openapi.json", docs_url=None, redoc_url="/docs",
              lifespan=ml_app.lifespan)
app.mount("/static", StaticFiles(directory=Path(ml_app.__file__).parent / "endpoints" / "static"), name="static")
app.include_router(gazelabel_router())


# ---------------------------------------------------------------------------------------------- auth routes
@app.get("/auth/", include_in_schema=False)
def auth_enabled():
    return {"enabled": AUTH.mode is not None, "mode": AUTH.mode, "client_id": "gazelabel", "realm": "GazeLabel"}


@app.post("/auth/token", summary="Exchange user/password (or the server token as password) for a bearer token")
async def auth_token(request: Request):
    form = await request.form()
    if AUTH.mode is None:
        return {"access_token": None, "token_type": None}
    token = AUTH.exchange(str(form.get("username", "")), str(form.get("password", "")))
    if token is None:
        raise HTTPException(status_code=401, detail="wrong user name or password")
    return {"access_token": token, "token_type": "Bearer"}


@app.get("/auth/token/valid", summary="200 when the request's credentials are accepted")
def auth_token_valid():
    return {"username": AUTH.username or ("token" if AUTH.token else "anonymous")}


# ---------------------------------------------------------------------------------------------- errors
def _handler(status: int):
    def handle(request: Request, exc: Exception) -> JSONResponse:
        detail = exc.msg if isinstance(exc, MONAILabelException) else str(exc) or type(exc).__name__
        return JSONResponse(status_code=status, content={"detail": detail})

    return handle


ERROR_STATUS = {
    UnsafeIdError: 400,
    ImageError: 422,
    CaseError: 422,
    CheckpointError: 503,
    ImageNotFoundException: 404,
    LabelNotFoundException: 404,
    MONAILabelException: 400,
    PermissionError: 403,
    ValueError: 400,
}

for _exc, _status in ERROR_STATUS.items():
    app.add_exception_handler(_exc, _handler(_status))
app.add_middleware(
    GuardMiddleware,
    auth=AUTH,
    allowed_origins=_csv("GAZELABEL_ALLOWED_ORIGINS"),
    allowed_hosts=_csv("GAZELABEL_ALLOWED_HOSTS"),
    max_upload_mb=float(os.environ.get("GAZELABEL_MAX_UPLOAD_MB", "512")),
)
