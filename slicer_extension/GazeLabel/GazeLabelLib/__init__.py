"""Logic of the GazeLabel Slicer module, importable without Qt (runs headless on the slicer-core wheel).

- :mod:`.client`: HTTP client for the GazeLabel MONAI Label server (urllib only; bearer or basic auth).
- :mod:`.image_io`: downloaded PNG / JPEG / DICOM / NIfTI bytes -> ``(H, W)`` arrays.
- :mod:`.scene_io`: a Case dict <-> MRML nodes (volume, heatmap, fixations, scanpath, boxes, report).
- :mod:`.session`: the annotation loop (connect, next sample, run, edit, save, train, playback).
- :mod:`.playback`: the fixation playback cursor.
- :mod:`.headless`: a scene with Slicer's logics, and an offscreen screenshot of the slice view.
"""
