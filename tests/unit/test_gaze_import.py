"""`gazelabel gaze import`: SYNTHETIC recordings of a known scanpath in the three formats (Gazepoint CSV in
EGD-CXR's column order, XDF from a minimal writer, Tobii Pro Lab TSV) at 60, 150 and 1200 Hz come back as
the known fixations in original image pixels; invalid samples, blinks and samples off the image are dropped
and counted; malformed recordings are one error line naming the file (exit status 2).

Everything here is SYNTHETIC: a simulated reader, no real recording.
"""

from __future__ import annotations

import argparse
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest

from models.commands import gaze as gaze_command
from models.errors import USER_ERRORS
from models.imaging import write_png
from models.recordings import RecordingError, read_gazepoint, read_tobii, read_xdf
from models.schema import load_case
from models.screen import ViewGeometry, px_per_degree

SCREEN = (1920, 1080)
SCREEN_MM = (527.0, 296.0)
DISTANCE_MM = 650.0
EGD_COLUMNS = ("SESSION_ID, MEDIA_ID, DICOM_ID, CNT, Time (in secs), TIMETICK(f=10000000), FPOGX, FPOGY, FPOGS, "
               "FPOGD, FPOGID, FPOGV, BPOGX, BPOGY, BPOGV, LPCX, LPCY, LPD, LPS, LPV, RPCX, RPCY, RPD, RPS, RPV, "
               "BKID, BKDUR, BKPMIN, LPMM, LPMMV, RPMM, RPMMV, SACCADE_MAG, SACCADE_DIR, VID_FRAME, X_ORIGINAL, "
               "Y_ORIGINAL").split(", ")


# ------------------------------------------------------------------------------------------------ SYNTHETIC data
@dataclass
class Truth:
    """A SYNTHETIC scanpath: fixations in image pixels with their true onsets and durations (s)."""

    xy: np.ndarray  # (K, 2) image px
    onset: np.ndarray  # (K,) s
    duration: np.ndarray  # (K,) s


