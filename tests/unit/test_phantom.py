"""The SYNTHETIC phantom: determinism, store validity, findings with boxes in their regions, report agreement,
spurious marker, DICOM output and argument errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from models.datasets.base import DatasetError
from models.datasets.phantom import DATASET_NAME, generate_case, generate_store
from models.datasets.phantom.findings import region_limits
from models.datasets.phantom.generate import DRAWABLE
from models.datasets.phantom.plan import chexpert_values, sample_plan
from models.datasets.store import CaseStore
from models.vocab import FINDING_REGIONS, FINDINGS

LUNG_ZONES = {f"{s} {z} zone" for s in ("right", "left") for z in ("upper", "mid", "lower")}
# Regions a finding's box may name: the vocabulary's, plus the lung zones for the derived "Lung Opacity"
# and the chest wall for a pacemaker generator.
EXTRA_REGIONS = {"Lung Opacity": LUNG_ZONES, "Support Devices": {"bones and soft tissues"}}
SIZE = 256


@pytest.fixture(scope="module")
def forced_cases():
    """Each drawable finding alone, positive and uncertain, plus the same image with no finding."""
    out = {}
    for k, name in enumerate(DRAWABLE):
        for value in (1, -1):
            if name == "Support Devices" and value == -1:
                continue
            out[name, value] = generate_case(3, k, size=SIZE, readers=2, forced={name: value})
        out[name, 0] = generate_case(3, k, size=SIZE, readers=2, forced={})
    return out


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    a = generate_store(tmp_path / "a", 3, seed=5, size=256, progress=False)
    b = generate_store(tmp_path / "b", 3, seed=5, size=256, progress=False)
    c = generate_store(tmp_path / "c", 3, seed=6, size=256, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 7  # 3 PNG, 3 case JSON, dataset.json
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "phantom_000000.png").read_bytes() != (c / "phantom_000000.png").read_bytes()


def test_store_is_a_valid_synthetic_case_store(phantom_store):
    store = CaseStore(phantom_store)
    src = store.source()
    assert src.warnings == []
    assert src.name == DATASET_NAME and src.synthetic
    assert len(src) == 16
    assert sorted(i for ids in src.splits.values() for i in ids) == sorted(store.ids())
    for case in src.cases:
        assert set(case.findings) == set(FINDINGS)
        assert case.image.synthetic and case.source.dataset == "phantom"
        assert (case.image.width, case.image.height) == (512, 512)
        assert case.image.spacing_mm == pytest.approx((0.7, 0.7))
        assert 25 <= len(case.fixations) <= 64
        assert sorted(case.readers) == ["reader_2", "reader_3"]
        assert case.report.findings and case.report.impression
        for b in case.boxes:
            assert case.findings[b.finding] != 0, f"{case.id}: box for a negative {b.finding}"
        for e in case.report.evidence:
            assert case.boxes[e.box].finding == e.finding
        image = store.load_image(case.id)
        assert image.array.shape == (512, 512) and 0.1 < image.array.mean() < 0.8


def test_each_finding_is_drawn_in_its_region_and_changes_the_pixels(forced_cases):
    for name in DRAWABLE:
        case, image = forced_cases[name, 1]
        normal_case, normal = forced_cases[name, 0]
        assert case.findings[name] == 1 and normal_case.findings[name] == 0
        assert normal_case.findings["No Finding"] == 1
        boxes = [b for b in case.boxes if b.finding == name]
        assert boxes, name
        allowed = set(FINDING_REGIONS[name]) | EXTRA_REGIONS.get(name, set())
        if name == "Fracture":
            allowed = {"bones and soft tissues"}
        for b in boxes:
            assert b.region in allowed, (name, b.region)
            x1, y1, x2, y2 = _limits(case, b.region)
            assert x1 - 1 <= b.x1 < b.x2 <= x2 + 1 and y1 - 1 <= b.y1 < b.y2 <= y2 + 1, (name, b, (x1, y1, x2, y2))
        b = boxes[0]
        inside = (slice(int(b.y1), int(b.y2) + 1), slice(int(b.x1), int(b.x2) + 1))
        change = float((image[inside] - normal[inside]).mean())
        if name == "Pneumothorax":
            assert change < -0.005, name  # more lucent
        elif name == "Fracture":
            assert np.abs(image[inside] - normal[inside]).max() > 0.05
        else:
            assert change > 0.005, (name, change)  # denser


def _limits(case, region):
    """The generator's region limits, rebuilt from the case's stored chest box."""
    from models.datasets.phantom.findings import REGION_MARGIN
    from models.vocab import region_box_pixels

    cb = case.extra["chest_box"]
    x1, y1, x2, y2 = region_box_pixels(region, case.image.width, case.image.height, chest_box=cb)
    mx, my = REGION_MARGIN * (cb[2] - cb[0]), REGION_MARGIN * (cb[3] - cb[1])
    return max(0, x1 - mx), max(0, y1 - my), min(case.image.width, x2 + mx), min(case.image.height, y2 + my)


def test_region_limits_helper_matches_the_test_rebuild(forced_cases):
    case, _ = forced_cases["Lung Lesion", 1]
    # region_limits needs the Anatomy; rebuild one with the stored chest box to cross-check the maths.
    from models.datasets.phantom.anatomy import sample_anatomy

    a = sample_anatomy(np.random.default_rng(0), SIZE)
    cb = case.extra["chest_box"]
    a.chest_box = tuple(c / SIZE for c in cb)
    assert region_limits(a, "heart") == pytest.approx(_limits(case, "heart"), abs=0.2)


def test_cardiomegaly_has_ctr_above_half(forced_cases):
    assert forced_cases["Cardiomegaly", 1][0].extra["ctr"] > 0.5
    assert forced_cases["Cardiomegaly", 0][0].extra["ctr"] < 0.5


def test_plan_frequencies_and_co_occurrence():
    plans = [chexpert_values(sample_plan(np.random.default_rng([1, i]))) for i in range(3000)]
    normal = np.mean([v["No Finding"] == 1 for v in plans])
    assert 0.25 <= normal <= 0.35
    edema = np.array([v["Edema"] != 0 for v in plans])
    cardio = np.array([v["Cardiomegaly"] != 0 for v in plans])
    assert edema[cardio].mean() > 2 * edema[~cardio].mean()  # heart failure brings both
    for v in plans:
        children = [v[c] for c in ("Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis")]
        if 1 in children:
            assert v["Lung Opacity"] == 1
    for name in DRAWABLE:
        assert any(v[name] == 1 for v in plans), name
        if name != "Support Devices":
            assert any(v[name] == -1 for v in plans), name


# ---------------------------------------------------------------------------------------------- reports
KEYWORDS = {
    "Enlarged Cardiomediastinum": r"mediastin",
    "Cardiomegaly": r"cardiomegaly|heart|cardiac silhouette",
    "Lung Lesion": r"nodul|mass",
    "Lung Opacity": r"opacit|consolidation|nodul|mass|edema|atelectasis|haz",
    "Edema": r"edema",
    "Consolidation": r"consolidation",
    "Pneumonia": r"pneumonia",
    "Atelectasis": r"atelectasis",
    "Pneumothorax": r"pneumothorax",
    "Pleural Effusion": r"effusion",
    "Pleural Other": r"pleural thickening",
    "Fracture": r"fracture",
    "Support Devices": r"tube|catheter|pacemaker",
}
NEGATION = r"\bno\b|without|within normal limits|\bnormal\b|\bclear\b|unremarkable|intact"
HEDGE = r"possibl|cannot be excluded|\bmay\b|borderline|concerning for"


def _polarities(text: str, name: str) -> set[str]:
    """How the report speaks of a finding: 'pos', 'unc' and/or 'neg' (one sentence per statement)."""
    out = set()
    for sentence in re.split(r"(?<=\.)\s+", text):
        s = sentence.lower()
        if not re.search(KEYWORDS[name], s):
            continue
        out.add("unc" if re.search(HEDGE, s) else "neg" if re.search(NEGATION, s) else "pos")
    return out


def _check_report(case):
    text = case.report.text
    for name in KEYWORDS:
        value, said = case.findings[name], _polarities(text, name)
        if value == 1:
            assert "pos" in said, (case.id, name, text)
        elif value == -1:
            assert "unc" in said and "pos" not in said, (case.id, name, text)
        else:
            assert not said & {"pos", "unc"}, (case.id, name, text)
    assert ("no acute cardiopulmonary" in text.lower()) == (case.findings["No Finding"] == 1), text
    assert "FINDINGS" not in case.report.findings  # sections are separate fields, not headings in the text


def test_report_agrees_with_findings(phantom_store, forced_cases):
    cases = CaseStore(phantom_store).source().cases + [c for c, _ in forced_cases.values()]
    for case in cases:
        _check_report(case)


def test_report_mentions_laterality_and_region(forced_cases):
    case, _ = forced_cases["Pleural Effusion", 1]
    side = "right" if case.boxes[0].region.startswith("right") else "left"
    assert side in case.report.findings.lower()
    case, _ = forced_cases["Lung Lesion", 1]
    assert case.boxes[0].region in case.report.findings


# ---------------------------------------------------------------------------------------------- marker
def test_spurious_marker_tracks_the_label_in_train_not_in_test():
    rows = {"train": [], "test": []}
    for split in rows:
        for i in range(60):
            case, _ = generate_case(9, i, size=128, readers=1, split=split, spurious_marker="Lung Opacity")
            rows[split].append((case.findings["Lung Opacity"] != 0, case.extra["marker"]))
    train, test = np.array(rows["train"], float), np.array(rows["test"], float)
    gap = lambda r: r[r[:, 0] == 1, 1].mean() - r[r[:, 0] == 0, 1].mean()  # noqa: E731
    assert gap(train) > 0.6
    assert abs(gap(test)) < 0.35


def test_marker_is_burned_in_exactly_when_recorded():
    seen = set()
    for i in range(8):
        case, marked = generate_case(9, i, size=128, readers=1, split="test", spurious_marker="Pneumothorax")
        _, plain = generate_case(9, i, size=128, readers=1, split="test")
        changed = np.abs(marked - plain) > 0.2
        assert changed.any() == case.extra["marker"]
        if changed.any():
            ys, xs = np.nonzero(changed)
            assert xs.min() > 128 * 0.8 and ys.max() < 128 * 0.15  # top-right corner
        seen.add(case.extra["marker"])
    assert seen == {True, False}


def test_marker_absent_without_the_option():
    case, _ = generate_case(9, 0, size=128, readers=1)
    assert "marker" not in case.extra


# ---------------------------------------------------------------------------------------------- DICOM and errors
def test_dicom_store(tmp_path):
    pytest.importorskip("pydicom")
    root = generate_store(tmp_path / "d", 2, seed=1, size=256, dicom=True, progress=False)
    store = CaseStore(root)
    assert sorted(p.suffix for p in store.image_paths().values()) == [".dcm", ".dcm"]
    img = store.load_image("phantom_000000")
    assert img.meta["modality"] == "CR" and img.meta["study_uid"] and img.meta["series_uid"]
    assert img.spacing_mm == pytest.approx((1.4, 1.4))
    assert store.case("phantom_000000").image.synthetic


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n": 0}, "n:"), ({"size": 32}, "size:"), ({"readers": 0}, "readers:"),
     ({"spurious_marker": "Broken Leg"}, "spurious_marker"), ({"splits": (0.5, 0.5, 0.5)}, "splits")],
)
def test_bad_arguments(tmp_path, kwargs, message):
    args = {"n": 1, "seed": 0, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_store(tmp_path / "x", **args)


def test_refuses_a_folder_with_images(tmp_path):
    root = generate_store(tmp_path / "s", 1, seed=0, size=128, progress=False)
    with pytest.raises(DatasetError, match="already holds 1 images"):
        generate_store(root, 1, seed=0, size=128, progress=False)


def test_sample_data_command(tmp_path, capsys):
    from models.cli import main

    assert main(["sample-data", str(tmp_path / "cli"), "--n", "2", "--size", "128", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "images/s" in out
    assert main(["sample-data", str(tmp_path / "bad"), "--n", "1", "--spurious-marker", "Broken Leg"]) == 2
    err = capsys.readouterr().err
    assert "unknown finding 'Broken Leg'" in err and "Traceback" not in err
    assert main(["sample-data", str(tmp_path / "cli"), "--n", "1", "--quiet"]) == 2
    assert "already holds" in capsys.readouterr().err
