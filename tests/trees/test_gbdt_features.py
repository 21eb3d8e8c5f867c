"""xgboost() and lightgbm() in rank profiles of a package, against the libraries' own
predictions on the same features (trained here with fixed seeds), with NaN values, values at
thresholds and categorical splits; and the refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from server.application.errors import SchemaError
from server.application.package import Application
from tests.application.helpers import write_app
from tests.shared_data import shared

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

N_FEATURES = 6
FIELDS = "\n".join(f"    field a{i} type {'float' if i % 2 else 'double'} {{ indexing: attribute }}"
                   for i in range(N_FEATURES))


def schema(profiles: str) -> str:
    return f"schema s {{\n  document s {{\n{FIELDS}\n  }}\n{profiles}\n}}\n"


def data(rng: np.random.Generator, n: int) -> np.ndarray[Any, Any]:
    x = rng.normal(size=(n, N_FEATURES))
    x[:, 5] = rng.integers(-1, 7, n) + 0.5 * rng.random(n)  # a categorical feature, negative and fractional too
    x[rng.random((n, N_FEATURES)) < 0.05] = np.nan
    x[:, 1::2] = x[:, 1::2].astype(np.float32)  # the float fields hold what a float attribute can
    return x


def labels(x: np.ndarray[Any, Any], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    return np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 3]) ** 2 + (np.trunc(np.nan_to_num(x[:, 5])) == 2) \
        + rng.normal(size=x.shape[0]) * 0.1


def scores(app: Application, profile: str, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    program = app.profile("s", profile).first_phase
    feeds = {name: x[:, i].astype(np.float32 if i % 2 else np.float64) for i in range(N_FEATURES)
             if (name := f"attribute(a{i})") in program.inputs}
    out: np.ndarray[Any, Any] = NumpyBackend().compile(program).run(feeds, x.shape[0])["first_phase"]
    return out


def test_xgboost_matches_booster_predict(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, 4000)
    # XGBoost's own names are the rank features; one comes from a profile function
    names = [f"attribute(a{i})" for i in range(N_FEATURES - 1)] + ["category"]
    booster = xgb.train({"max_depth": 6, "eta": 0.3, "base_score": 0.0, "seed": 7},
                        xgb.DMatrix(x, labels(x, rng), feature_names=names), 60)
    dump = "[" + ",".join(booster.get_dump(dump_format="json")) + "]"
    app = Application.load(write_app(tmp_path, {"s": schema("""
  rank-profile p {
    function category() { expression: attribute(a5) }
    first-phase { expression: xgboost("ranker.json") }
  }""")}, files={"models/ranker.json": dump}))
    test = data(rng, 3000)
    want = booster.predict(xgb.DMatrix(test, feature_names=names), output_margin=True)
    np.testing.assert_array_equal(scores(app, "p", test), want.astype(np.float64))


def test_lightgbm_matches_booster_predict(tmp_path: Path, rng: np.random.Generator) -> None:
    x = data(rng, 4000)
    model = lgb.train({"num_leaves": 40, "verbose": -1, "seed": 7, "min_data_per_group": 5, "cat_smooth": 1.0},
                      lgb.Dataset(x, labels(x, rng), categorical_feature=[5]), 60)
    dump = model.dump_model()
    assert any(t["num_cat"] for t in dump["tree_info"])  # the categorical path is tested
    dump["feature_names"] = [f"attribute(a{i})" for i in range(N_FEATURES)]
    app = Application.load(write_app(tmp_path, {"s": schema("""
  rank-profile p {
    first-phase { expression: lightgbm("ranker.json") }
  }
  rank-profile by_name {
    first-phase { expression: lightgbm(ranker) + 1 }
  }""")}, files={"models/ranker.json": json.dumps(dump)}))
    test = data(rng, 3000)
    want = model.predict(test, raw_score=True)
    np.testing.assert_array_equal(scores(app, "p", test), want)
    np.testing.assert_array_equal(scores(app, "by_name", test), want + 1)


def test_vespa_dump_example(tmp_path: Path) -> None:
    """Vespa's xgboost.2.2.json shape (features f29, f56, f109, f60 as functions), worked by hand."""
    dump = shared("vespa-apps") / "vt-ml-models" / "models" / "xgboost.2.2.json"
    app = Application.load(write_app(tmp_path, {"s": schema("""
  rank-profile p {
    function f29() { expression: attribute(a0) }
    function f56() { expression: attribute(a1) }
    function f109() { expression: attribute(a2) }
    function f60() { expression: attribute(a3) }
    first-phase { expression: xgboost(xgboost_2_2) }
  }""")}, files={"models/xgboost.2.2.json": dump.read_bytes()}))
    x = np.zeros((3, N_FEATURES))
    x[0, :4] = [-1.0, -1.0, 0.0, -1.0]  # tree 0: f29 < -0.12 yes, f56 < -0.24 yes: 1.71218; tree 1: f60 yes,
    # f29 -1 < -4.2387 no: -0.96853
    x[1, :4] = [0.0, 0.0, 1.0, 0.0]  # tree 0: no, f109 1 < 0.87 no: 1.85965; tree 1: f60 0 < -0.48 no: -6.23624
    x[2, :4] = [np.nan, 0.0, np.nan, np.nan]  # missing: tree 0 -> 2 -> f109 missing -> 6: 1.85965; tree 1 -> 1
    # -> f29 missing -> 4: -0.96853
    want = [np.float32(1.71218) + np.float32(-0.96853), np.float32(1.85965) + np.float32(-6.23624),
            np.float32(1.85965) + np.float32(-0.96853)]
    np.testing.assert_array_equal(scores(app, "p", x), np.asarray(want, np.float32).astype(np.float64))


