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
import contextlib
import inspect
import io
import os
import threading
from pathlib import Path
from typing import Callable, Optional

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from monailabel.endpoints import activelearning, batch_infer, datastore, info, logs, model, scoring, session, train
from monailabel.endpoints import infer as ml_infer
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException, MONAILabelException
from monailabel.interfaces.utils.app import app_instance

with contextlib.redirect_stdout(io.StringIO()):  # it prints "Allow Origins: ['*']"; GazeLabel allows none
    from monailabel import app as ml_app

from models.imaging import ImageError
from models.checkpoint import CheckpointError
from models.schema import CaseError
from models.strict_json import JSONValueError

from . import routes
from .lib.ids import ID_PATTERN, UnsafeIdError
from .parsing import RequestError
from .security import NAMED_KINDS, AuthConfig, FailureLimiter, GuardMiddleware, client_address, fastapi_rules, rules_of

# MONAI Label endpoint modules served here (not wsi_infer: pathology; not login: Keycloak only, replaced below;
# not ohif and proxy: a segmentation viewer and an open pass-through to the PACS, neither used by GazeLabel).
ROUTERS = (info, model, batch_infer, train, activelearning, scoring, datastore, logs, session, ml_infer)
# Routers whose 0.8.5 handlers are `async def` but do blocking work (models, files, subprocess start).
BLOCKING_PREFIXES = ("/info", "/model", "/batch", "/train", "/activelearning", "/scoring", "/datastore", "/session")
INFER_SLOTS = threading.BoundedSemaphore(max(1, int(os.environ.get("GAZELABEL_INFER_WORKERS", "2"))))
# Routes that run models in the request thread (inference, uncertainty strategy and scoring).
MODEL_PREFIXES = ("/infer", "/activelearning", "/scoring", "/batch")
INFER_THREADS = max(1, int(os.environ.get("GAZELABEL_INFER_THREADS", "1")))
AUTH = AuthConfig.from_env()
START_NONCE = os.environ.get("GAZELABEL_START_NONCE", "")
# Failed logins (POST /auth/token, bad credentials on any route) per client address before 429.
LOGIN_LIMITER = FailureLimiter(max_failures=int(os.environ.get("GAZELABEL_LOGIN_MAX_FAILURES", "10")),
                               window_s=float(os.environ.get("GAZELABEL_LOGIN_WINDOW_S", "60")))


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


@contextlib.contextmanager
def _infer_slot():
    """At most GAZELABEL_INFER_WORKERS inferences at once, each with GAZELABEL_INFER_THREADS torch threads."""
    with INFER_SLOTS:
        _limit_torch_threads()
        yield


def infer(
    model: str,
    image: str = "",
    session_id: str = "",
    params: str = Form("{}"),
    file: UploadFile = File(None),
    label: UploadFile = File(None),
    output: Optional[ml_infer.ResultType] = None,
):
    """``POST /infer/{model}``: one inference in a worker thread (see :func:`monailabel_app.routes.run_infer`).

    ``output=image|all`` asks the task for the heatmap label image; JSON only otherwise. Model outputs are
    never saved as labels here."""
    return routes.run_infer(model, image, session_id, params, file, label, output, before_run=_infer_slot)


def _own_routes() -> dict[tuple[str, str], Callable]:
    """(method, path) -> GazeLabel's endpoint, for the MONAI Label routes this server answers itself."""
    own = {(m, r.path): r.endpoint for r in routes.router.routes for m in r.methods}
    own[("POST", "/infer/{model}")] = infer
    return own


# MONAI Label routes not served at all (deprecated duplicates of routes served above).
DROPPED = {("PUT", "/datastore/"), ("DELETE", "/datastore/")}


def gazelabel_router() -> APIRouter:
    """MONAI Label's routes with GazeLabel's own file-handling endpoints in their place, and the blocking
    handlers moved to the threadpool."""
    router = APIRouter()
    own = _own_routes()
    for module in ROUTERS:
        for route in module.router.routes:
            for method in sorted(route.methods):
                if (method, route.path) in DROPPED:
                    continue
                endpoint = own.get((method, route.path))
                if endpoint is None:
                    endpoint = route.endpoint
                    if route.path.startswith(BLOCKING_PREFIXES) and inspect.iscoroutinefunction(endpoint):
                        endpoint = _in_threadpool(endpoint, limit_threads=route.path.startswith(MODEL_PREFIXES))
                router.add_api_route(
                    route.path, endpoint, methods=[method], name=route.name, summary=route.summary,
                    description=route.description, tags=route.tags, responses=route.responses,
                    include_in_schema=route.include_in_schema, deprecated=route.deprecated,
                    response_class=route.response_class,
                    dependencies=[] if endpoint is not route.endpoint else route.dependencies,
                )
    return router


@contextlib.asynccontextmanager
async def lifespan(api):
    """MONAI Label's start-up and shutdown, without its "App Init..." print on the console."""
    context = ml_app.lifespan(api)
    with contextlib.redirect_stdout(io.StringIO()):
        await context.__aenter__()
    try:
        yield
    finally:
        with contextlib.redirect_stdout(io.StringIO()):  # "App Shutdown..."
            await context.__aexit__(None, None, None)


