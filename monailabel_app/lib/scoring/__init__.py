"""Scoring methods that store per-image values in the datastore."""
