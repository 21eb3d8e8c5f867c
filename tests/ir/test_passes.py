"""Passes: constant folding, binding constant inputs, common subexpressions."""

from __future__ import annotations

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
from tensor_ir.ir import Node, Op, Role, Variance
from tensor_ir.passes import bind_constants, eliminate_common_subexpressions, fold_constants
from tensor_ir.passes.rebuild import same_with_inputs
from tensor_ir.program import Program
from tensor_ir.verify import verify

F32 = CellType.FLOAT32


def ops(p: Program) -> list[Op]:
    return [n.op for n in p.nodes()]


# ---------------------------------------------------------------- fold_constants


def test_fold_turns_constant_operand_nodes_into_constants() -> None:
    d = build.input_("d", Role.ATTRIBUTE, (3,), F32)
    c = build.constant(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    # build folds eagerly, so make an unfolded node by hand, as a pass might
    exp_c = Node(Op.MAP, (c,), build.map_("exp", d).attrs, (3,), F32, Variance.CONSTANT)
    out = build.join("add", d, exp_c)
    folded = fold_constants(Program({"out": out}))
    assert Op.MAP not in ops(folded)
    (const,) = [n for n in folded.nodes() if n.op is Op.CONSTANT]
    np.testing.assert_allclose(const.value, np.exp([1.0, 2.0, 3.0]), rtol=1e-6)
    assert const.dtype is F32 and const.value.dtype == np.float32
    verify(folded)
    # the input program is left intact
    assert out.inputs[1] is exp_c


def test_fold_leaves_varying_nodes_alone() -> None:
    d = build.input_("d", Role.ATTRIBUTE, (3,), F32)
    out = build.map_("exp", d)
    p = Program({"out": out})
    assert fold_constants(p).outputs["out"] is out


# ---------------------------------------------------------------- bind_constants


def _program_with_weights() -> Program:
    d = build.input_("d", Role.ATTRIBUTE, (1, 3), F32)
    w = build.input_("w", Role.CONSTANT, (3, 2), F32)
    b = build.input_("b", Role.CONSTANT, (2,), F32)
    scaled = build.join("mul", w, build.scalar(2.0, F32))
    return Program({"out": build.join("add", build.matmul(d, scaled), build.map_("tanh", b))})


def test_bind_constants_replaces_inputs_and_folds(rng: np.random.Generator) -> None:
    p = _program_with_weights()
    w = rng.normal(size=(3, 2)).astype(np.float32)
    b = rng.normal(size=2).astype(np.float32)
    bound = bind_constants(p, {"w": w, "b": b})
    assert set(bound.inputs) == {"d"} and set(p.inputs) == {"d", "w", "b"}
    # only the matmul and the add remain; 2*w and tanh(b) were folded
    assert bound.op_histogram() == {"matmul": 1, "join": 1}
    verify(bound)
    docs = rng.normal(size=(5, 1, 3)).astype(np.float32)
    got = NumpyBackend().run(bound, {"d": docs}, 5)["out"]
    want = docs @ (2 * w) + np.tanh(b)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bind_constants_casts_to_the_input_cell_type() -> None:
    p = _program_with_weights()
    bound = bind_constants(p, {"w": np.ones((3, 2)), "b": [0.0, 0.0]})
    consts = [n for n in bound.nodes() if n.op is Op.CONSTANT]
    assert consts and all(n.value.dtype == np.float32 for n in consts)


@pytest.mark.parametrize(
    "values,message",
    [
        ({"nope": np.zeros(2)}, "program has no input 'nope'"),
        ({"d": np.zeros((1, 3))}, "input 'd' is a attribute input, not a constant"),
        ({"w": np.zeros((2, 3))}, r"constant 'w' has shape \[2, 3\], want \[3, 2\]"),
    ],
)
def test_bind_constants_errors(values: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(IRError, match=message):
        bind_constants(_program_with_weights(), values)


# ---------------------------------------------------------------- common subexpressions


def test_duplicated_subtrees_become_one_node() -> None:
    x = build.input_("x", Role.ATTRIBUTE, (2, 3), F32)

    def subtree(inp: Node) -> Node:
        return build.reduce(build.map_("exp", build.join("mul", inp, inp)), "sum", [1], False)

    # two copies built independently, and a second INPUT node for the same input
    x2 = build.input_("x", Role.ATTRIBUTE, (2, 3), F32)
    a, b = subtree(x), subtree(x2)
    assert a is not b
    p = Program({"a": a, "b": build.join("add", a, b)})
    assert p.size() == 7
    cse = eliminate_common_subexpressions(p)
    assert cse.size() == 4
    assert cse.outputs["b"].inputs[0] is cse.outputs["b"].inputs[1] is cse.outputs["a"]
    assert len([n for n in cse.nodes() if n.op is Op.INPUT]) == 1
    verify(cse)


def test_constants_with_equal_content_merge() -> None:
    x = build.input_("x", Role.ATTRIBUTE, (3,), F32)
    c1 = build.constant(np.array([1, 2, 3], dtype=np.float32), label="first")
    c2 = build.constant(np.array([1, 2, 3], dtype=np.float32), label="second copy")
    c3 = build.constant(np.array([1, 2, 4], dtype=np.float32))
    # equal bytes, different cell type: not the same constant
    c4 = build.constant(np.array([1, 2, 3], dtype=np.float32).view(np.int32))
    out = build.join(
        "add", build.join("add", build.join("mul", x, c1), build.join("mul", x, c2)), build.join("mul", x, c3)
    )
    p = Program({"out": out, "bits": build.join("add", build.cast(x, CellType.INT32), c4)})
    assert len([n for n in p.nodes() if n.op is Op.CONSTANT]) == 4
    cse = eliminate_common_subexpressions(p)
    consts = [n for n in cse.nodes() if n.op is Op.CONSTANT]
    assert len(consts) == 3
    # x*c1 and x*c2 are now one node too
    inner = cse.outputs["out"].inputs[0]
    assert inner.inputs[0] is inner.inputs[1]


def test_cse_keeps_different_attributes_apart() -> None:
    x = build.input_("x", Role.ATTRIBUTE, (2, 3), F32)
    p = Program(
        {
            "a": build.reduce(x, "sum", [0], False),
            "b": build.reduce(x, "sum", [1], False),
            "c": build.reduce(x, "max", [0], False),
            "d": build.reduce(x, "sum", [0], True),
        }
    )
    assert eliminate_common_subexpressions(p).size() == 4


def test_cse_preserves_values(rng: np.random.Generator) -> None:
    x = build.input_("x", Role.ATTRIBUTE, (4,), F32)
    q = build.input_("q", Role.QUERY, (4,), F32)
    s1 = build.join("sub", x, q)
    s2 = build.join("sub", x, q)
    out = build.reduce(build.join("mul", s1, s2), "sum", None, False)
    p = Program({"out": out})
    cse = eliminate_common_subexpressions(p)
    assert cse.size() == 3
    xs = rng.normal(size=(6, 4)).astype(np.float32)
    qs = rng.normal(size=4).astype(np.float32)
    got = NumpyBackend().run(cse, {"x": xs, "q": qs}, 6)["out"]
    np.testing.assert_allclose(got, ((xs - qs) ** 2).sum(axis=1), rtol=1e-5)


def test_same_with_inputs_reuses_unchanged_nodes() -> None:
    x = build.input_("x", Role.ATTRIBUTE, (2,), F32)
    m = build.map_("exp", x)
    assert same_with_inputs(m, (x,)) is m
    y = build.input_("y", Role.ATTRIBUTE, (2,), F32)
    m2 = same_with_inputs(m, (y,))
    assert m2 is not m and m2.inputs == (y,) and m2.attrs == m.attrs
