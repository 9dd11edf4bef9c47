"""Delimited text exports (CSV or TSV) read column-wise, with errors that name the file, the column and the line.

Tracker exports are large (EGD-CXR's ``eye_gaze.csv`` has millions of rows), so the text is read by pandas'
C parser as strings and converted per column; a cell that is not a number is an error naming its line (a
data row ``i`` is on line ``i + 2``: exports have one header line and no multi-line fields). Empty cells and
``nan`` are missing values, which the readers treat as "no gaze position". The delimiter (tab, comma or
semicolon) is taken from the header line; with tab or semicolon a decimal comma (``12,5``, Tobii Pro Lab in
many locales) is read as ``12.5``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.recordings.base import RecordingError, check_file

MISSING = {"", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None"}


@dataclass
class TextTable:
    """Columns of a delimited file as ``(N,)`` string arrays; ``columns`` in file order (names stripped)."""

    path: Path
    columns: list[str]
    cells: dict[str, np.ndarray]
    sep: str

    def __len__(self) -> int:
        return len(next(iter(self.cells.values()))) if self.cells else 0

    def text(self, column: str) -> np.ndarray:
        return self.cells[column]

    def number(self, column: str, *, integer: bool = False) -> np.ndarray:
        """``(N,)`` float64 of a column; NaN for missing cells; RecordingError for a cell that is not a number."""
        import pandas as pd

        raw = pd.Series(self.cells[column], dtype=object).str.strip()
        missing = raw.isin(MISSING)
        if self.sep != ",":
            raw = raw.str.replace(",", ".", regex=False)
        values = pd.to_numeric(raw.where(~missing, None), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~missing.to_numpy() & np.isnan(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RecordingError(f"{self.path}: line {i + 2}, column {column}: expected a number, got "
                                 f"{str(self.cells[column][i])[:40]!r} ({int(bad.sum())} such cells)")
        if integer:
            frac = np.isfinite(values) & (values != np.round(values))
            if frac.any():
                i = int(np.flatnonzero(frac)[0])
                raise RecordingError(f"{self.path}: line {i + 2}, column {column}: expected a whole number, got "
                                     f"{self.cells[column][i]!r}")
        return values


def sniff_sep(header: str) -> str:
    """The delimiter of a header line: whichever of tab, comma, semicolon occurs most (comma on a tie)."""
    counts = {sep: header.count(sep) for sep in (",", "\t", ";")}
    best = max(counts, key=lambda s: (counts[s], s == ","))
    return best


def read_text_table(path: str | Path, what: str) -> TextTable:
    """Read a CSV/TSV export as strings; ``what`` (e.g. "a Gazepoint CSV export") is used in messages.

    Raises:
        FileNotFoundError: no such file.
        RecordingError: empty, not text, ragged rows, or no data rows.
    """
    import pandas as pd

    path = check_file(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = fh.readline()
    except UnicodeDecodeError:
        raise RecordingError(f"{path}: not a text file; expected {what}") from None
    if not header.strip():
        raise RecordingError(f"{path}: the first line is empty; expected the header of {what}")
    sep = sniff_sep(header)
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False,
                            encoding="utf-8-sig", quotechar='"')
    except UnicodeDecodeError:
        raise RecordingError(f"{path}: not a UTF-8 text file; expected {what}") from None
    except pd.errors.EmptyDataError:
        raise RecordingError(f"{path}: no header line; expected {what}") from None
    except pd.errors.ParserError as e:
        detail = " ".join(str(e).split())
        raise RecordingError(f"{path}: not a well-formed {'tab' if sep == chr(9) else repr(sep)}-separated table "
                             f"({detail[:160]})") from None
    columns = [str(c).strip() for c in frame.columns]
    frame.columns = columns
    # pandas keeps blank lines (so line numbers stay exact); a wholly empty row is not a sample.
    blank = (frame == "").all(axis=1).to_numpy() if len(frame) else np.zeros(0, bool)
    if len(frame) == 0 or blank.all():
        raise RecordingError(f"{path}: has a header but no data rows; expected {what}")
    cells = {c: frame[c].to_numpy(dtype=object) for c in dict.fromkeys(columns)}
    table = TextTable(path, columns, cells, sep)
    if blank.any():
        table.cells = {c: v[~blank] for c, v in cells.items()}  # line numbers after a blank line shift by one
    return table
