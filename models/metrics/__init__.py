"""Evaluation metrics: classification (AUC, F1, bootstrap CIs) and saliency (attention vs gaze)."""