@pytest.mark.parametrize("content,words", [
    ("[{\"nodeid\": 0, \"split\": \"attribute(a0)\", \"split_condition\": 1, \"yes\": 1, \"no\": 7, "
     "\"children\": [{\"nodeid\": 1, \"leaf\": 1}]}]", ["tree 0, node 0", "'no' child 7 is not a node"]),
    ("[{\"nodeid\": 0, \"split\": \"nosuch\", \"split_condition\": 1, \"yes\": 1, \"no\": 2, \"children\": "
     "[{\"nodeid\": 1, \"leaf\": 1}, {\"nodeid\": 2, \"leaf\": 2}]}]", ["feature 'nosuch'", "unknown name"]),
    ("{\"learner\": {}}", ["save_model JSON"]),
    ("not json", ["not valid JSON"]),
])
def test_broken_xgboost_files_are_refused_at_deploy(tmp_path: Path, content: str, words: list[str]) -> None:
    with pytest.raises(SchemaError) as e:
        Application.load(write_app(tmp_path, {"s": schema("""
  rank-profile p {
    first-phase { expression: xgboost("bad.json") }
  }""")}, files={"models/bad.json": content}))
    text = str(e.value)
    assert "models/bad.json" in text and "s.sd" in text
    for w in words:
        assert w in text


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"model file 'nothere\.json' not found"):
        Application.load(write_app(tmp_path, {"s": schema("""
  rank-profile p {
    first-phase { expression: lightgbm("nothere.json") }
  }""")}))


def test_lightgbm_binary_objective_gives_probabilities_as_vespa_does(tmp_path: Path, rng: np.random.Generator) -> None:
    """Vespa applies a binary model's sigmoid itself (its LightGBM docs: no sigmoid() needed)."""
    x = data(rng, 3000)
    model = lgb.train({"objective": "binary", "sigmoid": 1.5, "num_leaves": 15, "verbose": -1, "seed": 7},
                      lgb.Dataset(x, (labels(x, rng) > 0).astype(float)), 30)
    dump = model.dump_model()
    assert dump["objective"].startswith("binary") and "sigmoid:1.5" in dump["objective"]
    dump["feature_names"] = [f"attribute(a{i})" for i in range(N_FEATURES)]
    poisson = dict(dump, objective="poisson")
    app = Application.load(write_app(tmp_path / "ok", {"s": schema("""
  rank-profile p {
    first-phase { expression: lightgbm("clf.json") }
  }""")}, files={"models/clf.json": json.dumps(dump)}))
    test = data(rng, 1000)
    np.testing.assert_allclose(scores(app, "p", test), model.predict(test), rtol=1e-12, atol=1e-15)
    with pytest.raises(SchemaError, match="objective 'poisson' is not supported"):
        Application.load(write_app(tmp_path / "bad", {"s": schema("""
  rank-profile p {
    first-phase { expression: lightgbm("clf.json") }
  }""")}, files={"models/clf.json": json.dumps(poisson)}))
