"""ONNX-ML tree ensembles against onnxruntime (one thread, so its sums run in tree order):
random forests drawn by hypothesis with every mode, missing-value setting, aggregate and
post-transform, float and double thresholds, inputs exactly at thresholds and NaN."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto

from cpu_fallback import NumpyBackend
from tensor_ir.onnx_import import ModelImportError, import_model
from tensor_ir.trees import ForestSpec, NodeSpec, TreeSpec
from tensor_ir.trees import spec as S
from tensor_ir.verify import verify
from tests.property.helpers import PROPERTY, rng_for
from tests.trees import onnx_models
from tests.trees.test_forest import EVERY, NUMERIC, inputs, random_spec

ort = pytest.importorskip("onnxruntime")
ort.set_default_logger_severity(3)

LEGACY_MODES = tuple(m for m in EVERY if m != "BRANCH_MEMBER")
TRANSFORMS = ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"]


def onnxruntime(model: onnx.ModelProto, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    out: np.ndarray[Any, Any] = sess.run(None, {"X": x})[0]
    return out


def ours(model: onnx.ModelProto, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The model's whole batch as the value of one document, so the batch axis is per-document."""
    imported = import_model(model, name="forest.onnx")
    verify(imported.program)
    (name,) = imported.program.inputs
    spec = imported.program.inputs[name]
    n_rows = spec.shape[0]
    docs = x.reshape(-1, n_rows, x.shape[-1])
    got = NumpyBackend().compile(imported.program).run({name: docs}, docs.shape[0])
    out: np.ndarray[Any, Any] = got["Y"].reshape(x.shape[0], -1)
    return out


def bind_rows(model: onnx.ModelProto, rows: int) -> onnx.ModelProto:
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = rows
    return model


@PROPERTY
@given(seed=st.integers(0, 2**16), n_targets=st.integers(1, 3), aggregate=st.sampled_from(["sum", "average", "min",
       "max"]), transform=st.sampled_from(TRANSFORMS), double=st.booleans(), numeric_only=st.booleans())
def test_regressor_matches_onnxruntime(seed: int, n_targets: int, aggregate: str, transform: str, double: bool,
                                       numeric_only: bool) -> None:
    rng = rng_for(seed)
    spec = random_spec(rng, NUMERIC if numeric_only else LEGACY_MODES, n_trees=int(rng.integers(1, 9)),
                       depth=int(rng.integers(1, 6)), n_targets=n_targets, aggregate=aggregate, every_target=True)
    if transform not in ("NONE", "PROBIT") and n_targets == 1:
        transform = "NONE"  # onnxruntime ignores these here: test_single_target_logistic_follows_the_spec
    # onnxruntime takes double thresholds with double inputs only, and compares in the input's type
    x = inputs(rng, 64, spec.n_features, np.float64 if double else np.float32)
    x_type = TensorProto.DOUBLE if double else TensorProto.FLOAT
    model = bind_rows(onnx_models.regressor(spec, transform, double, x_type), 64)
    want = onnxruntime(model, x)
    # PROBIT's erfinv approximation subtracts two floats near 4.3 for scores near 0.5: one float
    # step there is 1e-3 of the result, and onnxruntime's compiled order of operations (FMA)
    # rounds differently from any other (seed 1: 0.0314174 against 0.0314326)
    atol = 1e-4 if transform == "PROBIT" else 1e-5
    np.testing.assert_allclose(ours(model, x), want, rtol=1e-5, atol=atol, err_msg=f"seed {seed}")


@PROPERTY
@given(seed=st.integers(0, 2**16), n_targets=st.integers(1, 3), aggregate=st.sampled_from(["sum", "average", "min",
       "max"]), transform=st.sampled_from([0, 1, 3, 4]), double=st.booleans())
def test_opset5_tree_ensemble_matches_onnxruntime(seed: int, n_targets: int, aggregate: str, transform: int,
                                                  double: bool) -> None:
    rng = rng_for(seed)
    spec = random_spec(rng, EVERY, n_trees=int(rng.integers(1, 9)), depth=int(rng.integers(1, 6)),
                       n_targets=n_targets, aggregate=aggregate)
    # as in test_regressor_matches_onnxruntime; and opset 5's leaves give one target each, so a
    # document's targets are often untouched, which onnxruntime's softmax treats apart (no spec says so)
    transform = transform if transform in (0, 4) else 0
    # onnxruntime takes whole numbers only as set members
    spec = replace(spec, trees=tuple(replace(t, nodes=tuple(replace(n, members=tuple(float(np.round(v)) for v in
                                                                                       n.members)) for n in t.nodes))
                                     for t in spec.trees))
    x_type = TensorProto.DOUBLE if double else TensorProto.FLOAT
    # whole numbers (ties with members and thresholds) and NaN: onnxruntime finds fractions in
    # sets they are not in (test_set_membership_follows_the_spec)
    x = rng.choice(np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, np.nan]), size=(64, spec.n_features))
    x = x.astype(np.float64 if double else np.float32)
    model = bind_rows(onnx_models.tree_ensemble(spec, transform, x_type), 64)
    want = onnxruntime(model, x)
    got = ours(model, x)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"seed {seed}")


