"""build.py: shape, cell type and variance inference of every constructor, and the errors
it raises for ill-formed operands."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
from tensor_ir.ir import Node, Op, Role, Variance

F32 = CellType.FLOAT32
F64 = CellType.FLOAT64
I32 = CellType.INT32
I64 = CellType.INT64
BOOL = CellType.BOOL


def doc(shape: tuple[int, ...], dtype: CellType = F32, name: str = "d") -> Node:
    return build.input_(name, Role.ATTRIBUTE, shape, dtype)


def query(shape: tuple[int, ...], dtype: CellType = F32, name: str = "q") -> Node:
    return build.input_(name, Role.QUERY, shape, dtype)


def const_input(shape: tuple[int, ...], dtype: CellType = F32, name: str = "c") -> Node:
    return build.input_(name, Role.CONSTANT, shape, dtype)


# ---------------------------------------------------------------- leaves and variance


def test_inputs_take_their_variance_from_the_role() -> None:
    assert doc((2,)).variance is Variance.DOCUMENT
    assert query((2,)).variance is Variance.QUERY
    assert const_input((2,)).variance is Variance.CONSTANT
    assert doc((2,)).per_document and not query((2,)).per_document


def test_input_with_unresolved_dimension_is_refused() -> None:
    with pytest.raises(IRError, match=r"input 'x' has an unresolved dimension in shape \[2, -1\]"):
        build.input_("x", Role.ATTRIBUTE, [2, -1], F32)


def test_constant_infers_cell_type_and_is_immutable() -> None:
    c = build.constant(np.arange(6, dtype=np.int32).reshape(2, 3))
    assert (c.op, c.shape, c.dtype, c.variance) == (Op.CONSTANT, (2, 3), I32, Variance.CONSTANT)
    with pytest.raises(ValueError):
        c.value[0, 0] = 7
    with pytest.raises(AttributeError):
        c.shape = (6,)  # type: ignore[misc]
    assert build.constant([1.5], dtype=F64).dtype is F64
    assert build.scalar(True, BOOL).shape == ()


@pytest.mark.parametrize(
    "a,b,want",
    [
        (Variance.CONSTANT, Variance.CONSTANT, Variance.CONSTANT),
        (Variance.CONSTANT, Variance.QUERY, Variance.QUERY),
        (Variance.QUERY, Variance.DOCUMENT, Variance.QUERY_DOCUMENT),
        (Variance.DOCUMENT, Variance.DOCUMENT, Variance.DOCUMENT),
        (Variance.CONSTANT, Variance.DOCUMENT, Variance.DOCUMENT),
    ],
)
def test_variance_is_the_union_of_the_operands(a: Variance, b: Variance, want: Variance) -> None:
    role = {Variance.CONSTANT: Role.CONSTANT, Variance.QUERY: Role.QUERY, Variance.DOCUMENT: Role.ATTRIBUTE}
    x = build.input_("x", role[a], (2,), F32)
    y = build.input_("y", role[b], (2,), F32)
    assert build.join("add", x, y).variance is want
    assert build.matmul(build.reshape(x, (1, 2)), build.reshape(y, (2, 1))).variance is want
    assert build.concat([x, y], 0).variance is want


# ---------------------------------------------------------------- elementwise


def test_map_keeps_shape_and_predicates_give_bool() -> None:
    x = doc((2, 3))
    assert build.map_("exp", x).shape == (2, 3) and build.map_("exp", x).dtype is F32
    for fn in ("isnan", "isinf", "isposinf", "isneginf"):
        assert build.map_(fn, x).dtype is BOOL
    assert build.map_("not", doc((2,), BOOL)).dtype is BOOL


@pytest.mark.parametrize(
    "fn,x,message",
    [
        ("frobnicate", doc((2,)), "unknown unary function 'frobnicate'"),
        ("not", doc((2,)), "'not' needs bool cells, got float32"),
        ("bitwise_not", doc((2,)), "'bitwise_not' needs integer cells, got float32"),
    ],
)
def test_map_errors(fn: str, x: Node, message: str) -> None:
    with pytest.raises(IRError, match=message):
        build.map_(fn, x)


def test_join_broadcasts_and_types() -> None:
    a, b = doc((2, 1, 3)), query((4, 1))
    j = build.join("add", a, b)
    assert (j.shape, j.dtype, j.variance) == ((2, 4, 3), F32, Variance.QUERY_DOCUMENT)
    assert build.join("lt", a, b).dtype is BOOL
    assert build.join("and", doc((2,), BOOL), query((), BOOL)).shape == (2,)
    assert build.join("shift_left", doc((2,), I32), query((2,), I32)).dtype is I32


@pytest.mark.parametrize(
    "fn,a,b,message",
    [
        ("frob", doc((2,)), query((2,)), "unknown binary function 'frob'"),
        ("add", doc((2,)), query((2,), F64), "'add' joins float32 with float64; cast one side first"),
        ("and", doc((2,)), query((2,)), "'and' needs bool cells, got float32"),
        ("bitwise_or", doc((2,)), query((2,)), "'bitwise_or' needs integer cells"),
        ("shift_right", doc((2,)), query((2,)), "'shift_right' needs integer cells"),
        ("add", doc((2, 3)), query((4,)), r"shapes \[2, 3\], \[4\] cannot be broadcast together"),
    ],
)
def test_join_errors(fn: str, a: Node, b: Node, message: str) -> None:
    with pytest.raises(IRError, match=message):
        build.join(fn, a, b)


def test_select() -> None:
    s = build.select(doc((2, 1), BOOL), query((3,)), const_input((1, 3)))
    assert (s.shape, s.dtype, s.variance) == ((2, 3), F32, Variance.QUERY_DOCUMENT)
    with pytest.raises(IRError, match="select needs a bool condition, got float32"):
        build.select(doc((2,)), query((2,)), query((2,)))
    with pytest.raises(IRError, match="select branches differ in type: float32 and int32"):
        build.select(doc((2,), BOOL), query((2,)), query((2,), I32))
    with pytest.raises(IRError, match="cannot be broadcast"):
        build.select(doc((2,), BOOL), query((3,)), query((3,)))


def test_cast() -> None:
    x = doc((2,))
    assert build.cast(x, F32) is x
    c = build.cast(x, I64, saturate=False)
    assert (c.op, c.dtype, c.shape, c.attrs["to"], c.attrs["saturate"]) == (
        Op.CAST,
        I64,
        (2,),
        "INT64",
        False,
    )


# ---------------------------------------------------------------- reductions


@pytest.mark.parametrize(
    "axes,keepdims,want_axes,want_shape",
    [
        (None, False, (0, 1, 2), ()),
        (None, True, (0, 1, 2), (1, 1, 1)),
        ([-1], False, (2,), (2, 3)),
        ([2, 0, -1], True, (0, 2), (1, 3, 1)),
    ],
)
def test_reduce_normalises_axes(
    axes: list[int] | None, keepdims: bool, want_axes: tuple[int, ...], want_shape: tuple[int, ...]
) -> None:
    r = build.reduce(doc((2, 3, 4)), "sum", axes, keepdims)
    assert r.attrs["axes"] == want_axes
    assert r.shape == want_shape and r.dtype is F32 and r.per_document


@pytest.mark.parametrize("agg", ["sum", "prod", "max", "min"])
def test_reducing_one_cell_is_a_reshape(agg: str) -> None:
    x = doc((2, 1, 1))
    assert build.reduce(x, agg, [], False) is x  # no axes: nothing to reduce
    r = build.reduce(x, agg, [1, 2], False)
    assert r.op is Op.RESHAPE and r.shape == (2,) and r.inputs == (x,)
    kept = build.reduce(x, agg, [2], True)
    assert kept is x  # same shape: the reshape is no node at all
    folded = build.reduce(build.constant(np.array([[-2.5]], np.float32)), agg, None, False)
    assert folded.op is Op.CONSTANT and float(folded.attrs["value"].array) == -2.5


@pytest.mark.parametrize(
    "x,agg,axes,message",
    [
        (doc((2,)), "mean", None, "unknown aggregation 'mean'"),
        (doc((2,), BOOL), "sum", None, "cannot sum bool cells"),
        (doc((2, 3)), "max", [2], "axis 2 is out of range for rank 2"),
        (doc((2, 3)), "max", [-3], "axis -3 is out of range for rank 2"),
        (doc((2, 0), I32), "max", [1], "max over an empty axis of int32 cells has no identity"),
    ],
)
def test_reduce_errors(x: Node, agg: str, axes: list[int] | None, message: str) -> None:
    with pytest.raises(IRError, match=message):
        build.reduce(x, agg, axes, False)


def test_reduce_over_an_empty_float_axis_is_allowed() -> None:
    assert build.reduce(doc((2, 0)), "max", [1], False).shape == (2,)


def test_arg_reduce_and_scan() -> None:
    a = build.arg_reduce(doc((2, 3)), "argmax", -1, True, False)
    assert (a.shape, a.dtype, a.attrs["axis"]) == ((2, 1), I64, 1)
    assert build.arg_reduce(doc((2, 3)), "argmin", 0, False, True).shape == (3,)
    with pytest.raises(IRError, match="unknown arg aggregation 'argmed'"):
        build.arg_reduce(doc((2,)), "argmed", 0, False, False)
    with pytest.raises(IRError, match="argmax over an empty axis"):
        build.arg_reduce(doc((2, 0)), "argmax", 1, False, False)
    s = build.scan(doc((2, 3), I32), "prod", -2, True, False)
    assert (s.shape, s.dtype, s.attrs["axis"]) == ((2, 3), I32, 0)
    with pytest.raises(IRError, match="unknown scan aggregation 'max'"):
        build.scan(doc((2,)), "max", 0, False, False)


# ---------------------------------------------------------------- matmul


@pytest.mark.parametrize(
    "a,b,want",
    [((2, 3), (3, 4), (2, 4)), ((5, 2, 3), (3, 4), (5, 2, 4)), ((2, 1, 2, 3), (7, 3, 1), (2, 7, 2, 1))],
)
def test_matmul_shapes(a: tuple[int, ...], b: tuple[int, ...], want: tuple[int, ...]) -> None:
    m = build.matmul(doc(a), query(b))
    assert (m.shape, m.dtype, m.variance) == (want, F32, Variance.QUERY_DOCUMENT)


@pytest.mark.parametrize(
    "a,b,message",
    [
        (doc((3,)), query((3, 4)), r"matmul needs rank >= 2 operands, got \[3\] and \[3, 4\]"),
        (doc((2, 3)), query((3, 4), F64), "matmul of float32 with float64; cast one side first"),
        (doc((2, 3)), query((4, 4)), r"matmul inner dimensions differ: \[2, 3\] @ \[4, 4\]"),
        (doc((2, 2, 3)), query((3, 3, 4)), "cannot be broadcast"),
    ],
)
def test_matmul_errors(a: Node, b: Node, message: str) -> None:
    with pytest.raises(IRError, match=message):
        build.matmul(a, b)


# ---------------------------------------------------------------- structural


def test_reshape() -> None:
    x = doc((2, 3))
    assert build.reshape(x, (2, 3)) is x
    assert build.reshape(x, (3, 1, 2)).shape == (3, 1, 2)
    with pytest.raises(IRError, match="has a negative dimension"):
        build.reshape(x, (-1, 3))
    with pytest.raises(IRError, match=r"cannot reshape \[2, 3\] \(6 cells\) to \[4\]"):
        build.reshape(x, (4,))


def test_transpose_and_broadcast() -> None:
    x = doc((2, 3, 4))
    assert build.transpose(x, (0, 1, 2)) is x
    assert build.transpose(x, (2, 0, 1)).shape == (4, 2, 3)
    with pytest.raises(IRError, match=r"transpose perm \[0, 0, 1\] is not a permutation of rank 3"):
        build.transpose(x, (0, 0, 1))
    y = query((3, 1))
    assert build.broadcast(y, (3, 1)) is y
    assert build.broadcast(y, (2, 3, 5)).shape == (2, 3, 5)
    with pytest.raises(IRError, match=r"\[3, 1\].*\[4, 5\].*broadcast"):
        build.broadcast(y, (4, 5))
    with pytest.raises(IRError, match=r"cannot broadcast \[3, 1\] to \[1\]"):
        build.broadcast(y, (1,))


def test_concat() -> None:
    a, b = doc((2, 3)), query((2, 1))
    c = build.concat([a, b], -1)
    assert (c.shape, c.attrs["axis"], c.variance) == ((2, 4), 1, Variance.QUERY_DOCUMENT)
    assert build.concat([a], 0) is a
    with pytest.raises(IRError, match="concat of nothing"):
        build.concat([], 0)
    with pytest.raises(IRError, match="differ in rank or cell type"):
        build.concat([a, query((2, 3), F64)], 0)
    with pytest.raises(IRError, match="differ in rank or cell type"):
        build.concat([a, query((6,))], 0)
    with pytest.raises(IRError, match=r"concat along axis 0 of mismatched shapes \[2, 3\], \[2, 1\]"):
        build.concat([a, b], 0)
    with pytest.raises(IRError, match="axis 2 is out of range for rank 2"):
        build.concat([a, b], 2)


@pytest.mark.parametrize(
    "starts,stops,steps,want",
    [
        ([0, 1], [2, 3], [1, 1], (2, 2)),
        ([-1, 0], [-100, 5], [-1, 2], (3, 3)),
        ([5, 0], [0, 5], [1, 1], (0, 5)),
        ([-100, 0], [0, 5], [-1, 1], (0, 5)),
        ([0, 0], [100, 100], [1, 1], (3, 5)),
    ],
)
def test_slice_shapes_and_normal_form(
    starts: list[int], stops: list[int], steps: list[int], want: tuple[int, ...]
) -> None:
    x = doc((3, 5))
    s = build.slice_(x, starts, stops, steps)
    assert s.shape == want
    if s is x:
        return
    # normal form is stable: slicing again with the stored numbers gives the same node
    again = build.slice_(x, s.attrs["starts"], s.attrs["stops"], s.attrs["steps"])
    assert again.shape == s.shape and again.attrs == s.attrs
    for d, a, b, c in zip(x.shape, s.attrs["starts"], s.attrs["stops"], s.attrs["steps"], strict=True):
        assert len(range(d)[a:b:c]) == len(range(*slice(a, b, c).indices(d)))


def test_slice_of_everything_is_the_operand() -> None:
    x = doc((3, 5))
    assert build.slice_(x, [0, -100], [3, 100], [1, 1]) is x


def test_slice_errors() -> None:
    x = doc((3, 5))
    with pytest.raises(IRError, match="slice needs one start, stop and step per axis of rank 2"):
        build.slice_(x, [0], [1], [1])
    with pytest.raises(IRError, match="slice step of 0"):
        build.slice_(x, [0, 0], [1, 1], [1, 0])


def test_pad() -> None:
    x = doc((3, 4))
    p = build.pad(x, [(1, 2), (-1, 0)], "constant", 0.5)
    assert p.shape == (6, 3) and p.attrs["pads"] == ((1, 2), (-1, 0))
    with pytest.raises(IRError, match="unknown pad mode 'mirror'"):
        build.pad(x, [(0, 0), (0, 0)], "mirror")
    with pytest.raises(IRError, match=r"pad needs \(before, after\) for each of 2 axes"):
        build.pad(x, [(0, 0)], "constant")
    with pytest.raises(IRError, match="padding -2,-2 removes more than the 3 cells of an axis"):
        build.pad(x, [(-2, -2), (0, 0)], "constant")
    with pytest.raises(IRError, match="cannot reflect-pad an empty axis"):
        build.pad(doc((0, 2)), [(1, 0), (0, 0)], "reflect")


# ---------------------------------------------------------------- indexing


def test_gather_shapes_and_errors() -> None:
    x = doc((4, 5, 6))
    g = build.gather(x, query((2, 3), I64), -2)
    assert (g.shape, g.attrs["axis"], g.dtype, g.variance) == ((4, 2, 3, 6), 1, F32, Variance.QUERY_DOCUMENT)
    assert build.gather(x, query((), I32), 0).shape == (5, 6)
    with pytest.raises(IRError, match="gather indices must be integers, got float32"):
        build.gather(x, query((2,)), 0)
    with pytest.raises(IRError, match="axis 3 is out of range for rank 3"):
        build.gather(x, query((2,), I64), 3)


def test_gather_elements_and_nd() -> None:
    x = doc((3, 4))
    assert build.gather_elements(x, query((3, 2), I64), 1).shape == (3, 2)
    with pytest.raises(IRError, match="gather_elements indices rank 1 differs from data rank 2"):
        build.gather_elements(x, query((2,), I64), 0)
    with pytest.raises(IRError, match="gather_elements indices must be integers"):
        build.gather_elements(x, query((3, 2), BOOL), 0)
    y = doc((3, 4, 5))
    assert build.gather_nd(y, query((2, 2), I64), 0).shape == (2, 5)
    assert build.gather_nd(y, query((3, 1), I64), 1).shape == (3, 5)
    assert build.gather_nd(y, query((3, 7, 2), I64), 1).shape == (3, 7)
    with pytest.raises(IRError, match="gather_nd index depth 3 exceeds data rank 3 less 1 batch dims"):
        build.gather_nd(y, query((3, 3), I64), 1)
    with pytest.raises(IRError, match="gather_nd batch dimensions of data and indices differ"):
        build.gather_nd(y, query((2, 1), I64), 1)


def test_scatter() -> None:
    x = doc((3, 4))
    s = build.scatter_elements(x, query((3, 2), I64), query((3, 2)), -1, "add")
    assert (s.shape, s.attrs["axis"], s.variance) == ((3, 4), 1, Variance.QUERY_DOCUMENT)
    with pytest.raises(IRError, match="unknown scatter reduction 'avg'"):
        build.scatter_elements(x, query((3, 2), I64), query((3, 2)), 1, "avg")
    with pytest.raises(IRError, match="must have the data's rank and one shape"):
        build.scatter_elements(x, query((3, 2), I64), query((3, 1)), 1, "none")
    with pytest.raises(IRError, match="updates differ in cell type"):
        build.scatter_elements(x, query((3, 2), I64), query((3, 2), F64), 1, "none")
    assert build.scatter_nd(x, query((2, 1), I64), query((2, 4)), "none").shape == (3, 4)
    with pytest.raises(IRError, match=r"scatter_nd updates shape \[2, 3\] should be \[2, 4\]"):
        build.scatter_nd(x, query((2, 1), I64), query((2, 3)), "none")
    with pytest.raises(IRError, match="scatter_nd indices must be integers"):
        build.scatter_nd(x, query((2, 1)), query((2, 4)), "none")


def test_topk() -> None:
    t = build.topk(doc((3, 5)), 2, -1, True)
    assert (t.shape, t.dtype, t.attrs["axis"]) == ((3, 2), I64, 1)
    with pytest.raises(IRError, match=r"topk k=6 is outside 0..5"):
        build.topk(doc((3, 5)), 6, 1, True)


# ---------------------------------------------------------------- eager folding


def test_constant_operands_fold_at_once() -> None:
    a = build.constant(np.array([1.0, 2.0], dtype=np.float32))
    b = build.constant(np.array([[10.0], [20.0]], dtype=np.float32))
    s = build.join("add", a, b, label="sum")
    assert s.op is Op.CONSTANT and s.label == "sum"
    np.testing.assert_array_equal(s.value, [[11, 12], [21, 22]])
    r = build.reduce(s, "max", [0], False)
    assert r.op is Op.CONSTANT and r.dtype is F32
    np.testing.assert_array_equal(r.value, [21, 22])
    cmp_ = build.join("gt", a, build.scalar(1.5, F32))
    assert cmp_.op is Op.CONSTANT and cmp_.dtype is BOOL and cmp_.value.tolist() == [False, True]


def test_constant_role_inputs_do_not_fold() -> None:
    c = const_input((2,))
    m = build.map_("exp", c)
    assert m.op is Op.MAP and m.variance is Variance.CONSTANT


def test_half_precision_folding_keeps_the_cell_type() -> None:
    a = build.constant(np.array([1.5, 2.25], dtype=np.float16))
    s = build.join("mul", a, a)
    assert s.op is Op.CONSTANT and s.dtype is CellType.FLOAT16 and s.value.dtype == np.float16
    np.testing.assert_array_equal(s.value.astype(np.float64), [2.25, 5.0625])


@pytest.mark.parametrize(
    "maker",
    [
        lambda: build.input_("x", Role.ATTRIBUTE, (2,), F32),
        lambda: build.constant(np.zeros(2, dtype=np.float32)),
    ],
)
def test_nodes_are_immutable(maker: Any) -> None:
    node = maker()
    with pytest.raises(AttributeError, match="immutable"):
        node.label = "renamed"
