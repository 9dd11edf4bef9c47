"""A throw-away local Orthanc PACS with DICOMweb, for tests, benchmarks and demos.

Needs the Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``apt-get install -y orthanc orthanc-dicomweb``).
Each instance gets its own config, storage folder and free loopback HTTP port; the DICOM (DIMSE) server is
off, remote access is refused and nothing is written outside ``work_dir``.

    with OrthancServer(tmp_dir) as pacs:
        pacs.store(["a.dcm", "b.dcm"])
        pacs.dicomweb_url            # http://127.0.0.1:<port>/dicom-web  (the --studies of a GazeLabel server)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import requests

from .launcher import free_port

PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so",
)


def orthanc_executable() -> str | None:
    """Path of the Orthanc binary, or None when it is not installed."""
    return shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if Path(p).exists()), None)


def dicomweb_plugin() -> str | None:
    return next((p for p in PLUGIN_CANDIDATES if Path(p).exists()), None)


def orthanc_missing() -> str | None:
    """Why a private Orthanc with DICOMweb cannot start here (what to install), or None when it can."""
    if orthanc_executable() is None or dicomweb_plugin() is None:
        return "Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb)"
    return None


class OrthancServer:
    """One Orthanc process on ``127.0.0.1:<port>`` with storage in ``work_dir``."""

    def __init__(self, work_dir: str | Path, port: int | None = None):
        self.work_dir = Path(work_dir).resolve()
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict:
        plugin = dicomweb_plugin()
        if plugin is None:
            raise FileNotFoundError("the Orthanc DICOMweb plugin is not installed (apt-get install -y orthanc-dicomweb)")
        storage = self.work_dir / "storage"
        return {
            "Name": "GazeLabel-local",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": False,
            "SaveJobs": False,
            "HttpThreadsCount": 8,
            "Plugins": [plugin],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": "127.0.0.1", "Ssl": False},
        }

    def start(self, timeout: float = 60.0) -> "OrthancServer":
        executable = orthanc_executable()
        if executable is None:
            raise FileNotFoundError("Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=1))
        with open(self.work_dir / "orthanc.log", "ab") as log:
            self.process = subprocess.Popen([executable, str(config)], cwd=self.work_dir, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with code {self.process.returncode}; see {self.work_dir / 'orthanc.log'}")
            try:
                if requests.get(f"{self.url}/system", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer on {self.url} within {timeout:.0f} s")

    def store(self, paths) -> list[str]:
        """Upload DICOM files (REST ``POST /instances``); returns the Orthanc instance ids."""
        ids = []
        for path in paths:
            response = requests.post(f"{self.url}/instances", data=Path(path).read_bytes(), timeout=60)
            response.raise_for_status()
            ids.append(response.json()["ID"])
        return ids

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def __enter__(self) -> "OrthancServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
