"""A Case dict (schema ``gazelabel.case/1``) in an MRML scene, and back.

What the annotator sees and edits, one node per thing:

==============================  =================================================================
``vtkMRMLScalarVolumeNode``     the radiograph, float32 in [0, 1], bone bright (role ``image``)
``vtkMRMLScalarVolumeNode``     the heatmap as the server sent it, same grid, heat colours (role ``heatmap``)
``vtkMRMLMarkupsFiducialNode``  fixations in reading order, labelled "1", "2", ...; each point's
                                description holds ``{"t": s, "duration": s}`` (role ``fixations``)
``vtkMRMLMarkupsCurveNode``     the scanpath, a linear curve through the fixations (role ``scanpath``)
``vtkMRMLModelNode``            one disc per fixation, radius growing with its duration (role ``durations``)
``vtkMRMLMarkupsROINode``       one editable, image-plane-flat box per finding box, named by finding;
                                attributes keep score, region and original index (role ``box``)
``vtkMRMLMarkupsFiducialNode``  the boxes' finding labels, placed by :func:`layout_labels` so that no label
                                covers another or a fixation number (role ``box_labels``; display only)
``vtkMRMLMarkupsCurveNode``     the other sampled scanpaths, faint, one curve each (role ``scanpath_samples``;
                                display only, :func:`show_scanpath_samples`)
``vtkMRMLTextNode``             the report, ``FINDINGS: ...`` / ``IMPRESSION: ...`` (role ``report``)
``vtkMRMLScriptedModuleNode``   findings, scores and the rest of the case as JSON parameters (role ``case``)
==============================  =================================================================

Geometry: image pixel ``(x = column, y = row)`` is voxel ``IJK (i, j, 0)``. The schema's coordinates are
continuous (pixel ``i`` spans ``[i, i + 1)``) while a voxel is centred on its index, so a point maps to
``IJK = (x - 0.5, y - 0.5, 0)``: a box ``(0, 0, W, H)`` frames the image exactly. IJK to RAS is
``diag(-col_spacing, -row_spacing, 1)``, which Slicer's axial view shows like any X-ray viewer (patient
right on the image's left, head at the top). All conversions go through the volume's IJK-to-RAS matrix.
"""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import slicer
import vtk

from .layout import edges, place_labels, thin_labels
from .vocab import FINDINGS

ROLE = "GazeLabel.Role"
BOX_FINDING, BOX_SCORE, BOX_REGION, BOX_INDEX, BOX_ORIGINAL = (
    "GazeLabel.Finding", "GazeLabel.Score", "GazeLabel.Region", "GazeLabel.BoxIndex", "GazeLabel.OriginalBox",
)
# Fields kept verbatim in the case node; the rest of a Case lives in the nodes above.
_VERBATIM = ("schema", "id", "image", "readers", "coverage", "source", "prediction", "extra")
# Heatmap display: transparent below this value so the radiograph stays readable.
HEATMAP_FLOOR = 0.4
# Fixation disc radius: BASE fraction of the image's longer side for a 0.3 s fixation, grows as sqrt(duration).
DISC_BASE_FRACTION, DISC_REFERENCE_S = 0.012, 0.3
# ROI thickness across the image plane (in voxels along K): flat, but still pickable in the slice view.
BOX_THICKNESS_VOXELS = 1.0
# Markups text is sized in view pixels: at text scale s a label is about 2.7 s px per character wide and
# 4.6 s px high (measured on slicer-core 5.13 offscreen); these estimates are a little larger, for spacing.
CHAR_WIDTH_PER_SCALE, TEXT_HEIGHT_PER_SCALE = 2.8, 5.5
BOX_TEXT_SCALE, FIXATION_TEXT_SCALE = 3.0, 3.0
# View pixels per image pixel assumed until a view reports its own (an image fit into a ~700 px view).
NOMINAL_VIEW_PX = 700.0

# Colours apart from each other and from the heatmap's red-yellow and the grey radiograph.
FIXATION_COLOR = (0.0, 0.8, 1.0)   # sky blue: numbered fixations and their duration discs
SCANPATH_COLOR = (0.6, 0.8, 1.0)   # pale blue: the saccades between them
BOX_COLOR = (0.1, 1.0, 0.2)        # green: finding boxes
BOX_LABEL_COLOR = (0.8, 1.0, 0.8)  # pale green: their names (apart from the outlines they label)
HIGHLIGHT_COLOR = (1.0, 0.2, 1.0)  # magenta: the box and fixations behind the report sentence clicked
SAMPLE_COLOR = (0.75, 0.6, 1.0)    # lilac: the other sampled scanpaths, apart from the shown one
# Opacity of the boxes not highlighted while some are: none, since boxes may coincide (a barely trained model
# frames the whole film with every box) and a stack of faded outlines drawn later would cover the highlighted one.
HIGHLIGHT_FADE = 0.0


