"""The annotator's own gaze, end to end against a live server: a (SYNTHETIC) tracker streams a known scanpath
over Lab Streaming Layer on loopback while the annotator works on an image in the session; the saved label
carries the reading as one more reader (fixations in original image pixels, the raw samples and view states
in its sidecar); the label reads back with the reader; a retrain uses the recorded gaze and its stats say
so, while a label that only carries the predicted scanpath counts as "predicted" and teaches nothing.

The server's store is a copy of the tiny phantom store with its records' gaze removed, so the only human
gaze the training can see is the captured one.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid

import numpy as np
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def store_without_gaze(tiny_models, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tiny_models[0], store)
    for record in (store / "cases").glob("*.json"):
        case = json.loads(record.read_text())
        case["fixations"], case["readers"] = [], {}
        record.write_text(json.dumps(case))
    return store


def stream(outlet, samples: np.ndarray, t0: float) -> None:
    for i in range(0, len(samples), 128):
        chunk = samples[i:i + 128]
        outlet.push_chunk(chunk[:, 1:3].astype(np.float32), timestamp=[float(t0 + v) for v in chunk[:, 0]])


def wait_training(session, timeout: float = 420.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = session.training_status()
        if not status.running:
            return status
        time.sleep(2.0)
    raise AssertionError("training did not finish")


def test_captured_gaze_is_saved_as_a_reader_and_used_by_retraining(start_server, store_without_gaze, headless):
    import pylsl
    from GazeLabelLib.capture import GazeRecorder, LslSource, ViewTimeline
    from GazeLabelLib.screen import ViewGeometry
    from GazeLabelLib.session import AnnotationSession, sidecar_of
    from GazeLabelLib.simulated_tracker import raw_samples

    from models.schema import Case

    server = start_server(studies=store_without_gaze)
    session = AnnotationSession(headless.scene)
    session.connect(server.url)
    annotator = session.set_annotator("Dr. Example", salt="test-installation")
    assert annotator.startswith("annotator-") and "Example" not in annotator

    # Image 1: the pipeline's answer on screen, the annotator's eyes recorded.
    first, second = server.image_ids[0], server.image_ids[1]
    session.load_image(first)
    session.run_pipeline("pipeline")
    width, height = 512, 512
    truth = [{"x": 120.0 + 45 * i, "y": 140.0 + 30 * (i % 4), "duration": 0.18 + 0.04 * i} for i in range(7)]
    view = ViewGeometry.letterbox((width, height), (1920, 1080))  # SYNTHETIC: the image fitted on a 1080p screen
    samples = raw_samples(truth, view, 240.0, np.random.default_rng(3))
    name = f"gazelabel-loop-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name, "Gaze", 2, 240.0, "float32", name)
    info.set_channel_labels(["x", "y"])
    outlet = pylsl.StreamOutlet(info)
    timeline = ViewTimeline()
    timeline.record(view, {"simulated": True}, t=None)
    session.start_gaze(GazeRecorder(LslSource(stream_name=name), timeline, screen_px=(1920, 1080), screen_mm=(527, 296)))
    assert session.gaze_status["recording"] is True
    deadline = time.monotonic() + 5
    while not outlet.have_consumers() and time.monotonic() < deadline:
        session.pump_gaze()
        time.sleep(0.01)
    stream(outlet, samples, pylsl.local_clock() + 0.01)
    deadline = time.monotonic() + 10
    while session.gaze_status["samples"] < len(samples) and time.monotonic() < deadline:
        session.pump_gaze()
        time.sleep(0.005)
    session.set_finding("Cardiomegaly", 1)
    session.save_label()  # stops the recording and saves it with the label
    assert session.gaze_status == {"recording": False, "text": "Gaze: not recording"}

    # The label on the server: the reader's fixations in image pixels, within 1 px and 30 ms of the truth.
    label = Case.from_dict(json.loads((server.store / "labels" / "final" / f"{first}.json").read_text()))
    recorded = label.readers[annotator]
    assert server.get(f"/datastore/label/info?label={first}&tag=final").json()["annotator"] == annotator
    assert len(recorded) == len(truth)
    scale = view.image_px_per_screen_px
    for got, want in zip(recorded, truth):
        assert abs(got.x - want["x"]) <= scale and abs(got.y - want["y"]) <= scale
        assert abs(got.duration - want["duration"]) <= 0.03
    assert label.prediction is not None and label.prediction.gaze_source == "predicted"  # the shown scanpath
    reading = sidecar_of(label.extra["gaze_capture"][annotator])
    assert reading.n_samples == len(samples) and sum(reading.dropped.values()) == 0
    assert len(reading.views) == 1 and reading.views[0].extra == {"simulated": True}

    # Image 2: saved without recording: its fixations are the predicted scanpath only.
    session.load_image(second)
    session.run_pipeline("pipeline")
    session.save_label()

    # The label reads back through the extension with the reader, and playback can show it.
    session.load_image(first)
    session.show_case(json.loads((server.store / "labels" / "final" / f"{first}.json").read_text()))
    assert annotator in session.readers()
    assert [round(f["x"], 3) for f in session.show_reader(annotator)] == [round(f.x, 3) for f in recorded]

    # Retrain: the recorded gaze is used, the predicted scanpath is not, and the stats say so.
    session.start_training("gaze_classifier", {"epochs": 1, "size": 64, "batch_size": 2, "val_fraction": 0.0})
    status = wait_training(session)
    assert status.status == "DONE", status
    stats = session.client.info()["train_stats"]["gaze_classifier"]
    assert stats["gaze"]["recorded"] == 1 and stats["gaze"]["predicted"] == 1 and stats["gaze"]["none"] == 0
    assert stats["gaze"]["gaze_readers"] == "pooled" and stats["cases"] == 2
    log = "\n".join(p.read_text(errors="replace") for p in (server.work_dir / "logs").glob("*.log"))
    assert "gaze recorded 1, only predicted 1 (not used), none 0" in log
