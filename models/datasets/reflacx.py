"""REFLACX (PhysioNet ``reflacx-xray-localization`` 1.0.0): gaze, dictation and ellipses on MIMIC-CXR images.

Layout read here::

    <root>/main_data/metadata_phase_{1,2,3}.csv
    <root>/main_data/<id>/fixations.csv                 required for every kept reading
    <root>/main_data/<id>/anomaly_location_ellipses.csv
    <root>/main_data/<id>/chest_bounding_box.csv
    <root>/main_data/<id>/transcription.txt
    <root>/main_data/<id>/timestamps_transcription.csv
    <root>/gaze_data/<id>/gaze.csv                      raw samples, optional (see :func:`read_gaze`)

Mapping to a :class:`~models.schema.Case` (one case per ``dicom_id``):

- Rows with ``eye_tracking_data_discarded == True`` are dropped and counted (their folders hold only
  ``chest_bounding_box.csv`` and the ellipses: no gaze, no dictation). A kept row whose folder has no
  ``fixations.csv`` is dropped with a warning, not fatal.
- Several radiologists read some images. The case holds the **first reading** (phase 1, 2, 3 in that order,
  then file order): ``case.fixations``, findings, boxes and report come from it; every other reading's
  fixations are in ``case.readers[<reading id>]`` and its findings/boxes/report in
  ``case.extra["readings"][<reading id>]``. REFLACX does not publish which radiologist made a reading, so the
  reading id (e.g. ``P102R108387``) is the reader key.
- Fixations: ``t = timestamp_start_fixation`` and ``duration = end - start`` (seconds on the dictation-audio
  clock), ``x, y`` = original DICOM pixels. When a fixation starts before the
  audio (negative time), all times of that reading, word timestamps included, are shifted so the first is 0
  and ``extra["t0_audio_s"]`` records the shift (audio time = case time + t0).
- Which fixations are kept follows REFLACX's own filter (ricbl/eyetracking at 9824bf9,
  ``examples_and_paper_numbers/filter_fixations.py`` L14-36): a fixation inside the image rectangle shown on
  the screen, or at most 0.5 degrees outside it and more than 50 screen pixels from the button panel
  (screen rectangle 10,933-650,1122). Degrees use the fixation's own ``angular_resolution_*`` (image pixels
  per degree; it changes with zoom, so it is per fixation, never one value per reading). The filter's corner
  distance multiplies both axes by the x factor (L78); here each axis uses its own. Without the shown/screen
  rectangle columns the image rectangle and the same 0.5 degrees are used; without pixels per degree, the
  image rectangle alone. The rest are dropped and counted. A kept fixation outside the image is moved onto
  its nearest edge (a Case holds image points; one warning per file says how many).
- Per fixation, ``extra["fixation_px_per_deg"]`` ``[[x, y], ...]`` and ``extra["fixation_shown_rect"]``
  ``[[xmin, ymin, xmax, ymax], ...]`` (image pixels, aligned with ``case.fixations``) keep what REFLACX's
  heatmaps need: :func:`reflacx_heatmap` draws them the REFLACX way (``generate_heatmaps.py`` L15-44:
  σ = 1 degree of each fixation's own resolution, weighted by duration, drawn only inside the rectangle shown
  at that moment, sum-normalised). ``extra["px_per_deg"]`` is the median over the reading (for a single
  σ where one is needed).
- Labels: abnormality certainty 0-5, ``>= 3`` = present (as REFLACX's inter-rater code). Labels are mapped to
  CheXpert with :func:`models.vocab.canonical_finding`; several labels on one finding (Mass, Nodule) take the
  highest certainty; ``Support devices`` is a boolean. Labels with no CheXpert equivalent (Emphysema, Enlarged
  hilum ...), ``Quality issue`` and ``Other`` go to ``extra["other_labels"]``. ``No Finding`` = 1 when no
  abnormality (mapped or not) is present and ``Other`` is empty, else 0.
- Ellipses (their bounding boxes): certainty runs 1-5 (an ellipse is drawn only for a finding the reader
  reported); ``>= 3`` on a CheXpert-mapped label becomes ``case.boxes``, clipped to the image; the rest (and
  ellipses carrying the ``Other`` column) are kept in ``extra["other_ellipses"]``. A certainty outside 1-5 is
  a malformed row (warning, skipped).
- Files are CRLF-terminated; the table reader accepts either line ending.
- ``transcription.txt`` -> ``report.findings`` (the dictation is not split into sections);
  ``timestamps_transcription.csv`` -> ``extra["word_timestamps"]`` ``[[word, start, end], ...]`` for
  sentence-gaze alignment; ``chest_bounding_box.csv`` -> ``extra["chest_box"]`` ``[xmin, ymin, xmax, ymax]``;
  median ``angular_resolution_*_pixels_per_degree`` -> ``extra["px_per_deg"]`` (for 1-degree heatmaps);
  ``extra["gaze_csv"]`` = path of the raw samples when present.
- Image: the MIMIC-CXR ``image`` path resolved under ``images=`` (DICOM, or the MIMIC-CXR-JPG twin); without
  ``images=`` the path is "" and ``extra["mimic_image"]`` keeps the published relative path.
- Splits: the metadata's MIMIC-CXR split (``validate`` -> ``val``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from models.datasets.base import CaseSource, DatasetError, count_drop
from models.datasets.image_paths import ImageResolver
from models.datasets.tables import Row, RowError, read_table, row_warning
from models.schema import Box, Case, Fixation, ImageRef, Report, Source
from models.vocab import canonical_finding

NAME = "reflacx"
METADATA_COLUMNS = ("id", "split", "eye_tracking_data_discarded", "image", "dicom_id", "subject_id", "image_size_x", "image_size_y")
FIXATION_COLUMNS = ("timestamp_start_fixation", "timestamp_end_fixation", "x_position", "y_position")
GAZE_COLUMNS = ("timestamp_sample", "x_position", "y_position")
ELLIPSE_COLUMNS = ("xmin", "ymin", "xmax", "ymax", "certainty")
CHEST_BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
WORD_COLUMNS = ("word", "timestamp_start_word", "timestamp_end_word")
PX_PER_DEG_COLUMNS = ("angular_resolution_x_pixels_per_degree", "angular_resolution_y_pixels_per_degree")

PRESENT_CERTAINTY = 3
MAX_CERTAINTY = 5
BOOLEAN_LABELS = ("Support devices", "Quality issue")
TEXT_LABELS = ("Other",)
# Every label column of the three phases; anything else is reported once per file and kept in extra.
PHASE_1_LABELS = (
    "Airway wall thickening", "Atelectasis", "Consolidation", "Emphysema", "Enlarged cardiac silhouette", "Fibrosis",
    "Fracture", "Groundglass opacity", "Mass", "Nodule", "Pleural effusion", "Pleural thickening", "Pneumothorax",
    "Pulmonary edema", "Quality issue", "Support devices", "Wide mediastinum", "Other",
)
PHASE_2_3_LABELS = (
    "Abnormal mediastinal contour", "Acute fracture", "Atelectasis", "Consolidation", "Enlarged cardiac silhouette",
    "Enlarged hilum", "Groundglass opacity", "Hiatal hernia", "High lung volume / emphysema", "Interstitial lung disease",
    "Lung nodule or mass", "Other", "Pleural abnormality", "Pneumothorax", "Pulmonary edema", "Support devices",
)
KNOWN_LABELS = frozenset(PHASE_1_LABELS + PHASE_2_3_LABELS)
SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "validation": "val", "test": "test"}


def chexpert_name(label: str) -> str | None:
    """CheXpert finding for a REFLACX label, or None when it has no equivalent."""
    try:
        return canonical_finding(label)
    except KeyError:
        return None


@dataclass
class Reading:
    """One radiologist's reading of one image (a ``main_data/<id>/`` folder)."""

    id: str
    phase: int
    dicom_id: str
    subject_id: str
    split: str
    image: str
    width: int
    height: int
    findings: dict[str, int] = field(default_factory=dict)
    other_labels: dict[str, object] = field(default_factory=dict)
    fixations: list[Fixation] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    other_ellipses: list[dict] = field(default_factory=list)
    chest_box: list[float] | None = None
    transcription: str = ""
    words: list[list] = field(default_factory=list)
    px_per_deg: float | None = None
    fixation_px_per_deg: list = field(default_factory=list)
    fixation_shown_rect: list = field(default_factory=list)
    t0_audio_s: float = 0.0
    gaze_csv: str | None = None