class SceneError(ValueError):
    """The scene or case cannot be converted; the message names the node or field."""


# ---------------------------------------------------------------------------------------------- geometry
def ijk_to_ras_matrix(volume) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    return m


def pixels_to_ras(volume, xy: np.ndarray) -> np.ndarray:
    """``(N, 2)`` continuous pixels (x = column, y = row) -> ``(N, 3)`` RAS mm on the image plane."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    m = np.array([[ijk_to_ras_matrix(volume).GetElement(r, c) for c in range(4)] for r in range(4)])
    ijk = np.column_stack([xy - 0.5, np.zeros(len(xy)), np.ones(len(xy))])
    return (ijk @ m.T)[:, :3]


def ras_to_pixels(volume, ras: np.ndarray) -> np.ndarray:
    """``(N, 3)`` RAS mm -> ``(N, 2)`` continuous pixels (x = column, y = row); K is ignored."""
    ras = np.asarray(ras, dtype=np.float64).reshape(-1, 3)
    m = vtk.vtkMatrix4x4()
    volume.GetRASToIJKMatrix(m)
    m = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    ijk = np.column_stack([ras, np.ones(len(ras))]) @ m.T
    return ijk[:, :2] + 0.5


def image_volume(scene, array: np.ndarray, spacing_mm=None, name: str = "GazeLabel image"):
    """Add (or refill) the radiograph volume: ``array`` ``(H, W)`` in [0, 1], ``spacing_mm`` (row, column)."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise SceneError(f"{name}: expected a 2D (H, W) image, got shape {array.shape}")
    row_mm, col_mm = (1.0, 1.0) if spacing_mm is None else (float(spacing_mm[0]), float(spacing_mm[1]))
    volume = find_role(scene, "image") or scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    volume.SetName(name)
    volume.SetAttribute(ROLE, "image")
    _fill_volume(volume, array, col_mm, row_mm)
    display = _volume_display(scene, volume, "vtkMRMLColorTableNodeGrey", grey=True)
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    return volume


def heatmap_volume(scene, heatmap: np.ndarray, name: str = "GazeLabel heatmap"):
    """Add (or refill) the heatmap overlay on the image's grid: ``heatmap`` ``(H, W)``, values kept as given.

    Shown above its own baseline: the colour table spans ``[min, min + max]``, so a peaked map shows its
    peaks and a flat one (attention everywhere, e.g. an untrained model) stays transparent instead of
    tinting the whole image."""
    image = require_role(scene, "image")
    heatmap = np.asarray(heatmap, dtype=np.float32)
    dims = image.GetImageData().GetDimensions()
    if heatmap.shape != (dims[1], dims[0]):
        raise SceneError(f"{name}: heatmap shape {heatmap.shape} differs from the image's ({dims[1]}, {dims[0]})")
    if not np.isfinite(heatmap).all():
        raise SceneError(f"{name}: heatmap has NaN or infinite values")
    volume = find_role(scene, "heatmap") or scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    volume.SetAttribute(ROLE, "heatmap")
    spacing = image.GetSpacing()
    _fill_volume(volume, heatmap, spacing[0], spacing[1])
    _volume_display(scene, volume, heat_color_table(scene).GetID())
    set_heatmap_range(scene)
    return volume


def set_heatmap_range(scene, stretch: bool = False) -> tuple[float, float]:
    """The heatmap's colour range: above its own baseline, ``[min, min + max]`` (the default: a flat map stays
    transparent), or ``stretch``ed over ``[min, max]`` so that a nearly flat map (a barely trained model)
    shows where it is highest. Returns the range."""
    volume = require_role(scene, "heatmap")
    heatmap = slicer.util.arrayFromVolume(volume)
    low, peak = float(heatmap.min()), float(heatmap.max())
    if stretch and peak > low:
        top = peak
    else:
        top = low + (peak if peak > 0 else 1.0)
    display = volume.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(low, top)
    return low, top


