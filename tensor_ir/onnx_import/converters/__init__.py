"""Converter modules, one per op family. Importing a module registers its converters;
`register_all` imports each listed module exactly once."""

from __future__ import annotations

import importlib

MODULES = (
    "elementwise",
    "activations",
    "casting",
    "reductions",
    "linalg",
    "normalization",
    "shape_ops",
    "indexing",
    "generators",
    "control",
    "convolution",
    "pooling",
    "resize",
    "grid_sample",
    "ml_trees",
    "ml_tree_classifier",
    "ml_featurizers",
    "ml_encoders",
)

_done = False


def register_all() -> None:
    global _done
    if _done:
        return
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
    _done = True
