"""Infer tasks: gaze_classifier, scanpath, report and pipeline (thin adapters over models/)."""
