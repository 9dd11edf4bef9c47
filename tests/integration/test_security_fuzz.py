"""Property-based fuzzing of the whole HTTP API from its OpenAPI schema (``schemathesis``), on loopback.

Bounded in examples per operation and in time. Asserts that no request got a 5xx and that the server is
alive and its listings are valid JSON afterwards. The figures (requests sent, status classes) are printed
and written to ``<work dir>/fuzz_summary.json``.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
MAX_EXAMPLES = int(os.environ.get("GAZELABEL_FUZZ_EXAMPLES", "12"))
MAX_TIME_S = int(os.environ.get("GAZELABEL_FUZZ_SECONDS", "120"))


def _statuses(ndjson: Path) -> collections.Counter:
    """Status code -> count over every HTTP exchange recorded in schemathesis' NDJSON event log."""
    counts: collections.Counter = collections.Counter()

    def walk(node):
        if isinstance(node, dict):
            response = node.get("response")
            if isinstance(response, dict) and isinstance(response.get("status_code"), int):
                counts[response["status_code"]] += 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for line in ndjson.read_text().splitlines():
        if line.strip():
            walk(json.loads(line))
    return counts


def _outside(server) -> set[str]:
    base = server.store.parent.parent  # the folder holding this server's store, models and work folders
    return {p.name for p in base.iterdir()} | {p.name for p in server.store.parent.iterdir()}


def test_no_request_gets_a_server_error(module_server, tmp_path):
    server = module_server()
    before = _outside(server)
    report = tmp_path / "events.ndjson"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
        "--checks", "not_a_server_error", "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_TIME_S),
        "--workers", "1", "--seed", "20261201", "--generation-database", "none", "--request-timeout", "120",
        "--phases", "examples,coverage,fuzzing", "--no-color", "--suppress-health-check", "all",
        "--report", "ndjson", "--report-ndjson-path", str(report),
    ]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=MAX_TIME_S + 300, env=env, cwd=tmp_path)
    statuses = _statuses(report) if report.exists() else collections.Counter()
    sent = sum(statuses.values())
    errors = sum(n for code, n in statuses.items() if code >= 500)
    summary = {"requests": sent, "5xx": errors, "by_status": dict(sorted(statuses.items())),
               "max_examples": MAX_EXAMPLES, "max_time_s": MAX_TIME_S, "exit": run.returncode}
    (server.work_dir / "fuzz_summary.json").write_text(json.dumps(summary, indent=1))
    (server.work_dir / "fuzz_output.txt").write_text(run.stdout + run.stderr)
    print(f"\nschemathesis: {summary}")
    tail = (run.stdout + run.stderr)[-6000:]
    assert sent > 300, f"the fuzzer sent only {sent} requests:\n{tail}"
    assert errors == 0, f"{errors} server errors:\n{tail}\n{server.log_tail(200)}"
    assert run.returncode == 0, tail
    assert server.process.process.poll() is None, "the server died"
    assert _outside(server) == before, "the fuzzer's requests created files outside the store"
    for path in ("/info/", "/datastore/?output=all"):
        response = server.get(path)
        assert response.status_code == 200
        json.loads(response.text, parse_constant=lambda c: pytest.fail(f"{path} holds {c}"))
