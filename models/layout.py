"""Where to put text labels so that none covers another: finding names beside boxes, fixation numbers.

Pure Python on rectangles ``(x1, y1, x2, y2)`` in one pixel space (image pixels in the Slicer scene,
picture pixels in ``gazelabel overlay``). ``models/layout.py`` is this same file: Slicer's Python cannot
import ``models``, and ``tests/slicer/test_scene_io.py`` checks that the two copies stay identical.
"""

from __future__ import annotations

Rect = tuple[float, float, float, float]


def overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def edges(box: Rect, width: float) -> list[Rect]:
    """The four sides of ``box`` as strips ``width`` wide: what a label should not sit on."""
    x1, y1, x2, y2 = box
    w = width / 2
    return [(x1 - w, y1 - w, x2 + w, y1 + w), (x1 - w, y2 - w, x2 + w, y2 + w),
            (x1 - w, y1 - w, x1 + w, y2 + w), (x2 - w, y1 - w, x2 + w, y2 + w)]


def place_labels(anchors, sizes, bounds: Rect, taken=(), avoid=(), max_steps: int = 12) -> list[Rect | None]:
    """Rectangles for labels of ``sizes`` ``[(w, h)]`` as close as possible to ``anchors`` ``[(x, y)]`` (the
    preferred top-left corners), inside ``bounds``, overlapping neither each other nor ``taken``, and where
    possible not ``avoid`` either (box edges). A label is tried at its anchor, then moved up and down by whole
    label heights (nearest first), then shifted left by its width; None when every place is taken (the
    caller draws it elsewhere or not at all)."""
    placed: list[Rect] = list(taken)
    out: list[Rect | None] = []
    for (ax, ay), (w, h) in zip(anchors, sizes):
        offsets = [(0.0, 0.0)] + [(0.0, s * h) for k in range(1, max_steps + 1) for s in (-k, k)]
        offsets += [(-w, dy) for _, dy in offsets]
        found = None
        for blocked in (list(avoid), []):  # first clear of box edges too, then of labels only
            for dx, dy in offsets:
                x = max(min(ax + dx, bounds[2] - w), bounds[0])  # a label wider than the bounds starts at the left
                y = max(min(ay + dy, bounds[3] - h), bounds[1])
                rect = (x, y, x + w, y + h)
                if not any(overlaps(rect, other) for other in placed + blocked):
                    found = rect
                    break
            if found is not None:
                break
        out.append(found)
        if found is not None:
            placed.append(found)
    return out


def thin_labels(points, size: tuple[float, float], taken=()) -> list[bool]:
    """Which of ``points`` ``[(x, y)]`` keep their label (drawn right of and above the point, ``size``
    ``(w, h)``): in order, a label is kept unless it would cover a kept one, so dense clusters show their
    first numbers only."""
    w, h = size
    kept: list[Rect] = list(taken)
    flags = []
    for x, y in points:
        rect = (x, y - h, x + w, y)
        keep = not any(overlaps(rect, other) for other in kept)
        if keep:
            kept.append(rect)
        flags.append(keep)
    return flags