# ---------------------------------------------------------------------------------------------- labels
def parse_labels(row: Row, label_columns: Iterable[str], warnings: list[str]) -> tuple[dict[str, int], dict[str, object]]:
    """CheXpert findings and the other labels of one metadata row (see module docstring)."""
    best: dict[str, float] = {}
    other: dict[str, object] = {}
    abnormal = False
    for label in label_columns:
        raw = row.text(label)
        if raw == "":
            continue  # label not asked in this phase (MIMIC-Eye merges the phases' columns)
        if label in TEXT_LABELS:
            other[label] = raw
            abnormal = True
            continue
        if label in BOOLEAN_LABELS:
            try:
                value = row.flag(label)
            except RowError as e:
                warnings.append(f"{row.where()}: {e}; label ignored")
                continue
            if label == "Support devices":
                best["Support Devices"] = max(best.get("Support Devices", 0), MAX_CERTAINTY if value else 0)
            else:
                other[label] = value
            continue
        try:
            certainty = row.number(label, minimum=0)
            if certainty > MAX_CERTAINTY:
                raise RowError(f"column {label!r}: certainty must be 0-{MAX_CERTAINTY}, got {raw}")
        except RowError as e:
            warnings.append(f"{row.where()}: {e}; label ignored")
            continue
        abnormal |= certainty >= PRESENT_CERTAINTY
        finding = chexpert_name(label)
        if finding is None:
            other[label] = certainty
        else:
            best[finding] = max(best.get(finding, 0), certainty)
    findings = {name: int(c >= PRESENT_CERTAINTY) for name, c in best.items()}
    findings["No Finding"] = 0 if abnormal else 1
    return findings, other