def _fill_volume(volume, array: np.ndarray, col_mm: float, row_mm: float) -> None:
    slicer.util.updateVolumeFromArray(volume, array[None])  # KJI (1, H, W): I = column, J = row
    volume.SetSpacing(col_mm, row_mm, 1.0)
    volume.SetOrigin(0.0, 0.0, 0.0)
    directions = vtk.vtkMatrix4x4()
    directions.SetElement(0, 0, -1.0)
    directions.SetElement(1, 1, -1.0)
    volume.SetIJKToRASDirectionMatrix(directions)


def _volume_display(scene, volume, color_node_id: str, grey: bool = False):
    display = volume.GetDisplayNode()
    if display is None:
        display = scene.AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")
        volume.SetAndObserveDisplayNodeID(display.GetID())
    if grey and scene.GetNodeByID(color_node_id) is None:
        color_node_id = grey_color_table(scene).GetID()
    display.SetAndObserveColorNodeID(color_node_id)
    return display


def grey_color_table(scene):
    """A linear grey table (Slicer's built-in one when the colour logic made it, else our own)."""
    node = scene.GetNodeByID("vtkMRMLColorTableNodeGrey") or _named(scene, "vtkMRMLColorTableNode", "GazeLabel grey")
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", "GazeLabel grey")
        node.SetTypeToGrey()
    return node


def heat_color_table(scene):
    """256-entry "hot" table: transparent below ``HEATMAP_FLOOR``, then red -> yellow (never white, which would
    vanish on bone), opacity
    rising with the value so strong attention stands out and weak attention hides."""
    node = _named(scene, "vtkMRMLColorTableNode", "GazeLabel heat")
    if node is not None:
        return node
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", "GazeLabel heat")
    node.SetTypeToUser()
    node.SetNumberOfColors(256)
    node.SetHideFromEditors(False)
    for i in range(256):
        v = i / 255.0
        if v < HEATMAP_FLOOR:
            node.SetColor(i, 0.0, 0.0, 0.0, 0.0)
            continue
        u = (v - HEATMAP_FLOOR) / (1.0 - HEATMAP_FLOOR)
        red, green, blue = (min(top, max(0.0, 3 * u - k)) for k, top in ((-0.4, 1.0), (1.0, 1.0), (2.0, 0.35)))
        node.SetColor(i, red, green, blue, 0.1 + 0.6 * u)
    node.GetLookupTable().SetTableRange(0.0, 1.0)
    return node


# ---------------------------------------------------------------------------------------------- lookups
def find_role(scene, role: str):
    """The first node with ``GazeLabel.Role == role``, or None."""
    nodes = nodes_with_role(scene, role)
    return nodes[0] if nodes else None


def require_role(scene, role: str):
    node = find_role(scene, role)
    if node is None:
        raise SceneError(f"the scene has no GazeLabel {role} node (load a case first)")
    return node


def nodes_with_role(scene, role: str) -> list:
    out = []
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.GetAttribute(ROLE) == role:
            out.append(node)
    return out


def _named(scene, class_name: str, name: str):
    nodes = scene.GetNodesByClassByName(class_name, name)
    node = nodes.GetItemAsObject(0) if nodes.GetNumberOfItems() else None
    return node


def clear_case(scene) -> None:
    """Remove every GazeLabel node except the image and heatmap volumes (which the next case refills)."""
    for role in ("fixations", "scanpath", "durations", "box", "box_labels", "scanpath_samples", "report", "case"):
        for node in nodes_with_role(scene, role):
            scene.RemoveNode(node)


# ---------------------------------------------------------------------------------------------- case -> scene
def synthetic_suffix(case: dict) -> str:
    """`` (SYNTHETIC)`` for a synthetic image, `` (SYNTHETIC-trained models)`` for a prediction by models
    trained on synthetic data, both when both; empty otherwise."""
    notes = ["SYNTHETIC"] if (case.get("image") or {}).get("synthetic") else []
    if (case.get("prediction") or {}).get("synthetic"):
        notes.append("SYNTHETIC-trained models")
    return f" ({', '.join(notes)})" if notes else ""


