"""The layering rules of the design (models/ never imports the server or Slicer; loading and prediction
never import training code; no cycles between the packages of models/), checked by import-linter with the
contracts in pyproject.toml, and shown to fail on a tree that breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is in the test extras")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def copy_tree(dst: Path) -> Path:
    for pkg in ("models", "monailabel_app"):
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_the_repository_keeps_every_contract():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.count(" KEPT") == 3, proc.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("models/schema.py", "import monailabel_app.routes  # noqa", "models never imports"),
    ("models/classifier/predict.py", "from models.classifier import train as _t  # noqa", "loading and prediction"),
    ("models/pipeline.py", "import models.training  # noqa", "loading and prediction"),
    ("models/labeling/phrases.py", "import models.report.generate  # noqa", "no cycles"),
])
def test_a_tree_that_breaks_a_contract_fails(tmp_path, module, line, contract):
    tree = copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + "\n" + line + "\n")
    proc = lint(tree)
    assert proc.returncode != 0
    broken = [ln for ln in proc.stdout.splitlines() if " BROKEN" in ln]
    assert any(ln.startswith(contract) for ln in broken), proc.stdout