# ---------------------------------------------------------------------------------------------- per-file parsers
SHOWN_COLUMNS = ("xmin_shown_from_image", "ymin_shown_from_image", "xmax_shown_from_image", "ymax_shown_from_image")
SCREEN_COLUMNS = ("xmin_in_screen_coordinates", "ymin_in_screen_coordinates", "xmax_in_screen_coordinates",
                  "ymax_in_screen_coordinates")
BUTTONS_SCREEN = (10.0, 933.0, 650.0, 1122.0)  # the next/reset button panel (filter_fixations.py L18)
MAX_OUTSIDE_DEG = 0.5
MIN_BUTTON_DISTANCE_PX = 50.0


def _outside(x: float, y: float, rect) -> tuple[float, float]:
    """Per-axis distance of (x, y) outside ``rect`` (0 inside)."""
    dx = max(rect[0] - x, 0.0, x - rect[2])
    dy = max(rect[1] - y, 0.0, y - rect[3])
    return dx, dy


def keep_fixation(x: float, y: float, width: int, height: int, ppd: tuple[float, float] | None,
                  shown: tuple | None, screen: tuple | None) -> bool:
    """REFLACX's filter (module docstring): inside the shown image, or <= 0.5 degrees outside it and > 50 screen
    pixels from the buttons. ``ppd`` image pixels per degree (x, y); ``shown`` the image rectangle on screen
    (image px) and ``screen`` where it was drawn (screen px)."""
    if shown is not None and screen is not None and shown[2] > shown[0] and shown[3] > shown[1] \
            and screen[2] > screen[0] and screen[3] > screen[1]:
        sx = (screen[2] - screen[0]) / (shown[2] - shown[0])  # screen px per image px
        sy = (screen[3] - screen[1]) / (shown[3] - shown[1])
        xs, ys = screen[0] + (x - shown[0]) * sx, screen[1] + (y - shown[1]) * sy
        dx, dy = _outside(xs, ys, screen)
        if dx == dy == 0:
            return True
        bx, by = _outside(xs, ys, BUTTONS_SCREEN)
        if ppd is None or float(np.hypot(bx, by)) <= MIN_BUTTON_DISTANCE_PX:
            return False
        return float(np.hypot(dx / sx / ppd[0], dy / sy / ppd[1])) < MAX_OUTSIDE_DEG
    if not (width and height):
        return True
    dx, dy = _outside(x, y, (0.0, 0.0, float(width), float(height)))
    if dx == dy == 0:
        return True
    return ppd is not None and float(np.hypot(dx / ppd[0], dy / ppd[1])) < MAX_OUTSIDE_DEG


