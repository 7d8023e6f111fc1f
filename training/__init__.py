"""Deepfake Studio: training."""
