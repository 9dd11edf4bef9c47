"""Read any chest radiograph file into a display-ready array plus its geometry, and map points exactly
between original pixels and model input.

Supported: DICOM CR/DX/DR (MONOCHROME1 inverted, modality and VOI LUT or window, uncompressed, JPEG,
JPEG 2000, RLE through the pylibjpeg plugins; pixel spacing), PNG/JPG (8/16-bit, RGB to grey), NIfTI, and
anything ITK reads (MHA, NRRD). Every reader returns :class:`LoadedImage` with a float32 ``(H, W)`` array in
[0, 1] where bright = dense (bone white), whatever the file's photometric convention.

Coordinates are continuous pixels: pixel ``i`` spans ``[i, i+1)``, so resizing by ``s`` maps ``x -> x * s``
exactly, which is what ``torch.nn.functional.interpolate(..., align_corners=False)`` does to the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Refuse images whose decoded pixel count would exhaust memory (20000 x 20000 float32 = 1.6 GB).
MAX_PIXELS = 12000 * 12000


class ImageError(ValueError):
    """The file is not a readable 2D radiograph; the message names the file and the problem."""


@dataclass
class LoadedImage:
    """A radiograph ready for display and models.

    Attributes:
        array: ``(H, W)`` float32 in [0, 1], bone bright.
        spacing_mm: (row, column) pixel spacing in mm, or None when unknown.
        meta: file-level facts (format, modality, photometric, view, DICOM UIDs ...).
    """

    array: np.ndarray
    spacing_mm: tuple[float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    @property
    def width(self) -> int:
        return int(self.array.shape[1])


@dataclass(frozen=True)
class Letterbox:
    """Uniform scale plus centred padding from an original ``(width, height)`` image to a ``size`` square.

    ``model = original * scale + pad``; the inverse is exact, so a round trip is limited only by float error.
    """

    width: int
    height: int
    size: int
    scale: float
    pad_x: float
    pad_y: float

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> "Letterbox":
        scale = size / max(width, height)
        return cls(width, height, size, scale, (size - width * scale) / 2.0, (size - height * scale) / 2.0)

    def to_model(self, xy: np.ndarray) -> np.ndarray:
        """``(N, 2)`` original (x, y) -> model-input pixels."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return xy * self.scale + np.array([self.pad_x, self.pad_y])

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """``(N, 2)`` model-input (x, y) -> original pixels."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return (xy - np.array([self.pad_x, self.pad_y])) / self.scale

    def boxes_to_model(self, boxes: np.ndarray) -> np.ndarray:
        """``(N, 4)`` x1, y1, x2, y2 original -> model."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return np.concatenate([self.to_model(b[:, :2]), self.to_model(b[:, 2:])], axis=1)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.concatenate([self.to_original(b[:, :2]), self.to_original(b[:, 2:])], axis=1)
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.height)
        return out

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Resize ``(H, W)`` or ``(C, H, W)`` to ``(…, size, size)`` with zero padding (area-correct for shrinking)."""
        import torch
        import torch.nn.functional as F

        t = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)
        squeeze = t.ndim == 2
        t = t[None, None] if squeeze else t[None]
        new_w = max(1, round(self.width * self.scale))
        new_h = max(1, round(self.height * self.scale))
        mode = "area" if self.scale < 1 else "bilinear"
        kwargs = {} if mode == "area" else {"align_corners": False}
        t = F.interpolate(t, size=(new_h, new_w), mode=mode, **kwargs)
        out = torch.zeros((t.shape[0], t.shape[1], self.size, self.size), dtype=t.dtype)
        ox, oy = int(round(self.pad_x)), int(round(self.pad_y))
        out[..., oy : oy + new_h, ox : ox + new_w] = t
        out = out[0, 0] if squeeze else out[0]
        return out.numpy()

    def unapply(self, model_map: np.ndarray) -> np.ndarray:
        """Map a model-space ``(size, size)`` or ``(C, size, size)`` map back to ``(…, H, W)`` original pixels."""
        import torch
        import torch.nn.functional as F

        t = torch.as_tensor(np.ascontiguousarray(model_map), dtype=torch.float32)
        squeeze = t.ndim == 2
        t = t[None, None] if squeeze else t[None]
        new_w = max(1, round(self.width * self.scale))
        new_h = max(1, round(self.height * self.scale))
        ox, oy = int(round(self.pad_x)), int(round(self.pad_y))
        t = t[..., oy : oy + new_h, ox : ox + new_w]
        t = F.interpolate(t, size=(self.height, self.width), mode="bilinear", align_corners=False)
        out = t[0, 0] if squeeze else t[0]
        return out.numpy()


# ------------------------------------------------------------------------------------------------ readers
def _normalise(arr: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    arr = arr.astype(np.float32)
    if low is None or high is None:
        # Robust window: ignore the collimation border and burned-in text extremes.
        low, high = np.percentile(arr, [0.5, 99.5]) if arr.size > 64 else (arr.min(), arr.max())
    if high <= low:
        high = low + 1.0
    return np.clip((arr - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _check_size(h: int, w: int, path: Path) -> None:
    if h * w > MAX_PIXELS:
        raise ImageError(f"{path}: image is {w}x{h} pixels, larger than the {MAX_PIXELS:,}-pixel limit")
    if h < 8 or w < 8:
        raise ImageError(f"{path}: image is {w}x{h} pixels, too small to be a radiograph")


def dicom_spacing(ds) -> tuple[float, float] | None:
    """``(row, column)`` spacing in mm of a DICOM dataset: PixelSpacing, else ImagerPixelSpacing; None when
    neither holds two positive values (some CRs carry PixelSpacing 0\\0: treated as unknown)."""
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(key)
        if value and len(value) == 2 and float(value[0]) > 0 and float(value[1]) > 0:
            return float(value[0]), float(value[1])
    return None


def read_dicom(path: str | Path, *, pixels: bool = True):
    """The pydicom dataset of a DICOM file (``pixels=False``: header only).

    Raises:
        ImageError: naming the file: missing, not DICOM, or a header that cannot be parsed.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not Path(path).is_file():
        raise ImageError(f"{path}: no such file")
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except InvalidDicomError as e:
        raise ImageError(f"{path}: not a DICOM file ({e})") from None
    except Exception as e:  # truncated or corrupt headers raise many types
        raise ImageError(f"{path}: cannot parse DICOM ({type(e).__name__}: {e})") from None


