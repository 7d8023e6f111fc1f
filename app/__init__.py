"""Deepfake Studio: app."""
