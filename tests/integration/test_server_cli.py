"""``gazelabel serve`` as a user runs it: a subprocess that starts the server, prints how to connect, enforces
the token, and stops cleanly on Ctrl-C (SIGINT) or a service manager's SIGTERM. Uses a copy of the tiny store
and models (no training)."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from models.cli import main
from monailabel_app.launcher import free_port

pytestmark = pytest.mark.integration


def test_serve_refuses_a_public_host_without_auth(tiny_models, capsys):
    store, models = tiny_models
    assert main(["serve", "--studies", str(store), "--models-dir", str(models), "--host", "0.0.0.0"]) == 2
    assert "refusing to serve beyond this machine" in capsys.readouterr().err


def _as_a_terminal_job():
    # A suite started in the background (``cmd &``, nohup) hands its children SIGINT ignored, and Python
    # then never raises KeyboardInterrupt; a user's terminal delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_starts_prints_help_enforces_the_token_and_stops(tiny_models, tmp_path, stop_signal):
    store = shutil.copytree(tiny_models[0], tmp_path / "store")
    models = shutil.copytree(tiny_models[1], tmp_path / "models", symlinks=True)
    port = free_port()
    env = {**os.environ, "GAZELABEL_HOME": str(tmp_path / "home"), "GAZELABEL_AUTH_TOKEN": "cli-test-token"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "models.cli", "serve", "--studies", str(store), "--models-dir", str(models),
         "--work-dir", str(tmp_path / "work"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
        preexec_fn=_as_a_terminal_job,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    output, deadline = [], time.monotonic() + 300
    try:
        while not any("Ctrl-C stops the server" in line for line in output):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(output[-40:])
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        text = "".join(output)
        url = f"http://127.0.0.1:{port}"
        assert f"GazeLabel server ready at {url}" in text and "3D Slicer" in text
        first_id = sorted(p.name[:-4] for p in store.glob("*.png"))[0]
        assert f"/infer/pipeline?image={first_id}&output=json" in text and "Authorization: Bearer" in text
        assert "cli-test-token" not in text  # the secret is not echoed

        assert requests.get(f"{url}/info/", timeout=30).status_code == 401
        info = requests.get(f"{url}/info/", headers={"Authorization": "Bearer cli-test-token"}, timeout=30)
        assert info.status_code == 200 and "pipeline" in info.json()["models"]

        proc.send_signal(stop_signal)
        assert proc.wait(120) == 0  # stop() allows 20 s for SIGTERM then 20 s after SIGKILL; a loaded CI is slow
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/info/", timeout=5)
    finally:
        if proc.poll() is None:  # the test failed: stop the command and the server it started
            pid_file = tmp_path / "work" / "server.pid"
            for pid in ([int(pid_file.read_text())] if pid_file.exists() else []) + [proc.pid]:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
        assert not (tmp_path / "work" / "server.pid").exists(), "the server was left running"
