"""The PACS as the system of record: labels saved through a live server go to a live Orthanc as DICOM SR
(TID 1500), a fresh server with an empty cache reads them back identically, predictions go as SR + Parametric
Map when asked. Every object fetched back from Orthanc passes dciodvfy (when dicom3tools is installed).

Images: SYNTHETIC phantom CR DICOMs and the real CR of pydicom-data. Skips only when Orthanc is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from models.datasets.phantom import generate_store
from models.dicom_sr import as_stored, case_to_sr, sr_to_case
from models.dicom_sr.validate import dciodvfy, dciodvfy_path
from models.imaging import sample_cr_path
from models.schema import Box, Case
from monailabel_app.orthanc import OrthancServer, orthanc_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(orthanc_missing() is not None, reason=str(orthanc_missing())),
]


def uid_of(path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    base = tmp_path_factory.mktemp("pacs_sr")
    phantom = sorted(generate_store(base / "phantom", 2, seed=21, dicom=True, progress=False).glob("*.dcm"))
    with OrthancServer(base / "orthanc") as server:
        server.store([*phantom, sample_cr_path()])
        yield server, {"phantom": [uid_of(p) for p in phantom], "real": uid_of(sample_cr_path())}


def srs(orthanc) -> list[dict]:
    """Every SR instance in the PACS (QIDO-RS), as DICOM JSON."""
    client = DICOMwebClient(orthanc.dicomweb_url)
    return client.search_for_instances(search_filters={"Modality": "SR"}, get_remaining=True,
                                       fields=["00200013", "0008103E"])


def fetch(orthanc, record: dict, tmp_path, name: str):
    client = DICOMwebClient(orthanc.dicomweb_url)
    ds = client.retrieve_instance(record["0020000D"]["Value"][0], record["0020000E"]["Value"][0],
                                  record["00080018"]["Value"][0])
    path = tmp_path / name
    ds.save_as(path, write_like_original=False)
    if dciodvfy_path() is not None:
        errors, _ = dciodvfy(path)
        assert errors == [], errors
    return pydicom.dcmread(path)


def save(server, image_id: str, case: Case, annotator: str):
    return server.put(f"/datastore/label?image={image_id}&tag=final",
                      data={"params": json.dumps({"annotator": annotator})},
                      files={"label": ("l.json", json.dumps(case.to_dict()))})


def label_file(server, image_id: str) -> Case:
    return Case.from_dict(json.loads((server.store / "labels" / "final" / f"{image_id}.json").read_text()))


def test_labels_round_trip_through_the_pacs(pacs, module_server, tmp_path):
    orthanc, uids = pacs
    real, phantom = uids["real"], uids["phantom"][0]
    server = module_server(studies=orthanc.dicomweb_url)
    assert srs(orthanc) == []

    predicted = server.post(f"/infer/pipeline?image={real}&output=json").json()["case"]
    label = Case.from_dict(predicted)
    label.prediction = None
    label.findings["Cardiomegaly"] = 1
    label.boxes.append(Box("Cardiomegaly", 600.5, 800.25, 1300.0, 1400.0, "heart"))
    assert save(server, real, label, "alice").status_code == 200

    found = srs(orthanc)
    assert len(found) == 1 and found[0]["0008103E"]["Value"][0] == "GazeLabel label (final)"
    reference = pydicom.dcmread(sample_cr_path(), stop_before_pixels=True)
    assert found[0]["0020000D"]["Value"][0] == str(reference.StudyInstanceUID)  # in the image's own study
    in_study = DICOMwebClient(orthanc.dicomweb_url).search_for_studies(search_filters={"ModalitiesInStudy": "SR"})
    assert [s["0020000D"]["Value"][0] for s in in_study] == [str(reference.StudyInstanceUID)]
    first = fetch(orthanc, found[0], tmp_path, "first.dcm")
    expected = as_stored(Case.from_dict({**label.to_dict(), "id": real}), reference, annotator="alice")
    assert sr_to_case(first).to_dict() == expected.to_dict()

    # a re-save supersedes the first SR of this image and annotator; both stay in the PACS
    label.findings["Edema"] = 0
    label.boxes[-1].x2 = 1350.0
    assert save(server, real, label, "alice").status_code == 200
    found = sorted(srs(orthanc), key=lambda r: r["00200013"]["Value"][0])
    assert [r["00200013"]["Value"][0] for r in found] == [1, 2]
    assert found[0]["0020000E"] == found[1]["0020000E"]  # one series per image, annotator and tag
    second = fetch(orthanc, found[1], tmp_path, "second.dcm")
    predecessor = second.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert predecessor.ReferencedSOPInstanceUID == first.SOPInstanceUID

    phantom_case = Case.from_dict(server.post(f"/infer/pipeline?image={phantom}&output=json").json()["case"])
    phantom_case.prediction = None
    phantom_case.findings = {"Pneumothorax": -1, "No Finding": 0}
    assert save(server, phantom, phantom_case, "bob").status_code == 200
    assert len(srs(orthanc)) == 3
    latest = {real: label_file(server, real), phantom: label_file(server, phantom)}

    # a fresh server with an empty cache on the same PACS finds every label, as last saved
    fresh = module_server(studies=orthanc.dicomweb_url)
    stats = fresh.get("/datastore/?output=stats").json()
    assert stats["completed"] == 2, (stats, fresh.log_tail(200))
    for image_id, case in latest.items():
        back = label_file(fresh, image_id).to_dict()
        image = pydicom.dcmread(fresh.store / f"{image_id}.dcm", stop_before_pixels=True)
        expected = as_stored(case, image, annotator="alice").to_dict()
        expected["image"]["path"] = back["image"]["path"]  # the local file name; the SR names the image by UID
        assert back == expected
    info = fresh.get(f"/datastore/label/info?label={real}&tag=final").json()
    assert info["sr"]["InstanceNumber"] == 2 and info["annotator"] == "alice"
    assert any(item["label"].endswith(f"{phantom}.json") for item in fresh.get("/datastore/?output=train").json())


def test_predictions_are_stored_only_when_asked(pacs, module_server, tmp_path):
    orthanc, uids = pacs
    image = uids["phantom"][1]
    server = module_server(studies=orthanc.dicomweb_url)
    before = len(srs(orthanc))
    reply = server.post(f"/infer/pipeline?image={image}&output=json").json()
    assert "pacs" not in reply and len(srs(orthanc)) == before
    reply = server.post(f"/infer/pipeline?image={image}&output=json",
                        data={"params": json.dumps({"store_in_pacs": True})})
    assert reply.status_code == 200, reply.text + server.log_tail(80)
    stored = reply.json()["pacs"]
    found = [r for r in srs(orthanc) if r["00080018"]["Value"][0] == stored["sr"]]
    assert len(found) == 1 and found[0]["0008103E"]["Value"][0] == "GazeLabel prediction (prediction)"
    sr = fetch(orthanc, found[0], tmp_path, "prediction.dcm")
    observer = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121005")
    assert observer.ConceptCodeSequence[0].CodeMeaning == "Device"
    back = sr_to_case(sr)
    predicted = Case.from_dict(reply.json()["case"])
    assert back.scores == pytest.approx(predicted.scores) and back.prediction.models == predicted.prediction.models
    maps = DICOMwebClient(orthanc.dicomweb_url).search_for_instances(
        search_filters={"SOPInstanceUID": stored["parametric_map"]})
    assert len(maps) == 1
    pm_ds = fetch(orthanc, maps[0], tmp_path, "pm.dcm")
    assert pm_ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30" and (pm_ds.Rows, pm_ds.Columns) == (512, 512)
    assert float(np.max(pm_ds.pixel_array)) <= 1.0
    # a prediction is never read back as a label, by this server or a fresh one
    for s in (server, module_server(studies=orthanc.dicomweb_url)):
        assert not any(item["label"].endswith(f"{image}.json") for item in s.get("/datastore/?output=train").json())


def test_bad_label_params_and_foreign_srs(pacs, module_server, tmp_path):
    orthanc, uids = pacs
    server = module_server(studies=orthanc.dicomweb_url)
    image = uids["phantom"][1]
    case = Case.from_dict(server.post(f"/infer/pipeline?image={image}&output=json").json()["case"])
    case.prediction = None
    before = len(srs(orthanc))
    bad = save(server, image, case, "x" * 65)
    assert bad.status_code == 422 and "params.annotator" in bad.json()["detail"]
    assert len(srs(orthanc)) == before

    # an SR in the PACS that is not a TID 1500 report is skipped with a warning, not served as a label
    reference = pydicom.dcmread(server.store / f"{image}.dcm", stop_before_pixels=True)
    foreign = case_to_sr(Case(id="x", image=case.image, findings={"Edema": 1}), reference, annotator="mallory")
    foreign.ContentTemplateSequence[0].TemplateIdentifier = "2000"
    DICOMwebClient(orthanc.dicomweb_url).store_instances([foreign])
    fresh = module_server(studies=orthanc.dicomweb_url)
    assert fresh.get("/datastore/?output=stats").status_code == 200
    assert "TID 2000, not TID 1500" in fresh.log_tail(100000)
