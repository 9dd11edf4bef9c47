"""Gaze-guided multi-label CXR classifier: network, losses, training, evaluation and prediction.

Import the pieces from their modules (``models.classifier.predict.ClassifierPredictor`` etc.); this package
file stays empty of imports so ``gazelabel --help`` does not load torch.
"""