def _read_dicom(path: Path) -> LoadedImage:
    from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

    ds = read_dicom(path)
    if "PixelData" not in ds:
        raise ImageError(f"{path}: DICOM has no pixel data (SOP class {ds.get('SOPClassUID', '?')})")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    _check_size(rows, cols, path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageError(f"{path}: multi-frame DICOM ({frames} frames); a single 2D radiograph is expected")
    try:
        raw = ds.pixel_array
    except Exception as e:
        ts = ds.file_meta.get("TransferSyntaxUID", "?") if hasattr(ds, "file_meta") else "?"
        raise ImageError(f"{path}: cannot decode pixel data (transfer syntax {ts}: {type(e).__name__}: {e})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if raw.ndim == 3 and raw.shape[-1] == 3:
        raw = raw.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        arr = _normalise(raw)
    elif raw.ndim != 2:
        raise ImageError(f"{path}: pixel data has shape {raw.shape}; a 2D image is expected")
    else:
        values = apply_modality_lut(raw, ds)
        has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
        if has_voi:
            values = apply_voi_lut(values, ds, index=0)
            # apply_voi_lut output range: the VOI LUT's range or [min, max] of the windowed values.
            arr = _normalise(values, float(np.min(values)), float(np.max(values)))
        else:
            arr = _normalise(values)
        if photometric == "MONOCHROME1":
            arr = 1.0 - arr
    spacing = dicom_spacing(ds)
    meta = {
        "format": "dicom",
        "modality": str(ds.get("Modality", "")),
        "photometric": photometric,
        "view": str(ds.get("ViewPosition", "")) or None,
        "transfer_syntax": str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else "",
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "sop_uid": str(ds.get("SOPInstanceUID", "")),
        # write_dicom marks generated images in their descriptions; keep that label on everything derived.
        "synthetic": "SYNTHETIC" in f"{ds.get('SeriesDescription', '')} {ds.get('StudyDescription', '')}".upper(),
    }
    return LoadedImage(arr, spacing, meta, str(path))


def _read_pil(path: Path) -> LoadedImage:
    from PIL import Image, UnidentifiedImageError

    # Opening is lazy: our own size check runs before any pixel is decoded, so PIL's bomb guard can go.
    Image.MAX_IMAGE_PIXELS = None

    try:
        with Image.open(path) as im:
            _check_size(im.height, im.width, path)
            mode = im.mode
            if mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
            elif mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float32)
                arr = a / 65535.0 if mode.startswith("I;16") or a.max() > 255 else a / 255.0
            elif mode == "F":
                arr = _normalise(np.asarray(im, dtype=np.float32))
            else:  # L, 1
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a recognised image file") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: {e}") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot decode image ({e})") from None
    return LoadedImage(np.clip(arr, 0, 1).astype(np.float32), None, {"format": path.suffix.lower().lstrip("."), "mode": mode}, str(path))


def _squeeze_2d(arr: np.ndarray, path: Path) -> np.ndarray:
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim != 2:
        raise ImageError(f"{path}: image has shape {arr.shape}; a 2D radiograph is expected")
    return arr


def _read_nifti(path: Path) -> LoadedImage:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = _squeeze_2d(img.get_fdata(dtype=np.float32), path)
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"{path}: cannot read NIfTI ({type(e).__name__}: {e})") from None
    _check_size(data.shape[1], data.shape[0], path)
    zooms = img.header.get_zooms()
    # NIfTI stores (i=column-major x, j) -> transpose to (row, column) display order.
    arr = _normalise(data.T)
    spacing = (float(zooms[1]), float(zooms[0])) if len(zooms) >= 2 else None
    return LoadedImage(arr, spacing, {"format": "nifti"}, str(path))


