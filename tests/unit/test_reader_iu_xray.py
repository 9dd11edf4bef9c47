"""IU X-ray reports read in place from torchxrayvision's NLMCXR_reports.tgz (counts of the real archive)."""

from __future__ import annotations

import importlib.util
import io
import tarfile

import pytest

from models.datasets.base import DatasetError, hash_split
from models.datasets.iu_xray import mesh_findings, read_iu_xray, read_reports, report_counts

# Found without importing torchxrayvision (which would pull in torch).
needs_txv = pytest.mark.skipif(importlib.util.find_spec("torchxrayvision") is None, reason="torchxrayvision not installed")


@pytest.fixture(scope="module")
def reports():
    if importlib.util.find_spec("torchxrayvision") is None:
        pytest.skip("torchxrayvision not installed")
    return read_reports()


def test_archive_counts(reports):
    counts = report_counts(reports)
    assert counts["reports"] == 3955
    assert counts["findings_non_empty"] == 3425
    assert counts["impression_non_empty"] == 3921
    assert counts["r2gen_selected"] == 2955
    assert counts["images"] == 7470
    assert counts["mesh_normal_only"] == 1391


def test_first_report_fields(reports):
    r = reports[0]
    assert r.uid == "CXR1" and r.study_id == "CXR1_1_IM-0001"
    assert r.image_ids == ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]
    assert r.findings.startswith("The cardiac silhouette and mediastinum size are within normal limits.")
    assert r.impression == "Normal chest x-XXXX."
    assert r.sections["INDICATION"] == "Positive TB test" and r.mesh_major == ["normal"]


@needs_txv
def test_r2gen_selection_and_hash_split():
    src = read_iu_xray()
    assert len(src) == 2955 and len({c.id for c in src.cases}) == 2955
    sizes = {k: len(v) for k, v in src.splits.items()}
    assert sum(sizes.values()) == 2955
    assert sizes == {"train": 2109, "val": 293, "test": 553}  # deterministic, NOT R2Gen's 2069/296/590
    case = src.by_id()["CXR1_1_IM-0001"]
    assert case.image.path == "" and case.findings == {"No Finding": 1}
    assert hash_split(case.id) in ("train", "val", "test") and case.id in src.splits[hash_split(case.id)]
    assert len(read_iu_xray(selection="all")) == 3955
    with pytest.raises(ValueError, match="selection"):
        read_iu_xray(selection="r2gen-exact")


def test_mesh_mapping_is_positive_only():
    assert mesh_findings(["Cardiomegaly/mild", "Pulmonary Atelectasis/base/left", "Calcified Granuloma"]) == {"Atelectasis": 1, "Cardiomegaly": 1}
    assert mesh_findings(["normal"]) == {"No Finding": 1}
    assert mesh_findings(["Scoliosis"]) == {}


def test_bad_archives_raise_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_reports(tmp_path / "NLMCXR_reports.tgz")
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(DatasetError, match="cannot read the archive"):
        read_reports(junk)
    bad = tmp_path / "bad.tgz"
    with tarfile.open(bad, "w:gz") as tar:
        data = b"<eCitation><uId id='CXR9'/><MeSH>"
        info = tarfile.TarInfo("ecgen-radiology/9.xml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DatasetError, match=r"9.xml: not valid XML"):
        read_reports(bad)
