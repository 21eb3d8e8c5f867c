"""Fixtures for the document store tests: a small application package and an open store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cpu_fallback.backend import NumpyBackend
from server.application.package import Application
from server.store import DocumentStore

NEWS_SD = """
schema news {
  document news {
    field embedding type tensor<float>(x[4]) { indexing: attribute }
    field matrix type tensor<int8>(x[2],y[3]) { indexing: attribute }
    field half type tensor<bfloat16>(x[2]) { indexing: attribute }
    field wide type tensor<double>(x[2]) { indexing: summary }
    field popularity type float { indexing: attribute | summary }
    field score type double { indexing: attribute }
    field count type int { indexing: attribute }
    field views type long { indexing: attribute }
    field tiny type byte { indexing: attribute }
    field flag type bool { indexing: attribute }
    field title type string { indexing: summary }
  }
  rank-profile dot {
    inputs { query(q) tensor<float>(x[4]) }
    first-phase { expression: sum(attribute(embedding) * query(q)) + attribute(popularity) }
  }
}
"""

OTHER_SD = """
schema other {
  document other {
    field v type tensor<float>(x[2]) { indexing: attribute }
  }
}
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: runs for tens of seconds; part of the default run (deselect with "
                                       "-m 'not slow')")


def write_app(root: Path, schemas: dict[str, str]) -> Path:
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    for name, text in schemas.items():
        (root / "schemas" / f"{name}.sd").write_text(text)
    return root


@pytest.fixture
def app(tmp_path: Path) -> Application:
    return Application.load(write_app(tmp_path / "app", {"news": NEWS_SD, "other": OTHER_SD}))


@pytest.fixture
def store(tmp_path: Path, app: Application) -> Iterator[DocumentStore]:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as s:
        yield s