def _read_itk(path: Path) -> LoadedImage:
    import itk

    try:
        img = itk.imread(str(path))
    except Exception as e:
        raise ImageError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    data = _squeeze_2d(itk.array_from_image(img), path)
    if data.ndim == 3:
        data = data.mean(-1)
    _check_size(*data.shape, path)
    sp = tuple(float(s) for s in img.GetSpacing())
    return LoadedImage(_normalise(data), (sp[1], sp[0]) if len(sp) >= 2 else None, {"format": path.suffix.lower().lstrip(".")}, str(path))


def read_image(path: str | Path) -> LoadedImage:
    """Read a radiograph from DICOM, PNG/JPG, NIfTI or any ITK format.

    Raises:
        ImageError: naming the file and what is wrong with it (missing, not an image, not 2D, too large).
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file")
    name = path.name.lower()
    with open(path, "rb") as fh:
        head = fh.read(132)
    if name.endswith(".dcm") or name.endswith(".dicom") or head[128:132] == b"DICM":
        return _read_dicom(path)
    if name.endswith((".nii", ".nii.gz")):
        return _read_nifti(path)
    if name.endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")):
        return _read_pil(path)
    if name.endswith((".mha", ".mhd", ".nrrd", ".nhdr")):
        return _read_itk(path)
    raise ImageError(f"{path}: unsupported file type (expected DICOM, PNG, JPG, TIFF, NIfTI, MHA or NRRD)")


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` in original pixels from the file's header when that is cheap (DICOM, PNG/JPG),
    else by reading the image. ImageError as :func:`read_image`."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".dcm", ".dicom")):
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True)
            return int(ds.Columns), int(ds.Rows)
        if name.endswith((".png", ".jpg", ".jpeg")):
            from PIL import Image

            with Image.open(path) as im:
                return int(im.width), int(im.height)
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # the full reader below names the problem
    loaded = read_image(path)
    return loaded.width, loaded.height


# ------------------------------------------------------------------------------------------------ writers
def write_png(array: np.ndarray, path: str | Path, bits: int = 8) -> Path:
    """Write a ``(H, W)`` [0, 1] array as 8- or 16-bit greyscale PNG."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.clip(np.asarray(array, dtype=np.float32), 0, 1)
    if bits == 16:
        Image.fromarray((a * 65535 + 0.5).astype(np.uint16)).save(path)
    else:
        Image.fromarray((a * 255 + 0.5).astype(np.uint8)).save(path)
    return path


def write_dicom(
    array: np.ndarray,
    path: str | Path,
    *,
    patient_id: str = "SYNTHETIC",
    study_uid: str | None = None,
    series_uid: str | None = None,
    spacing_mm: tuple[float, float] = (0.14, 0.14),
    modality: str = "CR",
    view: str = "PA",
    monochrome1: bool = False,
    description: str = "SYNTHETIC phantom radiograph",
) -> Path:
    """Write a ``(H, W)`` [0, 1] array as a 12-bit uncompressed single-frame DICOM (CR/DX)."""
    import datetime

    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sop_class = "1.2.840.10008.5.1.4.1.1.1" if modality == "CR" else "1.2.840.10008.5.1.4.1.1.1.1"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    now = datetime.datetime.now()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID, ds.PatientName = patient_id, patient_id
    ds.Modality, ds.ViewPosition, ds.BodyPartExamined = modality, view, "CHEST"
    ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.SeriesDescription = ds.StudyDescription = description
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    a = np.clip(np.asarray(array, dtype=np.float32), 0, 1)
    if monochrome1:
        a = 1.0 - a
    pixels = (a * 4095 + 0.5).astype(np.uint16)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [float(spacing_mm[0]), float(spacing_mm[1])]
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = pixels.tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    pydicom.dcmwrite(str(path), ds, write_like_original=False)
    return path


def sample_cr_path(variant: str = "RG1_UNCR.dcm") -> Path:
    """Path of the real PA chest CR shipped by the ``pydicom-data`` package.

    Variants: ``RG1_UNCR.dcm`` (uncompressed), ``RG1_J2KR.dcm`` (JPEG 2000 lossless), ``RG1_J2KI.dcm``
    (JPEG 2000 lossy), ``RG1_UNCI.dcm``. The package installs its files under a ``data_store`` folder.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("pydicom-data")
    except metadata.PackageNotFoundError:
        raise ImageError("the pydicom-data package is not installed (pip install pydicom-data)") from None
    for f in dist.files or []:
        if f.name == variant:
            return Path(dist.locate_file(f)).resolve()
    raise ImageError(f"{variant}: not found inside the installed pydicom-data package")
