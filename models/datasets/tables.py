"""CSV tables of the gaze datasets, read row by row so a bad row becomes a warning, not a crash.

The published files are read with Python's ``csv`` module (quoted fields may span lines, e.g. EGD-CXR's
``cxr_exam_indication``). A leading unnamed pandas index column (MIMIC-Eye writes one) is dropped, a UTF-8
byte-order mark is ignored, and CRLF line ends (REFLACX) are fine. A missing file or required column raises
:class:`DatasetError` naming the file; a malformed row raises :class:`RowError`, which the readers turn into a
warning naming the file and line and then skip the row.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from models.datasets.base import DatasetError

# Some EGD-CXR indications and REFLACX "Other" cells are long; csv's default limit (128 KiB) is plenty,
# but raise it so one pathological cell cannot abort a whole table.
csv.field_size_limit(16 * 1024 * 1024)


class RowError(ValueError):
    """One row of a table is malformed (message says which column and why)."""


@dataclass
class Row:
    """One data row: ``line`` is the 1-based line of the file where the row starts."""

    path: Path
    line: int
    values: dict[str, str]

    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def text(self, column: str) -> str:
        return (self.values.get(column) or "").strip()

    def number(self, column: str, *, minimum: float | None = None) -> float:
        """The cell as a finite float; RowError when empty, non-numeric or below ``minimum``."""
        raw = self.text(column)
        try:
            value = float(raw)
        except ValueError:
            raise RowError(f"column {column!r}: expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise RowError(f"column {column!r}: expected a finite number, got {raw!r}")
        if minimum is not None and value < minimum:
            raise RowError(f"column {column!r}: must be >= {minimum:g}, got {raw}")
        return value

    def optional_number(self, column: str) -> float | None:
        """The cell as a float, or None when it is empty or not a number (optional label columns)."""
        raw = self.text(column)
        try:
            value = float(raw)
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def flag(self, column: str) -> bool:
        """A boolean cell as pandas writes it ("True"/"False"), also accepting 1/0."""
        raw = self.text(column).lower()
        if raw in ("true", "1", "1.0"):
            return True
        if raw in ("false", "0", "0.0", ""):
            return False
        raise RowError(f"column {column!r}: expected True or False, got {self.text(column)!r}")


@dataclass
class Table:
    path: Path
    columns: list[str]
    rows: list[Row]

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def _is_index_column(name: str) -> bool:
    return name.strip() == "" or name.startswith("Unnamed: 0")


def read_table(path: str | Path, required: Sequence[str] = (), *, what: str = "") -> Table:
    """Read a CSV with a header row.

    Args:
        path: the file.
        required: columns that must be present, else :class:`DatasetError`.
        what: what the file is for, added to the missing-file message (e.g. "REFLACX fixations").

    Raises:
        DatasetError: the file is missing, unreadable, empty, or lacks a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file" + (f" (the {what} table)" if what else ""))
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path}: empty file, expected a header row")
            drop_first = bool(header) and _is_index_column(header[0])
            columns = [c.strip() for c in (header[1:] if drop_first else header)]
            missing = [c for c in required if c not in columns]
            if missing:
                raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}; found: {', '.join(columns)}")
            rows, start = [], reader.line_num + 1
            for cells in reader:
                if cells and any(c.strip() for c in cells):
                    if drop_first:
                        cells = cells[1:]
                    rows.append(Row(path, start, dict(zip(columns, cells))))
                start = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not a UTF-8 text file ({e})") from None
    except csv.Error as e:
        raise DatasetError(f"{path}: malformed CSV ({e})") from None
    return Table(path, columns, rows)


def row_warning(row: Row, problem: str) -> str:
    return f"{row.where()}: {problem}; row skipped"
