"""Heatmap -> DICOM Parametric Map on the source radiograph's pixel grid, or a Secondary Capture overlay.

A Parametric Map (``highdicom.pm``) keeps the heatmap's float values ``(H, W)`` in [0, 1], one value per
pixel of the source image, with a Real World Value Mapping saying what they are. The Parametric Map IOD needs
a Frame of Reference and plane geometry, which a projection radiograph (CR/DX) does not have: the map gets a
frame of reference derived from the source SOP Instance UID (the same for every map of one image), identity
orientation at the origin and the image's pixel spacing (1 mm when the image records none or zero), so a
viewer lays it over the radiograph pixel for pixel; the Source Image Sequence names the radiograph.

For viewers that cannot show parametric maps, :func:`heatmap_to_secondary_capture` writes the radiograph with
the heatmap blended in colour as an RGB Secondary Capture in the same study.
"""

from __future__ import annotations

import copy

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from models.dicom_sr.writer import quiet, with_type2
from models.imaging import dicom_spacing
from models.schema import CaseError

MANUFACTURER = "GazeLabel"


def _check(heatmap: np.ndarray, image: Dataset) -> np.ndarray:
    heatmap = np.asarray(heatmap, dtype=np.float32)
    rows, columns = int(image.Rows), int(image.Columns)
    if heatmap.shape != (rows, columns):
        raise CaseError(f"heatmap: shape {heatmap.shape} but the image is {rows}x{columns} (rows x columns); a map "
                        "is written on the source image's own pixel grid")
    if not np.isfinite(heatmap).all():
        raise CaseError("heatmap: holds NaN or infinite values")
    return np.clip(heatmap, 0.0, 1.0)


def map_frame_of_reference(image: Dataset) -> str:
    """The frame of reference every map of this radiograph shares."""
    return generate_uid(entropy_srcs=["gazelabel-map-frame", str(image.SOPInstanceUID)])


@quiet
def heatmap_to_parametric_map(heatmap: np.ndarray, image: Dataset, *, label: str = "attention",
                              explanation: str = "GazeLabel attention heatmap (0 = none, 1 = most)",
                              series_instance_uid: str | None = None, instance_number: int = 1) -> Dataset:
    """``(H, W)`` float heatmap in [0, 1] on ``image`` (the source radiograph, pixels not needed)."""
    values = _check(heatmap, image)
    source = copy.copy(with_type2(image))  # geometry for highdicom's checks only; the file is not changed
    spacing = list(dicom_spacing(image) or (1.0, 1.0))  # 1 mm where the image records none
    source.FrameOfReferenceUID = map_frame_of_reference(image)
    source.ImagePositionPatient, source.ImageOrientationPatient = [0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    source.PixelSpacing, source.SliceThickness = spacing, 1.0
    mapping = hd.pm.RealWorldValueMapping(lut_label=label[:16], lut_explanation=explanation[:64],
                                          unit=Code("1", "UCUM", "no units"), value_range=(0.0, 1.0),
                                          intercept=0.0, slope=1.0)
    pm = hd.pm.ParametricMap(
        source_images=[source], pixel_array=values, series_instance_uid=series_instance_uid or hd.UID(),
        series_number=9002, sop_instance_uid=hd.UID(), instance_number=instance_number, manufacturer=MANUFACTURER,
        manufacturer_model_name="GazeLabel", software_versions="1", device_serial_number="1",
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        window_center=0.5, window_width=1.0, content_label=label.upper().replace(" ", "_")[:16] or "HEATMAP",
        content_description=explanation[:64],
        pixel_measures=hd.PixelMeasuresSequence(pixel_spacing=spacing, slice_thickness=1.0),
        plane_orientation=hd.PlaneOrientationSequence("PATIENT", [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        plane_positions=[hd.PlanePositionSequence("PATIENT", [0.0, 0.0, 0.0])])
    # General Series Laterality is Type 2C; a chest film is of an unpaired part, but validators ask for it.
    pm.Laterality = ""
    return pm


def _film(image: Dataset) -> np.ndarray:
    """The radiograph as [0, 1] floats, MONOCHROME1 inverted (needs the pixel data)."""
    if "PixelData" not in image:
        raise CaseError("image: a Secondary Capture overlay needs the radiograph's pixels; read it with pixels")
    pixels = image.pixel_array.astype(np.float32)
    low, high = float(pixels.min()), float(pixels.max())
    film = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    return 1.0 - film if str(getattr(image, "PhotometricInterpretation", "")) == "MONOCHROME1" else film


@quiet
def heatmap_to_secondary_capture(heatmap: np.ndarray, image: Dataset, *, opacity: float = 0.45,
                                 series_instance_uid: str | None = None, instance_number: int = 1) -> Dataset:
    """The radiograph with the heatmap blended in (red = high), as an 8-bit RGB Secondary Capture."""
    if not 0.0 <= opacity <= 1.0:
        raise CaseError(f"opacity: must be in [0, 1], got {opacity}")
    values = _check(heatmap, image)
    film = _film(image)[..., None]
    colour = np.stack([values, np.clip(2 * values - 1, 0, 1) * 0.6, np.zeros_like(values)], axis=-1)
    alpha = opacity * values[..., None]
    rgb = np.clip((1 - alpha) * film + alpha * colour, 0, 1)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=with_type2(image), pixel_array=(rgb * 255 + 0.5).astype(np.uint8),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB, bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT, series_instance_uid=series_instance_uid or hd.UID(),
        sop_instance_uid=hd.UID(), series_number=9003, instance_number=instance_number, manufacturer=MANUFACTURER,
        patient_orientation=tuple(getattr(image, "PatientOrientation", None) or ("L", "F")),
        series_description="GazeLabel heatmap overlay")
    if len(sc.PixelData) % 2:  # DICOM values have even length; highdicom 0.22 leaves an odd RGB frame odd
        sc.PixelData = sc.PixelData + b"\0"
    sc.Laterality = ""
    return sc
