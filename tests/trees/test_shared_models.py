"""The real LightGBM and XGBoost dumps of Vespa's sample packages: read into forests and
evaluated against the plain walk of the file's own splits; the commerce package's GBDT
profiles fail only at their text-match features, which have their own issue."""

from __future__ import annotations

import json

import numpy as np
import pytest

from server.application.package import Application
from tensor_ir.trees import canonical_forest, evaluate
from tensor_ir.trees.lightgbm_json import lightgbm_forest
from tensor_ir.trees.xgboost_json import xgboost_forest
from tests.shared_data import shared
from tests.trees.walker import walk

FILES = [
    ("sa-commerce-product-ranking/models/product_ranker_lightgbm.json", lightgbm_forest),
    ("sa-commerce-product-ranking/models/product_ranker_simple_lightgbm.json", lightgbm_forest),
    ("sa-commerce-product-ranking/models/product_ranker_xgboost.json", xgboost_forest),
    ("sa-commerce-product-ranking/models/product_ranker_simple_xgboost.json", xgboost_forest),
    ("vt-ml-models/models/lightgbm_regression.json", lightgbm_forest),
    ("vt-ml-models/models/xgboost.2.2.json", xgboost_forest),
]


@pytest.mark.parametrize("name,reader", FILES, ids=[f.split("/")[-1] for f, _ in FILES])
def test_real_dumps_evaluate_as_their_splits_say(name: str, reader: object, rng: np.random.Generator) -> None:
    path = shared("vespa-apps") / name
    spec = reader(json.loads(path.read_text()), name)  # type: ignore[operator]
    forest = canonical_forest(spec)
    x = rng.normal(size=(400, spec.n_features)) * 3
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:50] = np.round(x[:50])  # whole numbers: categories, and ties with integer thresholds
    cast = np.float32 if forest.input_type.np_dtype == np.float32 else float
    xin = x.astype(forest.input_type.np_dtype)
    np.testing.assert_array_equal(evaluate(forest, xin), walk(spec, xin, cast))


def test_commerce_gbdt_profiles_fail_only_at_text_match_features() -> None:
    app = Application.check(shared("vespa-apps") / "sa-commerce-product-ranking")
    gbdt = ("gbdt-lightgbm-simple", "gbdt-xgboost-simple", "gbdt-lightgbm-full", "gbdt-xgboost-full", "ensemble")
    found = {p: e.message for e in app.problems for p in gbdt if e.message.startswith(f"rank profile '{p}':")}
    assert set(found) == set(gbdt)
    for message in found.values():
        # the model file was read and its features resolved by name, up to the first text-match one
        assert "json): feature '" in message and "text-match feature" in message, message
