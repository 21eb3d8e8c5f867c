"""bench.trees runs end to end on a tiny shape and checks its scores against onnxruntime's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("xgboost")
pytest.importorskip("onnxmltools")


def test_tiny_tree_benchmark_runs_and_scores_equal_onnxruntime(tmp_path: Path) -> None:
    from bench.trees import main

    out = tmp_path / "trees.json"
    assert main(["--sizes", "500", "--repeats", "1", "--budget", "5", "--shapes", "8x3", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["trees"] == 8 and row["depth"] == 3 and row["documents"] == 500
    assert row["max_abs_error_vs_onnxruntime"] <= 1e-5
    assert {"tensorrank_docs_per_s", "lightgbm_docs_per_s", "xgboost_docs_per_s"} <= set(row)