@dataclass
class Synthetic:
    """SYNTHETIC samples of a simulated reader: time (s) and screen position (px) per sample."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    truth: Truth
    view: ViewGeometry


# Fixations as fractions of the image (x, y) and durations in ms: 7 fixations, 150-600 ms.
FIXATIONS = [((0.30, 0.35), 420), ((0.62, 0.33), 180), ((0.70, 0.55), 600), ((0.45, 0.62), 250),
             ((0.25, 0.70), 150), ((0.50, 0.45), 330), ((0.78, 0.78), 510)]


def synthetic_scanpath(view: ViewGeometry, rate: float, *, noise_px: float = 0.2, seed: int = 0,
                       phase: float = 0.37) -> Synthetic:
    """A SYNTHETIC reader's scanpath sampled at ``rate`` Hz on the screen.

    Fixations hold still (plus Gaussian noise, sigma noise/3, clipped at ``noise_px`` screen px); saccades
    between them follow a minimum-jerk profile whose duration follows the main sequence (21 ms + 2.2 ms per
    degree), so peak velocities are hundreds of deg/s. ``phase`` offsets the sample clock from the
    fixation onsets by that fraction of a sample period (a real tracker's clock is not aligned to them).
    """
    rng = np.random.default_rng(seed)
    w, h = view.image_size
    xy_img = np.array([(fx * w, fy * h) for (fx, fy), _ in FIXATIONS])
    sx, sy = view.image_to_screen(xy_img[:, 0], xy_img[:, 1])
    screen_xy = np.stack([sx, sy], axis=1)
    ppd = px_per_degree(SCREEN[0], SCREEN_MM[0], DISTANCE_MM)
    onsets, durations, segments = [], [], []
    t = 0.0
    for i, (_, ms) in enumerate(FIXATIONS):
        if i:
            amp_deg = float(np.hypot(*(screen_xy[i] - screen_xy[i - 1]))) / ppd
            sac = (21.0 + 2.2 * amp_deg) / 1000.0
            segments.append(("saccade", t, t + sac, screen_xy[i - 1], screen_xy[i]))
            t += sac
        onsets.append(t)
        durations.append(ms / 1000.0)
        segments.append(("fixation", t, t + ms / 1000.0, screen_xy[i], screen_xy[i]))
        t += ms / 1000.0
    end = t
    ts = (np.arange(int(math.floor(end * rate - phase)) + 1) + phase) / rate
    ts = ts[ts < end]
    pos = np.zeros((len(ts), 2))
    for kind, a, b, p0, p1 in segments:
        sel = (ts >= a) & (ts < b)
        if kind == "fixation":
            pos[sel] = p0
        else:
            tau = (ts[sel] - a) / (b - a)
            s = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
            pos[sel] = p0 + (p1 - p0) * s[:, None]
    noise = np.clip(rng.normal(0.0, noise_px / 3.0, pos.shape), -noise_px, noise_px)
    pos = pos + noise
    truth = Truth(xy_img, np.array(onsets), np.array(durations))
    return Synthetic(ts, pos[:, 0], pos[:, 1], truth, view)


def write_gazepoint(path: Path, syn: Synthetic, *, decimals: int = 7, time_decimals: int = 5,
                    dicom_id: str = "SYNTHETIC-0001", media_id: int = 1, calibration: bool = False,
                    bpogv: np.ndarray | None = None, bkid: np.ndarray | None = None, pixels: bool = False) -> Path:
    """A SYNTHETIC Gazepoint CSV in EGD-CXR's raw ``eye_gaze.csv`` column order (BPOG as screen fractions)."""
    n = len(syn.t)
    bpogv = np.ones(n, int) if bpogv is None else bpogv
    bkid = np.zeros(n, int) if bkid is None else bkid
    fx = syn.x if pixels else syn.x / SCREEN[0]
    fy = syn.y if pixels else syn.y / SCREEN[1]
    lines = [",".join(EGD_COLUMNS)]
    rows = []
    if calibration:  # EGD-CXR: a calibration screen, saved as the image's id minus its last 5 characters, comes first
        for k in range(5):
            rows.append((0, dicom_id[:-5], k / 60.0, 0.5, 0.5, 1, 0))
    for k in range(n):
        rows.append((media_id, dicom_id, syn.t[k], fx[k], fy[k], bpogv[k], bkid[k]))
    for cnt, (mid, did, t, x, y, v, bk) in enumerate(rows):
        vals = {
            "SESSION_ID": "1", "MEDIA_ID": str(mid), "DICOM_ID": did, "CNT": str(cnt),
            "Time (in secs)": f"{t:.{time_decimals}f}", "TIMETICK(f=10000000)": str(10_121_150_000 + int(round(t * 1e7))),
            "FPOGX": f"{x:.{decimals}f}", "FPOGY": f"{y:.{decimals}f}", "FPOGS": f"{t:.3f}", "FPOGD": "0.1",
            "FPOGID": "1", "FPOGV": str(v), "BPOGX": f"{x:.{decimals}f}", "BPOGY": f"{y:.{decimals}f}", "BPOGV": str(v),
            "BKID": str(bk), "BKDUR": "0", "BKPMIN": "0", "X_ORIGINAL": "-1", "Y_ORIGINAL": "-1",
        }
        lines.append(",".join(vals.get(c, "0.5" if c.endswith(("X", "Y", "D", "S")) else "1") for c in EGD_COLUMNS))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_tobii(path: Path, syn: Synthetic, *, mouse_rows: int = 3, invalid: np.ndarray | None = None) -> Path:
    """A SYNTHETIC Tobii Pro Lab data export (TSV, μs stamps, DACS px), with a few Mouse rows between."""
    header = ["Recording timestamp [μs]", "Sensor", "Participant name", "Gaze point X [DACS px]",
              "Gaze point Y [DACS px]", "Validity left", "Validity right", "Eye movement type"]
    lines = ["\t".join(header)]
    for k in range(len(syn.t)):
        bad = invalid is not None and invalid[k]
        v = "Invalid" if bad else "Valid"
        gx, gy = ("", "") if bad else (f"{syn.x[k]:.3f}", f"{syn.y[k]:.3f}")
        lines.append("\t".join([str(int(round(syn.t[k] * 1e6))), "Eye Tracker", "SYNTHETIC", gx, gy, v, v,
                                "Unclassified"]))
        if k and k % max(1, len(syn.t) // (mouse_rows + 1)) == 0 and mouse_rows:
            lines.append("\t".join([str(int(round(syn.t[k] * 1e6)) + 1), "Mouse", "SYNTHETIC", "", "", "", "", ""]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -------------------------------------------------------------------- a minimal XDF writer (the XDF 1.0 spec)
def _varlen(n: int) -> bytes:
    if n < 256:
        return b"\x01" + struct.pack("<B", n)
    if n < 2**32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def _chunk(tag: int, content: bytes) -> bytes:
    """[varlen length][uint16 tag][content]; the length counts the tag and the content."""
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _stream_xml(name: str, stype: str, labels: list[str], units: list[str], srate: float, fmt: str) -> bytes:
    channels = "".join(f"<channel><label>{escape(lb)}</label><unit>{escape(u)}</unit></channel>"
                       for lb, u in zip(labels, units)) if labels else ""
    desc = f"<desc><channels>{channels}</channels></desc>" if labels else "<desc/>"
    return (f'<?xml version="1.0"?><info><name>{escape(name)}</name><type>{escape(stype)}</type>'
            f"<channel_count>{max(len(labels), 1) if labels else 2}</channel_count><nominal_srate>{srate:g}</nominal_srate>"
            f"<channel_format>{fmt}</channel_format><source_id>SYNTHETIC</source_id>{desc}</info>").encode()


@dataclass
class XdfStream:
    """One SYNTHETIC stream to write: numeric ``values`` ``(N, C)`` (or strings) at ``stamps`` (s)."""

    name: str
    stype: str
    stamps: np.ndarray
    values: np.ndarray | list[list[str]]
    labels: list[str]
    units: list[str]
    srate: float = 0.0
    fmt: str = "double64"


def write_xdf(path: Path, streams: list[XdfStream]) -> Path:
    """A minimal XDF file: magic, FileHeader (tag 1), per stream StreamHeader (2), Samples (3), StreamFooter (6)."""
    out = bytearray(b"XDF:")
    out += _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for sid, s in enumerate(streams, start=1):
        head = struct.pack("<I", sid)
        out += _chunk(2, head + _stream_xml(s.name, s.stype, s.labels, s.units, s.srate, s.fmt))
        body = bytearray(head + _varlen(len(s.stamps)))
        for k, ts in enumerate(s.stamps):
            body += b"\x08" + struct.pack("<d", float(ts))
            if s.fmt == "string":
                for v in s.values[k]:
                    raw = str(v).encode()
                    body += _varlen(len(raw)) + raw
            else:
                body += np.asarray(s.values[k], dtype="<f8").tobytes()
        out += _chunk(3, bytes(body))
        footer = (f'<?xml version="1.0"?><info><first_timestamp>{s.stamps[0]:.6f}</first_timestamp>'
                  f"<last_timestamp>{s.stamps[-1]:.6f}</last_timestamp><sample_count>{len(s.stamps)}</sample_count>"
                  f"</info>").encode()
        out += _chunk(6, head + footer)
    path.write_bytes(bytes(out))
    return path


def gaze_stream(syn: Synthetic, rate: float, *, labels=("x", "y"), units=("pixels", "pixels"), start: float = 5123.25,
                fraction: bool = False, name: str = "SYNTHETIC tracker") -> XdfStream:
    x, y = (syn.x / SCREEN[0], syn.y / SCREEN[1]) if fraction else (syn.x, syn.y)
    return XdfStream(name, "Gaze", syn.t + start, np.stack([x, y], axis=1), list(labels), list(units), rate)


def markers(start: float = 5123.25) -> XdfStream:
    return XdfStream("SYNTHETIC markers", "Markers", np.array([start, start + 1.0]), [["image on"], ["image off"]],
                     ["marker"], [""], 0.0, "string")


# ------------------------------------------------------------------------------------------------ CLI helpers
def parser() -> argparse.ArgumentParser:
    """The command's parser as `gazelabel gaze` builds it (models.cli registers this module's add_arguments)."""
    p = argparse.ArgumentParser(prog="gazelabel gaze")
    gaze_command.add_arguments(p)
    return p


def run_import(argv: list[str]) -> int:
    return gaze_command.run(parser().parse_args(argv))


def image_file(tmp: Path, w: int, h: int) -> Path:
    """A SYNTHETIC greyscale image of ``w`` x ``h`` pixels."""
    yy, xx = np.mgrid[0:h, 0:w]
    return write_png((0.2 + 0.5 * xx / w + 0.2 * yy / h).astype(np.float32), tmp / f"synthetic_{w}x{h}.png")


def match(case, truth: Truth) -> tuple[float, float, float]:
    """Max position error (image px), max onset error and max duration error (ms) of detected vs true."""
    assert len(case.fixations) == len(truth.xy), [(f.x, f.y, f.t, f.duration) for f in case.fixations]
    det = np.array([(f.x, f.y, f.t, f.duration) for f in case.fixations])
    pos = float(np.hypot(det[:, 0] - truth.xy[:, 0], det[:, 1] - truth.xy[:, 1]).max())
    onset = float(np.abs(det[:, 2] - truth.onset).max() * 1000)
    duration = float(np.abs(det[:, 3] - truth.duration).max() * 1000)
    return pos, onset, duration


def quiet_run(argv: list[str], capsys) -> tuple[int, str]:
    rc = run_import(argv)
    return rc, capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ fixtures
DISPLAYS = {
    # name: (image size, --image-rect or None for the default letterbox)
    "1:1": ((800, 600), (560.0, 240.0, 1360.0, 840.0)),  # image pixels = screen pixels
    "downscaled": ((2544, 3056), None),  # a CXR letterboxed into 1920x1080: 2.83 image px per screen px
    "upscaled": ((400, 300), None),  # a small image blown up: 0.28 image px per screen px
}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    return {name: image_file(root, *size) for name, (size, _) in DISPLAYS.items()}


def view_of(display: str) -> ViewGeometry:
    size, rect = DISPLAYS[display]
    return ViewGeometry(size, rect) if rect else ViewGeometry.letterbox(size, SCREEN)


def write_recording(fmt: str, tmp: Path, syn: Synthetic, rate: float) -> Path:
    if fmt == "gazepoint":
        return write_gazepoint(tmp / "eye_gaze.csv", syn)
    if fmt == "xdf":
        return write_xdf(tmp / "session.xdf", [markers(), gaze_stream(syn, rate)])
    return write_tobii(tmp / "export.tsv", syn)


def import_argv(recording: Path, fmt: str, image: Path, out: Path, display: str | None = None, *extra: str) -> list[str]:
    argv = ["import", str(recording), "--format", fmt, "--image", str(image), "--screen", f"{SCREEN[0]}x{SCREEN[1]}",
            "--out", str(out)]
    if display is not None and DISPLAYS[display][1] is not None:
        argv += ["--image-rect", ",".join(f"{v:g}" for v in DISPLAYS[display][1])]
    return argv + list(extra)


# Tolerances. Onsets and durations: 30 ms. At 60 Hz a sample period is 16.7 ms and the detector's velocity
# (a 3-sample Savitzky-Golay derivative, the shortest there is) reaches one sample into the fixation at each
# end, so a fixation can lose a sample at either end: up to ~2 periods (33 ms) of duration. It measured 30.0 ms
# at most over phases and seeds (tests/unit: synthetic_scanpath), but the bound is 30 ms + one period.
TIME_TOL_MS = {60: 30.0 + 1000.0 / 60.0, 150: 30.0, 1200: 30.0}


# ------------------------------------------------------------------------------------------------ known scanpath
@pytest.mark.parametrize("rate", [60, 150, 1200])
@pytest.mark.parametrize("fmt", ["gazepoint", "xdf", "tobii-csv"])
@pytest.mark.parametrize("display", list(DISPLAYS))
def test_a_known_scanpath_comes_back_in_image_pixels(tmp_path, images, capsys, display, fmt, rate):
    """SYNTHETIC: 7 fixations of 150-600 ms; positions within 1 px x (image px per screen px, at least 1 at
    1:1), onsets and durations within TIME_TOL_MS."""
    view = view_of(display)
    syn = synthetic_scanpath(view, rate)
    recording = write_recording(fmt, tmp_path, syn, rate)
    out = tmp_path / "case.json"
    rc, printed = quiet_run(import_argv(recording, fmt, images[display], out, display), capsys)
    assert rc == 0
    case = load_case(out)
    assert (case.image.width, case.image.height) == view.image_size
    assert case.id == images[display].stem
    truth = syn.truth
    if fmt == "xdf":  # LSL clock: times count from the stream's first sample
        truth = Truth(truth.xy, truth.onset - syn.t[0], truth.duration)
    pos, onset, duration = match(case, truth)
    scale = view.image_px_per_screen_px
    assert pos <= 1.0 * (1.0 if display == "1:1" else scale), (pos, scale)
    assert onset <= TIME_TOL_MS[rate] and duration <= TIME_TOL_MS[rate], (onset, duration)
    # provenance says how the numbers were made
    info = case.extra["gaze_import"]
    assert info["format"] == fmt and info["method"] == "ivt"
    assert info["geometry"]["screen_rect"] == pytest.approx(list(view.screen_rect), abs=1e-3)
    assert info["image_rect_default"] == (DISPLAYS[display][1] is None)
    assert info["sampling_rate_hz"] == pytest.approx(rate, rel=1e-3)
    assert info["samples"] == {"read": len(syn.t), "valid": len(syn.t), "on_image": len(syn.t)}
    assert info["dropped"] == {}
    assert info["px_per_degree"]["image"] == pytest.approx(px_per_degree(1920, 527, 650) * scale, rel=1e-5)
    assert f"Found {len(truth.xy)} fixations" in printed and str(out) in printed


def test_idt_finds_the_same_fixations(tmp_path, images, capsys):
    """I-DT keeps a saccade's first/last samples that stay within the 1 deg dispersion, which pulls a
    fixation's mean by a fraction of a degree (I-VT drops them), so positions are checked to 0.1 deg here."""
    view = view_of("downscaled")
    syn = synthetic_scanpath(view, 150)
    out = tmp_path / "case.json"
    rc, _ = quiet_run(import_argv(write_recording("tobii-csv", tmp_path, syn, 150), "tobii-csv", images["downscaled"],
                                  out, None, "--method", "idt", "--dispersion-threshold", "1.0"), capsys)
    assert rc == 0
    pos, onset, duration = match(load_case(out), syn.truth)
    image_ppd = load_case(out).extra["gaze_import"]["px_per_degree"]["image"]
    assert pos <= 0.1 * image_ppd and onset <= 30 and duration <= 30, (pos / image_ppd, onset, duration)
    assert load_case(out).extra["gaze_import"]["method"] == "idt"


def test_zoomed_view_with_a_visible_rect(tmp_path, images, capsys):
    """SYNTHETIC: the image zoomed to its central part (image px 100..700 x 100..500) in a 1200x800 rectangle."""
    view = ViewGeometry((800, 600), (360, 140, 1560, 940), visible=(100, 100, 700, 500))
    syn = synthetic_scanpath(view, 150)
    out = tmp_path / "case.json"
    rc, _ = quiet_run(import_argv(write_recording("gazepoint", tmp_path, syn, 150), "gazepoint", images["1:1"], out,
                                  None, "--image-rect", "360,140,1560,940", "--visible-rect", "100,100,700,500"), capsys)
    assert rc == 0
    pos, onset, duration = match(load_case(out), syn.truth)
    assert view.image_px_per_screen_px == pytest.approx(0.5)
    assert pos <= 0.5 and onset <= 30 and duration <= 30


def test_egd_cxr_shaped_file_with_rounded_values_and_a_calibration_image(tmp_path, images, capsys):
    """SYNTHETIC, shaped like EGD-CXR: 4-decimal fractions, times in whole ms (a 150 Hz tracker's intervals are
    then 6 or 7 ms), a calibration image first; the image is chosen by DICOM_ID."""
    view = view_of("downscaled")
    syn = synthetic_scanpath(view, 150)
    path = write_gazepoint(tmp_path / "eye_gaze.csv", syn, decimals=4, time_decimals=3, calibration=True)
    out = tmp_path / "case.json"
    with pytest.raises(RecordingError, match=r"holds 2 images \(MEDIA_ID, DICOM_ID: 0 SYNTHETIC, 1 "
                                             r"SYNTHETIC-0001\); choose one with --media-id"):
        run_import(import_argv(path, "gazepoint", images["downscaled"], out))
    rc, _ = quiet_run(import_argv(path, "gazepoint", images["downscaled"], out, None, "--media-id", "SYNTHETIC-0001",
                                  "--id", "egd-like"), capsys)
    assert rc == 0
    case = load_case(out)
    assert case.id == "egd-like"
    info = case.extra["gaze_import"]
    assert info["sampling_rate_hz"] == pytest.approx(150, rel=2e-3)  # not 1 / median(7 ms) = 143 Hz
    assert info["reader"]["image"] == "MEDIA_ID=1 / DICOM_ID=SYNTHETIC-0001"
    pos, onset, duration = match(case, syn.truth)
    assert pos <= view.image_px_per_screen_px and onset <= 30 and duration <= 30
    # MEDIA_ID works too, and an id the file lacks lists those it has
    rc, _ = quiet_run(import_argv(path, "gazepoint", images["downscaled"], out, None, "--media-id", "1"), capsys)
    assert rc == 0 and len(load_case(out).fixations) == len(syn.truth.xy)
    with pytest.raises(RecordingError, match="--media-id 'nope' matches no image; the file holds"):
        run_import(import_argv(path, "gazepoint", images["downscaled"], out, None, "--media-id", "nope"))


def test_gazepoint_subset_export_with_timetick_only(tmp_path):
    """A plain Gazepoint export: only TIMETICK(f=10000000) and BPOG columns (SYNTHETIC)."""
    syn = synthetic_scanpath(view_of("1:1"), 60)
    lines = ["TIMETICK(f=10000000),BPOGX,BPOGY,BPOGV"]
    for t, x, y in zip(syn.t, syn.x, syn.y):
        lines.append(f"{987_654_321_000 + int(round(t * 1e7))},{x / 1920:.7f},{y / 1080:.7f},1")
    path = tmp_path / "plain.csv"
    path.write_text("\n".join(lines) + "\n")
    rec = read_gazepoint(path, screen_size=SCREEN)
    assert rec.t[0] == 0.0 and rec.t[-1] == pytest.approx(syn.t[-1] - syn.t[0], abs=1e-6)
    assert rec.sampling_rate == pytest.approx(60, rel=1e-4)
    assert np.allclose(rec.x, syn.x, atol=1e-3) and rec.meta["time_column"] == "TIMETICK(f=10000000)"


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "recordings"
EGD_DICOM = "e1a2b3c4-d5e6f7a8-b9c0d1e2-f3a4b5c6-d7e8f9a0"


def test_real_shaped_egd_cxr_rows():
    """tests/fixtures/recordings/egd_eye_gaze_head.csv: SYNTHETIC values in EGD-CXR's raw eye_gaze.csv shape
    (the calibration screen first, under the image's id minus 5 characters; 60 Hz; a blink and a lost sample)."""
    path = FIXTURES / "egd_eye_gaze_head.csv"
    with pytest.raises(RecordingError, match=f"holds 2 images .*0 {EGD_DICOM[:-5]}, 1 {EGD_DICOM}"):
        read_gazepoint(path, screen_size=SCREEN)
    rec = read_gazepoint(path, screen_size=SCREEN, media_id=EGD_DICOM)
    assert len(rec) == 26 and rec.dropped == {"blink": 3, "invalid (BPOGV != 1)": 1}
    assert rec.t[0] == pytest.approx(0.00817) and rec.sampling_rate == pytest.approx(60, rel=1e-3)
    assert (rec.x[0], rec.y[0]) == pytest.approx((0.40120 * 1920, 0.45210 * 1080))
    # Ids match exactly: the calibration screen's id is a prefix of the image's, and neither stands for the other.
    calibration = read_gazepoint(path, screen_size=SCREEN, media_id=EGD_DICOM[:-5])
    assert len(calibration) == 3 and np.allclose(calibration.x, 0.5 * 1920, atol=3)  # the dot at the centre
    with pytest.raises(RecordingError, match="matches no image"):
        read_gazepoint(path, screen_size=SCREEN, media_id=EGD_DICOM + "-extra")


def test_real_shaped_tobii_pro_lab_rows():
    """tests/fixtures/recordings/tobii_prolab_head.tsv: SYNTHETIC values in a Pro Lab export's shape (event rows,
    a Mouse row, decimal commas, one-eye and no-eye samples, 120 Hz)."""
    path = FIXTURES / "tobii_prolab_head.tsv"
    rec = read_tobii(path, screen_size=SCREEN)
    assert len(rec) == 16 and rec.meta["skipped_rows"] == 3
    assert rec.dropped == {"both eyes invalid": 2}
    assert rec.valid[10] and (rec.x[10], rec.y[10]) == (1101.0, 603.0)  # right eye only: still a sample
    assert rec.t[0] == pytest.approx(0.004167) and rec.sampling_rate == pytest.approx(1e6 / 8333, rel=1e-4)
    with pytest.raises(RecordingError, match="recorded on a 1920x1080 screen .* give --screen 1920x1080"):
        read_tobii(path, screen_size=(2560, 1440))


# ------------------------------------------------------------------------------------------------ dropped samples
def test_invalid_samples_blinks_and_samples_off_the_image_are_dropped_and_counted(tmp_path, images, capsys):
    view = view_of("1:1")
    syn = synthetic_scanpath(view, 150)
    n = len(syn.t)
    bpogv, bkid = np.ones(n, int), np.zeros(n, int)
    bpogv[10:14] = 0  # 4 invalid (track loss)
    bkid[100:130] = 7  # a 200 ms blink: 30 samples, flagged invalid too (counted once, as blink)
    bpogv[100:130] = 0
    syn.x[200:205] = 100.0  # 5 samples left of the image rectangle (x0 = 560)
    out = tmp_path / "case.json"
    rc, printed = quiet_run(import_argv(write_gazepoint(tmp_path / "r.csv", syn, bpogv=bpogv, bkid=bkid), "gazepoint",
                                        images["1:1"], out, "1:1"), capsys)
    assert rc == 0
    info = load_case(out).extra["gaze_import"]
    assert info["dropped"] == {"blink": 30, "invalid (BPOGV != 1)": 4, "outside the image": 5}
    assert info["samples"] == {"read": n, "valid": n - 34, "on_image": n - 39}
    assert "dropped 39: blink 30, invalid (BPOGV != 1) 4, outside the image 5" in printed


def test_tobii_invalid_rows_and_other_sensors(tmp_path):
    syn = synthetic_scanpath(view_of("1:1"), 1200)
    invalid = np.zeros(len(syn.t), bool)
    invalid[50:80] = True
    rec = read_tobii(write_tobii(tmp_path / "e.tsv", syn, mouse_rows=3, invalid=invalid), screen_size=SCREEN)
    assert len(rec) == len(syn.t) and rec.dropped == {"both eyes invalid": 30}
    assert rec.meta["skipped_rows"] == 3 and rec.meta["units"] == "px"
    assert rec.sampling_rate == pytest.approx(1200, rel=1e-3)
    assert np.allclose(rec.t, np.round(syn.t * 1e6) / 1e6)


def test_tobii_decimal_comma_and_millisecond_header(tmp_path):
    path = tmp_path / "e.tsv"
    path.write_text("Recording timestamp [ms]\tGaze point X\tGaze point Y\tValidity left\tValidity right\n"
                    "0\t960,5\t540,25\tValid\tInvalid\n16,667\t961\t541\tInvalid\tValid\n33,333\t\t\tInvalid\tInvalid\n")
    rec = read_tobii(path, screen_size=SCREEN)
    assert rec.x[:2].tolist() == [960.5, 961.0] and rec.t[1] == pytest.approx(0.016667)
    assert rec.valid.tolist() == [True, True, False] and rec.dropped == {"both eyes invalid": 1}


def test_xdf_gazepoint_labels_are_fractions_with_a_validity_channel(tmp_path):
    """SYNTHETIC Gazepoint-over-LSL stream: FPOG before BPOG in the channels; BPOG (best point) is read."""
    syn = synthetic_scanpath(view_of("1:1"), 150)
    n = len(syn.t)
    v = np.ones(n)
    v[20:25] = 0
    values = np.stack([np.full(n, 0.1), np.full(n, 0.9), syn.x / 1920, syn.y / 1080, v, np.zeros(n)], axis=1)
    stream = XdfStream("GazepointLSL", "Gaze", syn.t + 100.0, values, ["FPOGX", "FPOGY", "BPOGX", "BPOGY", "BPOGV", "LPD"],
                       [""] * 6, 150.0)
    rec = read_xdf(write_xdf(tmp_path / "g.xdf", [stream]), screen_size=SCREEN)
    assert rec.meta["units"] == "fraction" and rec.meta["channels"] == "channels labelled bpogx/bpogy"
    assert rec.dropped == {"invalid (bpogv = 0)": 5}
    assert np.allclose(rec.x, syn.x, atol=1e-6) and np.allclose(rec.y, syn.y, atol=1e-6) and rec.t[0] == 0.0


def test_xdf_stream_choice_and_units(tmp_path):
    syn = synthetic_scanpath(view_of("1:1"), 60)
    a = gaze_stream(syn, 60, name="left tracker")
    b = gaze_stream(syn, 60, name="right tracker")
    path = write_xdf(tmp_path / "two.xdf", [markers(), a, b])
    with pytest.raises(RecordingError, match=r"2 streams of type 'Gaze' \(streams: 'SYNTHETIC markers' \(type "
                                             r"'Markers'\), 'left tracker' \(type 'Gaze'\), 'right tracker' \(type "
                                             r"'Gaze'\)\); choose one with --stream NAME"):
        read_xdf(path, screen_size=SCREEN)
    assert read_xdf(path, screen_size=SCREEN, stream="right tracker").meta["stream"] == "right tracker"
    with pytest.raises(RecordingError, match="no stream named 'nope'"):
        read_xdf(path, screen_size=SCREEN, stream="nope")
    with pytest.raises(RecordingError, match="holds strings"):
        read_xdf(path, screen_size=SCREEN, stream="SYNTHETIC markers")
    # unlabelled channels without units: ambiguous unless --units says
    bare = gaze_stream(syn, 60, labels=("ch1", "ch2"), units=("", ""))
    path = write_xdf(tmp_path / "bare.xdf", [bare])
    with pytest.raises(RecordingError, match="cannot tell whether the first two channels .* pass --units px or "
                                             "--units fraction"):
        read_xdf(path, screen_size=SCREEN)
    assert np.allclose(read_xdf(path, screen_size=SCREEN, units="px").x, syn.x)
    with pytest.raises(RecordingError, match="look like pixels"):
        read_xdf(path, screen_size=SCREEN, units="fraction")
    # a stream that says pixels, contradicted by --units
    with pytest.raises(RecordingError, match="are in px, not fraction"):
        read_xdf(write_xdf(tmp_path / "px.xdf", [gaze_stream(syn, 60)]), screen_size=SCREEN, units="fraction")
    # Pupil Labs norm_pos: fractions with y up
    pupil = gaze_stream(syn, 60, labels=("norm_pos_x", "norm_pos_y"), units=("", ""), fraction=True)
    pupil.values[:, 1] = 1.0 - pupil.values[:, 1]
    rec = read_xdf(write_xdf(tmp_path / "pupil.xdf", [pupil]), screen_size=SCREEN)
    assert rec.meta["y_flipped"] and np.allclose(rec.y, syn.y, atol=1e-6)


# ------------------------------------------------------------------------------------------------ overlay
def test_overlay_draws_the_imported_case(tmp_path, images, capsys):
    from models.commands import overlay
    from models.render import FIXATION_COLOUR

    view = view_of("1:1")
    syn = synthetic_scanpath(view, 150)
    case_path = tmp_path / "case.json"
    rc, _ = quiet_run(import_argv(write_recording("gazepoint", tmp_path, syn, 150), "gazepoint", images["1:1"],
                                  case_path, "1:1"), capsys)
    assert rc == 0
    p = argparse.ArgumentParser()
    overlay.add_arguments(p)
    png = tmp_path / "overlay.png"
    assert overlay.run(p.parse_args([str(images["1:1"]), "--case", str(case_path), "--out", str(png),
                                     "--max-side", "800"])) == 0
    from PIL import Image

    out = np.asarray(Image.open(png).convert("RGB"))
    assert out.shape == (600, 800, 3)
    for f in load_case(case_path).fixations:
        assert tuple(out[int(f.y), int(f.x)]) == FIXATION_COLOUR


# ------------------------------------------------------------------------------------------------ malformed input
def _gp_header() -> str:
    return ",".join(EGD_COLUMNS)


MALFORMED = {
    # name: (file name, content, format, expected message part)
    "missing column": ("no_bpogx.csv", "TIME,BPOGY,BPOGV\n0.0,0.5,1\n0.1,0.5,1\n", "gazepoint",
                       "missing column BPOGX (a Gazepoint export needs BPOGX, BPOGY, BPOGV and TIME"),
    "no time column": ("no_time.csv", "BPOGX,BPOGY,BPOGV\n0.5,0.5,1\n", "gazepoint", "missing column TIME"),
    "pixels as fractions": ("px.csv", "TIME,BPOGX,BPOGY,BPOGV\n0.0,960,540,1\n0.0167,961,540,1\n0.033,960,541,1\n",
                            "gazepoint", "BPOGX/BPOGY should be fractions of the screen (0-1) but have a median of"),
    "empty file": ("empty.csv", "", "gazepoint", "the file is empty (0 bytes)"),
    "header only": ("header.csv", _gp_header() + "\n", "gazepoint", "has a header but no data rows"),
    "non-numeric": ("text.csv", "TIME,BPOGX,BPOGY,BPOGV\n0.0,0.5,0.5,1\n0.0167,abc,0.5,1\n", "gazepoint",
                    "line 3, column BPOGX: expected a number, got 'abc'"),
    "tobii missing gaze": ("t.tsv", "Recording timestamp\tValidity left\n0\tValid\n", "tobii-csv",
                           "missing column Gaze point X"),
    "tobii fractions as px": ("f.tsv", "Recording timestamp [μs]\tGaze point X\tGaze point Y\n0\t0.5\t0.5\n"
                              "16667\t0.51\t0.5\n", "tobii-csv", "look like fractions of the screen"),
    "tobii ms under a bare header": ("ms.tsv", "Recording timestamp\tGaze point X\tGaze point Y\n0\t960\t540\n"
                                     "17\t961\t540\n33\t960\t541\n", "tobii-csv", "the stamps look like milliseconds"),
    "not xdf": ("fake.xdf", "TIME,BPOGX\n", "xdf", "not an XDF file (it does not start with 'XDF:')"),
    "no such file": ("missing.csv", None, "gazepoint", "no such recording file"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_recordings_raise_a_user_error_naming_the_file(tmp_path, images, name):
    """run() raises an error of a class models.cli prints as one line with exit status 2."""
    file_name, content, fmt, message = MALFORMED[name]
    path = tmp_path / file_name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(USER_ERRORS) as e:
        run_import(import_argv(path, fmt, images["1:1"], tmp_path / "case.json", "1:1"))
    text = str(e.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text, text
    assert not (tmp_path / "case.json").exists()


@pytest.mark.parametrize("name", ["missing column", "pixels as fractions", "empty file", "non-numeric", "not xdf"])
def test_the_cli_prints_one_line_and_exits_2(tmp_path, images, capsys, monkeypatch, name):
    """Through models.cli.main: "gaze" is registered here for the test (models/cli.py lists it once wired)."""
    import models.cli as cli

    monkeypatch.setitem(cli.COMMANDS, "gaze", ("models.commands.gaze", gaze_command.HELP))
    file_name, content, fmt, message = MALFORMED[name]
    path = tmp_path / file_name
    path.write_text(content, encoding="utf-8")
    rc = cli.main(["gaze"] + import_argv(path, fmt, images["1:1"], tmp_path / "case.json", "1:1"))
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gazelabel gaze: error: {path}") and message in lines[0], err


@pytest.mark.parametrize("extra, message", [
    (["--image-rect", "10,0,5,100"], "--image-rect: x1 must be > x0, got 10,0,5,100"),
    (["--image-rect", "3000,0,4000,100"], "lies wholly outside the 1920x1080 screen"),
    (["--screen-mm", "296x527"], "--screen-mm 296x527: 0.154 mm per pixel across but 0.488 down"),
    (["--distance-mm", "0"], "--distance-mm: must be a number > 0"),
    (["--visible-rect", "0,0,0,10"], "--visible-rect: xmax must be > xmin"),
    (["--stream", "x"], "--stream applies to xdf recordings, not gazepoint; leave it out"),
])
def test_bad_options_name_the_flag(tmp_path, images, extra, message):
    syn = synthetic_scanpath(view_of("1:1"), 60)
    path = write_gazepoint(tmp_path / "r.csv", syn)
    with pytest.raises(ValueError) as e:
        run_import(import_argv(path, "gazepoint", images["1:1"], tmp_path / "c.json", None, *extra))
    assert message in str(e.value), str(e.value)


def test_no_sample_on_the_image_is_an_error(tmp_path, images):
    syn = synthetic_scanpath(view_of("1:1"), 60)
    path = write_gazepoint(tmp_path / "r.csv", syn)
    with pytest.raises(ValueError, match="none of its .* samples .* lands on the image at --image-rect 0,0,100,100"):
        run_import(import_argv(path, "gazepoint", images["1:1"], tmp_path / "c.json", None, "--image-rect",
                               "0,0,100,100"))


def test_a_cut_xdf_file_and_a_missing_pyxdf_are_one_line_errors(tmp_path, monkeypatch):
    syn = synthetic_scanpath(view_of("1:1"), 150)
    whole = write_xdf(tmp_path / "whole.xdf", [markers(), gaze_stream(syn, 150)]).read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(whole[: len(whole) // 2])  # a recording that stopped mid-chunk
    with pytest.raises(RecordingError) as e:
        read_xdf(cut, screen_size=SCREEN)
    assert str(e.value).startswith(f"{cut}: stream 'SYNTHETIC tracker' has no samples (the file looks damaged")
    assert "\n" not in str(e.value)
    monkeypatch.setitem(__import__("sys").modules, "pyxdf", None)  # as if not installed
    with pytest.raises(RecordingError, match="reading XDF needs pyxdf, which is not installed: pip install pyxdf"):
        read_xdf(tmp_path / "whole.xdf", screen_size=SCREEN)