def test_single_target_logistic_follows_the_spec(rng: np.random.Generator) -> None:
    """onnxruntime 1.32 leaves a single-target regressor's LOGISTIC out (its issues #26596,
    #24862); the spec applies it, and so do we: ours is the sigmoid of onnxruntime's."""
    spec = random_spec(rng, NUMERIC, n_targets=1)
    x = inputs(rng, 32, spec.n_features)
    model = bind_rows(onnx_models.regressor(spec, "LOGISTIC"), 32)
    plain = onnxruntime(bind_rows(onnx_models.regressor(spec, "NONE"), 32), x)
    np.testing.assert_array_equal(onnxruntime(model, x), plain)  # onnxruntime: no transform
    np.testing.assert_allclose(ours(model, x), 1 / (1 + np.exp(-plain.astype(np.float64))), rtol=1e-6, atol=1e-7)


def test_malformed_model_is_refused_naming_node_and_attribute(rng: np.random.Generator) -> None:
    spec = random_spec(rng, NUMERIC, n_features=5)
    model = bind_rows(onnx_models.regressor(spec), 8)
    node = model.graph.node[0]
    node.name = "the_forest"
    for a in node.attribute:
        if a.name == "nodes_truenodeids":
            a.ints[0] = 999
    with pytest.raises(ModelImportError) as e:
        import_model(model, name="forest.onnx")
    text = str(e.value)
    assert "forest.onnx" in text and "the_forest" in text and "nodes_truenodeids[0] = 999" in text
    model = bind_rows(onnx_models.regressor(spec), 8)
    for a in model.graph.node[0].attribute:
        if a.name == "nodes_featureids":
            a.ints[0] = 9
    with pytest.raises(ModelImportError, match="feature 9 is beyond the input's 5 features"):
        import_model(model, name="forest.onnx")
    model = bind_rows(onnx_models.regressor(spec), 8)
    for a in model.graph.node[0].attribute:
        if a.name == "nodes_modes":
            a.strings[0] = b"BRANCH_CATEGORY"  # ours, not ONNX's
    with pytest.raises(ModelImportError, match=r"nodes_modes\[0\] = 'BRANCH_CATEGORY' is not a mode of the opset"):
        import_model(model, name="forest.onnx")


def test_targets_no_leaf_reaches_get_their_base_value(rng: np.random.Generator) -> None:
    """The spec adds base_values to every target; onnxruntime 1.32 answers 0 for a target no
    leaf of a document's trees gives a weight to. We follow the spec."""
    spec = random_spec(rng, NUMERIC, n_trees=1, depth=1, n_targets=2)
    leaves = [n for n in spec.trees[0].nodes if n.mode == "LEAF"]
    spec = replace(spec, trees=(replace(spec.trees[0], nodes=tuple(
        replace(n, weights=((0, 1.5),)) if n.mode == "LEAF" else n for n in spec.trees[0].nodes)),))
    assert leaves
    x = inputs(rng, 16, spec.n_features)
    model = bind_rows(onnx_models.regressor(spec), 16)
    np.testing.assert_array_equal(onnxruntime(model, x)[:, 1], 0)
    np.testing.assert_array_equal(ours(model, x)[:, 1], np.float32(spec.base_values[1]))
    np.testing.assert_array_equal(ours(model, x)[:, 0], np.float32(np.float32(1.5) + np.float32(spec.base_values[0])))


def test_set_membership_follows_the_spec() -> None:
    """x = 0.5 is not in {-2, 0}, nor -2.27 in {2, -2}: onnxruntime 1.32 says they are (its
    sets hold whole numbers only, and it looks a fraction up by its whole part's distance from
    the smallest member); the spec and we say they are not."""
    tree = TreeSpec((NodeSpec(S.BRANCH_MEMBER, 0, 0.0, 1, 2, False, (-2.0, 0.0)),
                     NodeSpec(S.LEAF, weights=((0, 1.0),)), NodeSpec(S.LEAF, weights=((0, 2.0),))))
    spec = ForestSpec((tree,), 1, 1)
    model = bind_rows(onnx_models.tree_ensemble(spec), 4)
    x = np.array([[0.5], [-2.0], [0.0], [-1.0]], np.float32)
    np.testing.assert_array_equal(ours(model, x).ravel(), [2.0, 1.0, 1.0, 2.0])
    np.testing.assert_array_equal(onnxruntime(model, x).ravel(), [1.0, 1.0, 1.0, 2.0])
