"""Report generation: CheXpert labeler, structured prompts and templates, a small LM and Gaze2Report.

Public entry points: :class:`models.report.generate.ReportGenerator`, :func:`models.labeling.labeler.label_report`,
:func:`models.report.train.train_report_generator`. Submodules import torch/transformers lazily.
"""
