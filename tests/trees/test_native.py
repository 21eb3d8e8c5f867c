"""The numpy backend's compiled walk (cpu_fallback/forest_native.py) against numpy's own walk,
bit for bit, inside blocked programs; skipped with the reason where no C++ compiler exists."""

from __future__ import annotations

import numpy as np
import pytest

from cpu_fallback import forest_native
from cpu_fallback.backend import NumpyProgram
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.program import Program
from tensor_ir.trees import canonical_forest, evaluate
from tests.trees.test_forest import EVERY, NUMERIC, inputs, random_spec

pytestmark = pytest.mark.skipif(forest_native.library() is None, reason="no C++ compiler for the native tree walk")


@pytest.mark.parametrize("aggregate", ["sum", "average"])
@pytest.mark.parametrize("double", [False, True])
def test_native_walk_equals_numpy(rng: np.random.Generator, aggregate: str, double: bool) -> None:
    t = CellType.FLOAT64 if double else CellType.FLOAT32
    forest = canonical_forest(random_spec(rng, NUMERIC, n_trees=60, depth=7, n_features=9, aggregate=aggregate,
                                          input_type=t, accumulate=t))
    assert forest_native.applies(forest)
    x = inputs(rng, 1000, forest.n_features, t.np_dtype)
    got = forest_native.native_walk(forest, x)
    assert got is not None
    np.testing.assert_array_equal(got, evaluate(forest, x))


def test_blocked_programs_take_the_native_walk_and_keep_numpys_scores(rng: np.random.Generator) -> None:
    forest = canonical_forest(random_spec(rng, NUMERIC, n_trees=30, depth=6, n_features=7))
    x = build.input_("attribute(x)", Role.ATTRIBUTE, (7,), CellType.FLOAT32)
    program = Program({"s": build.tree_ensemble(x, forest)})
    values = inputs(rng, 5000, 7)
    for workers in (1, 2):
        got = NumpyProgram(program, block_bytes=32 << 10, workers=workers).run({"attribute(x)": values}, 5000)["s"]
        np.testing.assert_array_equal(got, evaluate(forest, values))


def test_forests_it_does_not_take_fall_back(rng: np.random.Generator) -> None:
    assert not forest_native.applies(canonical_forest(random_spec(rng, EVERY)))  # sets: the node walk
    assert not forest_native.applies(canonical_forest(random_spec(rng, NUMERIC, n_targets=2)))
    assert not forest_native.applies(canonical_forest(random_spec(rng, NUMERIC, aggregate="max")))


def test_infinite_and_never_true_thresholds_with_nan_inputs() -> None:
    """x <= +inf with NaN going false, and x < -inf (never true): the copies of isnan(x) decide."""
    from tensor_ir.trees import ForestSpec, NodeSpec, TreeSpec
    from tensor_ir.trees import spec as S
    from tests.trees.walker import walk

    leaf = (NodeSpec(S.LEAF, weights=((0, 1.0),)), NodeSpec(S.LEAF, weights=((0, 2.0),)))
    trees = tuple(TreeSpec((NodeSpec(mode, 0, t, 1, 2, mt), *leaf))
                  for mode, t in ((S.BRANCH_LEQ, np.inf), (S.BRANCH_LT, -np.inf), (S.BRANCH_GT, np.inf))
                  for mt in (False, True))
    spec = ForestSpec(trees, 1, 1)
    forest = canonical_forest(spec)
    x = np.array([[np.inf], [-np.inf], [np.nan], [0.0], [3.0]], np.float32)
    got = forest_native.native_walk(forest, x)
    assert got is not None
    np.testing.assert_array_equal(got, walk(spec, x, float))
    np.testing.assert_array_equal(evaluate(forest, x), walk(spec, x, float))
