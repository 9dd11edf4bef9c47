"""The human scanpaths of a case, as every scanpath tool reads them (training, evaluation, baselines)."""

from __future__ import annotations

from models.imaging import read_image
from models.schema import Case, Fixation

PRIMARY_READER = "reader_1"


def reader_paths(case: Case) -> dict[str, list[Fixation]]:
    """Every human scanpath of a case: ``case.fixations`` (as ``reader_1``) then ``case.readers``; empty
    paths are left out."""
    paths = {PRIMARY_READER: case.fixations} if case.fixations else {}
    paths.update({name: fx for name, fx in case.readers.items() if fx and name not in paths})
    return paths


def image_size_of(case: Case) -> tuple[int, int]:
    """``(width, height)`` in original pixels: from the case record, else read from its image file."""
    if case.image.width > 0 and case.image.height > 0:
        return case.image.width, case.image.height
    if not case.image.path:
        raise ValueError(f"case {case.id}: image size unknown and no image file to read it from")
    height, width = read_image(case.image.path).array.shape
    return width, height
