"""Every test file passes alone and in any order; ``make test`` runs the files in reverse order.

The regression this guards: a render test (EGL, Mesa's LLVM) followed by any training (torch optimizers
import triton's LLVM) crashed the interpreter with a segmentation fault.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pytest_run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_rendering_then_training_in_one_process():
    run = pytest_run("tests/slicer/test_render.py", "tests/unit/test_optim.py")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Segmentation fault" not in run.stderr


def test_the_file_order_option():
    names = ["tests/unit/test_optim.py", "tests/unit/test_vocab.py", "tests/unit/test_schema.py"]
    runs = {order: pytest_run("--collect-only", "--file-order", order, *names) for order in ("default", "reverse")}
    files = {order: [line.split("::")[0] for line in run.stdout.splitlines() if "::" in line] for order, run in runs.items()}
    first = {order: list(dict.fromkeys(f)) for order, f in files.items()}
    assert first["reverse"] == list(reversed(first["default"])) and len(first["default"]) == 3
    bad = pytest_run("--collect-only", "--file-order", "sideways", names[0])
    assert bad.returncode != 0 and "use default, reverse or random" in bad.stdout + bad.stderr
