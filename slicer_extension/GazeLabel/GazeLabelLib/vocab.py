"""The CheXpert-14 finding names, as in ``models/vocab.py`` (Slicer's Python cannot import ``models``).

``tests/slicer/test_scene_io.py`` checks that this list stays equal to ``models.vocab.FINDINGS``.
"""

FINDINGS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

# CheXpert label values: what the annotator can decide about a finding.
POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
