"""Start, wait for and stop a hardened GazeLabel server (``monailabel start_server`` in a subprocess).

    settings = ServerSettings(studies="store/", models_dir="models/", work_dir="run/", port=free_port())
    with ServerProcess(settings) as server:          # starts and waits until GET /info/ answers
        requests.get(f"{server.url}/info/", headers=server.headers)

The subprocess runs ``python -m monailabel_app.run_server start_server --app monailabel_app --uvicorn_app
monailabel_app.server:app`` (MONAI Label's ``start_server``, console logging quiet from the start) with the environment MONAI Label reads its settings from: tracking off, PNG/DICOM/JPG
studies, no scoring at start, browser requests limited to the server's own origin, sessions and logs under
``work_dir``, and the GazeLabel auth and guard settings (``GAZELABEL_*``). Its working directory is
``work_dir`` so a stray ``.env`` elsewhere cannot change the settings.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from models.errors import StartupError
from models.files import atomic_json, atomic_write

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parent
STUDY_EXTENSIONS = ["*.png", "*.dcm", "*.jpg", "*.jpeg"]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go, before anything else starts: StartupError with one clear line
    when another program holds the port, the port needs root, or the host is not this machine's."""
    if not 1 <= port <= 65535:
        raise StartupError(f"--port {port}: a TCP port is 1-65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except PermissionError:
            raise StartupError(f"--port {port}: ports below 1024 need root; use a higher one, e.g. --port 8000") from None
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise StartupError(f"--port {port}: already in use on {host} by another program; stop it or "
                                   "choose another port with --port") from None
            if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(e, socket.gaierror):
                raise StartupError(f"--host {host}: not an address of this machine ({e.strerror or e})") from None
            raise StartupError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None


def check_studies(studies: str) -> None:
    """A studies folder must exist and be a folder (a DICOMweb URL is checked when the server lists it)."""
    if str(studies).startswith(("http://", "https://")):
        return
    path = Path(studies)
    if not path.exists():
        raise StartupError(f"--studies {studies}: no such folder")
    if not path.is_dir():
        raise StartupError(f"--studies {studies}: not a folder (give a case store folder or a DICOMweb URL)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ServerSettings:
    """Everything one server needs; ``studies`` is a case store folder or a DICOMweb URL."""

    studies: str
    models_dir: Path
    work_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    auth_token: str | None = None
    basic_auth: str | None = None  # "user:password"
    infer_workers: int = 2
    # SQLAlchemy URL of the datastore's index (default: SQLite in the store); postgresql://... lets several
    # servers share one store. Passed in the environment, not argv: a URL may hold a password.
    db: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    verbose: bool = False  # INFO lines (per-image listing, arguments) on the console too, not only in the log
    # The hardened app; "monailabel.app:app" serves MONAI Label's stock routes (benchmarks compare the two).
    uvicorn_app: str = "monailabel_app.server:app"

    def __post_init__(self):
        self.models_dir, self.work_dir = Path(self.models_dir).resolve(), Path(self.work_dir).resolve()
        if not str(self.studies).startswith(("http://", "https://")):
            self.studies = str(Path(self.studies).resolve())
        if self.auth_token and self.basic_auth:
            raise ValueError("use --auth-token or --basic-auth, not both")
        if self.basic_auth and (":" not in self.basic_auth or not all(self.basic_auth.partition(":")[::2])):
            raise ValueError("--basic-auth must be USER:PASSWORD with both parts non-empty")
        if self.db:
            check_db_url(self.db)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header clients must send (empty without auth)."""
        from monailabel_app.security import AuthConfig

        user, _, password = (self.basic_auth or "").partition(":")
        bearer = AuthConfig(token=self.auth_token, username=user or None, password=password or None).bearer
        return {"Authorization": f"Bearer {bearer}"} if bearer else {}


def log_config(path: Path, log_file: Path, verbose: bool = False) -> Path:
    """A logging dictConfig for uvicorn and MONAI Label: a rotating file with everything (INFO), and the
    console with warnings and errors only unless ``verbose`` (MONAI Label logs one line per image at start)."""
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"format": "[%(asctime)s] [%(process)s] [%(levelname)s] (%(name)s) - %(message)s"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stdout",
                        "level": "INFO" if verbose else "WARNING"},
            "file": {"class": "logging.handlers.RotatingFileHandler", "formatter": "default", "filename": str(log_file),
                     "maxBytes": 10_000_000, "backupCount": 2},
        },
        "root": {"level": "INFO", "handlers": ["console", "file"]},
        "loggers": {"uvicorn.access": {"level": "WARNING"}, "filelock": {"level": "WARNING"}},
    }
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return atomic_json(path, config)


def check_db_url(url: str) -> str:
    """A SQLAlchemy URL of SQLite or PostgreSQL, else ValueError naming ``--db`` and an example."""
    import sqlalchemy as sa

    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        backend = None
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"--db {url[:80]!r}: give a SQLAlchemy URL of SQLite or PostgreSQL, e.g. "
                         "postgresql://gazelabel@127.0.0.1:5432/gazelabel or sqlite:////data/index.sqlite3")
    return url


def server_command(s: ServerSettings) -> list[str]:
    logs = s.work_dir / "logs"
    return [
        sys.executable, "-m", "monailabel_app.run_server", "start_server",
        "--app", str(APP_DIR), "--studies", s.studies,
        "--host", s.host, "--port", str(s.port),
        "--uvicorn_app", s.uvicorn_app,
        "--log_config", str(log_config(logs / "logging.json", logs / "server.log", s.verbose)),
        "--conf", "models_dir", str(s.models_dir),
        "--conf", "dicomweb_cache", str(s.work_dir / "dicomweb_cache"),
    ]


def server_environment(s: ServerSettings, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for key in ("GAZELABEL_AUTH_TOKEN", "GAZELABEL_BASIC_AUTH", "GAZELABEL_DB"):
        env.pop(key, None)
    origins = [f"http://{h}:{s.port}" for h in ("127.0.0.1", "localhost")]
    if s.host not in ("0.0.0.0", "::", *LOOPBACK_HOSTS):
        origins.append(f"http://{s.host}:{s.port}")
    env.update({
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
        "MONAI_LABEL_TRACKING_ENABLED": "false",
        "MONAI_LABEL_AUTH_ENABLE": "false",  # the JWT check of 0.8.5 is broken; GuardMiddleware authenticates
        "MONAI_LABEL_DATASTORE_FILE_EXT": json.dumps(STUDY_EXTENSIONS),
        "MONAI_LABEL_AUTO_UPDATE_SCORING": "false",  # scoring runs the classifier on every image: on request only
        # Not MONAI_LABEL_CORS_ORIGINS: 0.8.5's start_server crashes when it is set (json.dumps of AnyHttpUrl).
        # GuardMiddleware refuses requests (and CORS preflights) from other origins before CORS runs.
        "MONAI_LABEL_SESSION_PATH": str(s.work_dir / "sessions"),
        # Private folders for spooled uploads and third-party temporary files, emptied at each start.
        "GAZELABEL_UPLOAD_DIR": str(s.work_dir / "uploads"),
        "GAZELABEL_TMP_DIR": str(s.work_dir / "tmp"),
        "TMPDIR": str(s.work_dir / "tmp"),
        "GAZELABEL_ALLOWED_ORIGINS": ",".join(origins),
        "GAZELABEL_INFER_WORKERS": str(s.infer_workers),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    })
    # Idle OpenMP threads sleep instead of spinning: spinning threads of concurrent requests and of the train
    # subprocess fight over the cores (a quick classifier epoch: 39 s spinning vs 13 s passive, 2 busy cores).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if s.host in LOOPBACK_HOSTS:
        env["GAZELABEL_ALLOWED_HOSTS"] = ",".join(LOOPBACK_HOSTS)
    if s.auth_token:
        env["GAZELABEL_AUTH_TOKEN"] = s.auth_token
    if s.basic_auth:
        env["GAZELABEL_BASIC_AUTH"] = s.basic_auth
    if s.verbose:
        env["GAZELABEL_VERBOSE"] = "1"
    if s.db:
        env["GAZELABEL_DB"] = s.db
    env.update(s.extra_env)
    return env


class ServerProcess:
    """A running server subprocess. Its output goes to ``work_dir/logs/stdout.log`` (``quiet``, the
    default) or to this process's terminal."""

    def __init__(self, settings: ServerSettings, quiet: bool = True):
        self.settings = settings
        self.quiet = quiet
        self.process: subprocess.Popen | None = None
        self.nonce = ""
        self._log_offset = 0

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def headers(self) -> dict[str, str]:
        return self.settings.headers

    @property
    def pid_file(self) -> Path:
        """``work_dir/server.pid``: the server's process (group) id while it runs."""
        return self.settings.work_dir / "server.pid"

    @property
    def log_file(self) -> Path:
        """``work_dir/logs/server.log``: everything the server logs (the console gets warnings only)."""
        return self.settings.work_dir / "logs" / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.settings.work_dir / "logs" / "stdout.log"

    def start(self, timeout: float = 180.0) -> "ServerProcess":
        """Check the port, start the server, and wait until *this* process answers (its start nonce).

        Raises:
            StartupError: one line: the port is taken or needs root, the studies folder is missing, or the
                server exited or did not answer in ``timeout`` s (its first error line and the log path)."""
        check_port(self.settings.host, self.settings.port)
        check_studies(self.settings.studies)
        command = server_command(self.settings)  # creates work_dir/logs
        for private in ("uploads", "tmp"):
            (self.settings.work_dir / private).mkdir(mode=0o700, exist_ok=True)
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self.nonce = secrets.token_hex(16)
        env = {**server_environment(self.settings), "GAZELABEL_START_NONCE": self.nonce}
        with open(self.stdout_file, "ab") if self.quiet else open(os.devnull, "rb") as out:
            self.process = subprocess.Popen(
                command, env=env, cwd=self.settings.work_dir,
                stdout=out if self.quiet else None, stderr=subprocess.STDOUT if self.quiet else None,
                start_new_session=True,
            )
        atomic_write(self.pid_file, str(self.process.pid))
        self.wait_ready(timeout)
        return self

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines this run wrote to the server log (earlier runs' lines left out)."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(self._log_offset if f.seek(0, os.SEEK_END) >= self._log_offset else 0)
                text = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:]) or "(nothing logged yet)"

    def first_error(self) -> str:
        """The first ERROR/CRITICAL line (or traceback's last line) of this run's log, for a one-line message."""
        lines = self.log_tail(2000).splitlines()
        errors = [line for line in lines if "[ERROR]" in line or "[CRITICAL]" in line or "Error:" in line]
        return (errors[0] if errors else (lines[-1] if lines else "no log")).split(" - ", 1)[-1].strip()[:300]

    def answers(self) -> bool:
        """True when the server at the URL is this process (``GET /health`` carries this start's nonce)."""
        try:
            response = requests.get(f"{self.url}/health", headers=self.headers, timeout=5)
            return response.status_code == 200 and response.json().get("nonce") == self.nonce
        except (requests.RequestException, ValueError):
            return False

    def wait_ready(self, timeout: float) -> None:
        """Poll ``GET /health`` until this process answers with its nonce; StartupError (one line) if it exits
        or hangs. Another server that happens to answer on the port never counts as ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartupError(f"the server exited with code {self.process.returncode} ({self.first_error()}); "
                                   f"log: {self.log_file}")
            if self.answers():
                return
            time.sleep(0.5)
        self.stop()
        raise StartupError(f"the server did not answer on {self.url} within {timeout:.0f} s ({self.first_error()}); "
                           f"log: {self.log_file}")

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and the train/scoring subprocesses it started (its process group)."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> "ServerProcess":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- gazelabel serve
def _connection_help(s: ServerSettings, image_id: str, web: str | None = None) -> str:
    auth = ""
    if s.auth_token:
        auth = ' -H "Authorization: Bearer $GAZELABEL_AUTH_TOKEN"'
    elif s.basic_auth:
        auth = f" -u {s.basic_auth.partition(':')[0]}:<password>"
    login = ("token: the server's token" if s.auth_token else
             "user/password: the server's basic-auth values" if s.basic_auth else "no login (loopback only)")
    return "\n".join([
        "",
        f"GazeLabel server ready at {s.url}",
        f"  studies: {s.studies}",
        f"  models:  {s.models_dir}",
        f"  logs:    {s.work_dir / 'logs'}",
        "",
        "3D Slicer: install the GazeLabel extension (slicer_extension/), open the GazeLabel module and set",
        f"  Server = {s.url}  ({login}).",
        *([f"Browser: {web}" if web.startswith("http") else f"Browser: no web annotator ({web})", ""] if web else [""]),
        "Try it:",
        f'  curl -s{auth} "{s.url}/info/"',
        f'  curl -s{auth} -X POST "{s.url}/infer/pipeline?image={image_id}&output=json"',
        f'  curl -s{auth} -X POST "{s.url}/infer/gaze_classifier?image={image_id}&output=image" -o heatmap.nii.gz',
        "Ctrl-C stops the server.",
        "",
    ])


def serve(studies: str | None, *, host: str = "127.0.0.1", port: int = 8000, auth_token: str | None = None,
          basic_auth: str | None = None, models_dir: str | Path | None = None, work_dir: str | Path | None = None,
          profile: str = "quick", infer_workers: int = 2, insecure: bool = False, verbose: bool = False,
          db: str | None = None, web_port: int | None = None) -> int:
    """``gazelabel serve``: check the port and folders, prepare the sample store and default models if needed,
    start the server in the foreground, print how to connect, and return its exit code when it stops. With
    ``web_port`` the web annotator (``gazelabel web``) is served on that port too, logged in like a client;
    when it cannot start (no ``.venv-web``, port taken) the banner says why and the server runs on.

    Raises:
        StartupError: one line for every reason it cannot start (port taken or privileged, missing studies
            or models folder, the server exiting during start-up).
    """
    from models.datasets.store import CaseStore
    from models.quickstart import PROFILES, ensure_sample_store, train_default_models
    from models.runtime import home

    if host not in LOOPBACK_HOSTS and not (auth_token or basic_auth) and not insecure:
        raise StartupError(f"--host {host}: refusing to serve beyond this machine without --auth-token-file or "
                           "--basic-auth-file (add --insecure to do it anyway)")
    check_port(host, port)  # before minutes of first-run training
    if studies is not None:
        check_studies(studies)
    if models_dir is not None and not Path(models_dir).is_dir():
        raise StartupError(f"--models-dir {models_dir}: no such folder (create it, or leave the option out to use "
                           f"{home() / 'models'})")
    models_dir = Path(models_dir or home() / "models")
    if studies is None:
        print(f"[gazelabel] no --studies: using the embedded SYNTHETIC phantom store in {home() / 'sample_store'}", flush=True)
        studies = str(ensure_sample_store(home() / "sample_store", n=PROFILES[profile]["images"]))
        train_default_models(studies, models_dir, profile=profile, device="cpu")
    elif not (models_dir / "classifier.pt").exists():
        print(f"[gazelabel] {models_dir} has no classifier yet: infer tasks appear once you train "
              "(POST /train/gaze_classifier after saving labels, or `gazelabel train classifier`)", flush=True)
    settings = ServerSettings(studies=studies, models_dir=models_dir, work_dir=Path(work_dir or home() / "server"),
                              host=host, port=port, auth_token=auth_token, basic_auth=basic_auth,
                              infer_workers=infer_workers, verbose=verbose, db=db)
    image_id = "<image id>"
    if not settings.studies.startswith(("http://", "https://")):
        image_id = next(iter(CaseStore(settings.studies).ids()), image_id)
    server = ServerProcess(settings, quiet=False)
    if threading.current_thread() is threading.main_thread():
        # A service manager (systemd, docker stop) sends SIGTERM: stop the server too, as Ctrl-C does; by
        # default SIGTERM would end this process and leave the server (its own session) running.
        signal.signal(signal.SIGTERM, _interrupt)
    web = None
    try:
        server.start(timeout=300)
        web, where = _start_web(settings, web_port) if web_port else (None, None)
        print(_connection_help(settings, image_id, where), flush=True)
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if web is not None and web.poll() is None:
            os.killpg(web.pid, signal.SIGTERM)
            try:
                web.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(web.pid, signal.SIGKILL)
        server.stop()


def _start_web(s: ServerSettings, port: int, timeout: float = 60.0) -> tuple[subprocess.Popen | None, str]:
    """Start ``gazelabel web`` for the server on loopback ``port``, logged in with the server's own auth;
    ``(process, its URL)``, or ``(None, why not)`` in one line."""
    try:
        from web_annotator.command import web_command

        check_port("127.0.0.1", port)
        base = {k: v for k, v in os.environ.items() if k not in ("GAZELABEL_AUTH_TOKEN", "GAZELABEL_BASIC_AUTH")}
        if s.auth_token:
            base["GAZELABEL_AUTH_TOKEN"] = s.auth_token
        elif s.basic_auth:
            base["GAZELABEL_BASIC_AUTH"] = s.basic_auth
        command, env = web_command(["--server", s.url, "--port", str(port)], environ=base)
    except (ImportError, FileNotFoundError, StartupError) as e:
        return None, str(e)
    log = s.work_dir / "logs" / "web.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(command, env=env, cwd=s.work_dir, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return process, f"{url}  (gazelabel web: the Slicer module's annotation loop in a web page; log {log})"
        except requests.RequestException:
            time.sleep(0.5)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    return None, f"gazelabel web did not start (see {log})"


def _interrupt(signum, frame):
    raise KeyboardInterrupt
