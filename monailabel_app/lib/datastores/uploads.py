"""Checks on files a client uploads: images must be readable 2D chest radiographs, labels must be Cases.

Both raise the library's own errors (``ImageError``, ``CaseError``), which the server turns into HTTP 4xx
with the message, so a bad upload never reaches the store.
"""

from __future__ import annotations

from pathlib import Path

from models.imaging import ImageError, LoadedImage, read_image
from models.schema import Case, CaseError
from models.strict_json import JSONValueError, loads

IMAGE_EXTENSIONS = (".png", ".dcm", ".jpg", ".jpeg")
LABEL_EXTENSIONS = (".json",)
RADIOGRAPH_MODALITIES = ("CR", "DX")
MAX_LABEL_BYTES = 8 * 1024 * 1024


def check_radiograph(loaded: LoadedImage) -> LoadedImage:
    """Refuse a DICOM whose modality is not CR/DX (a CT slice, an ultrasound frame ...); PNG/JPG pass."""
    modality = loaded.meta.get("modality")
    if loaded.meta.get("format") == "dicom" and modality not in RADIOGRAPH_MODALITIES:
        raise ImageError(
            f"{Path(loaded.path or 'image').name}: DICOM modality {modality or '(empty)'!r} is not a chest "
            f"radiograph; only {'/'.join(RADIOGRAPH_MODALITIES)} are accepted"
        )
    return loaded


def check_image_upload(path: str | Path, ext: str) -> dict:
    """Read the uploaded image once to prove it is a usable radiograph; returns facts for the image info.

    Raises:
        ImageError: wrong extension, unreadable or truncated file, not 2D, too large, or a DICOM whose
            modality is not CR/DX (a CT slice or a structured report is refused here).
    """
    if ext.lower() not in IMAGE_EXTENSIONS:
        raise ImageError(f"upload: file type {ext or '(none)'!r} is not accepted; send one of {', '.join(IMAGE_EXTENSIONS)}")
    loaded = check_radiograph(read_image(path))
    modality = loaded.meta.get("modality")
    info = {"width": loaded.width, "height": loaded.height}
    if modality:
        info["modality"] = modality
    return info


def read_label_upload(path: str | Path, image_id: str, image_size: tuple[int, int] | None = None) -> Case:
    """Parse an uploaded label as a Case for ``image_id`` (its ``id`` is set to the image id).

    A label must say what the annotator decided about which image: ``image.width`` and ``image.height``
    (equal to the stored image's ``image_size``, when given) and at least one of findings, boxes,
    fixations (or other readers' fixations) and report.

    Raises:
        CaseError: not strict JSON (NaN, Infinity, nesting over 32 levels), too big, or not a valid Case
            (the message names the field).
    """
    path = Path(path)
    try:
        data = loads(path.read_bytes(), "label", max_bytes=MAX_LABEL_BYTES, expect=dict)
    except JSONValueError as e:
        raise CaseError(str(e)) from None
    if isinstance(data, dict) and not data.get("id"):
        data = {**data, "id": image_id}
    try:
        case = Case.from_dict(data)
    except CaseError as e:
        raise CaseError(f"label: {e}") from None
    case.id = image_id
    stored = f" (the stored image is {image_size[0]}x{image_size[1]})" if image_size else ""
    if not (case.image.width and case.image.height):
        raise CaseError(f"label: image.width and image.height are required{stored}")
    if image_size and (case.image.width, case.image.height) != tuple(image_size):
        raise CaseError(f"label: image.width x image.height is {case.image.width}x{case.image.height} but the "
                        f"stored image {image_id!r} is {image_size[0]}x{image_size[1]}")
    if not (case.findings or case.boxes or case.fixations or case.readers or case.report):
        raise CaseError("label: holds nothing to save; give at least one of findings, boxes, fixations or report")
    return case
