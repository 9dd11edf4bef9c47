"""Which gaze a case carries, and the gaze a training may learn from.

A Case's ``fixations`` are sometimes a person's and sometimes a model's: a label saved from the annotation
tool after an inference keeps the predicted scanpath that was on screen (its ``prediction.gaze_source`` says
"predicted"), while ``readers`` are always people (dataset radiologists, or annotators whose eyes the
capture recorded, keyed by a pseudonymous annotator id). Predicted fixations must never pass for recorded
ones: they would teach the gaze loss the model's own guess and tell the report writer it had a reader.

:func:`recorded_readers` gives a case's human scanpaths; :func:`training_gaze` prepares cases for a
training, in one of :data:`GAZE_MODES`, and counts how many carried recorded gaze, only predicted gaze, or
none (the counts go to the training's log and stats).
"""

from __future__ import annotations

import copy
from typing import Iterable

from models.schema import Case, Fixation

PRIMARY_READER = "reader_1"  # the key of ``case.fixations`` when they are a person's
GAZE_MODES = ("pooled", "per_reader", "none")
GAZE_KINDS = ("recorded", "predicted", "none")
# Families that read gaze as ordered sequences (scanpath targets, the report's and the vqa model's gaze tokens,
# whose "which regions were not inspected" is about one reading): every reader stays its own path; pooling
# readers into one list would make a path nobody read.
SEQUENCE_FAMILIES = ("scanpath", "report", "vqa")


def fixations_are_predicted(case: Case) -> bool:
    """True when ``case.fixations`` came from the scanpath model (an inference answer, or a label saved
    from one without a recorded reading)."""
    p = case.prediction
    if p is None or not case.fixations:
        return False
    if p.gaze_source is not None:
        return p.gaze_source == "predicted"
    return "scanpath" in p.models  # older answers without gaze_source: fixations were the scanpath model's


def recorded_readers(case: Case) -> dict[str, list[Fixation]]:
    """Every human scanpath of ``case`` by reader (``case.fixations`` as ``reader_1`` unless predicted, then
    ``case.readers``); empty ones left out."""
    out: dict[str, list[Fixation]] = {}
    if case.fixations and not fixations_are_predicted(case):
        out[PRIMARY_READER] = list(case.fixations)
    for name, fixations in case.readers.items():
        if fixations and name not in out:
            out[name] = list(fixations)
    return out


def gaze_kind(case: Case) -> str:
    """"recorded", "predicted" (only a model's fixations) or "none"."""
    if recorded_readers(case):
        return "recorded"
    return "predicted" if case.fixations else "none"


def _pooled(readers: dict[str, list[Fixation]]) -> list[Fixation]:
    """All readers' fixations in one list (reader by reader, each in time order): a heatmap target."""
    return [f for name in readers for f in sorted(readers[name], key=lambda f: f.t)]


def training_gaze(cases: Iterable[Case], mode: str = "pooled", *, family: str = "classifier",
                  use_predicted: bool = False) -> tuple[list[Case], dict[str, int]]:
    """Copies of ``cases`` whose gaze is what a training of ``family`` should learn from, and the counts.

    Args:
        mode: "pooled" — the classifier's gaze target (a heatmap) is every human reader of the image at once
            (``case.fixations`` = all readers, ``readers`` emptied); "per_reader" — one training case per
            reader (ids ``<id>~<reader>``; the trainer must split by image, see :func:`image_id_of`); "none" —
            no gaze (a plain supervised baseline). The :data:`SEQUENCE_FAMILIES` always learn each reader's
            path as its own sequence (``case.fixations`` = the first reader, the others in ``readers``).
        use_predicted: let a case with only predicted fixations keep them (off by default: a model's own
            guess is not supervision).

    Returns:
        ``(cases, {"recorded": n, "predicted": n, "none": n})`` counted per input case.

    Raises:
        ValueError: an unknown mode (names the accepted ones).
    """
    if mode not in GAZE_MODES:
        raise ValueError(f"gaze_readers must be one of {', '.join(GAZE_MODES)}, got {mode!r}")
    counts = dict.fromkeys(GAZE_KINDS, 0)
    out: list[Case] = []
    for case in cases:
        kind = gaze_kind(case)
        counts[kind] += 1
        readers = recorded_readers(case)
        if kind == "predicted" and use_predicted:
            readers = {"predicted": list(case.fixations)}
        case = copy.deepcopy(case)
        if mode == "none" or not readers:
            case.fixations, case.readers = [], {}
            out.append(case)
        elif family in SEQUENCE_FAMILIES:
            names = list(readers)
            case.fixations = readers[names[0]]
            case.readers = {n: readers[n] for n in names[1:]}
            out.append(case)
        elif mode == "pooled":
            case.fixations, case.readers = _pooled(readers), {}
            out.append(case)
        else:
            for name, fixations in readers.items():
                one = copy.deepcopy(case)
                one.id = f"{case.id}~{name}"
                one.fixations, one.readers = sorted(fixations, key=lambda f: f.t), {}
                out.append(one)
    return out, counts


def image_id_of(case_id: str) -> str:
    """The image a (per-reader) training case belongs to: ``"<id>~<reader>"`` -> ``"<id>"``."""
    return case_id.split("~", 1)[0]


__all__ = ["GAZE_KINDS", "GAZE_MODES", "PRIMARY_READER", "fixations_are_predicted", "gaze_kind", "image_id_of",
           "recorded_readers", "training_gaze"]
