"""split_monotone_tail: the non-decreasing steps at the end of a score become a tail program
over the head's value; head then tail computes what the whole program does."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node, Op, Role
from tensor_ir.passes.monotone_tail import HEAD_INPUT, split_monotone_tail
from tensor_ir.program import Program
from tensor_ir.verify import verify
from tests.conftest import SEED

F32, F64 = CellType.FLOAT32, CellType.FLOAT64
W = np.linspace(-1.0, 1.0, 16, dtype=np.float32).reshape(16, 1)


def doc() -> Node:
    return build.input_("attribute(doc)", Role.ATTRIBUTE, (16,), F32)


def dot(x: Node) -> Node:
    """doc . w as one cell of shape [1, 1], as the ONNX importer builds a MatMul."""
    return build.matmul(build.reshape(x, (1, 16)), build.constant(W))


def score(x: Node) -> Node:
    """What `sum(onnx(model))` gives: a float64 scalar per document."""
    return build.reduce(build.cast(x, F64), "sum", None, False)


def lightweight() -> tuple[Program, Node]:
    g = dot(doc())
    y = build.map_("sigmoid", build.join("add", g, build.constant(np.array([0.1], np.float32))))
    return Program({"s": score(y)}), g


def ops(p: Program) -> list[str]:
    return [n.op.label for n in p.nodes() if n.op not in (Op.INPUT, Op.CONSTANT)]


def test_lightweight_peels_add_sigmoid_cast_reduce() -> None:
    program, g = lightweight()
    split = split_monotone_tail(program, "s")
    assert split is not None
    head, tail = split
    assert head.outputs["s"] is g and ops(head) == ["reshape", "matmul"]
    assert ops(tail) == ["join", "map", "cast", "reshape"]  # sum over one cell is a reshape
    assert set(tail.inputs) == {HEAD_INPUT} and tail.inputs[HEAD_INPUT].role is Role.ATTRIBUTE
    verify(head)
    verify(tail)
    docs = np.random.default_rng(SEED).standard_normal((50, 16)).astype(np.float32)
    cpu = NumpyBackend()
    g_values = cpu.run(head, {"attribute(doc)": docs}, 50)["s"]
    got = cpu.run(tail, {HEAD_INPUT: g_values}, 50)["s"]
    np.testing.assert_array_equal(got, cpu.run(program, {"attribute(doc)": docs}, 50)["s"])
    # by hand, in float32 as the model computes
    want = 1 / (1 + np.exp(-(docs @ W + np.float32(0.1))))
    np.testing.assert_allclose(got, want.reshape(50), rtol=1e-6)


def test_query_shift_and_positive_scale_are_peeled_and_fed() -> None:
    g = dot(doc())
    q = build.input_("query(q)", Role.QUERY, (), F32)
    halved = build.join("div", build.join("sub", g, q), build.scalar(2.0, F32))
    out = score(build.join("mul", build.scalar(3.0, F32), build.map_("exp", halved)))
    split = split_monotone_tail(Program({"s": out}), "s")
    assert split is not None
    head, tail = split
    assert head.outputs["s"] is g
    assert set(tail.inputs) == {HEAD_INPUT, "query(q)"}
    cpu = NumpyBackend()
    docs = np.random.default_rng(SEED).standard_normal((20, 16)).astype(np.float32)
    g_values = cpu.run(head, {"attribute(doc)": docs}, 20)["s"]
    got = cpu.run(tail, {HEAD_INPUT: g_values, "query(q)": np.float32(0.5)}, 20)["s"]
    np.testing.assert_allclose(got, 3 * np.exp((docs @ W - 0.5) / 2).reshape(20), rtol=1e-6)


@pytest.mark.parametrize("last", [
    lambda g: build.map_("sin", g),
    lambda g: build.map_("log", g),  # NaN below 0
    lambda g: build.join("mul", g, build.scalar(np.inf, F32)),  # inf * 0 is NaN
    lambda g: build.join("mul", g, build.input_("query(w)", Role.QUERY, (), F32)),  # any sign
    lambda g: build.join("div", build.scalar(1.0, F32), g),  # g may be of either sign
    lambda g: build.map_("acos", g),  # NaN outside [-1, 1]
    lambda g: build.map_("sqrt", g),  # NaN below 0
    lambda g: build.join("add", g, build.map_("exp", dot(build.input_("attribute(e)", Role.ATTRIBUTE, (16,), F32)))),
    lambda g: build.cast(g, CellType.FLOAT16),  # narrowing
])
def test_a_step_that_may_reverse_the_order_is_not_peeled(last: Callable[[Node], Node]) -> None:
    g = dot(doc())
    out = last(g)
    assert split_monotone_tail(Program({"s": out}), "s") is None
    # below a peelable step, the peel stops at it: it is the head
    top = build.map_("sigmoid", out)
    split = split_monotone_tail(Program({"s": top}), "s")
    assert split is not None and split[0].outputs["s"] is out and ops(split[1]) == ["map"]


def test_no_split_unless_the_head_is_one_float_cell_per_document() -> None:
    v = build.input_("attribute(v)", Role.ATTRIBUTE, (4,), F32)
    # the score sums four cells: the last step is not monotone in one cell
    assert split_monotone_tail(Program({"s": score(build.map_("exp", v))}), "s") is None
    # integers wrap around, so an integer head's cast is not peeled
    i = build.input_("attribute(i)", Role.ATTRIBUTE, (), CellType.INT32)
    assert split_monotone_tail(Program({"s": build.cast(i, F64)}), "s") is None
    # a score that is the same for every document has nothing to split
    assert split_monotone_tail(Program({"s": build.scalar(1.0, F64)}), "s") is None
    # a bare attribute is a head too: the tail is all the work
    a = build.input_("attribute(a)", Role.ATTRIBUTE, (), F32)
    split = split_monotone_tail(Program({"s": score(build.map_("relu", a))}), "s")
    assert split is not None and split[0].outputs["s"] is a


def _clamp(g: Node, lo: float, hi: float) -> Node:
    return build.join("max", build.join("min", g, build.scalar(hi, F32)), build.scalar(lo, F32))


def _closeness(distance: Node) -> Node:
    return build.join("div", build.scalar(1.0, F32), build.join("add", build.scalar(1.0, F32), distance))


@pytest.mark.parametrize("name, last, steps, negated", [
    ("negative scale", lambda g: build.join("mul", g, build.scalar(-2.0, F32)), 1, True),
    ("one minus", lambda g: build.join("sub", build.scalar(1.0, F32), g), 1, True),
    ("neg", lambda g: build.map_("neg", g), 1, True),
    # euclidean closeness: 1 / (1 + sqrt(max(g, 0))), non-increasing in g
    ("euclidean closeness", lambda g: _closeness(build.map_("sqrt", build.join("max", g, build.scalar(0.0, F32)))),
     4, True),
    # angular closeness: 1 / (1 + acos(clamp(g))): acos and the reciprocal, increasing overall
    ("angular closeness", lambda g: _closeness(build.map_("acos", _clamp(g, -1.0, 1.0))), 5, False),
    ("negated twice", lambda g: build.join("sub", build.scalar(0.5, F32), build.map_("neg", g)), 2, False),
])
def test_non_increasing_steps_are_peeled_with_the_head_negated(
        name: str, last: Callable[[Node], Node], steps: int, negated: bool) -> None:
    g = dot(doc())
    program = Program({"s": score(last(g))})
    split = split_monotone_tail(program, "s")
    assert split is not None, name
    head, tail = split
    verify(head)
    verify(tail)
    if negated:
        assert head.outputs["s"].op is Op.MAP and head.outputs["s"].attrs["fn"] == "neg"
        assert head.outputs["s"].inputs[0] is g
    else:
        assert head.outputs["s"] is g
    assert len(ops(tail)) == steps + 2 + negated  # the steps, the cast, the reshape of the sum, a neg
    # small enough that some of g is inside [-1, 1] and some outside, where the clamp acts
    docs = (0.3 * np.random.default_rng(SEED).standard_normal((64, 16))).astype(np.float32)
    cpu = NumpyBackend()
    h = cpu.run(head, {"attribute(doc)": docs}, 64)["s"]
    whole = cpu.run(program, {"attribute(doc)": docs}, 64)["s"]
    np.testing.assert_array_equal(cpu.run(tail, {HEAD_INPUT: h}, 64)["s"], whole)
    # the head orders documents as the score does: the tail is non-decreasing in it
    by_head = np.argsort(h.reshape(64), kind="stable")
    assert np.all(np.diff(whole.reshape(64)[by_head]) >= 0)
