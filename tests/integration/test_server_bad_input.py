"""Bad input to a live server: every case gets a 4xx with a message that names the problem, nothing
lands in the store, and the server keeps serving. Uses ``image_ids[8]`` of the shared server for labels.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from models.imaging import write_dicom

pytestmark = pytest.mark.integration


def huge_png(side: int = 20000) -> bytes:
    """A valid PNG header announcing ``side`` x ``side`` pixels with almost no pixel data (no 400 MB in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def dicom_bytes(tmp_path, **kwargs) -> bytes:
    path = write_dicom(np.random.default_rng(0).random((128, 128)), tmp_path / "x.dcm", **kwargs)
    return path.read_bytes()


def huge_dicom(tmp_path) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(tmp_path)))
    ds.Rows = ds.Columns = 20000  # header says 20000 x 20000; the pixel data stays small
    out = io.BytesIO()
    ds.save_as(out, write_like_original=False)
    return out.getvalue()


def structured_report() -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR: no pixels
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("sr.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "SR", "SYNTHETIC"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    out = io.BytesIO()
    ds.save_as(out, write_like_original=False)
    return out.getvalue()


@pytest.fixture
def server_survives(gazelabel_server):
    before = sorted(p.name for p in gazelabel_server.store.iterdir())
    yield gazelabel_server
    assert gazelabel_server.get("/info/").status_code == 200, gazelabel_server.log_tail()
    assert sorted(p.name for p in gazelabel_server.store.iterdir()) == before, "a refused upload reached the store"


def upload_cases(tmp_path):
    truncated = dicom_bytes(tmp_path)
    return [
        ("not an image", "notes.png", b"hello, these are not pixels", "not a recognised image"),
        ("text file", "notes.txt", b"hello", "not accepted"),
        ("truncated DICOM pixels", "cut.dcm", truncated[: len(truncated) // 2], "cannot decode"),
        ("truncated DICOM header", "head.dcm", truncated[:300], "DICOM"),
        ("CT slice", "ct.dcm", dicom_bytes(tmp_path, modality="CT"), "modality 'CT'"),
        ("structured report", "sr.dcm", structured_report(), "no pixel data"),
        ("20000 x 20000 PNG", "huge.png", huge_png(), "pixel limit"),
        ("20000 x 20000 DICOM", "huge.dcm", huge_dicom(tmp_path), "pixel limit"),
    ]


def test_bad_image_uploads_are_refused_with_a_message(server_survives, tmp_path):
    for what, name, payload, message in upload_cases(tmp_path):
        response = server_survives.put("/datastore/image", params={"image": "upload_probe"}, files={"file": (name, payload)})
        assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
        assert message in response.json()["detail"], (what, response.json())


def test_bad_images_sent_to_infer_are_refused(server_survives, tmp_path):
    for what, name, payload, message in upload_cases(tmp_path):
        if name.endswith(".txt"):
            continue
        response = server_survives.post("/infer/gaze_classifier?output=json", files={"file": (name, payload)})
        assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
        assert response.json()["detail"], what


@pytest.mark.parametrize("label, message", [
    ("{not json", "not valid JSON"),
    (json.dumps([1, 2, 3]), "expected an object"),
    (json.dumps({"findings": {"Cardiomegaly": 2}}), "findings['Cardiomegaly']"),
    (json.dumps({"findings": {"Broken Heart": 1}}), "Broken Heart"),
    (json.dumps({"fixations": [{"x": 10, "y": 10, "duration": -1}]}), "fixations[0].duration"),
    (json.dumps({"image": {"width": 512, "height": 512}, "boxes": [{"finding": "Cardiomegaly", "x1": 10, "y1": 10,
                                                                    "x2": 9000, "y2": 20}]}), "outside the 512x512 image"),
    # Quiet acceptance: a label must name its image's size and hold a decision.
    (json.dumps({"schema": "gazelabel.case/1", "id": "phantom_000007"}), "image.width and image.height are required"),
    (json.dumps({"findings": {"Cardiomegaly": 1}}), "image.width and image.height are required (the stored image is 512x512)"),
    (json.dumps({"image": {"width": 256, "height": 512}, "findings": {"Cardiomegaly": 1}}), "is 256x512 but the stored image"),
    (json.dumps({"image": {"width": 512, "height": 512}}), "holds nothing to save"),
    (json.dumps({"image": {"width": 512, "height": 512}, "findings": {}, "boxes": [], "report": None}), "holds nothing to save"),
])
def test_malformed_labels_are_refused_with_the_case_error(server_survives, label, message):
    image_id = server_survives.image_ids[8]
    response = server_survives.put("/datastore/label", params={"image": image_id, "tag": "final"},
                                   files={"label": ("label.json", label)})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("label: ") and message in response.json()["detail"]
    assert not (server_survives.store / "labels" / "final" / f"{image_id}.json").exists()


def test_label_must_be_json(server_survives):
    image_id = server_survives.image_ids[8]
    response = server_survives.put("/datastore/label", params={"image": image_id}, files={"label": ("mask.nii.gz", b"\x1f\x8b")})
    assert response.status_code == 422 and "Case JSON" in response.json()["detail"]


def test_unknown_image_ids_are_404(server_survives):
    label = json.dumps({"findings": {"Cardiomegaly": 1}})
    for response in [
        server_survives.post("/infer/pipeline?image=no_such_image"),
        server_survives.get("/datastore/image", params={"image": "no_such_image"}),
        server_survives.delete("/datastore/image", params={"id": "no_such_image"}),
        server_survives.put("/datastore/label", params={"image": "no_such_image"}, files={"label": ("l.json", label)}),
        server_survives.get("/datastore/label", params={"label": "no_such_image", "tag": "final"}),
    ]:
        assert response.status_code == 404, (response.request.method, response.request.url, response.text)
        assert response.json()["detail"]


def test_bad_request_parameters_are_400(server_survives):
    image_id = server_survives.image_ids[9]
    for params in ["{broken", json.dumps({"n_samples": 1000}), json.dumps({"report_mode": "poetry"}), json.dumps([1]),
                   json.dumps({"report_samples": 9}), json.dumps({"report_samples": -1}),
                   json.dumps({"report_samples": "many"})]:
        response = server_survives.post(f"/infer/pipeline?image={image_id}", data={"params": params})
        assert response.status_code == 400, (params, response.text)
        assert response.json()["detail"].startswith("params")
        if "report_samples" in params:
            assert response.json()["detail"].startswith("params.report_samples"), response.text
    unknown = server_survives.post(f"/infer/no_such_model?image={image_id}")
    assert unknown.status_code == 404 and "no_such_model" in unknown.json()["detail"]


def test_training_before_any_label_is_a_409_naming_what_is_missing(start_server):
    """A synchronous training on a store without labels is the client's mistake (409), never a 500."""
    server = start_server()
    assert not list((server.store / "labels" / "final").glob("*.json"))
    for task in ("gaze_classifier", "scanpath", "report", "vqa"):
        r = server.post(f"/train/{task}?run_sync=true", json={})
        assert r.status_code == 409, (task, r.text)
        assert "no final labels yet; save labels with PUT /datastore/label?tag=final" in r.json()["detail"]


@pytest.mark.parametrize("task, option", [("report", "lm_path"), ("vqa", "classifier"), ("vqa", "scanpath")])
@pytest.mark.parametrize("value", ["/etc", "../models/classifier.pt", "relative/folder"])
def test_a_path_in_a_train_request_is_a_400_and_starts_nothing(server_survives, task, option, value):
    """Options that name files on the server (an LM folder, another model's checkpoint) are for the command
    line; over HTTP they are refused before anything runs, naming the option."""
    trainings = server_survives.get("/train/?all=true")
    r = server_survives.post(f"/train/{task}", json={option: value, "epochs": 1})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail.startswith(f"train {task}: {option}:") and "not accepted in a request" in detail, detail
    after = server_survives.get("/train/?all=true")  # no training was started
    assert (after.status_code, after.text) == (trainings.status_code, trainings.text)
