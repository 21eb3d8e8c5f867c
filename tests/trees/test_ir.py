"""The tree_ensemble primitive in programs: built, verified, folded, and run blocked on the
numpy backend (several blocks, several workers) against the per-document walk."""

from __future__ import annotations

import numpy as np
import pytest

from cpu_fallback.backend import NumpyProgram
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
from tensor_ir.ir import Op, Role
from tensor_ir.program import Program
from tensor_ir.trees import canonical_forest
from tensor_ir.verify import verify
from tests.trees.test_forest import EVERY, NUMERIC, inputs, random_spec
from tests.trees.walker import walk


@pytest.mark.parametrize("modes", [NUMERIC, EVERY], ids=["perfect", "nodes"])
def test_blocked_and_parallel_evaluation(rng: np.random.Generator, modes: tuple[str, ...]) -> None:
    spec = random_spec(rng, modes, n_trees=30, depth=5, n_features=6, n_targets=2)
    forest = canonical_forest(spec)
    x = build.input_("attribute(x)", Role.ATTRIBUTE, (6,), CellType.FLOAT32)
    score = build.reduce(build.tree_ensemble(x, forest), "sum", None, False)
    program = Program({"s": score})
    verify(program)
    values = inputs(rng, 3000, 6)
    want = walk(spec, values, np.float32).sum(axis=1, dtype=np.float32)
    for workers in (1, 2):
        got = NumpyProgram(program, block_bytes=16 << 10, workers=workers).run({"attribute(x)": values}, 3000)["s"]
        np.testing.assert_array_equal(got, want)


def test_leading_axes_and_constant_folding(rng: np.random.Generator) -> None:
    spec = random_spec(rng, EVERY, n_features=4, n_targets=3)
    forest = canonical_forest(spec)
    values = inputs(rng, 6, 4).reshape(2, 3, 4)
    folded = build.tree_ensemble(build.constant(values), forest)
    assert folded.op is Op.CONSTANT and folded.shape == (2, 3, 3)
    np.testing.assert_array_equal(folded.value.reshape(6, 3), walk(spec, values.reshape(6, 4), np.float32))


def test_constructor_refuses_mismatched_inputs(rng: np.random.Generator) -> None:
    forest = canonical_forest(random_spec(rng, NUMERIC, n_features=5))
    with pytest.raises(IRError, match="compares float32 inputs, got float64"):
        build.tree_ensemble(build.input_("x", Role.ATTRIBUTE, (5,), CellType.FLOAT64), forest)
    with pytest.raises(IRError, match="reads 5 features, the input has 4"):
        build.tree_ensemble(build.input_("x", Role.ATTRIBUTE, (4,), CellType.FLOAT32), forest)


def test_equal_forests_are_one_subexpression(rng: np.random.Generator) -> None:
    spec = random_spec(rng, NUMERIC)
    a, b = canonical_forest(spec), canonical_forest(spec)
    assert a == b and hash(a) == hash(b) and a is not b
    x = build.input_("x", Role.ATTRIBUTE, (5,), CellType.FLOAT32)
    assert build.tree_ensemble(x, a).key() == build.tree_ensemble(x, b).key()
