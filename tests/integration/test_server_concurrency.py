"""A running inference must not stall the server (MONAI Label 0.8.5 ran it on the event loop, notes §8).

While slow pipeline inferences run back to back, ``GET /info/`` and ``GET /datastore/`` are polled; their p95
latency must be far below the inference time. Timing numbers belong in benchmarks/server_benchmark.py; this
only asserts the 0.8.5 behaviour (every request waits for the whole inference) is gone.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_info_and_datastore_answer_while_an_inference_runs(gazelabel_server):
    image_id = gazelabel_server.image_ids[14]
    slow = {"n_samples": 8, "mc_samples": 50, "report_mode": "gaze2report"}
    result: dict = {"status": [], "seconds": []}

    def infer():
        # Back-to-back inferences for at least 3 s: one alone may now be too quick to poll against.
        deadline = time.perf_counter() + 3.0
        while time.perf_counter() < deadline or len(result["seconds"]) < 2:
            start = time.perf_counter()
            response = gazelabel_server.post(f"/infer/pipeline?image={image_id}&output=json",
                                             data={"params": json.dumps(slow)})
            result["status"].append(response.status_code)
            result["seconds"].append(time.perf_counter() - start)

    worker = threading.Thread(target=infer)
    worker.start()
    time.sleep(0.3)  # let the inference start before polling
    latencies = {"/info/": [], "/datastore/": []}
    while worker.is_alive():
        for path, values in latencies.items():
            start = time.perf_counter()
            response = gazelabel_server.get(path, timeout=60)
            if worker.is_alive():
                values.append(time.perf_counter() - start)
            assert response.status_code == 200
        time.sleep(0.05)
    worker.join()

    assert set(result["status"]) == {200}
    one = float(np.median(result["seconds"]))
    for path, values in latencies.items():
        assert len(values) >= 3, f"the inferences ({sum(result['seconds']):.1f} s) were too quick to poll {path}"
        p95 = float(np.percentile(values, 95))
        assert p95 < one / 4, f"{path} p95 {p95:.2f} s while inferences of {one:.2f} s each run"
