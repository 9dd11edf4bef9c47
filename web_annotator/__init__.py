"""GazeLabel in a browser: the Slicer extension's MRML scene and annotation loop served by trame-slicer.

- :mod:`.options`: the ``gazelabel web`` options (standard library only, shared by both entry points).
- :mod:`.command`: ``gazelabel web`` in the project's environment; it runs the app in ``.venv-web`` when
  trame-slicer is not importable here (trame-slicer 2.0 pins slicer-core 5.11, the project uses 5.13).
- :mod:`.controller`: what the page does, over ``GazeLabelLib.session.AnnotationSession`` (no web code;
  tested headless in ``tests/slicer/test_web_controller.py``).
- :mod:`.app`: the trame page: the Red slice view (trame-slicer's remote view of the scene) and the panels.

The scene mapping, HTTP client and annotation loop are the Slicer module's own (``GazeLabelLib``); this
package only wires a web page to them.
"""