def case_to_scene(scene, case: dict) -> None:
    """Show ``case`` (a Case dict) over the image volume already in the scene, replacing the previous case."""
    if not isinstance(case, dict) or not isinstance(case.get("id"), str):
        raise SceneError("case: expected a Case dict with an 'id'")
    volume = require_role(scene, "image")
    dims = volume.GetImageData().GetDimensions()
    image = case.get("image") or {}
    width, height = int(image.get("width") or dims[0]), int(image.get("height") or dims[1])
    if (width, height) != (dims[0], dims[1]):
        raise SceneError(f"case {case['id']}: image.width/height {width}x{height} differ from the loaded image {dims[0]}x{dims[1]}")
    clear_case(scene)
    # The volume's name is what Slicer's views and data tree show: say whose image it is, and what is synthetic.
    volume.SetName(case["id"] + synthetic_suffix(case))

    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "GazeLabel case")
    node.SetAttribute(ROLE, "case")
    node.SetParameter("case", json.dumps({k: case[k] for k in _VERBATIM if k in case}))
    node.SetParameter("findings", json.dumps(case.get("findings") or {}))
    node.SetParameter("scores", json.dumps(case.get("scores") or {}))
    node.SetParameter("report", json.dumps(case.get("report")))

    set_fixations(scene, case.get("fixations") or [])
    for index, box in enumerate(case.get("boxes") or []):
        add_box(scene, box, index=index)
    layout_labels(scene)
    report = case.get("report")
    if report is not None:
        text = scene.AddNewNodeByClass("vtkMRMLTextNode", "GazeLabel report")
        text.SetAttribute(ROLE, "report")
        text.SetText(format_report(report))


def set_fixations(scene, fixations: list[dict]) -> None:
    """(Re)build the fixation points, scanpath curve and duration discs from a list of fixation dicts."""
    volume = require_role(scene, "image")
    for role in ("fixations", "scanpath", "durations"):
        for node in nodes_with_role(scene, role):
            scene.RemoveNode(node)
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "GazeLabel fixations")
    points.SetAttribute(ROLE, "fixations")
    points.CreateDefaultDisplayNodes()
    ras = pixels_to_ras(volume, [[f["x"], f["y"]] for f in fixations]) if fixations else np.zeros((0, 3))
    for i, (f, p) in enumerate(zip(fixations, ras)):
        points.AddControlPoint(vtk.vtkVector3d(*p), str(i + 1))
        points.SetNthControlPointDescription(i, json.dumps({"t": float(f.get("t", 0.0)), "duration": float(f.get("duration", 0.0))}))
    points.SetLocked(True)  # the predicted scanpath is shown, not edited
    _style_markups(points, FIXATION_COLOR, text_scale=FIXATION_TEXT_SCALE, glyph_scale=1.5)

    path = scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode", "GazeLabel scanpath")
    path.SetAttribute(ROLE, "scanpath")
    path.CreateDefaultDisplayNodes()
    path.SetCurveTypeToLinear()
    path.SetLocked(True)
    _style_markups(path, SCANPATH_COLOR, text_scale=0.0, glyph_scale=0.8)
    path.GetDisplayNode().SetPointLabelsVisibility(False)

    discs = scene.AddNewNodeByClass("vtkMRMLModelNode", "GazeLabel fixation durations")
    discs.SetAttribute(ROLE, "durations")
    discs.CreateDefaultDisplayNodes()
    display = discs.GetDisplayNode()
    display.SetColor(*FIXATION_COLOR)
    display.SetVisibility2D(True)
    display.SetSliceIntersectionThickness(2)
    show_fixations(scene, [True] * len(fixations))


def show_fixations(scene, visible: list[bool]) -> None:
    """Show only the fixations flagged in ``visible`` (playback): their points, the scanpath through them
    and their duration discs. The fixation points keep every fixation, so the case is unchanged."""
    volume = require_role(scene, "image")
    points, path, discs = (require_role(scene, role) for role in ("fixations", "scanpath", "durations"))
    if len(visible) != points.GetNumberOfControlPoints():
        raise SceneError(f"show_fixations: {len(visible)} flags for {points.GetNumberOfControlPoints()} fixations")
    shown = []
    for i, flag in enumerate(visible):
        points.SetNthControlPointVisibility(i, bool(flag))
        if flag:
            ras = [0.0, 0.0, 0.0]
            points.GetNthControlPointPositionWorld(i, ras)
            timing = json.loads(points.GetNthControlPointDescription(i) or "{}")
            x, y = ras_to_pixels(volume, ras)[0]
            shown.append((ras, {"x": x, "y": y, "duration": float(timing.get("duration", 0.0))}))
    line = vtk.vtkPoints()
    if len(shown) > 1:  # a path needs two fixations
        for ras, _ in shown:
            line.InsertNextPoint(*ras)
    path.SetControlPointPositionsWorld(line)
    discs.SetAndObservePolyData(duration_discs(volume, [f for _, f in shown]))


def disc_radius_px(duration: float, width: int, height: int) -> float:
    """Disc radius in pixels for a fixation of ``duration`` seconds: area proportional to the duration."""
    base = DISC_BASE_FRACTION * max(width, height)
    return base * math.sqrt(max(duration, 0.02) / DISC_REFERENCE_S)