@dataclass
class FixationTable:
    """One ``fixations.csv``: fixations in time order and, aligned with them, each one's pixels per degree
    ``[x, y]`` (None when absent) and shown image rectangle (None when absent)."""

    fixations: list[Fixation]
    px_per_deg: list[list[float] | None]
    shown: list[list[float] | None]

    @property
    def median_px_per_deg(self) -> float | None:
        values = [(p[0] + p[1]) / 2.0 for p in self.px_per_deg if p]
        return statistics.median(values) if values else None


def read_fixation_table(path: Path, width: int, height: int, warnings: list[str],
                        dropped: dict[str, int] | None = None) -> FixationTable:
    """Fixations (audio clock, original px, REFLACX's filter) of one ``fixations.csv``, time order."""
    table = read_table(path, FIXATION_COLUMNS, what="REFLACX fixations")
    has_ppd = all(c in table.columns for c in PX_PER_DEG_COLUMNS)
    has_rects = all(c in table.columns for c in SHOWN_COLUMNS + SCREEN_COLUMNS)
    items, outside, edge = [], 0, 0
    for row in table:
        try:
            start = row.number("timestamp_start_fixation")
            end = row.number("timestamp_end_fixation")
            x, y = row.number("x_position"), row.number("y_position")
            if end < start:
                raise RowError(f"negative duration (end {end} < start {start})")
        except RowError as e:
            warnings.append(row_warning(row, str(e)))
            count_drop(dropped, "malformed fixation rows")
            continue
        ppd = None
        if has_ppd:
            px, py = row.optional_number(PX_PER_DEG_COLUMNS[0]), row.optional_number(PX_PER_DEG_COLUMNS[1])
            if px and py and px > 0 and py > 0:
                ppd = [px, py]
        shown = screen = None
        if has_rects:
            shown_v = [row.optional_number(c) for c in SHOWN_COLUMNS]
            screen_v = [row.optional_number(c) for c in SCREEN_COLUMNS]
            if all(v is not None for v in shown_v + screen_v):
                shown, screen = shown_v, screen_v
        if not keep_fixation(x, y, width, height, tuple(ppd) if ppd else None, shown, screen):
            outside += 1
            continue
        if width and height and not (0 <= x <= width and 0 <= y <= height):
            x, y = min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))
            edge += 1
        items.append((Fixation(x, y, start, end - start), ppd, shown))
    if outside:
        count_drop(dropped, "fixations off the shown image (more than 0.5 degrees out, or at the buttons)", outside)
        warnings.append(f"{path}: dropped {outside} of {len(table)} fixations more than {MAX_OUTSIDE_DEG} degrees "
                        "outside the image shown (or at the buttons)")
    if edge:
        warnings.append(f"{path}: {edge} fixations within {MAX_OUTSIDE_DEG} degrees outside the image moved onto its edge")
    items.sort(key=lambda item: item[0].t)
    return FixationTable([i[0] for i in items], [i[1] for i in items], [i[2] for i in items])


