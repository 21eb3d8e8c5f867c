"""Models trained here (fixed seeds) by scikit-learn, XGBoost and LightGBM, exported to ONNX
by skl2onnx and onnxmltools, imported and run on the numpy backend: against onnxruntime on the
same file and against the library's own predict."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest

from cpu_fallback import NumpyBackend
from tensor_ir.onnx_import import import_model
from tensor_ir.verify import verify

ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")
onnxmltools = pytest.importorskip("onnxmltools")
ensemble = pytest.importorskip("sklearn.ensemble")
xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")
from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402

N_FEATURES = 8
ROWS = 16  # rows per document: the exported models take [N, features]


def data(rng: np.random.Generator, n: int, nan: bool = False) -> np.ndarray[Any, Any]:
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    x[:, 3] = np.round(x[:, 3])  # ties with thresholds between whole numbers
    if nan:
        x[rng.random(x.shape) < 0.05] = np.nan
    return x


def target(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    v = np.nan_to_num(x)
    return v[:, 0] * 2 - v[:, 1] ** 2 + np.sin(v[:, 2]) + v[:, 3]


def run_ours(model: onnx.ModelProto, x: np.ndarray[Any, Any], output: int = -1) -> np.ndarray[Any, Any]:
    imported = import_model(model, name="trained.onnx")
    verify(imported.program)
    (name,) = imported.program.inputs
    rows = imported.program.inputs[name].shape[0]
    docs = x.reshape(-1, rows, x.shape[1])
    out_name = [o.name for o in model.graph.output][output]
    got = NumpyBackend().compile(imported.program).run({name: docs}, docs.shape[0])[out_name]
    return np.asarray(got).reshape(x.shape[0], -1)


def run_ort(model: onnx.ModelProto, x: np.ndarray[Any, Any], output: int = -1) -> np.ndarray[Any, Any]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    parts = [np.asarray(sess.run(None, {name: x[s:s + ROWS]})[output]).reshape(ROWS, -1)
             for s in range(0, x.shape[0], ROWS)]
    return np.concatenate(parts)


def sklearn_regressors() -> list[Any]:
    return [
        ensemble.GradientBoostingRegressor(n_estimators=40, max_depth=4, random_state=0),
        ensemble.HistGradientBoostingRegressor(max_iter=40, random_state=0),
        ensemble.RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0),
    ]


@pytest.mark.parametrize("index", range(3), ids=["GradientBoosting", "HistGradientBoosting", "RandomForest"])
def test_sklearn_regressors(index: int, rng: np.random.Generator) -> None:
    reg = sklearn_regressors()[index]
    nan = index == 1  # HistGradientBoosting learns where missing values go
    x = data(rng, 2000, nan)
    reg.fit(x, target(x))
    try:
        model = skl2onnx.convert_sklearn(reg, initial_types=[("X", FloatTensorType([ROWS, N_FEATURES]))],
                                         target_opset={"": 17, "ai.onnx.ml": 3})
    except ValueError as e:
        if "Expected an int, got a boolean" not in str(e.__cause__ or e):
            raise
        pytest.skip(f"skl2onnx {skl2onnx.__version__} cannot write this model with numpy {np.__version__} "
                    "(numpy bools among the node ids)")
    test = data(rng, ROWS * 40, nan)
    mine = run_ours(model, test)
    np.testing.assert_allclose(mine, run_ort(model, test), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mine.ravel(), reg.predict(test), rtol=1e-4, atol=1e-4)


def test_xgboost_regressor_through_onnxmltools(rng: np.random.Generator) -> None:
    x = data(rng, 2000, nan=True)
    reg = xgboost.XGBRegressor(n_estimators=40, max_depth=5, random_state=0).fit(x, target(x))
    model = onnxmltools.convert_xgboost(reg, initial_types=[("X", MLFloat([ROWS, N_FEATURES]))], target_opset=15)
    test = data(rng, ROWS * 40, nan=True)
    mine = run_ours(model, test)
    np.testing.assert_allclose(mine, run_ort(model, test), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mine.ravel(), reg.predict(test), rtol=1e-5, atol=1e-5)


def test_lightgbm_regressor_through_onnxmltools(rng: np.random.Generator) -> None:
    x = data(rng, 2000, nan=True)
    reg = lightgbm.LGBMRegressor(n_estimators=40, num_leaves=20, random_state=0, verbose=-1).fit(x, target(x))
    model = onnxmltools.convert_lightgbm(reg, initial_types=[("X", MLFloat([ROWS, N_FEATURES]))], target_opset=15)
    test = data(rng, ROWS * 40, nan=True)
    mine = run_ours(model, test)
    np.testing.assert_allclose(mine, run_ort(model, test), rtol=1e-5, atol=1e-5)
    # LightGBM compares in double; the ONNX file's thresholds are floats
    np.testing.assert_allclose(mine.ravel(), reg.predict(test), rtol=1e-4, atol=1e-4)


def classifiers(n_classes: int) -> dict[str, Any]:
    return {
        "GradientBoosting": ensemble.GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0),
        "RandomForest": ensemble.RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0),
        "XGBoost": xgboost.XGBClassifier(n_estimators=30, max_depth=4, random_state=0),
        "LightGBM": lightgbm.LGBMClassifier(n_estimators=30, num_leaves=12, random_state=0, verbose=-1),
    }


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", ["GradientBoosting", "RandomForest", "XGBoost", "LightGBM"])
def test_classifiers(name: str, n_classes: int, rng: np.random.Generator) -> None:
    clf = classifiers(n_classes)[name]
    x = data(rng, 1500)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (n_classes == 3) * (x[:, 2] > 0.7)
    clf.fit(x, y)
    if name in ("GradientBoosting", "RandomForest"):
        model = skl2onnx.convert_sklearn(clf, initial_types=[("X", FloatTensorType([ROWS, N_FEATURES]))],
                                         options={id(clf): {"zipmap": False}},
                                         target_opset={"": 17, "ai.onnx.ml": 3})
    elif name == "XGBoost":
        model = onnxmltools.convert_xgboost(clf, initial_types=[("X", MLFloat([ROWS, N_FEATURES]))], target_opset=15)
    else:
        model = onnxmltools.convert_lightgbm(clf, initial_types=[("X", MLFloat([ROWS, N_FEATURES]))],
                                             target_opset=15, zipmap=False)
    test = data(rng, ROWS * 40)
    labels, probs = run_ours(model, test, 0).ravel(), run_ours(model, test, 1)
    np.testing.assert_array_equal(labels, run_ort(model, test, 0).ravel())
    np.testing.assert_allclose(probs, run_ort(model, test, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probs, clf.predict_proba(test), rtol=1e-4, atol=1e-4)
    agree = np.mean(labels == clf.predict(test))
    assert agree > 0.99, agree  # a probability within float rounding of a tie may tip either way
