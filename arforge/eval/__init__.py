"""Evaluation: FID/sFID/KID/IS/precision-recall with the standard TF-Inception, offline and streamed;
reference statistics; tokenizer reconstruction metrics; a domain classifier for MNIST samples.

Main entry points (imported lazily so ``import arforge.eval`` stays light):

* :func:`arforge.eval.generation.evaluate_generation` / :func:`arforge.eval.generation.fid`
* :func:`arforge.eval.generation.compute_reference_stats`
* :func:`arforge.eval.recon.evaluate_reconstruction`
* :func:`arforge.eval.classifier.load_or_train_mnist_classifier`, ``class_accuracy``, ``per_class_accuracy``
* :func:`arforge.eval.features.build_feature_extractor` (the Inception as an ``nn.Module``)

Command line: ``arforge eval fid|is|stats|recon|classify`` (:mod:`arforge.eval.commands`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate_generation": "arforge.eval.generation",
    "fid": "arforge.eval.generation",
    "compute_reference_stats": "arforge.eval.generation",
    "evaluate_reconstruction": "arforge.eval.recon",
    "build_feature_extractor": "arforge.eval.features",
    "InceptionFeatureExtractor": "arforge.eval.features",
    "frechet_distance": "arforge.eval.frechet",
    "kernel_inception_distance": "arforge.eval.kid",
    "load_stats": "arforge.eval.stats",
    "open_source": "arforge.eval.sources",
    "load_or_train_mnist_classifier": "arforge.eval.classifier",
    "class_accuracy": "arforge.eval.classifier",
    "per_class_accuracy": "arforge.eval.classifier",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'arforge.eval' has no attribute {name!r}")