def read_fixations(path: Path, width: int, height: int, warnings: list[str]) -> tuple[list[Fixation], float | None]:
    """Fixations (audio clock, original px) and the median pixels per degree of one ``fixations.csv``."""
    t = read_fixation_table(path, width, height, warnings)
    return t.fixations, t.median_px_per_deg


def reflacx_heatmap(fixations, px_per_deg, shown, width: int, height: int, *, shape: tuple[int, int] | None = None,
                    sigma_deg: float = 1.0) -> np.ndarray:
    """REFLACX's gaze heatmap (``generate_heatmaps.py`` L15-44): each fixation a Gaussian of σ = ``sigma_deg``
    times its own pixels per degree, weighted by its duration, drawn only inside the image rectangle shown at
    that moment (clipped to the image), the map sum-normalised.

    Args:
        fixations: the case's fixations (original px); px_per_deg, shown: aligned per-fixation
            ``[x, y]`` and ``[xmin, ymin, xmax, ymax]`` (``case.extra["fixation_px_per_deg"]`` and
            ``["fixation_shown_rect"]``); a None entry uses the median resolution / the whole image.
        width, height: the original image size.
        shape: ``(rows, cols)`` of the map; default ``(height, width)`` (REFLACX's own, full resolution).
            Coordinates are scaled, so a smaller map is the same heatmap sampled coarser.

    Returns:
        ``(rows, cols)`` float64 map summing to 1 (all zeros without fixations).
    """
    rows, cols = shape or (height, width)
    sx, sy = cols / width, rows / height  # map px per image px
    out = np.zeros((rows, cols), dtype=np.float64)
    known = [p for p in px_per_deg if p]
    fallback = [statistics.median(p[0] for p in known), statistics.median(p[1] for p in known)] if known else None
    xs, ys = (np.arange(cols) + 0.5) / sx, (np.arange(rows) + 0.5) / sy  # pixel centres in image px
    for f, ppd, rect in zip(fixations, px_per_deg, shown):
        ppd = ppd or fallback
        if ppd is None or f.duration <= 0:
            continue
        x0, y0, x1, y1 = rect or (0, 0, width, height)
        x0, y0, x1, y1 = max(round(x0), 0), max(round(y0), 0), min(round(x1), width), min(round(y1), height)
        c0, c1 = int(np.floor(x0 * sx)), int(np.ceil(x1 * sx))
        r0, r1 = int(np.floor(y0 * sy)), int(np.ceil(y1 * sy))
        if c1 <= c0 or r1 <= r0:
            continue
        s_x, s_y = sigma_deg * ppd[0], sigma_deg * ppd[1]
        gx = np.exp(-0.5 * ((xs[c0:c1] - f.x) / s_x) ** 2) / (np.sqrt(2 * np.pi) * s_x)
        gy = np.exp(-0.5 * ((ys[r0:r1] - f.y) / s_y) ** 2) / (np.sqrt(2 * np.pi) * s_y)
        out[r0:r1, c0:c1] += f.duration * np.outer(gy, gx)
    total = out.sum()
    return out / total if total > 0 else out


def _clip_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> tuple[float, float, float, float]:
    if width and height:
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return x1, y1, x2, y2


