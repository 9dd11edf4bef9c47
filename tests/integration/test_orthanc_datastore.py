"""Orthanc as the PACS behind a live GazeLabel server (DICOMweb datastore for CR/DX).

Starts a private Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on a free loopback port, stores SYNTHETIC
phantom CR DICOMs, the real CR from pydicom-data and a CT slice, and checks that the server lists only CR/DX
series, runs the pipeline on the real CR, writes the label back as one DICOM SR (no DICOM SEG) and keeps the
Case JSON locally, never tries to download dcmqi, and stores uploaded radiographs in the PACS. Skips only when
Orthanc is absent. The SR round trip itself is tests/integration/test_pacs_sr.py.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
import requests

from models.datasets.phantom import generate_store
from models.imaging import sample_cr_path, write_dicom
from models.schema import Case
from monailabel_app.orthanc import OrthancServer, orthanc_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(orthanc_missing() is not None, reason=str(orthanc_missing())),
]


def series_uid(path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    base = tmp_path_factory.mktemp("orthanc")
    phantom = generate_store(base / "phantom_dicom", 3, seed=5, dicom=True, progress=False)
    ct = write_dicom(np.random.default_rng(0).random((64, 64)), base / "ct.dcm", modality="CT")
    files = {"phantom": sorted(phantom.glob("*.dcm")), "real_cr": [sample_cr_path()], "ct": [ct]}
    with OrthancServer(base / "pacs") as server:
        server.store([f for group in files.values() for f in group])
        yield server, {k: [series_uid(f) for f in v] for k, v in files.items()}


def orthanc_instances(server) -> int:
    return len(requests.get(f"{server.url}/instances", timeout=30).json())


def test_pipeline_and_labels_on_an_orthanc_datastore(pacs, start_server, tmp_path):
    orthanc, uids = pacs
    server = start_server(studies=orthanc.dicomweb_url)

    stats = server.get("/datastore/?output=stats").json()
    assert stats["total"] == len(uids["phantom"]) + 1  # CR series only: the CT slice is not listed
    first = server.post("/activelearning/first").json()
    assert first["id"] in uids["phantom"] + uids["real_cr"] and first["Modality"] == "CR"
    assert server.post(f"/infer/pipeline?image={uids['ct'][0]}").status_code == 404

    real_cr = uids["real_cr"][0]
    response = server.post(f"/infer/pipeline?image={real_cr}&output=json")
    assert response.status_code == 200, response.text + server.log_tail()
    case = Case.from_dict(response.json()["case"])
    reference = pydicom.dcmread(sample_cr_path(), stop_before_pixels=True)
    assert case.id == real_cr and (case.image.height, case.image.width) == (reference.Rows, reference.Columns)
    assert case.fixations and case.report is not None and set(case.scores)

    instances = orthanc_instances(orthanc)
    case.findings["Cardiomegaly"] = 1
    saved = server.put(f"/datastore/label?image={real_cr}&tag=final", files={"label": ("l.json", json.dumps(case.to_dict()))})
    assert saved.status_code == 200, saved.text
    assert orthanc_instances(orthanc) == instances + 1  # the label's SR (TID 1500), and no DICOM SEG
    instances += 1
    label_file = server.store / "labels" / "final" / f"{real_cr}.json"
    assert Case.from_dict(json.loads(label_file.read_text())).findings["Cardiomegaly"] == 1
    info = server.get(f"/datastore/label/info?label={real_cr}&tag=final").json()
    assert info["StudyInstanceUID"] == str(reference.StudyInstanceUID)
    assert info["SOPInstanceUID"] == str(reference.SOPInstanceUID)
    assert server.get("/datastore/?output=stats").json()["completed"] == 1
    assert any(item["label"].endswith(f"{real_cr}.json") for item in server.get("/datastore/?output=train").json())

    upload = write_dicom(np.random.default_rng(1).random((256, 256)), tmp_path / "new.dcm", modality="DX")
    added = server.put("/datastore/image", files={"file": ("new.dcm", upload.read_bytes())})
    assert added.status_code == 200 and added.json()["image"] == series_uid(upload)
    assert orthanc_instances(orthanc) == instances + 1
    assert server.get("/datastore/?output=stats").json()["total"] == stats["total"] + 1

    log = server.log_tail(100000)
    assert "dcmqi" not in log and "itkimage2segimage" not in log
