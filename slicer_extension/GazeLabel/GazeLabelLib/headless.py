"""Run the logic without the Slicer application: an MRML scene with the logics markups need, and an
offscreen screenshot of the Red slice view drawn by Slicer's own displayable managers.

For the ``slicer-core`` wheel (MRML, logic and displayable-manager libraries, no Qt). The screenshot uses
the same pieces Slicer's slice view uses: a slice logic that reslices and blends the background (image) and
foreground (heatmap) layers, and the model and markups displayable managers that draw the duration discs,
numbered fixations, scanpath and boxes. Only the image actor, which Slicer's Qt view adds itself, is made
here. Offscreen OpenGL comes from Mesa EGL: set ``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow`` before
VTK loads (Debian packages ``libegl1 libegl-mesa0 libgl1-mesa-dri``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicer
import vtk

from . import scene_io

# The heatmap layer's opacity: strong attention stands out, the film under it stays readable.
HEATMAP_OPACITY = 0.4
# Zoom out this much after fitting the image, so boxes and fixations on the film's edge stay visible.
VIEW_MARGIN = 1.06
_SLICE_MANAGERS = ("vtkMRMLModelSliceDisplayableManager", "vtkMRMLMarkupsDisplayableManager")


@dataclass
class SliceScreenshot:
    """A rendered slice view: the PNG and the view's XY-to-RAS matrix (to find scene points in the picture)."""

    path: Path
    size: tuple[int, int]
    xy_to_ras: np.ndarray  # (4, 4): view pixel (x right, y up, 0, 1) -> RAS mm

    def pixel_of(self, ras) -> tuple[int, int]:
        """``(column, row)`` in the PNG (row 0 at the top) where the RAS point ``ras`` is drawn."""
        x, y, _, _ = np.linalg.solve(self.xy_to_ras, np.array([*ras[:3], 1.0]))
        return int(round(x)), int(round(self.size[1] - 1 - y))


@dataclass
class HeadlessScene:
    """A scene plus the logics Slicer's application would own (kept alive together)."""

    scene: object
    app_logic: object
    markups_logic: object


def fit_with_margin(slice_node, margin: float = VIEW_MARGIN) -> None:
    """Widen a fitted slice view's field of view by ``margin`` (same centre)."""
    fov = slice_node.GetFieldOfView()
    slice_node.SetFieldOfView(fov[0] * margin, fov[1] * margin, fov[2])


def new_scene() -> HeadlessScene:
    """An empty MRML scene wired to an application logic and a markups logic, as in Slicer."""
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    markups = slicer.vtkSlicerMarkupsLogic()
    markups.SetMRMLApplicationLogic(app_logic)
    markups.SetMRMLScene(scene)
    app_logic.SetModuleLogic("Markups", markups)  # the markups displayable manager looks it up by name
    return HeadlessScene(scene, app_logic, markups)


def image_px_per_view_px(slice_node, volume) -> float:
    """How many image pixels one screen pixel of the slice view spans now (its zoom, inverted)."""
    fov, dims, spacing = slice_node.GetFieldOfView(), slice_node.GetDimensions(), volume.GetSpacing()
    return float(fov[1]) / float(spacing[1]) / max(int(dims[1]), 1)


def render_slice_view(headless: HeadlessScene, path: str | Path, size: tuple[int, int] = (800, 800),
                      heatmap_opacity: float = HEATMAP_OPACITY) -> SliceScreenshot:
    """Screenshot the Red (axial) slice view of the scene's GazeLabel image to a PNG at ``path``.

    Shows what the annotator sees in Slicer: the radiograph, the heatmap blended over it, the numbered
    fixations with their duration discs and scanpath, and the finding boxes, with the layer names in the
    bottom-left corner as Slicer's corner annotation has them (the image's name says if it is SYNTHETIC).
    """
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    if "torch" in sys.modules:
        # A process that also trains: torch's optimizers import triton's LLVM, which crashes once Mesa's LLVM
        # (loaded by the EGL window below) is in the process. Loaded first, both coexist.
        import torch._dynamo  # noqa: F401
    scene, app_logic = headless.scene, headless.app_logic
    image = scene_io.require_role(scene, "image")
    heatmap = scene_io.find_role(scene, "heatmap")

    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(0)
    window.SetSize(*size)
    renderer = vtk.vtkRenderer()
    renderer.GetActiveCamera().ParallelProjectionOn()
    window.AddRenderer(renderer)
    interactor = vtk.vtkRenderWindowInteractor()  # displayable-manager widgets need one, even offscreen
    interactor.SetRenderWindow(window)

    factory = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
    factory.SetMRMLApplicationLogic(app_logic)
    for name in _SLICE_MANAGERS:
        if not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    managers = slicer.vtkMRMLDisplayableManagerGroup()
    managers.Initialize(factory, renderer)

    logic = slicer.vtkMRMLSliceLogic()
    logic.SetMRMLApplicationLogic(app_logic)
    logics = vtk.vtkCollection()
    logics.AddItem(logic)
    app_logic.SetSliceLogics(logics)
    logic.SetMRMLScene(scene)
    slice_node = logic.AddSliceNode("Red")
    slice_node.SetOrientation("Axial")
    managers.SetMRMLDisplayableNode(slice_node)

    composite = logic.GetSliceCompositeNode()
    composite.SetBackgroundVolumeID(image.GetID())
    composite.SetForegroundVolumeID(heatmap.GetID() if heatmap is not None else None)
    composite.SetForegroundOpacity(heatmap_opacity)
    logic.ResizeSliceNode(*size)
    logic.FitSliceToBackground()
    fit_with_margin(slice_node)
    scene_io.layout_labels(scene, image_px_per_view_px(slice_node, image))  # label sizes at this zoom

    # Slicer's Qt slice view shows the blended layers with an 8-bit RGBA image actor; do the same.
    mapper = vtk.vtkImageMapper()
    mapper.SetColorWindow(255)
    mapper.SetColorLevel(127.5)
    mapper.SetInputConnection(logic.GetImageDataConnection())
    actor = vtk.vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetDisplayLocationToBackground()
    renderer.AddViewProp(actor)
    caption = vtk.vtkTextActor()
    layers = [f"B: {image.GetName()}"] + ([f"F: {heatmap.GetName()} ({heatmap_opacity:.0%})"] if heatmap else [])
    caption.SetInput("\n".join(reversed(layers)))
    caption.GetTextProperty().SetFontSize(max(12, size[1] // 45))
    caption.GetTextProperty().SetColor(1.0, 1.0, 1.0)
    caption.GetTextProperty().SetBackgroundColor(0.0, 0.0, 0.0)
    caption.GetTextProperty().SetBackgroundOpacity(0.6)
    caption.SetDisplayPosition(8, 8)
    renderer.AddViewProp(caption)
    window.Render()

    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()

    matrix = slice_node.GetXYToRAS()
    xy_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])

    # Leave the scene as it was: the next render builds a fresh view.
    managers.SetMRMLDisplayableNode(None)
    app_logic.SetSliceLogics(None)
    logic.SetMRMLScene(None)
    for node in (composite, slice_node):
        scene.RemoveNode(node)
    window.Finalize()
    return SliceScreenshot(path, (int(size[0]), int(size[1])), xy_to_ras)