def duration_discs(volume, fixations: list[dict]) -> vtk.vtkPolyData:
    """One thin prism per fixation (a disc across the image plane) whose radius grows with duration; the
    slice view draws its intersection with the image plane, a circle."""
    dims = volume.GetImageData().GetDimensions()
    spacing = volume.GetSpacing()
    append = vtk.vtkAppendPolyData()
    centres = pixels_to_ras(volume, [[f["x"], f["y"]] for f in fixations]) if fixations else []
    for f, c in zip(fixations, centres):
        disc = vtk.vtkRegularPolygonSource()
        disc.SetNumberOfSides(40)
        disc.SetRadius(disc_radius_px(float(f.get("duration", 0.0)), dims[0], dims[1]) * spacing[0])
        disc.SetCenter(c[0], c[1], c[2] - 0.5 * spacing[2])
        extrude = vtk.vtkLinearExtrusionFilter()
        extrude.SetInputConnection(disc.GetOutputPort())
        extrude.SetExtrusionTypeToVectorExtrusion()
        extrude.SetVector(0.0, 0.0, spacing[2])
        extrude.CappingOn()
        append.AddInputConnection(extrude.GetOutputPort())
    if not fixations:
        return vtk.vtkPolyData()
    append.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(append.GetOutput())
    return out


def add_box(scene, box: dict, index: int | None = None):
    """Add one finding box (a Box dict in pixels) as an ROI named by its finding; returns the ROI node."""
    volume = require_role(scene, "image")
    finding = box.get("finding")
    if finding not in FINDINGS:
        raise SceneError(f"boxes[{index}].finding: unknown finding {finding!r}")
    x1, y1, x2, y2 = (float(box[k]) for k in ("x1", "y1", "x2", "y2"))
    if x2 <= x1 or y2 <= y1:
        raise SceneError(f"boxes[{index}]: needs x1 < x2 and y1 < y2, got ({x1}, {y1}, {x2}, {y2})")
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", finding)
    roi.SetAttribute(ROLE, "box")
    roi.SetAttribute(BOX_FINDING, finding)
    if index is not None:
        roi.SetAttribute(BOX_INDEX, str(index))
        roi.SetAttribute(BOX_ORIGINAL, json.dumps([x1, y1, x2, y2]))
    if box.get("score") is not None:
        roi.SetAttribute(BOX_SCORE, repr(float(box["score"])))
    if box.get("region") is not None:
        roi.SetAttribute(BOX_REGION, str(box["region"]))
    roi.CreateDefaultDisplayNodes()
    set_box_pixels(volume, roi, (x1, y1, x2, y2))
    _style_markups(roi, BOX_COLOR, text_scale=BOX_TEXT_SCALE, glyph_scale=1.0)
    roi.GetDisplayNode().SetFillOpacity(0.0)
    roi.GetDisplayNode().SetPropertiesLabelVisibility(False)  # drawn at the centre, where boxes overlap:
    roi.GetDisplayNode().SetPointLabelsVisibility(False)      # layout_labels draws the names instead
    return roi


def remove_box(scene, roi) -> None:
    """Delete one finding box (its ROI node) and lay the remaining labels out again. Evidence that pointed at
    it loses its box when the case is read back (:func:`scene_to_case`)."""
    if roi is None or roi.GetAttribute(ROLE) != "box":
        raise SceneError("remove_box: not a GazeLabel box")
    scene.RemoveNode(roi)
    layout_labels(scene)


def highlight(scene, boxes=(), fixations=()) -> None:
    """Draw the boxes (indices into the scene's boxes, in order) and fixations (0-based indices) in
    :data:`HIGHLIGHT_COLOR`, the other fixations in their own colour and the other boxes faded out
    (:data:`HIGHLIGHT_FADE`); ``highlight(scene)`` clears it. Display only: the case read back is unchanged."""
    boxes, fixations = {int(b) for b in boxes}, {int(f) for f in fixations}
    for index, roi in enumerate(nodes_with_role(scene, "box")):
        color = HIGHLIGHT_COLOR if index in boxes else BOX_COLOR
        display = roi.GetDisplayNode()
        display.SetColor(*color)
        display.SetSelectedColor(*color)
        display.SetActiveColor(*color)
        display.SetOpacity(1.0 if not boxes or index in boxes else HIGHLIGHT_FADE)
    points = find_role(scene, "fixations")
    if points is not None:
        display = points.GetDisplayNode()
        # Markups draw a selected control point in the selected colour: the highlighted ones are the selected.
        display.SetSelectedColor(*(HIGHLIGHT_COLOR if fixations else FIXATION_COLOR))
        for i in range(points.GetNumberOfControlPoints()):
            points.SetNthControlPointSelected(i, not fixations or i in fixations)


