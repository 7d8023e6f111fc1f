"""Deepfake Studio core: model factory, preprocessing contract, datasets, metrics, rejection,
inference and bundles. Pure Python + torch/onnxruntime; never imports Qt, ``training`` or ``app``.

Modules import torch lazily where a torch-free path exists (the checker runs on onnxruntime only).
"""
