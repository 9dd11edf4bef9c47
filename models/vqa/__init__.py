"""Grounded visual question answering over a chest radiograph (the fourth model family, ``vqa``).

A question about one image ("Is there a pleural effusion?", "Which side is the pneumothorax on?", "Which
regions were not inspected?") is answered over a closed vocabulary, with a confidence, the evidence box on the
image and the fixations behind it, or refused ("cannot answer") with the reason.

Modules: :mod:`.config` (dataclasses, no torch), :mod:`.questions` (question kinds, phrasings, the parser and
the QA generator over Cases), :mod:`.inputs` (image, gaze and question -> network inputs), :mod:`.network`,
:mod:`.train`, :mod:`.predict` (the predictor; never imports training code), :mod:`.evaluate` (per-type accuracy
with bootstrap CIs, grounding, calibration, baselines) and :mod:`.cli`. This file imports nothing, so
``gazelabel --help`` does not load torch.
"""
