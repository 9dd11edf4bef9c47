"""benchmarks/gpu_check.sh, the GPU check a maintainer runs when a GPU is lent, smoke-tested on the CPU at
the phantom's smallest size: each family trains one epoch and the JSON holds images/s and peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_on_the_cpu_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--size", "128",
                        "--images", "16", "--workers", "1", "--work", str(tmp_path / "work"), "--json", str(out)],
                       env={**os.environ, "PY": sys.executable}, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["synthetic"] is True and result["device"] == "cpu"
    assert set(result["families"]) == {"classifier", "scanpath", "report"}
    for row in result["families"].values():
        assert row["images_per_s"] > 0 and row["peak_rss_mib"] > 0
    bad = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--size", "100"],
                         env={**os.environ, "PY": sys.executable}, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--size must be a multiple of 32" in bad.stderr
