"""Every command block of the three READMEs runs as written, so the docs cannot drift from the code.

Blocks are fenced with a language: ``text`` (not commands), ``bash`` (each command runs in a scratch folder
that looks like a checkout after ``make demo``: ``.venv``, ``slicer_extension`` and ``.gazelabel`` with the
SYNTHETIC tiny store and tiny models), or ``python`` (run as a script with the module folder on
``PYTHONPATH``, as the README says). ``gazelabel serve`` lines get a free ``--port`` and run until they print
that the server is ready, then get Ctrl-C and must exit 0; ``make demo`` runs its recipe the same way;
``make test`` is what CI runs, so here only its recipe is checked (``make -n``). Addresses of the live
servers replace ``http://127.0.0.1:8000`` (the demo server) and ``http://127.0.0.1:8042`` (Orthanc).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monailabel_app.launcher import free_port
from monailabel_app.orthanc import OrthancServer, orthanc_missing

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "monailabel_app/README.md", "slicer_extension/README.md")
FENCE = re.compile(r"^```(\w*)\s*$")


def code_blocks(path: Path) -> list[tuple[str, str, int]]:
    """``(language, text, first line number)`` of every fenced block in a Markdown file."""
    out, lang, lines, start = [], None, [], 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = FENCE.match(line)
        if fence and lang is None:
            lang, lines, start = fence.group(1), [], number + 1
        elif line.strip() == "```" and lang is not None:
            out.append((lang, "\n".join(lines), start))
            lang = None
        elif lang is not None:
            lines.append(line)
    return out


def commands(block: str) -> list[str]:
    """Shell commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


@pytest.fixture(scope="module")
def checkout(tiny_models, tmp_path_factory):
    """A scratch folder shaped like the repository after ``make demo`` (tiny models instead of quick ones)."""
    root = tmp_path_factory.mktemp("docs_checkout")
    (root / ".venv").symlink_to(Path(sys.prefix))  # the environment running the tests (make test: .venv)
    (root / "slicer_extension").symlink_to(REPO / "slicer_extension")
    (root / "docs").mkdir()
    store, models = tiny_models
    home = root / ".gazelabel"
    shutil.copytree(store, home / "sample_store", ignore=shutil.ignore_patterns("labels", "datastore_v2.json", ".lock", "gazelabel_index.sqlite3*", ".gazelabel_store_id"))
    shutil.copytree(models, home / "models", symlinks=True)
    return root


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    if orthanc_missing() is not None:
        yield None  # a generator fixture must yield, even when there is nothing to give
        return
    from models.imaging import sample_cr_path

    with OrthancServer(tmp_path_factory.mktemp("docs_orthanc")) as server:
        server.store([sample_cr_path()])
        yield server


def environment(checkout: Path, **extra) -> dict[str, str]:
    env = {**os.environ, "GAZELABEL_HOME": str(checkout / ".gazelabel"),
           "PATH": f"{checkout / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", **extra}
    env.pop("GAZELABEL_AUTH_TOKEN", None)
    return env


def run_server_command(command: str, checkout: Path, env: dict) -> str:
    """Start a ``gazelabel serve`` command on a free port, wait for "ready", stop it with Ctrl-C."""
    process = subprocess.Popen(["bash", "-c", f"exec {command} --port {free_port()}"], cwd=checkout, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output, deadline = [], time.monotonic() + 420
    try:
        for line in process.stdout:
            output.append(line)
            if "GazeLabel server ready at" in line or time.monotonic() > deadline:
                break
        assert any("GazeLabel server ready at" in line for line in output), f"{command}:\n{''.join(output[-40:])}"
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=60) == 0, f"{command}: did not stop cleanly on Ctrl-C"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return "".join(output)


def run_command(command: str, checkout: Path, servers: dict, orthanc) -> str:
    env = environment(checkout)
    for placeholder, url in servers.items():
        command = command.replace(placeholder, url)
    if "http://127.0.0.1:8042" in command:
        if orthanc is None:
            pytest.skip("Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)")
        command = command.replace("http://127.0.0.1:8042", orthanc.url)
    command = command.replace("/tmp/overlay.png", str(checkout / "overlay.png"))
    if command.startswith("make "):
        target = command.split()[1]
        recipe = subprocess.run(["make", "-n", "-C", str(REPO), target], capture_output=True, text=True, timeout=120)
        assert recipe.returncode == 0, recipe.stderr
        if target == "test":
            assert "pytest" in recipe.stdout  # CI runs it for real (.ci/run)
            return recipe.stdout
        serve = [line for line in recipe.stdout.splitlines() if "gazelabel serve" in line]
        assert serve, recipe.stdout
        return run_server_command(serve[-1].replace(".venv/bin/", ""), checkout, env)
    if re.match(r"^(\.venv/bin/)?gazelabel serve\b", command):
        return run_server_command(command, checkout, env)
    done = subprocess.run(["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_every_block_is_tagged():
    for doc in DOCS:
        for lang, text, line in code_blocks(REPO / doc):
            assert lang in ("bash", "python", "text"), f"{doc}:{line}: tag the block bash, python or text"


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_block_runs_as_written(doc, checkout, start_server, orthanc):
    server = start_server()
    servers = {"http://127.0.0.1:8000": server.url}
    ran = 0
    for lang, text, line in code_blocks(REPO / doc):
        if lang == "bash":
            for command in commands(text):
                output = run_command(command, checkout, servers, orthanc)
                if "gazelabel predict" in command:
                    assert "SYNTHETIC" in output and (checkout / "overlay.png").exists(), output[-2000:]
                ran += 1
        elif lang == "python":
            script = checkout / f"block_{Path(doc).parent.name or 'root'}_{line}.py"
            script.write_text(text)
            env = environment(checkout, PYTHONPATH="slicer_extension/GazeLabel", GAZELABEL_SERVER=server.url)
            done = subprocess.run([sys.executable, script.name], cwd=checkout, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, f"{doc}:{line}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            ran += 1
    assert ran >= 1, f"{doc} has no command block"