def show_scanpath_samples(scene, paths) -> list:
    """Draw ``paths`` (lists of fixation dicts in pixels, e.g. a prediction's other ``scanpath_samples``) as
    faint curves beside the numbered fixations; ``[]`` removes them. Returns the curve nodes."""
    volume = require_role(scene, "image")
    for node in nodes_with_role(scene, "scanpath_samples"):
        scene.RemoveNode(node)
    curves = []
    for k, path in enumerate(paths or []):
        if len(path) < 2:
            continue
        curve = scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode", f"GazeLabel scanpath sample {k + 1}")
        curve.SetAttribute(ROLE, "scanpath_samples")
        curve.CreateDefaultDisplayNodes()
        curve.SetCurveTypeToLinear()
        line = vtk.vtkPoints()
        for p in pixels_to_ras(volume, [[f["x"], f["y"]] for f in path]):
            line.InsertNextPoint(*p)
        curve.SetControlPointPositionsWorld(line)
        curve.SetLocked(True)
        _style_markups(curve, SAMPLE_COLOR, text_scale=0.0, glyph_scale=0.6)
        curve.GetDisplayNode().SetPointLabelsVisibility(False)
        curve.GetDisplayNode().SetOpacity(0.6)
        curves.append(curve)
    return curves


def box_label_text(roi) -> str:
    score = roi.GetAttribute(BOX_SCORE)
    return roi.GetName() + (f" {float(score):.2f}" if score and roi.GetName() == roi.GetAttribute(BOX_FINDING) else "")


def text_size(text: str, scale: float, image_px_per_view_px: float) -> tuple[float, float]:
    """The size of a markups label in image pixels, at a view zoom of ``1 / image_px_per_view_px``."""
    return ((CHAR_WIDTH_PER_SCALE * scale * len(text) + 4) * image_px_per_view_px,
            TEXT_HEIGHT_PER_SCALE * scale * image_px_per_view_px)


def layout_labels(scene, image_px_per_view_px: float | None = None) -> dict[str, list]:
    """Place the box labels beside their boxes so that none covers another, and keep the number of a
    fixation only where it covers neither a box label nor an earlier number (dense clusters show their first
    numbers; every fixation keeps its point, disc and place on the path). ``image_px_per_view_px`` is the
    view's scale (default: the image fit into a :data:`NOMINAL_VIEW_PX` view); call again after a zoom, a
    box edit or a resize. Returns the rectangles ``{"boxes": [...], "fixations": [...]}`` in image pixels."""
    volume = require_role(scene, "image")
    width, height = volume.GetImageData().GetDimensions()[:2]
    scale = image_px_per_view_px or max(width, height) / NOMINAL_VIEW_PX
    rois = nodes_with_role(scene, "box")
    texts = [box_label_text(roi) for roi in rois]
    sizes = [text_size(t, BOX_TEXT_SCALE, scale) for t in texts]
    corners = [box_pixels(volume, roi) for roi in rois]
    # Preferred: just above the box's top-left corner, clear of the ROI's edge handles.
    # ROI edges carry handles (about 12 view px across): labels keep off them where there is room.
    sides = [strip for c in corners for strip in edges(c, 12 * scale)]
    spots = place_labels([(x1, y1 - 1.4 * h) for (x1, y1, _, _), (_, h) in zip(corners, sizes)], sizes,
                         (0, 0, width, height), avoid=sides)
    labels = find_role(scene, "box_labels")  # reused, so views showing it update in place
    if labels is None:
        labels = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "GazeLabel box labels")
        labels.SetAttribute(ROLE, "box_labels")
        labels.CreateDefaultDisplayNodes()
    labels.SetLocked(False)
    labels.RemoveAllControlPoints()
    placed = [s for s in spots if s is not None]
    # Slicer writes a label above and right of its point: the point is the rectangle's bottom-left corner.
    for text, spot in zip(texts, spots):
        if spot is not None:
            labels.AddControlPoint(vtk.vtkVector3d(*pixels_to_ras(volume, [[spot[0], spot[3]]])[0]), text)
    labels.SetLocked(True)
    _style_markups(labels, BOX_LABEL_COLOR, text_scale=BOX_TEXT_SCALE, glyph_scale=0.01)

    points = find_role(scene, "fixations")
    shown = []
    if points is not None and points.GetNumberOfControlPoints():
        xy = []
        for i in range(points.GetNumberOfControlPoints()):
            ras = [0.0, 0.0, 0.0]
            points.GetNthControlPointPositionWorld(i, ras)
            xy.append(ras_to_pixels(volume, ras)[0])
        size = text_size(str(len(xy)), FIXATION_TEXT_SCALE, scale)
        for i, keep in enumerate(thin_labels([tuple(p) for p in xy], size, taken=placed)):
            points.SetNthControlPointLabel(i, str(i + 1) if keep else "")
            if keep:
                shown.append((xy[i][0], xy[i][1] - size[1], xy[i][0] + size[0], xy[i][1]))
    return {"boxes": placed, "fixations": shown}


