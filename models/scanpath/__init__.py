"""Scanpath predictor: image (+ optional report) -> ordered fixations (x, y, duration) with sampling.

Modules: ``network`` (CNN encoder + transformer decoder with Gaussian heads), ``losses``, ``train``,
``predict`` (``ScanpathPredictor``), ``evaluate`` (protocol vs readers and the human ceiling), ``baselines``,
``coverage`` (visited / missed anatomical regions), ``cli``.
"""
