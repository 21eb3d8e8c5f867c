"""`tensorrank inspect` describes a forest: trees, depth, features, node modes and layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from server.inspect_model import inspect_model
from tests.trees import onnx_models
from tests.trees.test_forest import EVERY, random_spec


def test_inspect_describes_an_onnx_forest(tmp_path: Path, rng: np.random.Generator) -> None:
    spec = random_spec(rng, EVERY[:-1], n_trees=6, depth=3, n_features=5, n_targets=2, every_target=True)
    path = tmp_path / "forest.onnx"
    onnx.save(onnx_models.regressor(spec), path)
    report, ok = inspect_model(str(path))
    assert ok, report
    assert "ai.onnx.ml.TreeEnsembleRegressor x1" in report
    assert "forest of 6 trees, depth <= 3" in report and "of 5 features used, 2 targets" in report
    assert "leq" in report and "member" in report and "layout" in report


def test_inspect_reads_xgboost_dumps_and_names_their_features(tmp_path: Path) -> None:
    dump = [{"nodeid": 0, "split": "attribute(price)", "split_condition": 3.5, "yes": 1, "no": 2, "missing": 2,
             "children": [{"nodeid": 1, "leaf": 0.5}, {"nodeid": 2, "split": "bm25(title)", "split_condition": 1.0,
                                                        "yes": 3, "no": 4, "children": [{"nodeid": 3, "leaf": 1.0},
                                                                                       {"nodeid": 4, "leaf": 2.0}]}]}]
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps(dump))
    report, ok = inspect_model(str(path))
    assert ok, report
    assert "xgboost dump" in report and "forest of 1 trees, depth <= 2" in report
    assert "attribute(price), bm25(title)" in report
    dump[0]["children"][1]["no"] = 9  # type: ignore[index]
    path.write_text(json.dumps(dump))
    report, ok = inspect_model(str(path))
    assert not ok and "tree 0, node 2" in report and "'no' child 9" in report
