"""Render a radiograph with its case drawn on top: heatmap, finding boxes, numbered fixations.

PIL only, so every command and the server can produce a PNG without matplotlib. Layers, bottom to top:
the windowed image, the heatmap as a translucent colour map, finding boxes with labels, the fixation path
(thin line), fixation disks sized by duration with a solid centre dot and their order number, and a
caption saying what is SYNTHETIC (the image, the models behind a prediction) when anything is.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.imaging import LoadedImage
from models.layout import edges, place_labels, thin_labels
from models.schema import Case, CaseError
from models.vocab import FINDING_INDEX

# One colour per CheXpert finding (index order of models.vocab.FINDINGS).
FINDING_COLOURS = (
    (200, 200, 200), (255, 127, 14), (214, 39, 40), (148, 103, 189), (255, 187, 120), (44, 160, 44),
    (227, 119, 194), (188, 189, 34), (140, 86, 75), (255, 255, 0), (31, 119, 180), (152, 223, 138),
    (255, 152, 150), (23, 190, 207),
)
FIXATION_COLOUR = (0, 255, 255)
PATH_COLOUR = (255, 255, 255)
# The heatmap tints at most 40% and only its upper 80%, so the film under it stays readable.
HEATMAP_ALPHA = 0.4
HEATMAP_FLOOR = 0.2


def window(array: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """``(H, W)`` float -> ``(H, W)`` uint8 with a robust percentile window (bone bright)."""
    a = np.asarray(array, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"expected a 2D (H, W) image, got shape {a.shape}")
    low, high = np.percentile(a, [low_pct, high_pct])
    if high <= low:
        high = low + 1e-6
    return (np.clip((a - low) / (high - low), 0, 1) * 255 + 0.5).astype(np.uint8)


def colourmap(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8, a blue-cyan-yellow-red "jet"-like ramp."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0, 1)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255 + 0.5).astype(np.uint8)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _text_height(font) -> int:
    left, top, right, bottom = font.getbbox("Ag")
    return int(bottom - top) + 2


def _label(draw: ImageDraw.ImageDraw, xy, text: str, colour, font) -> tuple[float, float, float, float]:
    """Draw ``text`` on a black plate at ``xy``; returns the plate's rectangle."""
    x, y = xy
    l, t, r, b = draw.textbbox((x, y), text, font=font)
    plate = (l - 2, t - 1, r + 2, b + 1)
    draw.rectangle(list(plate), fill=(0, 0, 0))
    draw.text((x, y), text, fill=colour, font=font)
    return plate


def _plate_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[float, float]:
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    return r - l + 4, b - t + 2


