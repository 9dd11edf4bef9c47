"""Inside a full Slicer: the module logic shows a case in the Red slice view (image behind, heatmap in front,
markups visible in 2D). Run with ``Slicer --no-main-window --python-script GazeLabelViewsTest.py`` or ctest.
The logic underneath is tested headless in ``tests/slicer``."""

import unittest

import numpy as np
import slicer

from GazeLabel import GazeLabelLogic
from GazeLabelLib import scene_io


class GazeLabelViewsTest(unittest.TestCase):
    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def test_case_shows_in_red_view(self):
        scene = slicer.mrmlScene
        ys, xs = np.mgrid[0:128, 0:160]
        scene_io.image_volume(scene, (xs / 160.0).astype(np.float32), (0.5, 0.5))
        scene_io.case_to_scene(scene, {
            "id": "views",
            "image": {"width": 160, "height": 128, "synthetic": True},
            "boxes": [{"finding": "Edema", "x1": 20, "y1": 20, "x2": 100, "y2": 90}],
            "fixations": [{"x": 30, "y": 40, "t": 0.0, "duration": 0.2}, {"x": 90, "y": 60, "t": 0.25, "duration": 0.4}],
        })
        scene_io.heatmap_volume(scene, np.exp(-((xs - 60) ** 2 + (ys - 55) ** 2) / 400.0))

        logic = GazeLabelLogic()
        logic.showInViews()

        composite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(composite.GetBackgroundVolumeID(), scene_io.find_role(scene, "image").GetID())
        self.assertEqual(composite.GetForegroundVolumeID(), scene_io.find_role(scene, "heatmap").GetID())
        self.assertAlmostEqual(composite.GetForegroundOpacity(), 0.6)
        for role in ("fixations", "scanpath", "box"):
            self.assertTrue(scene_io.find_role(scene, role).GetDisplayNode().GetVisibility2D(), role)

        logic.centerOn(90, 60)
        red = slicer.util.getNode("vtkMRMLSliceNodeRed")
        center = red.GetXYToRAS().MultiplyPoint([d / 2 for d in red.GetDimensions()[:2]] + [0, 1])
        expected = scene_io.pixels_to_ras(scene_io.find_role(scene, "image"), [[90, 60]])[0]
        np.testing.assert_allclose(center[:2], expected[:2], atol=1.0)


if __name__ == "__main__":
    unittest.main()
