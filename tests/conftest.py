"""Shared test fixtures. Seeds are fixed and printed so a failure can be replayed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.shared_data import shared

SEED = int(os.environ.get("TENSORRANK_SEED", "20261126"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"tensorrank test seed: {SEED} (set TENSORRANK_SEED to change)"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture(scope="session")
def vespa_models() -> Path:
    """../shared/vespa-models, or a skip with the reason."""
    return shared("vespa-models")
