"""A label saved from the Slicer module's session lands in the PACS as a valid DICOM SR that a fresh server
reads back: live Orthanc (SYNTHETIC phantom CRs), live GazeLabel server on it, the session on a headless MRML
scene. Skips only when Orthanc is absent.
"""

from __future__ import annotations

import json

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from models.datasets.phantom import generate_store
from models.dicom_sr import sr_to_case
from models.dicom_sr.reader import document_observer
from models.dicom_sr.validate import dciodvfy, dciodvfy_path
from models.schema import Case
from monailabel_app.orthanc import OrthancServer, orthanc_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(orthanc_missing() is not None, reason=str(orthanc_missing())),
]


def test_a_label_saved_in_the_session_is_an_sr_in_the_pacs(start_server, headless, tmp_path):
    from GazeLabelLib.session import AnnotationSession

    phantom = sorted(generate_store(tmp_path / "phantom", 2, seed=31, dicom=True, progress=False).glob("*.dcm"))
    with OrthancServer(tmp_path / "orthanc") as orthanc:
        orthanc.store(phantom)
        server = start_server(studies=orthanc.dicomweb_url)
        session = AnnotationSession(headless.scene)
        session.connect(server.url)  # loopback server without auth, as test_gaze_loop
        annotator = session.set_annotator("Dr. Example", salt="test-installation")
        image_id = session.next_sample("random")
        session.run_pipeline("pipeline")
        session.set_finding("Pleural Effusion", 1)
        session.set_finding("Cardiomegaly", 0)
        session.save_label()

        client = DICOMwebClient(orthanc.dicomweb_url)
        found = client.search_for_instances(search_filters={"Modality": "SR"})
        assert len(found) == 1
        sr = client.retrieve_instance(found[0]["0020000D"]["Value"][0], found[0]["0020000E"]["Value"][0],
                                      found[0]["00080018"]["Value"][0])
        sr.save_as(tmp_path / "label.dcm", write_like_original=False)
        if dciodvfy_path() is not None:
            assert dciodvfy(tmp_path / "label.dcm")[0] == []
        label = sr_to_case(pydicom.dcmread(tmp_path / "label.dcm"))
        assert document_observer(sr) == annotator and label.id == image_id
        assert label.findings["Pleural Effusion"] == 1 and label.findings["Cardiomegaly"] == 0
        saved = Case.from_dict(json.loads((server.store / "labels" / "final" / f"{image_id}.json").read_text()))
        assert len(label.boxes) == len(saved.boxes) and len(label.fixations) == len(saved.fixations)

        fresh = start_server(studies=orthanc.dicomweb_url)
        again = Case.from_dict(json.loads((fresh.store / "labels" / "final" / f"{image_id}.json").read_text()))
        assert again.findings == saved.findings and len(again.boxes) == len(saved.boxes)
