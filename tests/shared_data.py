"""Material from outside the repository: ../shared beside the checkout (Vespa's models, its
application packages, its tensor conformance cases). It is read where it lies and never
copied in; a test that needs it skips, saying so, where the folder is absent (a fresh clone
of this repository alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VESPA_MODELS = SHARED / "vespa-models"


def absent(name: str) -> str:
    return (f"needs ../shared/{name} beside the repository ({SHARED / name} is absent): material from Vespa's "
            "own repositories, not part of this one")


def shared(name: str) -> Path:
    """../shared/NAME, or a skip with the reason when it is not there."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(absent(name))
    return path


def model_params(names: list[str]) -> list[Any]:
    """`names` to parametrise a test with, or one skipped case saying why there are none."""
    return list(names) or [pytest.param("-", marks=pytest.mark.skip(reason=absent("vespa-models")))]


def vespa_model_names() -> list[str]:
    """The ONNX files of ../shared/vespa-models, for parametrising (none where it is absent:
    pytest then reports the test as skipped for an empty parameter set)."""
    return sorted(p.name for p in VESPA_MODELS.glob("*.onnx")) if VESPA_MODELS.is_dir() else []


def vespa_model(name: str) -> Path:
    """../shared/vespa-models/NAME, or a skip with the reason (the folder or the file is absent)."""
    path = shared("vespa-models") / name
    if not path.is_file():
        pytest.skip(f"needs {name}, which ../shared/vespa-models does not have")
    return path
