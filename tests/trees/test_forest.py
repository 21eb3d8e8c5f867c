"""The canonical forest and its numpy evaluation against a plain per-document walk of the
file's own comparisons (tests/trees/walker.py), on random forests with every mode, NaN
inputs, inputs exactly at thresholds, and both layouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tensor_ir.dtypes import CellType
from tensor_ir.trees import ForestSpec, MalformedForest, NodeSpec, TreeSpec, canonical_forest, evaluate
from tensor_ir.trees import spec as S
from tests.trees.walker import walk

NUMERIC = (S.BRANCH_LEQ, S.BRANCH_LT, S.BRANCH_GTE, S.BRANCH_GT)
EVERY = (*NUMERIC, S.BRANCH_EQ, S.BRANCH_NEQ, S.BRANCH_MEMBER)
VALUES = (-1.5, -0.25, 0.0, 0.5, 1.0, 2.0)  # thresholds and inputs drawn from one set: exact ties


def random_tree(rng: np.random.Generator, depth: int, n_features: int, n_targets: int, modes: tuple[str, ...],
                name: str, every_target: bool = False) -> TreeSpec:
    nodes: list[NodeSpec] = []

    def grow(d: int) -> int:
        me = len(nodes)
        nodes.append(NodeSpec(S.LEAF))
        if d == depth or (d > 0 and rng.random() < 0.25):
            count = n_targets if every_target else rng.integers(1, n_targets + 1)
            weights = tuple((int(t), float(rng.normal())) for t in rng.choice(n_targets, count, replace=False))
            nodes[me] = NodeSpec(S.LEAF, weights=weights, name=f"node {me}")
            return me
        mode = str(rng.choice(modes))
        t = float(rng.choice(VALUES)) + (float(rng.normal()) * 1e-3 if rng.random() < 0.3 else 0.0)
        members = tuple(float(v) for v in rng.choice(VALUES, 2, replace=False)) if mode == S.BRANCH_MEMBER else ()
        left = grow(d + 1)
        right = grow(d + 1)
        nodes[me] = NodeSpec(mode, int(rng.integers(n_features)), t, left, right, bool(rng.random() < 0.5),
                             members, name=f"node {me}")
        return me

    grow(0)
    return TreeSpec(tuple(nodes), 0, name)


def random_spec(rng: np.random.Generator, modes: tuple[str, ...], n_trees: int = 7, depth: int = 4,
                n_features: int = 5, n_targets: int = 1, aggregate: str = "sum",
                input_type: CellType = CellType.FLOAT32, accumulate: CellType = CellType.FLOAT32,
                every_target: bool = False) -> ForestSpec:
    trees = tuple(random_tree(rng, depth, n_features, n_targets, modes, f"tree {k}", every_target)
                  for k in range(n_trees))
    base = tuple(float(v) for v in rng.normal(size=n_targets))
    return ForestSpec(trees, n_features, n_targets, input_type, accumulate, aggregate, base, "random.onnx")


def inputs(rng: np.random.Generator, n: int, n_features: int, dtype: Any = np.float32) -> np.ndarray[Any, Any]:
    x = rng.choice(np.array([*VALUES, np.nan, 0.7, -3.0]), size=(n, n_features)).astype(dtype)
    x[: n // 2] += rng.normal(size=(n // 2, n_features)).astype(dtype)  # and values between them
    return x


@pytest.mark.parametrize("aggregate", ["sum", "average", "min", "max"])
@pytest.mark.parametrize("modes", [NUMERIC, EVERY], ids=["numeric", "every"])
def test_random_forests_match_the_walk(rng: np.random.Generator, modes: tuple[str, ...], aggregate: str) -> None:
    for _ in range(5):
        spec = random_spec(rng, modes, n_targets=int(rng.integers(1, 4)), aggregate=aggregate)
        forest = canonical_forest(spec)
        assert (forest.layout == "perfect") == (modes == NUMERIC)
        x = inputs(rng, 300, spec.n_features)
        np.testing.assert_array_equal(evaluate(forest, x), walk(spec, x, np.float32))


def test_perfect_and_node_layouts_agree(rng: np.random.Generator) -> None:
    spec = random_spec(rng, NUMERIC, n_trees=20, depth=6)
    forest = canonical_forest(spec)
    assert forest.perfect is not None
    x = inputs(rng, 500, spec.n_features)
    nodes_only = canonical_forest(spec)
    object.__setattr__(nodes_only, "perfect", None)
    np.testing.assert_array_equal(evaluate(forest, x), evaluate(nodes_only, x))


def test_double_thresholds_against_float_inputs_decide_as_in_double(rng: np.random.Generator) -> None:
    """A double threshold between two floats: x compared in double (as onnxruntime does with
    double thresholds) must equal the canonical float threshold's decision, for LEQ and LT."""
    t = float(np.float32(0.1)) + 1e-12  # just above the float nearest 0.1
    for mode in NUMERIC:
        tree = TreeSpec((NodeSpec(mode, 0, t, 1, 2), NodeSpec(S.LEAF, weights=((0, 1.0),)),
                         NodeSpec(S.LEAF, weights=((0, 2.0),))))
        spec = ForestSpec((tree,), 1, 1)
        x = np.array([[np.float32(0.1)], [np.nextafter(np.float32(0.1), np.float32(1))],
                      [np.nextafter(np.float32(0.1), np.float32(0))]], np.float32)
        np.testing.assert_array_equal(evaluate(canonical_forest(spec), x), walk(spec, x, float), err_msg=mode)