def render_overlay(
    image: LoadedImage | np.ndarray,
    case: Case | None = None,
    heatmap: np.ndarray | None = None,
    *,
    max_side: int = 1024,
    show_fixations: bool = True,
    show_boxes: bool = True,
    caption: str | None = None,
) -> Image.Image:
    """Draw ``case`` (and a heatmap) over ``image``; returns an RGB ``PIL.Image``.

    Args:
        image: a :class:`LoadedImage` or an ``(H, W)`` array (any range; windowed here).
        case: boxes (labelled by finding and score), fixations and the synthetic flag; its size must match.
        heatmap: ``(H, W)`` (or any size, resized) map; without one, the case's fixation heatmap is shown.
        max_side: the output's longer side is at most this many pixels (never enlarged).
        caption: extra text for the bottom-left corner.

    Returns:
        The picture; ``picture.info["gazelabel_labels"]`` lists the rectangle of every text plate drawn
        (finding labels, fixation numbers, caption), which never overlap.

    Raises:
        CaseError: the case's image size differs from the image's.
        ValueError: the image or heatmap is not 2D.
    """
    array = image.array if isinstance(image, LoadedImage) else np.asarray(image)
    if array.ndim != 2:
        raise ValueError(f"expected a 2D (H, W) image, got shape {array.shape}")
    h, w = array.shape
    if case is not None and case.image.width and case.image.height and (case.image.width, case.image.height) != (w, h):
        raise CaseError(f"case {case.id!r} is for a {case.image.width}x{case.image.height} image but the image is {w}x{h}")
    scale = min(1.0, max_side / max(h, w))
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    grey = Image.fromarray(window(array)).resize((out_w, out_h), Image.BILINEAR) if scale != 1 else Image.fromarray(window(array))
    canvas = grey.convert("RGB")

    if heatmap is None and case is not None and case.fixations and show_fixations:
        from models.gaze import fixation_heatmap

        heatmap = fixation_heatmap(case.fixations, (out_h, out_w), scale=scale)
    if heatmap is not None:
        hm = np.asarray(heatmap, dtype=np.float32)
        if hm.ndim != 2:
            raise ValueError(f"heatmap: expected a 2D (H, W) map, got shape {hm.shape}")
        if hm.shape != (out_h, out_w):
            hm = np.asarray(Image.fromarray(hm).resize((out_w, out_h), Image.BILINEAR))
        peak = float(hm.max())
        hm = hm / peak if peak > 0 else hm
        # The faint tail of the map is left untinted so the anatomy stays readable.
        alpha = (HEATMAP_ALPHA * np.clip((hm - HEATMAP_FLOOR) / (1 - HEATMAP_FLOOR), 0, 1))[..., None]
        blended = np.asarray(canvas, dtype=np.float32) * (1 - alpha) + colourmap(hm).astype(np.float32) * alpha
        canvas = Image.fromarray((blended + 0.5).astype(np.uint8))

    draw = ImageDraw.Draw(canvas, "RGBA")
    font = _font(max(10, out_w // 60))
    line_w = max(1, out_w // 400)
    plates: list[tuple[float, float, float, float]] = []  # every text plate drawn, for the no-overlap check
    caption_h = _text_height(font) + 12
    if case is not None and show_boxes:
        # Boxes at the same place (a nodule and its "Lung Opacity") get one rectangle and one label.
        groups: dict[tuple, list] = {}
        for b in case.boxes:
            groups.setdefault(tuple(round(v, 1) for v in b.xyxy), []).append(b)
        texts, anchors, sizes, colours, corners = [], [], [], [], []
        for xyxy, group in groups.items():
            colour = FINDING_COLOURS[FINDING_INDEX.get(group[0].finding, 0)]
            x1, y1, x2, y2 = (v * scale for v in xyxy)
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=max(2, line_w + 1))
            text = ", ".join(b.finding if b.score is None else f"{b.finding} {b.score:.2f}" for b in group)
            w, h = _plate_size(draw, text, font)
            texts.append(text), colours.append(colour), sizes.append((w, h)), corners.append((x1, y1))
            anchors.append((x1, y1 - h - 2))
        sides = [strip for x1, y1, x2, y2 in ((v * scale for v in xyxy) for xyxy in groups) for strip in
                 edges((x1, y1, x2, y2), 2 * line_w + 4)]
        spots = place_labels(anchors, sizes, (0, 0, out_w, out_h - caption_h), avoid=sides)
        for text, colour, spot, (cx, cy) in zip(texts, colours, spots, corners):
            if spot is None:
                continue
            if abs(spot[3] - cy) > 4 or abs(spot[0] - cx) > 4:  # moved away from its box: a leader line
                draw.line([(spot[0], spot[3]), (cx, cy)], fill=colour + (200,), width=1)
            plates.append(_label(draw, (spot[0] + 2, spot[1] + 1), text, colour, font))
    if case is not None and case.fixations and show_fixations:
        pts = [(f.x * scale, f.y * scale) for f in case.fixations]
        if len(pts) > 1:
            draw.line(pts, fill=PATH_COLOUR + (160,), width=line_w)
        for f, (x, y) in zip(case.fixations, pts):
            r = (3 + 14 * np.sqrt(max(f.duration, 0.0) / 0.3) * 0.5) * max(out_w / 512, 0.5)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=FIXATION_COLOUR + (70,), outline=FIXATION_COLOUR + (255,), width=1)
        dot = max(2, out_w // 256)
        for i, (x, y) in enumerate(pts):
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=FIXATION_COLOUR + (255,))
        small = _font(max(9, out_w // 80))
        # Numbers of fixations in a dense cluster would cover each other: the first one of a cluster keeps its
        # number (the path and the discs still show every fixation); none covers a finding label.
        number_size = _plate_size(draw, str(len(pts)), small)
        anchors = [(x + dot + 1, y - dot + 1) for x, y in pts]
        caption_band = [(0, out_h - caption_h, out_w, out_h)]
        for i, ((x, y), keep) in enumerate(zip(anchors, thin_labels(anchors, number_size, taken=plates + caption_band))):
            if keep:
                draw.text((x + 1, y - number_size[1]), str(i + 1), fill=(255, 255, 255), font=small, stroke_width=1,
                          stroke_fill=(0, 0, 0))
                plates.append((x, y - number_size[1], x + number_size[0], y))
    words = [caption] if caption else []
    if case is not None:
        words[:0] = case.synthetic_notes()
    if words:
        text, size = " | ".join(words), max(10, out_w // 60)
        caption_font = _font(size)
        while size > 6 and _plate_size(draw, text, caption_font)[0] > out_w - 8:  # a small picture: smaller text
            size -= 1
            caption_font = _font(size)
        plates.append(_label(draw, (6, out_h - _text_height(caption_font) - 6), text, (255, 80, 80), caption_font))
    canvas.info["gazelabel_labels"] = plates
    return canvas