app = FastAPI(title="GazeLabel (MONAI Label 0.8.5)", openapi_url="/openapi.json", docs_url=None, redoc_url="/docs",
              lifespan=lifespan)
app.mount("/static", StaticFiles(directory=Path(ml_app.__file__).parent / "endpoints" / "static"), name="static")
ROUTER = gazelabel_router()


# ---------------------------------------------------------------------------------------------- auth routes
@ROUTER.get("/auth/", include_in_schema=False)
def auth_enabled():
    return {"enabled": AUTH.mode is not None, "mode": AUTH.mode, "client_id": "gazelabel", "realm": "GazeLabel"}


@ROUTER.post("/auth/token", summary="Exchange user/password (or the server token as password) for a bearer token")
async def auth_token(request: Request):
    if AUTH.mode is None:
        return {"access_token": None, "token_type": None}
    client = client_address(request.scope)
    wait = LOGIN_LIMITER.retry_after(client)
    if wait:
        raise HTTPException(status_code=429, detail=f"too many failed logins from {client}; try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    form = await request.form()
    token = AUTH.exchange(str(form.get("username", "")), str(form.get("password", "")))
    if token is None:
        LOGIN_LIMITER.failed(client)
        raise HTTPException(status_code=401, detail="wrong user name or password")
    return {"access_token": token, "token_type": "Bearer"}


@ROUTER.get("/health", summary="This server process: its start nonce and pid (the launcher's readiness check)")
def health():
    return {"status": "ok", "nonce": START_NONCE, "pid": os.getpid()}


@ROUTER.get("/auth/token/valid", summary="200 when the request's credentials are accepted")
def auth_token_valid():
    return {"username": AUTH.username or ("token" if AUTH.token else "anonymous")}


app.include_router(ROUTER)


def _openapi_with_rules(base=app.openapi):
    """The OpenAPI schema with the guard's rules written in (id patterns, UUID session ids, booleans), so
    clients and fuzzers know what is accepted before they are refused."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = base()
    try:
        instance = app_instance()
        names = {"/infer/": instance._infers, "/model/": instance._infers, "/train/": instance._trainers,
                 "/activelearning/": instance._strategies, "/scoring/": instance._scoring_methods}
    except Exception:  # the app is not up yet: no task names to offer
        names = {}
    kinds = {"id": {"type": "string", "pattern": ID_PATTERN, "maxLength": 128},
             "session": {"type": "string", "format": "uuid"}, "bool": {"type": "boolean"}}
    for route in ROUTER.routes:
        rules = rules_of(route.endpoint, route.path)
        for method in route.methods:
            operation = schema["paths"].get(route.path, {}).get(method.lower(), {})
            for param in operation.get("parameters", []):
                declared = rules.path if param.get("in") == "path" else rules.query
                kind = declared.get(param["name"]) or NAMED_KINDS.get(param["name"])
                if kind in kinds:
                    default = param.get("schema", {}).get("default")
                    param["schema"] = {**kinds[kind], **({"default": default} if default not in (None, "") else {})}
                tasks = next((sorted(v) for k, v in names.items() if route.path.startswith(k)), None)
                if param.get("in") == "path" and param["name"] in ("model", "strategy", "method") and tasks:
                    param["schema"] = {"type": "string", "enum": tasks}
    app.openapi_schema = schema
    return schema


app.openapi = _openapi_with_rules


# ---------------------------------------------------------------------------------------------- errors
def _handler(status: int):
    def handle(request: Request, exc: Exception) -> JSONResponse:
        detail = exc.msg if isinstance(exc, MONAILabelException) else str(exc) or type(exc).__name__
        return JSONResponse(status_code=getattr(exc, "status", status) if isinstance(exc, RequestError) else status,
                            content={"detail": detail})

    return handle


ERROR_STATUS = {
    RequestError: 400,
    JSONValueError: 400,
    UnsafeIdError: 400,
    ImageError: 422,
    CaseError: 422,
    CheckpointError: 503,
    ImageNotFoundException: 404,
    LabelNotFoundException: 404,
    MONAILabelException: 400,
    PermissionError: 403,
}
# No ValueError -> 400 mapping: a request's own mistakes are RequestError (and the library's input errors
# above); any other exception is a bug in GazeLabel and answers 500, so it is seen and fixed.

for _exc, _status in ERROR_STATUS.items():
    app.add_exception_handler(_exc, _handler(_status))
app.add_middleware(
    GuardMiddleware,
    auth=AUTH,
    route_rules=fastapi_rules(ROUTER),
    limiter=LOGIN_LIMITER,
    allowed_origins=_csv("GAZELABEL_ALLOWED_ORIGINS"),
    allowed_hosts=_csv("GAZELABEL_ALLOWED_HOSTS"),
    max_upload_mb=float(os.environ.get("GAZELABEL_MAX_UPLOAD_MB", "512")),
)

# A server killed mid-request leaves its spooled uploads and temporary files behind; nothing is in flight yet.
routes.clean_folder(routes.upload_dir())
if os.environ.get("GAZELABEL_TMP_DIR"):  # the private TMPDIR the launcher gives the server
    routes.clean_folder(Path(os.environ["GAZELABEL_TMP_DIR"]))