def test_infinite_thresholds() -> None:
    x = np.array([[-np.inf], [np.inf], [0.0], [np.nan]], np.float32)
    for mode in NUMERIC:
        for t in (-np.inf, np.inf):
            tree = TreeSpec((NodeSpec(mode, 0, t, 1, 2), NodeSpec(S.LEAF, weights=((0, 1.0),)),
                             NodeSpec(S.LEAF, weights=((0, 2.0),))))
            spec = ForestSpec((tree,), 1, 1)
            np.testing.assert_array_equal(evaluate(canonical_forest(spec), x), walk(spec, x, float),
                                          err_msg=f"{mode} {t}")


def test_double_forest(rng: np.random.Generator) -> None:
    spec = random_spec(rng, EVERY, input_type=CellType.FLOAT64, accumulate=CellType.FLOAT64, n_targets=2)
    x = inputs(rng, 200, spec.n_features, np.float64)
    np.testing.assert_array_equal(evaluate(canonical_forest(spec), x), walk(spec, x, float))


def test_categories_truncate_toward_zero() -> None:
    tree = TreeSpec((NodeSpec(S.BRANCH_CATEGORY, 0, 0.0, 1, 2, False, (0.0, 3.0)),
                     NodeSpec(S.LEAF, weights=((0, 1.0),)), NodeSpec(S.LEAF, weights=((0, 2.0),))))
    x = np.array([[0.0], [-0.5], [3.9], [2.9], [-1.0], [np.nan], [4.0]], np.float64)
    got = evaluate(canonical_forest(ForestSpec((tree,), 1, 1, CellType.FLOAT64, CellType.FLOAT64)), x)
    np.testing.assert_array_equal(got.ravel(), [1, 1, 1, 2, 2, 2, 2])


def test_sums_run_in_tree_order_in_float32() -> None:
    """1e8 + 1 - 1e8 in float32, tree by tree, is 0; any other order gives 1 or more."""
    leaves = [1e8, 1.0, 1.0, 1.0, -1e8]
    trees = tuple(TreeSpec((NodeSpec(S.LEAF, weights=((0, w),)),)) for w in leaves)
    f = canonical_forest(ForestSpec(trees, 1, 1))
    assert evaluate(f, np.zeros((3, 1), np.float32)).ravel().tolist() == [0.0, 0.0, 0.0]


def malformed(**change: Any) -> ForestSpec:
    root = dict(mode=S.BRANCH_LEQ, feature=0, threshold=0.5, true_child=1, false_child=2, name="node id 0")
    root.update(change)
    tree = TreeSpec((NodeSpec(**root), NodeSpec(S.LEAF, weights=((0, 1.0),), name="node id 1"),
                     NodeSpec(S.LEAF, weights=((0, 2.0),), name="node id 2")), name="tree 4")
    return ForestSpec((tree,), 3, 1, model="bad.onnx")


@pytest.mark.parametrize("change,words", [
    ({"true_child": 7}, ["true child 7 is out of range"]),
    ({"false_child": 0}, ["false child", "makes a cycle"]),
    ({"false_child": 1}, ["node with two parents"]),
    ({"feature": 3}, ["feature 3 is beyond the input's 3 features"]),
    ({"mode": "BRANCH_SOMETIMES"}, ["mode 'BRANCH_SOMETIMES'"]),
])
def test_malformed_forests_are_refused_naming_model_tree_and_node(change: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(MalformedForest) as e:
        canonical_forest(malformed(**change))
    text = str(e.value)
    for w in ["bad.onnx", "tree 4", "node id 0", *words]:
        assert w in text
