import gzip

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from models.imaging import ImageError, Letterbox, read_image, sample_cr_path, write_dicom, write_png


def test_real_cr_decodes_with_geometry(real_cr_path):
    img = read_image(real_cr_path)
    assert img.array.dtype == np.float32 and img.array.ndim == 2
    assert img.width > 1000 and img.height > 1000
    assert 0.0 <= img.array.min() and img.array.max() <= 1.0 and img.array.std() > 0.1
    assert img.meta["photometric"] == "MONOCHROME1" and img.meta["modality"] == "CR"
    assert img.meta["synthetic"] is False
    assert img.spacing_mm is None  # this file's PixelSpacing is 0\\0, which means unknown, not zero


def test_monochrome1_is_inverted_lungs_darker_than_spine(real_cr_path):
    a = read_image(real_cr_path).array
    h, w = a.shape
    rows = slice(int(0.35 * h), int(0.55 * h))
    spine = a[rows, int(0.47 * w) : int(0.53 * w)].mean()
    right_lung = a[rows, int(0.22 * w) : int(0.32 * w)].mean()
    left_lung = a[rows, int(0.68 * w) : int(0.78 * w)].mean()
    assert spine > right_lung + 0.1 and spine > left_lung + 0.1


def test_jpeg2000_lossless_twin_is_identical(real_cr_path):
    j2k = sample_cr_path("RG1_J2KR.dcm")
    a, b = read_image(real_cr_path), read_image(j2k)
    assert b.meta["transfer_syntax"] == "1.2.840.10008.1.2.4.90"  # JPEG 2000 lossless
    np.testing.assert_array_equal(a.array, b.array)


@pytest.mark.parametrize("bits", [8, 16])
def test_png_bit_depths(tmp_path, bits):
    arr = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    img = read_image(write_png(arr, tmp_path / f"x{bits}.png", bits=bits))
    assert img.array.shape == (48, 64)
    np.testing.assert_allclose(img.array, arr, atol=1 / (2 ** bits - 1))


def test_rgb_png_becomes_grey(tmp_path):
    rgb = np.zeros((32, 40, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img = read_image(tmp_path / "rgb.png")
    assert img.array.shape == (32, 40)
    np.testing.assert_allclose(img.array, round(0.587 * 200) / 255, atol=2 / 255)


def test_nifti_and_dicom_writer_orientation(tmp_path):
    arr = np.zeros((40, 60), np.float32)
    arr[5:10, 45:55] = 1.0  # a bright block near the top right
    nib.save(nib.Nifti1Image(arr.T[:, :, None], np.diag([0.5, 0.7, 1, 1])), tmp_path / "x.nii.gz")
    nii = read_image(tmp_path / "x.nii.gz")
    assert nii.array.shape == (40, 60) and nii.array[7, 50] > 0.9 and nii.array[30, 10] < 0.1
    assert nii.spacing_mm == pytest.approx((0.7, 0.5))
    for mono1 in (False, True):
        d = read_image(write_dicom(arr, tmp_path / f"x{mono1}.dcm", monochrome1=mono1, spacing_mm=(0.2, 0.3)))
        assert d.array[7, 50] > 0.9 and d.array[30, 10] < 0.1, "bone-bright regardless of photometric"
        assert d.spacing_mm == (0.2, 0.3)
        assert d.meta["synthetic"] is True  # write_dicom's default description says SYNTHETIC


@pytest.mark.parametrize("size", [224, 512])
def test_letterbox_round_trip_within_half_pixel(size):
    rng = np.random.default_rng(0)
    for w, h in [(2544, 3056), (3056, 2544), (512, 512), (100, 37)]:
        lb = Letterbox.fit(w, h, size)
        pts = rng.uniform([0, 0], [w, h], size=(200, 2))
        back = lb.to_original(lb.to_model(pts))
        assert np.abs(back - pts).max() < 0.5
        boxes = np.array([[10, 20, w - 5, h - 7]], float)
        assert np.abs(lb.boxes_to_original(lb.boxes_to_model(boxes)) - boxes).max() < 0.5


def test_letterbox_resampled_pixels_line_up_with_mapped_points():
    # A bright dot at a known original point must land where to_model() says.
    w, h, size = 300, 200, 150
    arr = np.zeros((h, w), np.float32)
    arr[120:124, 200:204] = 1.0  # centre (202, 122) in continuous coordinates
    lb = Letterbox.fit(w, h, size)
    out = lb.apply(arr)
    assert out.shape == (size, size)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    cx, cy = (out * xx).sum() / out.sum(), (out * yy).sum() / out.sum()
    ex, ey = lb.to_model([[202, 122]])[0]
    assert abs(cx - ex) < 0.5 and abs(cy - ey) < 0.5
    back = lb.unapply(out)
    assert back.shape == (h, w) and back[122, 202] > 0.5


def test_clear_errors(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageError, match="unsupported file type"):
        read_image(tmp_path / "notes.txt")
    (tmp_path / "fake.png").write_bytes(b"this is not a png")
    with pytest.raises(ImageError, match="fake.png: not a recognised image"):
        read_image(tmp_path / "fake.png")
    good = write_dicom(np.random.rand(64, 64).astype(np.float32), tmp_path / "good.dcm")
    (tmp_path / "trunc.dcm").write_bytes(good.read_bytes()[:1500])
    with pytest.raises(ImageError, match="trunc.dcm"):
        read_image(tmp_path / "trunc.dcm")
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 5), np.float32), np.eye(4)), tmp_path / "vol.nii")
    with pytest.raises(ImageError, match="a 2D radiograph is expected"):
        read_image(tmp_path / "vol.nii")


def test_huge_image_refused_before_decoding(tmp_path):
    # A 20000 x 20000 PNG header must be refused without allocating 1.6 GB.
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "huge.png").write_bytes(png)
    with pytest.raises(ImageError, match="20000x20000"):
        read_image(tmp_path / "huge.png")


def _pydicom_test_file(name):
    from pydicom.data import get_testdata_file

    return get_testdata_file(name)


def test_rle_and_jpeg_transfer_syntaxes_decode(tmp_path):
    # RLE Lossless against its uncompressed twin (both ship with pydicom).
    rle, raw = read_image(_pydicom_test_file("MR_small_RLE.dcm")), read_image(_pydicom_test_file("MR_small.dcm"))
    assert rle.meta["transfer_syntax"] == "1.2.840.10008.1.2.5"
    np.testing.assert_array_equal(rle.array, raw.array)
    # Our own DICOM, RLE-encoded by pydicom's native encoder, decodes to the same pixels.
    import pydicom
    from pydicom.uid import RLELossless

    src = write_dicom(np.random.default_rng(1).random((64, 48)).astype(np.float32), tmp_path / "u.dcm")
    ds = pydicom.dcmread(src)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "r.dcm")
    np.testing.assert_array_equal(read_image(tmp_path / "r.dcm").array, read_image(src).array)
    # JPEG extended (12-bit) and baseline (RGB -> grey) through pylibjpeg-libjpeg; JPEG-LS lossless vs raw.
    for name, syntax in [("JPGExtended.dcm", "1.2.840.10008.1.2.4.51"), ("SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.1.2.4.50")]:
        jpeg = read_image(_pydicom_test_file(name))
        assert jpeg.meta["transfer_syntax"] == syntax
        assert jpeg.array.ndim == 2 and jpeg.array.std() > 0.05
    jls = read_image(_pydicom_test_file("MR_small_jpeg_ls_lossless.dcm"))
    np.testing.assert_array_equal(jls.array, raw.array)