def read_ellipses(path: Path, width: int, height: int, warnings: list[str]) -> tuple[list[Box], list[dict]]:
    """Finding boxes (certainty >= 3, CheXpert-mapped) and the remaining ellipses of one reading."""
    table = read_table(path, ELLIPSE_COLUMNS, what="REFLACX ellipses")
    label_columns = [c for c in table.columns if c not in ELLIPSE_COLUMNS]
    boxes, other = [], []
    for row in table:
        try:
            x1, y1, x2, y2 = (row.number(c) for c in ("xmin", "ymin", "xmax", "ymax"))
            certainty = row.number("certainty")
            if not 1 <= certainty <= MAX_CERTAINTY:
                raise RowError(f"column 'certainty': an ellipse's certainty runs 1-{MAX_CERTAINTY}, got {certainty:g}")
            labels = [c for c in label_columns if row.flag(c)]
            if not labels:
                raise RowError("no label is True for this ellipse")
            cx1, cy1, cx2, cy2 = _clip_box(x1, y1, x2, y2, width, height)
            if cx2 <= cx1 or cy2 <= cy1:
                raise RowError(f"empty box ({x1}, {y1}, {x2}, {y2}) inside the {width}x{height} image")
        except RowError as e:
            warnings.append(row_warning(row, str(e)))
            continue
        mapped = []
        for label in labels:
            finding = chexpert_name(label)
            if finding is not None and finding not in mapped:
                mapped.append(finding)
        unmapped = [label for label in labels if chexpert_name(label) is None]
        if certainty >= PRESENT_CERTAINTY:
            boxes += [Box(f, cx1, cy1, cx2, cy2) for f in mapped]
        if certainty < PRESENT_CERTAINTY or unmapped:
            kept = labels if certainty < PRESENT_CERTAINTY else unmapped
            other.append({"labels": kept, "certainty": certainty, "xyxy": [cx1, cy1, cx2, cy2]})
    return boxes, other


def read_chest_box(path: Path, warnings: list[str]) -> list[float] | None:
    table = read_table(path, CHEST_BOX_COLUMNS, what="REFLACX chest box")
    for row in table:
        try:
            return [row.number(c) for c in CHEST_BOX_COLUMNS]
        except RowError as e:
            warnings.append(row_warning(row, str(e)))
    return None


def read_words(path: Path, warnings: list[str]) -> list[list]:
    """``[[word, start_s, end_s], ...]`` of ``timestamps_transcription.csv``."""
    words = []
    for row in read_table(path, WORD_COLUMNS, what="REFLACX word timestamps"):
        try:
            start, end = row.number("timestamp_start_word"), row.number("timestamp_end_word")
            if end < start:
                raise RowError(f"negative duration (end {end} < start {start})")
        except RowError as e:
            warnings.append(row_warning(row, str(e)))
            continue
        words.append([row.text("word"), start, end])
    return words


