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


def test_every_start_up_failure_is_one_line_and_exit_2(tiny_models, tmp_path, capsys):
    """A busy port, a missing studies or models folder, a database URL of another kind: one line naming the problem, status 2, no traceback,
    and never the "ready" banner (a server that another program answers for is not ready)."""
    import socket

    store, models = tiny_models
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    try:
        cases = [
            (["--port", str(busy)], f"--port {busy}: already in use"),
            (["--port", "70000"], "a TCP port is 1-65535"),
            (["--studies", str(tmp_path / "nowhere")], "no such folder"),
            (["--studies", str(store / "dataset.json")], "not a folder"),
            (["--models-dir", str(tmp_path / "no_models")], "--models-dir"),
            (["--host", "10.255.255.1", "--insecure"], "not an address of this machine"),
            (["--db", "mysql://u@127.0.0.1/x"], "--db 'mysql://u@127.0.0.1/x': give a SQLAlchemy URL of SQLite or PostgreSQL"),
            (["--db", "not a url"], "--db 'not a url'"),
        ]
        for extra, message in cases:
            argv = ["serve", "--studies", str(store), "--models-dir", str(models), "--work-dir", str(tmp_path / "w"), *extra]
            assert main(argv) == 2, extra
            captured = capsys.readouterr()
            lines = [line for line in captured.err.splitlines() if line.strip()]
            assert len(lines) == 1 and message in lines[0] and "Traceback" not in captured.err, (extra, captured.err)
            assert "ready" not in captured.out
    finally:
        holder.close()


def test_a_privileged_port_is_one_line_for_a_non_root_user(monkeypatch):
    import socket

    from models.errors import StartupError
    from monailabel_app import launcher

    class Refusing(socket.socket):
        def bind(self, address):
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(launcher.socket, "socket", Refusing)
    with pytest.raises(StartupError, match="ports below 1024 need root"):
        launcher.check_port("127.0.0.1", 80)


def test_readiness_is_this_process_and_the_log_tail_is_this_run(tmp_path):
    """Another server answering on the port is not "ready"; the log tail leaves earlier runs out."""
    import http.server
    import json

    from monailabel_app.launcher import ServerProcess, ServerSettings

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "nonce": "someone-else"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        settings = ServerSettings(studies=str(tmp_path), models_dir=tmp_path, work_dir=tmp_path / "w",
                                  port=other.server_address[1])
        process = ServerProcess(settings)
        process.nonce = "mine"
        assert not process.answers()
        log = process.log_file
        log.parent.mkdir(parents=True)
        log.write_text("[old] an error from yesterday's run\n")
        process._log_offset = log.stat().st_size
        with open(log, "a") as f:
            f.write("[2026] [1] [ERROR] (x) - this run's error\n")
        assert "yesterday" not in process.log_tail() and "this run's error" in process.log_tail()
        assert process.first_error() == "this run's error"
    finally:
        other.shutdown()
