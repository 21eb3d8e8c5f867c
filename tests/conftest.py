"""Shared test fixtures. Seeds are fixed and printed so a failure can be replayed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

VESPA_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "vespa-models"
SEED = int(os.environ.get("TENSORRANK_SEED", "20261126"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"tensorrank test seed: {SEED} (set TENSORRANK_SEED to change)"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture(scope="session")
def vespa_models() -> Path:
    if not VESPA_MODELS.is_dir():
        pytest.skip(f"{VESPA_MODELS} not present")
    return VESPA_MODELS
