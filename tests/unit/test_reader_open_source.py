"""open_source format detection and the shared CSV row reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.datasets import detect_format, open_source
from models.datasets.base import DatasetError
from models.datasets.tables import RowError, read_table
from models.schema import Case

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize(
    "folder, fmt, n",
    [("reflacx", "reflacx", 2), ("egd_cxr", "egd-cxr", 3), ("mimic_eye", "mimic-eye", 2)],
)
def test_detects_each_gaze_dataset(folder, fmt, n):
    assert detect_format(FIXTURES / folder) == fmt
    src = open_source(FIXTURES / folder)
    assert src.name == fmt and len(src) == n and not src.synthetic


def test_detects_case_store(tmp_path):
    store = tmp_path / "store"
    (store / "cases").mkdir(parents=True)
    assert detect_format(store) == "store"
    assert len(open_source(store)) == 0


def test_iu_keyword_and_archive_path():
    assert detect_format("iu-xray") == "iu-xray"
    assert detect_format("/somewhere/NLMCXR_reports.tgz") == "iu-xray"


def test_unknown_folder_names_path_and_formats(tmp_path):
    with pytest.raises(DatasetError) as e:
        open_source(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "REFLACX" in msg and "EGD-CXR" in msg and "MIMIC-Eye" in msg and "iu-xray" in msg
    with pytest.raises(DatasetError, match="no such file or folder"):
        open_source(tmp_path / "missing")


def test_reader_options_are_checked():
    assert len(open_source(FIXTURES / "reflacx", phases=(3,))) == 1
    with pytest.raises(ValueError, match="does not take option"):
        open_source(FIXTURES / "egd_cxr", phases=(3,))


def test_images_root_must_exist(tmp_path):
    with pytest.raises(DatasetError, match="images root is not a folder"):
        open_source(FIXTURES / "egd_cxr", images=tmp_path / "nope")


def test_every_fixture_case_validates_and_serialises():
    for folder in ("reflacx", "egd_cxr", "mimic_eye"):
        for case in open_source(FIXTURES / folder).cases:
            assert Case.from_dict(json.loads(json.dumps(case.to_dict()))).to_dict() == case.to_dict()


def test_read_table_drops_index_column_and_numbers_lines(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(',a,b\n0,1,"two\nlines"\n1,x,3\n', encoding="utf-8")
    table = read_table(p, ["a", "b"])
    assert table.columns == ["a", "b"]
    first, second = table.rows
    assert first.values == {"a": "1", "b": "two\nlines"} and first.line == 2
    assert second.line == 4
    with pytest.raises(RowError, match="column 'a': expected a number, got 'x'"):
        second.number("a")
    with pytest.raises(DatasetError, match=r"t.csv: missing column\(s\) c"):
        read_table(p, ["c"])
    with pytest.raises(DatasetError, match="no such file"):
        read_table(tmp_path / "none.csv")
