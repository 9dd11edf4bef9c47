#!/usr/bin/env bash
# The short GPU check of issue 16: each family 1 epoch on the SYNTHETIC phantom at 512 px, images/s and peak
# memory to benchmarks/results/gpu_check.json. Arguments go to benchmarks/gpu_check.py (--device, --size ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
exec "$PY" benchmarks/gpu_check.py "$@"
