import pytest

from models.vocab import FINDING_REGIONS, FINDINGS, REGION_NAMES, canonical_finding, region_at, region_box_pixels


def test_chexpert_14_and_aliases():
    assert len(FINDINGS) == 14
    assert canonical_finding("enlarged_cardiac_silhouette") == "Cardiomegaly"
    assert canonical_finding("PLEURAL EFFUSION") == "Pleural Effusion"
    with pytest.raises(KeyError, match="unknown finding"):
        canonical_finding("Dragon")


def test_regions_follow_radiological_convention():
    # The patient's right lung is on the image's left.
    assert region_at(0.2 * 1000, 0.2 * 1000, 1000, 1000) == "right upper zone"
    assert region_at(0.8 * 1000, 0.2 * 1000, 1000, 1000) == "left upper zone"
    assert region_at(0.12, 0.86, 1, 1) == "right costophrenic angle"
    x1, y1, x2, y2 = region_box_pixels("heart", 200, 100)
    assert 0 < x1 < x2 <= 200 and 0 < y1 < y2 <= 100


def test_every_finding_region_exists():
    for regions in FINDING_REGIONS.values():
        assert set(regions) <= set(REGION_NAMES)
    assert set(FINDING_REGIONS) == set(FINDINGS)


def test_region_prefers_the_findings_usual_place():
    # (0.65, 0.68) lies in both the heart and the (smaller) left lower zone.
    assert region_at(0.65, 0.68, 1, 1) == "left lower zone"
    assert region_at(0.65, 0.68, 1, 1, finding="Cardiomegaly") == "heart"
    assert region_at(0.65, 0.68, 1, 1, finding="Atelectasis") == "left lower zone"