def set_box_pixels(volume, roi, xyxy) -> None:
    """Place ``roi`` on the pixel box ``(x1, y1, x2, y2)``, axis-aligned in the image plane."""
    x1, y1, x2, y2 = xyxy
    corners = pixels_to_ras(volume, [[x1, y1], [x2, y2]])
    center = corners.mean(axis=0)
    size = np.abs(corners[1] - corners[0])
    size[2] = BOX_THICKNESS_VOXELS * volume.GetSpacing()[2]
    roi.SetCenterWorld(*center)
    roi.SetSizeWorld(*size)


def box_pixels(volume, roi) -> tuple[float, float, float, float]:
    """The ROI's extent in the image plane as continuous pixels ``(x1, y1, x2, y2)``."""
    center, size = [0.0] * 3, [0.0] * 3
    roi.GetCenterWorld(center)
    roi.GetSizeWorld(size)
    c, h = np.array(center), np.array(size) / 2.0
    corners = ras_to_pixels(volume, [c - h, c + h])
    x1, x2 = sorted(corners[:, 0])
    y1, y2 = sorted(corners[:, 1])
    return float(x1), float(y1), float(x2), float(y2)


def _style_markups(node, color, text_scale: float, glyph_scale: float) -> None:
    display = node.GetDisplayNode()
    display.SetSelectedColor(*color)
    display.SetColor(*color)
    display.SetActiveColor(*color)
    display.SetTextScale(text_scale)
    display.SetGlyphScale(glyph_scale)
    display.SetVisibility2D(True)


# ---------------------------------------------------------------------------------------------- report text
_HEADER = re.compile(r"^\s*(FINDINGS|IMPRESSION)\s*:\s*", re.IGNORECASE | re.MULTILINE)


def format_report(report) -> str:
    """``FINDINGS: ...`` and ``IMPRESSION: ...`` lines, the text the annotator edits."""
    if isinstance(report, str):
        report = {"findings": report}
    return f"FINDINGS: {report.get('findings') or ''}\nIMPRESSION: {report.get('impression') or ''}"


def report_sentences(report) -> list[str]:
    """The sentences a report's evidence indices count over: FINDINGS sentences, then IMPRESSION sentences
    (the rule of ``models.report.evidence.report_sentences``; ``tests/slicer/test_web_controller.py`` checks
    the two agree)."""
    if not report:
        return []
    if isinstance(report, str):
        report = {"findings": report}

    def split(text):
        return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join((text or "").split())) if s.strip()]

    return split(report.get("findings")) + split(report.get("impression"))


def parse_report(text: str) -> dict:
    """Inverse of :func:`format_report`; text without headers is all findings."""
    sections, last, name = {"findings": "", "impression": ""}, 0, "findings"
    for match in _HEADER.finditer(text):
        sections[name] = (sections[name] + " " + text[last:match.start()]).strip()
        name, last = match.group(1).lower(), match.end()
    sections[name] = (sections[name] + " " + text[last:]).strip()
    return sections


# ---------------------------------------------------------------------------------------------- edits
def case_node(scene):
    return require_role(scene, "case")


def set_finding(scene, finding: str, value: int | None) -> None:
    """The annotator's decision on a finding: 1 confirmed, 0 rejected, -1 uncertain, None = not mentioned."""
    if finding not in FINDINGS:
        raise SceneError(f"unknown finding {finding!r}; expected one of {', '.join(FINDINGS)}")
    if value not in (1, 0, -1, None):
        raise SceneError(f"{finding}: decision must be 1, 0, -1 or None, got {value!r}")
    node = case_node(scene)
    findings = json.loads(node.GetParameter("findings") or "{}")
    if value is None:
        findings.pop(finding, None)
    else:
        findings[finding] = value
    node.SetParameter("findings", json.dumps(findings))