def read_gaze(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Raw samples of a REFLACX ``gaze.csv`` (or the MIMIC-Eye copy).

    Returns:
        ``(N, 3)`` float64 array of t [s, audio clock], x, y [original px], sorted by time, and the median
        pixels per degree (None when the columns are absent). Malformed rows are skipped.
    """
    table = read_table(path, GAZE_COLUMNS, what="REFLACX gaze samples")
    samples, ppd = [], []
    has_ppd = all(c in table.columns for c in PX_PER_DEG_COLUMNS)
    for row in table:
        try:
            samples.append((row.number("timestamp_sample"), row.number("x_position"), row.number("y_position")))
        except RowError:
            continue  # blinks and track loss leave empty positions
        if has_ppd:
            px, py = row.optional_number(PX_PER_DEG_COLUMNS[0]), row.optional_number(PX_PER_DEG_COLUMNS[1])
            if px and py and px > 0 and py > 0:
                ppd.append((px + py) / 2.0)
    arr = np.asarray(samples, dtype=np.float64).reshape(-1, 3)
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    return arr, (statistics.median(ppd) if ppd else None)


def shift_times(fixations: list[Fixation], words: list[list] | None = None) -> float:
    """Shift times so none is negative (case times must be >= 0); returns the shift t0 (<= 0) that was removed."""
    t0 = min([0.0] + [f.t for f in fixations] + [w[1] for w in words or []])
    if t0 < 0:
        for f in fixations:
            f.t -= t0
        for w in words or []:
            w[1] -= t0
            w[2] -= t0
    return t0


# ---------------------------------------------------------------------------------------------- readings
def metadata_rows(path: Path, warnings: list[str], dropped: dict[str, int] | None = None) -> tuple[list[Row], list[str]]:
    """Kept (not discarded) rows of a metadata table and its label columns; discarded ones are counted."""
    table = read_table(path, METADATA_COLUMNS, what="REFLACX metadata")
    label_columns = [c for c in table.columns if c not in METADATA_COLUMNS]
    unknown = [c for c in label_columns if c not in KNOWN_LABELS]
    if unknown:
        warnings.append(f"{path}: unknown label column(s) {', '.join(unknown)}; kept in extra['other_labels']")
    kept = []
    for row in table:
        try:
            if row.flag("eye_tracking_data_discarded"):
                count_drop(dropped, "readings REFLACX discarded (eye_tracking_data_discarded; no gaze or dictation)")
                continue
        except RowError as e:
            warnings.append(row_warning(row, str(e)))
            continue
        kept.append(row)
    return kept, label_columns


def read_reading(folder: Path, row: Row, label_columns: list[str], warnings: list[str], *, gaze_csv: Path | None = None,
                 dropped: dict[str, int] | None = None) -> Reading | None:
    """Parse one reading folder; None (with a warning, counted) when its metadata row is malformed or the
    folder has no ``fixations.csv``.

    Raises:
        DatasetError: ``fixations.csv`` lacks a required column.
    """
    reading_id = row.text("id")
    try:
        if not reading_id:
            raise RowError("empty 'id'")
        if not row.text("dicom_id"):
            raise RowError("empty 'dicom_id'")
        width = int(row.number("image_size_x", minimum=1))
        height = int(row.number("image_size_y", minimum=1))
    except RowError as e:
        warnings.append(row_warning(row, str(e)))
        count_drop(dropped, "readings with a malformed metadata row")
        return None
    if not (folder / "fixations.csv").is_file():
        what = "only the chest box and ellipses, like a discarded reading" if folder.is_dir() else "no such folder"
        warnings.append(f"{folder / 'fixations.csv'}: no such file ({what}); reading {reading_id} left out")
        count_drop(dropped, "readings without fixations.csv")
        return None
    phase = int(reading_id[1]) if len(reading_id) > 1 and reading_id[1].isdigit() else 0
    split = row.text("split").lower()
    if split not in SPLIT_NAMES:
        warnings.append(f"{row.where()}: unknown split {row.text('split')!r}; counted as train")
    findings, other_labels = parse_labels(row, label_columns, warnings)
    r = Reading(
        reading_id, phase, row.text("dicom_id"), row.text("subject_id"),
        SPLIT_NAMES.get(split, "train"), row.text("image"), width, height, findings, other_labels,
    )
    table = read_fixation_table(folder / "fixations.csv", width, height, warnings, dropped)
    r.fixations, r.px_per_deg = table.fixations, table.median_px_per_deg
    r.fixation_px_per_deg, r.fixation_shown_rect = table.px_per_deg, table.shown

    def optional(name: str) -> Path | None:
        path = folder / name
        if path.is_file():
            return path
        warnings.append(f"{path}: no such file (reading {reading_id} kept without it)")
        return None

    if path := optional("anomaly_location_ellipses.csv"):
        r.boxes, r.other_ellipses = read_ellipses(path, width, height, warnings)
    if path := optional("chest_bounding_box.csv"):
        r.chest_box = read_chest_box(path, warnings)
    if path := optional("timestamps_transcription.csv"):
        r.words = read_words(path, warnings)
    if path := optional("transcription.txt"):
        r.transcription = path.read_text(encoding="utf-8", errors="replace").strip()
    r.t0_audio_s = shift_times(r.fixations, r.words)  # already in time order
    if gaze_csv is not None and gaze_csv.is_file():
        r.gaze_csv = str(gaze_csv.resolve())
    return r


def cases_from_readings(readings: list[Reading], image_path: Callable[[Reading], str], dataset: str = NAME) -> tuple[list[Case], dict[str, list[str]]]:
    """Group readings by dicom_id into cases (first reading primary, the rest in ``readers``) and splits."""
    groups: dict[str, list[Reading]] = {}
    for r in readings:
        groups.setdefault(r.dicom_id, []).append(r)
    cases, splits = [], {"train": [], "val": [], "test": []}
    for dicom_id, group in groups.items():
        first, others = group[0], group[1:]
        extra = {
            "reflacx_id": first.id,
            "phase": first.phase,
            "subject_id": first.subject_id,
            "mimic_image": first.image,
            "px_per_deg": first.px_per_deg,
            "fixation_px_per_deg": first.fixation_px_per_deg,
            "fixation_shown_rect": first.fixation_shown_rect,
            "chest_box": first.chest_box,
            "word_timestamps": first.words,
            "t0_audio_s": first.t0_audio_s,
            "other_labels": first.other_labels,
            "other_ellipses": first.other_ellipses,
            "gaze_csv": first.gaze_csv,
            "readings": {
                o.id: {
                    "phase": o.phase,
                    "findings": o.findings,
                    "other_labels": o.other_labels,
                    "boxes": [vars(b) for b in o.boxes],
                    "report": o.transcription,
                    "px_per_deg": o.px_per_deg,
                    "fixation_px_per_deg": o.fixation_px_per_deg,
                    "fixation_shown_rect": o.fixation_shown_rect,
                    "t0_audio_s": o.t0_audio_s,
                    "gaze_csv": o.gaze_csv,
                }
                for o in others
            },
        }
        case = Case(
            id=dicom_id,
            image=ImageRef(image_path(first), first.width, first.height),
            findings=dict(first.findings),
            boxes=list(first.boxes),
            fixations=list(first.fixations),
            readers={o.id: list(o.fixations) for o in others},
            report=Report(findings=first.transcription) if first.transcription else None,
            source=Source(dataset=dataset, ref=first.id),
            extra=extra,
        )
        cases.append(case)
        splits[first.split].append(dicom_id)
    return cases, splits


# ---------------------------------------------------------------------------------------------- dataset
def find_metadata(root: Path) -> list[Path]:
    """``metadata_phase_*.csv`` files under ``root/main_data`` (or ``root`` itself), phase order."""
    for folder in (root / "main_data", root):
        found = sorted(folder.glob("metadata_phase_*.csv"))
        if found:
            return found
    return []


def read_reflacx(root: str | Path, *, images: str | Path | None = None, phases: Iterable[int] = (1, 2, 3)) -> CaseSource:
    """Read a REFLACX folder (see module docstring) into a :class:`CaseSource`.

    Args:
        root: the dataset folder holding ``main_data/`` (and optionally ``gaze_data/``).
        images: MIMIC-CXR (or MIMIC-CXR-JPG) root to resolve the ``image`` column against.
        phases: which ``metadata_phase_N.csv`` files to read.

    Raises:
        DatasetError: no metadata file, or a required file/column is missing.
    """
    root = Path(root)
    main = root / "main_data" if (root / "main_data").is_dir() else root
    wanted = set(int(p) for p in phases)
    files = [p for p in find_metadata(root) if p.stem.rsplit("_", 1)[-1].isdigit() and int(p.stem.rsplit("_", 1)[-1]) in wanted]
    if not files:
        raise DatasetError(f"{root}: no main_data/metadata_phase_{{1,2,3}}.csv found (is this a REFLACX folder?)")
    warnings: list[str] = []
    dropped: dict[str, int] = {}
    readings = []
    for path in files:
        rows, label_columns = metadata_rows(path, warnings, dropped)
        for row in rows:
            reading_id = row.text("id")
            r = read_reading(main / reading_id, row, label_columns, warnings, gaze_csv=root / "gaze_data" / reading_id / "gaze.csv",
                             dropped=dropped)
            if r is not None:
                readings.append(r)
    resolver = ImageResolver(images)
    cases, splits = cases_from_readings(readings, lambda r: resolver.resolve(r.image, r.dicom_id))
    missing = resolver.warning(len(cases))
    if missing:
        warnings.append(missing)
    return CaseSource(NAME, cases, splits, False, warnings, dropped)
