"""Decode downloaded files into ``(H, W)`` arrays: radiographs (PNG/JPEG and NIfTI through VTK, DICOM
through pydicom) and the server's heatmap label image (NIfTI).

Radiographs follow the server's ``models.imaging.read_image`` convention: float32 in [0, 1], bone bright
(MONOCHROME1 inverted), row 0 at the top, so the server's pixel coordinates index the array directly.
NIfTI files store voxel ``[x, y, 0]`` = column x, row y (the server's heatmap layout). VTK is in every
Slicer, pydicom comes with its DICOM module.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import vtk
from vtk.util import numpy_support


class ImageDecodeError(ValueError):
    """The bytes are not a readable 2D radiograph; the message names the image and the problem."""


@dataclass
class DecodedImage:
    array: np.ndarray  # (H, W) float32 in [0, 1], bone bright
    spacing_mm: tuple[float, float] | None  # (row, column), from DICOM PixelSpacing when present
    format: str


def decode_image(data: bytes, name: str = "image", *, window: bool = True) -> DecodedImage:
    """Decode PNG, JPEG, NIfTI or DICOM bytes; ``name`` (the file name) is used in errors and to pick the
    format. ``window=False`` keeps a NIfTI's raw values (a heatmap), else they are windowed to [0, 1]."""
    if not data:
        raise ImageDecodeError(f"{name}: the server sent an empty file")
    lower = name.lower()
    if data[128:132] == b"DICM" or lower.endswith((".dcm", ".dicom")):
        return _decode_dicom(data, name)
    if lower.endswith((".nii", ".nii.gz")) or data[:2] == b"\x1f\x8b" or data[344:348] in (b"n+1\x00", b"ni1\x00"):
        return _decode_nifti(data, name, window)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _decode_vtk(vtk.vtkPNGReader(), data, name, "png")
    if data[:3] == b"\xff\xd8\xff":
        return _decode_vtk(vtk.vtkJPEGReader(), data, name, "jpeg")
    raise ImageDecodeError(f"{name}: unsupported image format (expected PNG, JPEG, NIfTI or DICOM)")


def _read_through_file(reader, data: bytes, suffix: str):
    """Run a VTK reader on ``data`` via a temporary file (memory-buffer APIs differ across VTK versions)."""
    handle, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        if not reader.CanReadFile(path):
            return None
        reader.SetFileName(path)
        reader.Update()
        return reader.GetOutput()
    finally:
        os.unlink(path)


def _decode_vtk(reader, data: bytes, name: str, fmt: str) -> DecodedImage:
    image = _read_through_file(reader, data, "." + fmt)
    if image is None:
        raise ImageDecodeError(f"{name}: cannot decode the {fmt.upper()} data")
    width, height, _ = image.GetDimensions()
    scalars = image.GetPointData().GetScalars() if image.GetPointData() else None
    if scalars is None or width * height == 0:
        raise ImageDecodeError(f"{name}: cannot decode the {fmt.upper()} data")
    components = scalars.GetNumberOfComponents()
    raw = numpy_support.vtk_to_numpy(scalars).reshape(height, width, components)
    # VTK stores the bottom row first; flip so row 0 is the top of the image, as in the file.
    raw = raw[::-1]
    top = 65535.0 if raw.dtype == np.uint16 else 255.0
    if components in (3, 4):
        grey = raw[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    else:
        grey = raw[..., 0].astype(np.float32)
    return DecodedImage(np.clip(grey / top, 0.0, 1.0).astype(np.float32), None, fmt)


def _decode_nifti(data: bytes, name: str, window: bool) -> DecodedImage:
    image = _read_through_file(vtk.vtkNIFTIImageReader(), data, ".nii.gz" if data[:2] == b"\x1f\x8b" else ".nii")
    if image is None:
        raise ImageDecodeError(f"{name}: not a NIfTI file")
    width, height, depth = image.GetDimensions()
    scalars = image.GetPointData().GetScalars() if image.GetPointData() else None
    if scalars is None or depth != 1 or scalars.GetNumberOfComponents() != 1:
        raise ImageDecodeError(f"{name}: expected a single-slice, single-channel NIfTI, got {width}x{height}x{depth}")
    values = numpy_support.vtk_to_numpy(scalars).reshape(height, width).astype(np.float32)
    spacing = image.GetSpacing()
    return DecodedImage(_window(values) if window else values, (abs(spacing[1]), abs(spacing[0])), "nifti")


def _window(values: np.ndarray) -> np.ndarray:
    low, high = np.percentile(values, [0.5, 99.5]) if values.size > 64 else (values.min(), values.max())
    if high <= low:
        high = low + 1.0
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _decode_dicom(data: bytes, name: str) -> DecodedImage:
    try:
        import pydicom
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    except ImportError:
        raise ImageDecodeError(f"{name}: DICOM needs pydicom (part of Slicer's DICOM module)") from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        raw = ds.pixel_array
    except Exception as e:  # pydicom raises many types for corrupt files and missing decoders
        raise ImageDecodeError(f"{name}: cannot decode DICOM ({type(e).__name__}: {e})") from None
    if raw.ndim == 3 and raw.shape[-1] == 3:
        arr = _window(raw.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    elif raw.ndim != 2:
        raise ImageDecodeError(f"{name}: pixel data has shape {raw.shape}; a single 2D radiograph is expected")
    else:
        values = apply_modality_lut(raw, ds).astype(np.float32)
        if "VOILUTSequence" in ds or "WindowCenter" in ds:
            values = apply_voi_lut(values, ds, index=0).astype(np.float32)
            low, high = float(values.min()), float(values.max())
            arr = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
        else:
            arr = _window(values)
        if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
            arr = 1.0 - arr
    spacing = None
    for key in ("PixelSpacing", "ImagerPixelSpacing"):  # some CRs carry PixelSpacing 0\0: treat as unknown
        value = ds.get(key)
        if value and len(value) == 2 and float(value[0]) > 0 and float(value[1]) > 0:
            spacing = (float(value[0]), float(value[1]))
            break
    return DecodedImage(arr.astype(np.float32), spacing, "dicom")