def findings_table(scene) -> list[dict]:
    """One row per CheXpert finding: ``{"finding", "value" (1/0/-1/None), "score" (or None)}``."""
    node = case_node(scene)
    findings = json.loads(node.GetParameter("findings") or "{}")
    scores = json.loads(node.GetParameter("scores") or "{}")
    return [{"finding": f, "value": findings.get(f), "score": scores.get(f)} for f in FINDINGS]


def set_report_text(scene, text: str) -> None:
    node = require_role(scene, "report") if find_role(scene, "report") else None
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTextNode", "GazeLabel report")
        node.SetAttribute(ROLE, "report")
    node.SetText(text)


def report_text(scene) -> str:
    node = find_role(scene, "report")
    return node.GetText() if node is not None else ""


# ---------------------------------------------------------------------------------------------- scene -> case
def fixations_from_scene(scene) -> list[dict]:
    volume = require_role(scene, "image")
    points = find_role(scene, "fixations")
    if points is None:
        return []
    out = []
    for i in range(points.GetNumberOfControlPoints()):
        ras = [0.0, 0.0, 0.0]
        points.GetNthControlPointPositionWorld(i, ras)
        x, y = ras_to_pixels(volume, ras)[0]
        try:
            timing = json.loads(points.GetNthControlPointDescription(i) or "{}")
        except json.JSONDecodeError:
            raise SceneError(f"GazeLabel fixations point {i + 1}: description is not the timing JSON") from None
        out.append({"x": float(x), "y": float(y), "t": float(timing.get("t", 0.0)), "duration": float(timing.get("duration", 0.0))})
    return out


def boxes_from_scene(scene) -> tuple[list[dict], dict[int, int]]:
    """Box dicts in scene order, and a map from each surviving original box index to its new index."""
    volume = require_role(scene, "image")
    boxes, remap = [], {}
    for roi in nodes_with_role(scene, "box"):
        finding = roi.GetName()  # the annotator relabels a box by renaming its ROI
        if finding not in FINDINGS:
            raise SceneError(f"ROI {finding!r}: name it after a finding ({', '.join(FINDINGS)})")
        x1, y1, x2, y2 = box_pixels(volume, roi)
        box = {"finding": finding, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "region": None, "score": None}
        original = roi.GetAttribute(BOX_ORIGINAL)
        moved = original is None or max(abs(a - b) for a, b in zip(json.loads(original), (x1, y1, x2, y2))) > 0.5
        # The region name describes where the box was; after a move the server recomputes it.
        if roi.GetAttribute(BOX_REGION) and not moved:
            box["region"] = roi.GetAttribute(BOX_REGION)
        if roi.GetAttribute(BOX_SCORE) and not moved and finding == roi.GetAttribute(BOX_FINDING):
            box["score"] = float(roi.GetAttribute(BOX_SCORE))
        if roi.GetAttribute(BOX_INDEX) is not None:
            remap[int(roi.GetAttribute(BOX_INDEX))] = len(boxes)
        boxes.append(box)
    return boxes, remap


def scene_to_case(scene) -> dict:
    """The Case dict the scene shows now, with the annotator's edits, in original pixels."""
    node = case_node(scene)
    case = json.loads(node.GetParameter("case"))
    case["findings"] = json.loads(node.GetParameter("findings") or "{}")
    case["scores"] = json.loads(node.GetParameter("scores") or "{}")
    boxes, remap = boxes_from_scene(scene)
    case["boxes"] = boxes
    case["fixations"] = fixations_from_scene(scene)

    original = json.loads(node.GetParameter("report") or "null")
    text_node = find_role(scene, "report")
    if text_node is None:
        report = None
    elif original is not None and text_node.GetText() == format_report(original):
        report = copy.deepcopy(original) if isinstance(original, dict) else {"findings": original}
        report.setdefault("evidence", [])
    else:
        # Edited text: sentence links to the old wording no longer hold.
        report = {**parse_report(text_node.GetText()), "evidence": []}
    if report is not None:
        evidence = []
        for e in report.get("evidence") or []:
            e = dict(e)
            if e.get("box") is not None:
                e["box"] = remap.get(int(e["box"]))
            n = len(case["fixations"])
            e["fixations"] = [i for i in e.get("fixations") or [] if i < n]
            evidence.append(e)
        report["evidence"] = evidence
    case["report"] = report
    return case
