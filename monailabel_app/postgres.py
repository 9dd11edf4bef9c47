"""A throw-away local PostgreSQL on loopback, for tests, benchmarks and demos of a shared datastore index.

Needs the Debian package ``postgresql`` (``apt-get install -y postgresql``: ``initdb``, ``pg_ctl`` and
``postgres`` in ``/usr/lib/postgresql/<version>/bin``) and the Python driver ``psycopg2``
(``pip install -e '.[postgres]'``). Each instance gets its own data folder (``initdb``), a free
``127.0.0.1`` port and its Unix socket inside ``base_dir``; it listens on loopback only, trusts loopback
connections (no passwords: nothing else can reach it) and is stopped on exit.

    with PostgresServer(tmp_dir) as pg:
        pg.url                          # postgresql+psycopg2://gazelabel@127.0.0.1:<port>/gazelabel (--db of a server)
        pg.create_database("other")     # the URL of another, empty database on the same server

initdb and postgres refuse to run as root: as root they run as the Debian ``postgres`` user, in a folder
owned by it (inside ``base_dir`` when that user can reach it, else a private folder under ``/tmp``).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .launcher import free_port

SERVICE_USER = "postgres"  # the Debian package's system user, who runs the server when we are root
DB_USER = "gazelabel"
DB_NAME = "gazelabel"
BINARIES = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = "apt-get install -y postgresql"


def _version_key(path: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[./]", path.split("/postgresql/")[-1].split("/bin")[0]))


def postgres_bin_dir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (newest Debian version first), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).resolve().parent))
        candidates.append(str(Path(found).parent))
    candidates += ["/usr/local/pgsql/bin", "/usr/local/bin", "/usr/bin"]
    for folder in candidates:
        if all(os.access(os.path.join(folder, b), os.X_OK) for b in BINARIES):
            return Path(folder)
    return None


def postgres_missing() -> str | None:
    """Why a private PostgreSQL cannot start here (what to install), or None when it can."""
    if postgres_bin_dir() is None:
        return f"PostgreSQL is not installed (no initdb, pg_ctl and postgres; {INSTALL_HINT})"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver psycopg2 is not installed (pip install psycopg2-binary==2.9.10)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return (f"running as root, and PostgreSQL refuses root: there is no {SERVICE_USER!r} user to run it as "
                    f"({INSTALL_HINT} creates it)")
    return None


class PostgresServer:
    """One ``postgres`` process on ``127.0.0.1:<port>`` with its data in a fresh folder (see module docstring)."""

    def __init__(self, base_dir: str | Path, port: int | None = None, user: str = DB_USER, dbname: str = DB_NAME):
        self.base_dir = Path(base_dir).resolve()
        self.port = port or free_port()
        self.user = user
        self.dbname = dbname
        self.process: subprocess.Popen | None = None
        self.work_dir: Path | None = None  # data/ and the socket folder; owned by the server's user
        self._private_tmp = False
        self._run_as: pwd.struct_passwd | None = None

    # ---------------------------------------------------------------- addresses
    def url_of(self, dbname: str) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database created at start (``--db`` of a GazeLabel server)."""
        return self.url_of(self.dbname)

    @property
    def data_dir(self) -> Path:
        assert self.work_dir is not None, "the server is not started"
        return self.work_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---------------------------------------------------------------- processes
    def _popen_kwargs(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "LANG": "C", "TZ": "UTC"})
        kwargs: dict = {"env": env, "cwd": str(self.work_dir)}
        if self._run_as is not None:
            env.update({"HOME": self._run_as.pw_dir or "/", "USER": SERVICE_USER, "LOGNAME": SERVICE_USER})
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
        return kwargs

    def _run(self, args: list[str], timeout: float = 120.0) -> None:
        with open(self.log_file, "ab") as log:
            result = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, **self._popen_kwargs())
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed (exit {result.returncode}): {self.log_tail(8)}")

    def _reachable_by_service_user(self, folder: Path) -> bool:
        """Whether the service user can create files in ``folder`` (every parent searchable)."""
        try:
            result = subprocess.run(["test", "-w", str(folder), "-a", "-x", str(folder)], timeout=10,
                                    user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
        except (OSError, subprocess.SubprocessError):
            return False
        return result.returncode == 0

    def _prepare_work_dir(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.work_dir = Path(tempfile.mkdtemp(prefix="postgres-", dir=self.base_dir))
            return
        try:
            self._run_as = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise RuntimeError(f"PostgreSQL refuses to run as root and there is no {SERVICE_USER!r} user to run it "
                               f"as; run the tests as another user or {INSTALL_HINT}") from None
        work = Path(tempfile.mkdtemp(prefix="postgres-", dir=self.base_dir))
        os.chown(work, self._run_as.pw_uid, self._run_as.pw_gid)
        if not self._reachable_by_service_user(work):
            # base_dir sits under a folder only root may enter (pytest's /tmp/pytest-of-root is 0700)
            shutil.rmtree(work, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix="gazelabel-postgres-", dir="/tmp"))
            os.chown(work, self._run_as.pw_uid, self._run_as.pw_gid)
            self._private_tmp = True
            if not self._reachable_by_service_user(work):
                shutil.rmtree(work, ignore_errors=True)
                raise RuntimeError(f"PostgreSQL refuses to run as root, and the {SERVICE_USER!r} user cannot write "
                                   f"to {self.base_dir} nor to /tmp; run the tests as another user")
        self.work_dir = work

    def start(self, timeout: float = 60.0) -> "PostgresServer":
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise FileNotFoundError(f"PostgreSQL is not installed ({INSTALL_HINT})")
        import psycopg2

        self._prepare_work_dir()
        sockets = self.work_dir / "socket"
        sockets.mkdir()
        if self._run_as is not None:
            os.chown(sockets, self._run_as.pw_uid, self._run_as.pw_gid)
        self._run([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user, "--auth=trust",
                   "--encoding=UTF8", "--locale=C", "--no-sync"])
        # Loopback only, trusted; nothing else in pg_hba.conf (no Unix-socket peer or remote rules).
        (self.data_dir / "pg_hba.conf").write_text(
            "# GazeLabel throw-away server: loopback TCP only, trusted\n"
            "host all all 127.0.0.1/32 trust\n"
            "local all all trust\n")
        args = [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200", "-c", "shared_buffers=32MB", "-c", "logging_collector=off"]
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            **self._popen_kwargs())
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise RuntimeError(f"postgres exited with code {code}; {self.log_file}: {self.log_tail(8)}")
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres",
                                        connect_timeout=2)
            except psycopg2.OperationalError as e:
                last = str(e).strip()
                time.sleep(0.2)
                continue
            conn.close()
            self.create_database(self.dbname)
            return self
        self.stop()
        raise RuntimeError(f"postgres did not accept connections on 127.0.0.1:{self.port} within {timeout:.0f} s "
                           f"({last[:200]}); see {self.log_file}")

    def create_database(self, dbname: str) -> str:
        """Create an empty database (owned by the server's user); returns its SQLAlchemy URL."""
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        finally:
            conn.close()
        return self.url_of(dbname)

    def stop(self, timeout: float = 20.0) -> None:
        """``pg_ctl stop -m fast``; the process is killed if that fails or takes too long. The data folder is
        removed when it lay outside ``base_dir``."""
        try:
            if self.process is not None and self.process.poll() is None:
                bin_dir = postgres_bin_dir()
                try:
                    if bin_dir is None:
                        raise FileNotFoundError("pg_ctl")
                    self._run([str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w",
                               "-t", str(int(timeout))], timeout=timeout + 5)
                    self.process.wait(timeout)
                except (OSError, RuntimeError, subprocess.SubprocessError):
                    pass
                if self.process.poll() is None:
                    try:
                        os.killpg(self.process.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        self.process.kill()
                    self.process.wait(timeout)
        finally:
            if self._private_tmp and self.work_dir is not None and (self.process is None or self.process.poll() is not None):
                shutil.rmtree(self.work_dir, ignore_errors=True)
                self._private_tmp = False

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
