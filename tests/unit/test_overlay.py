"""render_overlay pixels (window, boxes, fixations, heatmap, SYNTHETIC caption) and the overlay command."""

from __future__ import annotations

import numpy as np
import pytest

from models.imaging import LoadedImage, write_dicom, write_png
from models.render import FINDING_COLOURS, FIXATION_COLOUR, render_overlay, window
from models.schema import Box, Case, CaseError, Fixation, ImageRef, Prediction, save_case
from models.vocab import FINDING_INDEX

H, W = 200, 300


def _image() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (0.2 + 0.6 * xx / W).astype(np.float32)


def _case(synthetic: bool = True) -> Case:
    return Case(
        id="t",
        image=ImageRef("", W, H, synthetic=synthetic),
        findings={"Cardiomegaly": 1},
        boxes=[Box("Cardiomegaly", 40, 60, 140, 160, region="heart", score=0.87)],
        fixations=[Fixation(230, 50, 0.0, 0.3), Fixation(250, 150, 0.35, 0.5)],
    )


def test_box_and_fixation_colours_at_their_positions():
    out = np.asarray(render_overlay(_image(), _case()))
    assert out.shape == (H, W, 3)
    assert tuple(out[160, 90]) == FINDING_COLOURS[FINDING_INDEX["Cardiomegaly"]]  # bottom edge of the box
    assert tuple(out[110, 40]) == FINDING_COLOURS[FINDING_INDEX["Cardiomegaly"]]  # left edge
    for f in _case().fixations:
        assert tuple(out[int(f.y), int(f.x)]) == FIXATION_COLOUR


def test_fixation_heatmap_is_drawn_when_no_heatmap_is_given():
    plain = np.asarray(render_overlay(_image(), None)).astype(int)
    case = _case()
    case.boxes = []
    out = np.asarray(render_overlay(_image(), case)).astype(int)
    near = out[50, 215] - plain[50, 215]  # 15 px left of fixation 1: heatmap, not the disk or dot
    assert np.abs(near).sum() > 20
    assert np.array_equal(out[5, 5], plain[5, 5])  # far corner untouched


def test_explicit_heatmap_colours_its_peak():
    hm = np.zeros((H, W), np.float32)
    hm[20:40, 20:40] = 1.0
    out = np.asarray(render_overlay(_image(), None, hm)).astype(int)
    r, g, b = out[30, 30]
    assert r > g + 40 and r > b + 40  # the colour map's hot end is red
    assert np.array_equal(out[150, 250], np.asarray(render_overlay(_image(), None))[150, 250])


def test_window_uses_the_full_grey_range():
    g = window(_image() * 0.1 + 0.4)
    assert g.min() == 0 and g.max() == 255


def test_synthetic_caption_only_for_synthetic_cases():
    def red_text(img):
        a = np.asarray(img).astype(int)[H - 30 :, :120]
        return ((a[..., 0] > 200) & (a[..., 1] < 120) & (a[..., 2] < 120)).sum()

    assert red_text(render_overlay(_image(), _case(True))) > 10
    assert red_text(render_overlay(_image(), _case(False))) == 0


def test_size_mismatch_and_downscaling():
    case = _case()
    case.image.width = 512
    with pytest.raises(CaseError, match="512x200 image but the image is 300x200"):
        render_overlay(_image(), case)
    big = LoadedImage(np.random.default_rng(0).random((2048, 1024), dtype=np.float32))
    assert render_overlay(big, None, max_side=512).size == (256, 512)
    with pytest.raises(ValueError, match="2D"):
        render_overlay(np.zeros((4, 4, 3)), None)


# ---------------------------------------------------------------------------------------------- command
def test_overlay_command(tmp_path, capsys):
    from models.cli import main

    png = write_png(_image(), tmp_path / "img.png", bits=16)
    case_path = save_case(_case(), tmp_path / "case.json")
    out = tmp_path / "o.png"
    assert main(["overlay", str(png), "--case", str(case_path), "--out", str(out)]) == 0
    assert out.exists() and "SYNTHETIC" in capsys.readouterr().out
    assert main(["overlay", str(png), "--out", str(tmp_path / "plain.png")]) == 0
    dcm = write_dicom(_image(), tmp_path / "img.dcm")
    assert main(["overlay", str(dcm), "--out", str(tmp_path / "d.png")]) == 0


def test_overlay_command_errors(tmp_path, capsys):
    from models.cli import main

    png = write_png(_image(), tmp_path / "img.png")
    assert main(["overlay", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o.png")]) == 2
    assert "missing.png: no such file" in capsys.readouterr().err
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert main(["overlay", str(tmp_path / "junk.png"), "--out", str(tmp_path / "o.png")]) == 2
    assert "junk.png" in capsys.readouterr().err
    case = _case()
    case.image.width, case.image.height = 512, 512
    bad = save_case(case, tmp_path / "big.json")
    assert main(["overlay", str(png), "--case", str(bad), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "512x512 image but the image is 300x200" in err and "Traceback" not in err
    assert main(["overlay", str(png), "--case", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o.png")]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err


def _crowded_case() -> Case:
    """Boxes inside and on top of each other and a dense fixation cluster: where labels used to collide."""
    boxes = [Box("Cardiomegaly", 100, 80, 200, 170, score=0.9), Box("Consolidation", 102, 82, 198, 168, score=0.6),
             Box("Lung Opacity", 110, 85, 190, 160, score=0.5), Box("Edema", 5, 5, 60, 40, score=0.4),
             Box("Pleural Effusion", 200, 150, 295, 195, score=0.7)]
    rng = np.random.default_rng(0)
    fixations = [Fixation(float(x), float(y), 0.1 * i, 0.2) for i, (x, y) in
                 enumerate(zip(rng.normal(150, 8, 40).clip(1, W - 1), rng.normal(120, 8, 40).clip(1, H - 1)))]
    return Case(id="crowded", image=ImageRef("", W, H), boxes=boxes, fixations=fixations,
                prediction=Prediction(synthetic=True))


@pytest.mark.parametrize("max_side", [150, 300])
def test_labels_never_cover_each_other(max_side):
    picture = render_overlay(_image(), _crowded_case(), max_side=max_side)
    plates = picture.info["gazelabel_labels"]
    overlapping = [(a, b) for i, a in enumerate(plates) for b in plates[i + 1:]
                   if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
    assert not overlapping
    assert all(0 <= x1 and 0 <= y1 and x2 <= picture.width + 3 and y2 <= picture.height + 2 for x1, y1, x2, y2 in plates)
    # Every box got its name; the 40 clustered fixations show only a few numbers; the caption is there.
    numbers = [p for p in plates if p[2] - p[0] < 30]
    assert len(plates) - len(numbers) >= 5 + 1 and 1 <= len(numbers) < 40


def test_synthetic_models_are_said_in_the_pixels():
    """The caption names what is synthetic: the image, and the models behind a prediction."""
    case = _case(synthetic=False)
    plain = np.asarray(render_overlay(_image(), case)).astype(int)
    case.prediction = Prediction(synthetic=True)
    marked = np.asarray(render_overlay(_image(), case)).astype(int)
    corner = (slice(H - 30, H), slice(0, W // 2))
    red = (marked[corner][..., 0] > 200) & (marked[corner][..., 1] < 120)
    assert red.sum() > 20 and not ((plain[corner][..., 0] > 200) & (plain[corner][..., 1] < 120)).any()
    assert case.synthetic_notes() == ["models trained on SYNTHETIC data"]
    case.image.synthetic = True
    assert case.synthetic_notes() == ["SYNTHETIC image", "models trained on SYNTHETIC data"]
