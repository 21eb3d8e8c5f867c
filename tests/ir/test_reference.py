"""Every primitive of tensor_ir.reference against numpy written out by hand, with the
document axis: each operand is in turn per-document (an attribute, values [N, *shape]) or
not (a query value, [*shape]); one batched evaluation of N documents must equal N
evaluations of one document done with plain numpy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import BINARY_FUNCTIONS, UNARY_FUNCTIONS, Node, Op, Role
from tensor_ir.reference import eval_node

N = 4
F32 = CellType.FLOAT32
I32 = CellType.INT32
I64 = CellType.INT64
BOOL = CellType.BOOL

Array = np.ndarray[Any, Any]
Maker = Callable[[np.random.Generator, tuple[int, ...]], Array]


@dataclass
class Operand:
    shape: tuple[int, ...]
    dtype: CellType
    make: Maker


def floats(lo: float = -3.0, hi: float = 3.0, dtype: Any = np.float32) -> Maker:
    return lambda rng, shape: rng.uniform(lo, hi, shape).astype(dtype)


def ints(lo: int, hi: int, dtype: Any = np.int32) -> Maker:
    return lambda rng, shape: rng.integers(lo, hi, shape).astype(dtype)


def nonzero_ints(lo: int, hi: int) -> Maker:
    def make(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
        v = rng.integers(lo, hi, shape).astype(np.int32)
        return np.where(v == 0, 1, v).astype(np.int32)

    return make


def bools() -> Maker:
    return lambda rng, shape: rng.random(shape) < 0.5


def with_specials() -> Maker:
    def make(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
        v = rng.uniform(-3, 3, shape).astype(np.float32)
        pick = rng.integers(0, 4, shape)
        return np.select([pick == 0, pick == 1, pick == 2], [np.nan, np.inf, -np.inf], v).astype(np.float32)

    return make


def ties(hi: int = 3) -> Maker:
    """Small integers as floats, so arg-reductions and top-k meet ties."""
    return lambda rng, shape: rng.integers(0, hi, shape).astype(np.float32)


def check(
    operands: Sequence[Operand],
    make_node: Callable[..., Node],
    by_hand: Callable[..., Array],
    rng: np.random.Generator,
    exact: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Every choice of per-document operands: batched kernel == numpy, document by document."""
    for flags in itertools.product((True, False), repeat=len(operands)):
        nodes, values = [], []
        for i, (op, per_doc) in enumerate(zip(operands, flags, strict=True)):
            role = Role.ATTRIBUTE if per_doc else Role.QUERY
            nodes.append(build.input_(f"x{i}", role, op.shape, op.dtype))
            values.append(op.make(rng, (N, *op.shape) if per_doc else op.shape))
        node = make_node(*nodes)
        assert node.op is not Op.CONSTANT and all(a is b for a, b in zip(node.inputs, nodes, strict=True)), (
            "the case must build exactly one primitive over the inputs"
        )
        assert node.per_document == any(flags)
        got = eval_node(node, values, N)
        want_shape = (N, *node.shape) if node.per_document else node.shape
        assert got.shape == want_shape, f"flags {flags}: shape {got.shape}, want {want_shape}"
        assert got.dtype == node.dtype.np_dtype, (
            f"flags {flags}: dtype {got.dtype}, want {node.dtype.np_dtype}"
        )
        for d in range(N):
            one = [v[d] if f else v for v, f in zip(values, flags, strict=True)]
            want = np.asarray(by_hand(*one))
            mine = got[d] if node.per_document else got
            assert mine.shape == want.shape, f"flags {flags} doc {d}: {mine.shape} vs {want.shape}"
            if exact or not node.dtype.is_float:
                np.testing.assert_array_equal(mine, want.astype(mine.dtype), err_msg=f"flags {flags} doc {d}")
            else:
                np.testing.assert_allclose(
                    mine.astype(np.float64),
                    want.astype(np.float64),
                    rtol=rtol,
                    atol=atol,
                    equal_nan=True,
                    err_msg=f"flags {flags} doc {d}",
                )


# ---------------------------------------------------------------- map


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


_UNARY_CASES: dict[str, tuple[Operand, Callable[[Array], Array]]] = {
    "neg": (Operand((2, 3), F32, floats()), lambda x: -x),
    "abs": (Operand((2, 3), F32, floats()), lambda x: np.where(x < 0, -x, x)),
    "sign": (Operand((2, 3), I32, ints(-3, 4)), lambda x: (x > 0).astype(np.int32) - (x < 0)),
    "exp": (Operand((2, 3), F32, floats()), lambda x: np.exp(x.astype(np.float64))),
    "log": (Operand((2, 3), F32, floats(0.1, 5)), lambda x: np.log(x.astype(np.float64))),
    "sqrt": (Operand((2, 3), F32, floats(0, 5)), lambda x: np.sqrt(x.astype(np.float64))),
    "reciprocal": (Operand((2, 3), F32, floats(0.5, 3)), lambda x: 1.0 / x.astype(np.float64)),
    "sin": (Operand((3,), F32, floats()), lambda x: np.sin(x.astype(np.float64))),
    "cos": (Operand((3,), F32, floats()), lambda x: np.cos(x.astype(np.float64))),
    "tan": (Operand((3,), F32, floats(-1, 1)), lambda x: np.tan(x.astype(np.float64))),
    "asin": (Operand((3,), F32, floats(-0.9, 0.9)), lambda x: np.arcsin(x.astype(np.float64))),
    "acos": (Operand((3,), F32, floats(-0.9, 0.9)), lambda x: np.arccos(x.astype(np.float64))),
    "atan": (Operand((3,), F32, floats()), lambda x: np.arctan(x.astype(np.float64))),
    "sinh": (Operand((3,), F32, floats()), lambda x: np.sinh(x.astype(np.float64))),
    "cosh": (Operand((3,), F32, floats()), lambda x: np.cosh(x.astype(np.float64))),
    "tanh": (Operand((3,), F32, floats()), lambda x: np.tanh(x.astype(np.float64))),
    "asinh": (Operand((3,), F32, floats()), lambda x: np.arcsinh(x.astype(np.float64))),
    "acosh": (Operand((3,), F32, floats(1.1, 4)), lambda x: np.arccosh(x.astype(np.float64))),
    "atanh": (Operand((3,), F32, floats(-0.9, 0.9)), lambda x: np.arctanh(x.astype(np.float64))),
    "sigmoid": (Operand((2, 3), F32, floats(-30, 30)), _sigmoid),
    "relu": (Operand((2, 3), F32, floats()), lambda x: np.where(x > 0, x, 0)),
    "erf": (Operand((2, 5), F32, floats(-4, 4)), np.vectorize(math.erf)),
    "floor": (Operand((2, 3), F32, floats()), np.floor),
    "ceil": (Operand((2, 3), F32, floats()), np.ceil),
    # ONNX Round: halves to even
    "round": (
        Operand((6,), F32, lambda rng, s: (rng.integers(-8, 8, s) / 2).astype(np.float32)),
        np.vectorize(lambda v: float(round(float(v)))),
    ),
    "not": (Operand((2, 3), BOOL, bools()), lambda x: x == False),  # noqa: E712
    "bitwise_not": (Operand((2, 3), I32, ints(-100, 100)), lambda x: -x - 1),
    "isnan": (Operand((2, 4), F32, with_specials()), lambda x: x != x),
    "isinf": (Operand((2, 4), F32, with_specials()), lambda x: (x == np.inf) | (x == -np.inf)),
    "isposinf": (Operand((2, 4), F32, with_specials()), lambda x: x == np.inf),
    "isneginf": (Operand((2, 4), F32, with_specials()), lambda x: x == -np.inf),
}


def test_every_unary_function_has_a_case() -> None:
    assert set(_UNARY_CASES) == set(UNARY_FUNCTIONS)


@pytest.mark.parametrize("fn", sorted(_UNARY_CASES))
def test_map(fn: str, rng: np.random.Generator) -> None:
    operand, by_hand = _UNARY_CASES[fn]
    check([operand], lambda x: build.map_(fn, x), by_hand, rng)


def test_map_half_precision_computes_wide(rng: np.random.Generator) -> None:
    op = Operand((3,), CellType.FLOAT16, lambda r, s: r.uniform(-2, 2, s).astype(np.float16))
    check(
        [op],
        lambda x: build.map_("exp", x),
        lambda x: np.exp(x.astype(np.float64)).astype(np.float16),
        rng,
        rtol=1e-3,
    )
    bf = Operand((3,), CellType.BFLOAT16, lambda r, s: r.uniform(-2, 2, s).astype(ml_dtypes.bfloat16))
    check([bf], lambda x: build.map_("neg", x), lambda x: -x.astype(np.float32), rng)


# ---------------------------------------------------------------- join


def _c_div(a: Array, b: Array) -> Array:
    """Integer division truncating toward zero, one cell at a time."""
    return np.vectorize(lambda x, y: int(x / y) if abs(int(x)) < 2**52 else 0)(a, b).astype(a.dtype)


_BINARY_CASES: dict[str, tuple[CellType, Maker, Maker, Callable[[Array, Array], Array]]] = {
    "add": (F32, floats(), floats(), lambda a, b: a + b),
    "sub": (F32, floats(), floats(), lambda a, b: a - b),
    "mul": (F32, floats(), floats(), lambda a, b: a * b),
    "div": (F32, floats(), floats(0.5, 2), lambda a, b: a / b),
    "pow": (F32, floats(0.1, 3), floats(-2, 2), lambda a, b: a.astype(np.float64) ** b),
    "max": (F32, floats(), floats(), lambda a, b: np.where(a > b, a, b)),
    "min": (F32, floats(), floats(), lambda a, b: np.where(a < b, a, b)),
    # mod: the sign of the divisor (Python); fmod: the sign of the dividend (C)
    "mod": (I32, ints(-20, 20), nonzero_ints(-5, 6), np.vectorize(lambda a, b: int(a) % int(b))),
    "fmod": (F32, floats(-9, 9), floats(0.5, 3), np.vectorize(math.fmod)),
    "eq": (I32, ints(0, 3), ints(0, 3), lambda a, b: a == b),
    "ne": (I32, ints(0, 3), ints(0, 3), lambda a, b: a != b),
    "lt": (I32, ints(0, 3), ints(0, 3), lambda a, b: a < b),
    "le": (I32, ints(0, 3), ints(0, 3), lambda a, b: a <= b),
    "gt": (I32, ints(0, 3), ints(0, 3), lambda a, b: a > b),
    "ge": (I32, ints(0, 3), ints(0, 3), lambda a, b: a >= b),
    "and": (BOOL, bools(), bools(), lambda a, b: a & b),
    "or": (BOOL, bools(), bools(), lambda a, b: a | b),
    "xor": (BOOL, bools(), bools(), lambda a, b: a != b),
    "bitwise_and": (I32, ints(-50, 50), ints(-50, 50), lambda a, b: a & b),
    "bitwise_or": (I32, ints(-50, 50), ints(-50, 50), lambda a, b: a | b),
    "bitwise_xor": (I32, ints(-50, 50), ints(-50, 50), lambda a, b: a ^ b),
    "shift_left": (I32, ints(0, 50), ints(0, 5), lambda a, b: a * 2**b),
    "shift_right": (I32, ints(0, 50), ints(0, 5), lambda a, b: a // 2**b),
}

_BROADCASTS = [((2, 3), (3,)), ((3,), (2, 1)), ((2, 1, 3), (4, 1)), ((), (2, 3))]


def test_every_binary_function_has_a_case() -> None:
    assert set(_BINARY_CASES) == set(BINARY_FUNCTIONS)


@pytest.mark.parametrize("shapes", _BROADCASTS, ids=str)
@pytest.mark.parametrize("fn", sorted(_BINARY_CASES))
def test_join(fn: str, shapes: tuple[tuple[int, ...], tuple[int, ...]], rng: np.random.Generator) -> None:
    ct, ma, mb, by_hand = _BINARY_CASES[fn]
    check(
        [Operand(shapes[0], ct, ma), Operand(shapes[1], ct, mb)],
        lambda a, b: build.join(fn, a, b),
        by_hand,
        rng,
    )


def test_integer_division_truncates_toward_zero(rng: np.random.Generator) -> None:
    check(
        [Operand((2, 3), I32, ints(-20, 20)), Operand((3,), I32, nonzero_ints(-5, 6))],
        lambda a, b: build.join("div", a, b),
        _c_div,
        rng,
    )


# ---------------------------------------------------------------- select, cast


@pytest.mark.parametrize(
    "shapes", [((2, 1), (3,), (2, 3)), ((), (2, 3), (2, 3)), ((4, 1, 1), (2, 1), (3,))], ids=str
)
def test_select(shapes: tuple[tuple[int, ...], ...], rng: np.random.Generator) -> None:
    ops = [
        Operand(shapes[0], BOOL, bools()),
        Operand(shapes[1], F32, floats()),
        Operand(shapes[2], F32, floats()),
    ]
    check(ops, build.select, lambda c, a, b: np.where(c, a, b), rng)


_CASTS: list[tuple[CellType, CellType, Maker, Callable[[Array], Array]]] = [
    # float to int truncates toward zero
    (F32, I32, floats(-50, 50), np.vectorize(lambda v: int(v), otypes=[np.int32])),
    (I32, F32, ints(-1000, 1000), lambda x: x.astype(np.float64)),
    (F32, BOOL, lambda r, s: r.integers(-1, 2, s).astype(np.float32), lambda x: x != 0),
    (BOOL, F32, bools(), lambda x: np.where(x, 1.0, 0.0)),
    (F32, CellType.FLOAT64, floats(), lambda x: x.astype(np.float64)),
    (F32, CellType.FLOAT16, floats(), lambda x: x.astype(np.float16)),
    (F32, CellType.BFLOAT16, floats(), lambda x: x.astype(ml_dtypes.bfloat16)),
    (
        CellType.BFLOAT16,
        F32,
        lambda r, s: r.uniform(-3, 3, s).astype(ml_dtypes.bfloat16),
        lambda x: x.astype(np.float32),
    ),
    (I64, CellType.INT8, ints(-128, 128, np.int64), lambda x: x.astype(np.int8)),
]


@pytest.mark.parametrize("case", _CASTS, ids=[f"{a.np_name}->{b.np_name}" for a, b, _, _ in _CASTS])
def test_cast(
    case: tuple[CellType, CellType, Maker, Callable[[Array], Array]], rng: np.random.Generator
) -> None:
    src, dst, make, by_hand = case
    check([Operand((2, 3), src, make)], lambda x: build.cast(x, dst), by_hand, rng, exact=True)


# ---------------------------------------------------------------- reductions


def _norm_axes(axes: Sequence[int] | None, rank: int) -> tuple[int, ...]:
    return tuple(range(rank)) if axes is None else tuple(sorted(a % rank for a in axes))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axes", [None, (0,), (1,), (0, 2), (-1,), (2, -3)], ids=str)
@pytest.mark.parametrize("agg", ["sum", "prod", "max", "min"])
def test_reduce(agg: str, axes: tuple[int, ...] | None, keepdims: bool, rng: np.random.Generator) -> None:
    ax = _norm_axes(axes, 3)

    def by_hand(x: Array) -> Array:
        x = x.astype(np.float64)
        out: Array = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}[agg](x, axis=ax)
        if keepdims:
            out = np.reshape(out, [1 if i in ax else d for i, d in enumerate(x.shape)])
        return out

    check(
        [Operand((2, 3, 4), F32, floats(0.5, 1.5))],
        lambda x: build.reduce(x, agg, axes, keepdims),
        by_hand,
        rng,
    )


def test_reduce_integers_and_empty_axes(rng: np.random.Generator) -> None:
    check(
        [Operand((3, 4), I32, ints(-9, 9))],
        lambda x: build.reduce(x, "max", [1], False),
        lambda x: np.array([max(row) for row in x]),
        rng,
    )
    # (no axes at all builds no reduction: tests/ir/test_build.py)
    # an empty float axis: max is -inf
    check(
        [Operand((2, 0), F32, floats())],
        lambda x: build.reduce(x, "max", [1], False),
        lambda x: np.full(2, -np.inf),
        rng,
    )


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("agg", ["argmax", "argmin"])
def test_arg_reduce(agg: str, axis: int, keepdims: bool, last: bool, rng: np.random.Generator) -> None:
    shape = (3, 5)
    ax = axis % 2

    def by_hand(x: Array) -> Array:
        best = (np.max if agg == "argmax" else np.min)(x, axis=ax, keepdims=True)
        pos = np.arange(shape[ax]).reshape([-1 if i == ax else 1 for i in range(2)])
        hits = np.where(x == best, pos, -1 if last else shape[ax])
        out = (np.max if last else np.min)(hits, axis=ax, keepdims=keepdims)
        return out.astype(np.int64)

    check(
        [Operand(shape, F32, ties())], lambda x: build.arg_reduce(x, agg, axis, keepdims, last), by_hand, rng
    )


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("agg", ["sum", "prod"])
def test_scan(agg: str, axis: int, exclusive: bool, reverse: bool, rng: np.random.Generator) -> None:
    ax = axis % 2

    def by_hand(x: Array) -> Array:
        xm = np.moveaxis(x.astype(np.float64), ax, 0)
        out = np.empty_like(xm)
        n = xm.shape[0]
        for i in range(n):
            if reverse:
                part = xm[i + 1 :] if exclusive else xm[i:]
            else:
                part = xm[:i] if exclusive else xm[: i + 1]
            acc = np.zeros(xm.shape[1:]) if agg == "sum" else np.ones(xm.shape[1:])
            for row in part:
                acc = acc + row if agg == "sum" else acc * row
            out[i] = acc
        return np.moveaxis(out, 0, ax)

    check(
        [Operand((3, 4), F32, floats(0.5, 1.5))],
        lambda x: build.scan(x, agg, axis, exclusive, reverse),
        by_hand,
        rng,
    )


# ---------------------------------------------------------------- matmul


def _matmul_by_hand(a: Array, b: Array) -> Array:
    """Loops over the broadcast batch; each 2-d product written out as sums."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, (*batch, *a.shape[-2:]))
    b = np.broadcast_to(b, (*batch, *b.shape[-2:]))
    out = np.zeros((*batch, a.shape[-2], b.shape[-1]), dtype=np.float64)
    for idx in np.ndindex(*batch):
        for i in range(a.shape[-2]):
            for j in range(b.shape[-1]):
                out[(*idx, i, j)] = sum(
                    float(a[(*idx, i, k)]) * float(b[(*idx, k, j)]) for k in range(a.shape[-1])
                )
    return out


@pytest.mark.parametrize(
    "shapes",
    [((2, 3), (3, 4)), ((2, 2, 3), (3, 4)), ((2, 3), (2, 3, 4)), ((2, 1, 2, 3), (3, 3, 2)), ((1, 3), (3, 1))],
    ids=str,
)
def test_matmul(shapes: tuple[tuple[int, ...], tuple[int, ...]], rng: np.random.Generator) -> None:
    check(
        [Operand(shapes[0], F32, floats()), Operand(shapes[1], F32, floats())],
        build.matmul,
        _matmul_by_hand,
        rng,
        rtol=1e-5,
        atol=1e-5,
    )


def test_matmul_integers(rng: np.random.Generator) -> None:
    check(
        [Operand((1, 4), I32, ints(-9, 9)), Operand((4, 1), I32, ints(-9, 9))],
        build.matmul,
        lambda a, b: _matmul_by_hand(a, b).astype(np.int32),
        rng,
    )


# ---------------------------------------------------------------- structural


@pytest.mark.parametrize("target", [(6, 4), (24,), (4, 1, 6), (2, 12)], ids=str)
def test_reshape(target: tuple[int, ...], rng: np.random.Generator) -> None:
    check(
        [Operand((2, 3, 4), F32, floats())],
        lambda x: build.reshape(x, target),
        lambda x: np.array(x.flatten().tolist(), dtype=np.float32).reshape(target),
        rng,
        exact=True,
    )


@pytest.mark.parametrize("perm", [(1, 0, 2), (2, 0, 1), (0, 2, 1), (2, 1, 0)], ids=str)
def test_transpose(perm: tuple[int, ...], rng: np.random.Generator) -> None:
    shape = (2, 3, 4)

    def by_hand(x: Array) -> Array:
        out = np.empty([shape[p] for p in perm], dtype=x.dtype)
        for idx in np.ndindex(*out.shape):
            src = [0] * 3
            for k, p in enumerate(perm):
                src[p] = idx[k]
            out[idx] = x[tuple(src)]
        return out

    check([Operand(shape, F32, floats())], lambda x: build.transpose(x, perm), by_hand, rng, exact=True)


@pytest.mark.parametrize(
    "case", [((3, 1), (2, 3, 4)), ((), (2, 2)), ((1,), (5,)), ((2, 1, 3), (2, 4, 3))], ids=str
)
def test_broadcast(case: tuple[tuple[int, ...], tuple[int, ...]], rng: np.random.Generator) -> None:
    src, dst = case

    def by_hand(x: Array) -> Array:
        out = np.empty(dst, dtype=x.dtype)
        lead = len(dst) - len(src)
        for idx in np.ndindex(*dst):
            out[idx] = x[tuple(0 if src[k] == 1 else idx[lead + k] for k in range(len(src)))]
        return out

    check([Operand(src, F32, floats())], lambda x: build.broadcast(x, dst), by_hand, rng, exact=True)


@pytest.mark.parametrize(
    "case",
    [(0, [(1, 3), (2, 3), (1, 3)]), (1, [(2, 1), (2, 3), (2, 2)]), (-1, [(2, 2, 1), (2, 2, 2)])],
    ids=str,
)
def test_concat(case: tuple[int, list[tuple[int, ...]]], rng: np.random.Generator) -> None:
    axis, shapes = case
    rank = len(shapes[0])

    def by_hand(*xs: Array) -> Array:
        ax = axis % rank
        moved = [np.moveaxis(x, ax, 0) for x in xs]
        rows = [row for m in moved for row in m]
        return np.moveaxis(np.array(rows), 0, ax)

    check(
        [Operand(s, F32, floats()) for s in shapes],
        lambda *xs: build.concat(xs, axis),
        by_hand,
        rng,
        exact=True,
    )


_SLICES = [
    ([0, 1], [2, 3], [1, 1]),
    ([1, -1], [10, -100], [1, -1]),  # reversed through index 0
    ([-1, 0], [-100, 4], [-2, 2]),
    ([-100, 0], [0, 4], [-1, 1]),  # empty: a reversed slice that starts before the first cell
    ([2, 3], [1, 1], [1, 1]),  # empty: start after stop
    ([0, 4], [3, 0], [1, -1]),
]


@pytest.mark.parametrize("spec", _SLICES, ids=str)
def test_slice(spec: tuple[list[int], list[int], list[int]], rng: np.random.Generator) -> None:
    starts, stops, steps = spec
    shape = (3, 5)

    def by_hand(x: Array) -> Array:
        # python's own slicing of lists, axis by axis
        rows = list(range(shape[0]))[starts[0] : stops[0] : steps[0]]
        cols = list(range(shape[1]))[starts[1] : stops[1] : steps[1]]
        return np.array([[x[r, c] for c in cols] for r in rows], dtype=x.dtype).reshape(len(rows), len(cols))

    check(
        [Operand(shape, F32, floats())],
        lambda x: build.slice_(x, starts, stops, steps),
        by_hand,
        rng,
        exact=True,
    )


def _pad_by_hand(x: Array, pads: list[tuple[int, int]], mode: str, value: float) -> Array:
    out_shape = [d + b + a for d, (b, a) in zip(x.shape, pads, strict=True)]
    out = np.empty(out_shape, dtype=x.dtype)
    for idx in np.ndindex(*out_shape):
        src = []
        inside = True
        for k, i in enumerate(idx):
            j = i - pads[k][0]
            d = x.shape[k]
            if 0 <= j < d:
                src.append(j)
                continue
            inside = False
            if mode == "edge":
                src.append(min(max(j, 0), d - 1))
            elif mode == "wrap":
                src.append(j % d)
            elif mode == "reflect":
                period = 2 * (d - 1)
                m = j % period
                src.append(m if m < d else period - m)
            else:
                src.append(-1)
        if mode == "constant" and not inside:
            out[idx] = value
        else:
            out[idx] = x[tuple(src)]
    return out


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [[(1, 2), (0, 1)], [(0, 0), (2, 2)], [(-1, 1), (1, -2)]], ids=str)
def test_pad(mode: str, pads: list[tuple[int, int]], rng: np.random.Generator) -> None:
    def by_hand(x: Array) -> Array:
        # negative pads crop first
        crop = tuple(slice(max(-b, 0), x.shape[i] - max(-a, 0)) for i, (b, a) in enumerate(pads))
        return _pad_by_hand(x[crop], [(max(b, 0), max(a, 0)) for b, a in pads], mode, 2.5)

    check([Operand((3, 4), F32, floats())], lambda x: build.pad(x, pads, mode, 2.5), by_hand, rng, exact=True)


# ---------------------------------------------------------------- indexing


@pytest.mark.parametrize(
    "case",
    [
        ((4, 3), 0, ()),
        ((4, 3), 0, (2,)),
        ((4, 3), 1, (2, 2)),
        ((2, 4, 3), 1, (3,)),
        ((2, 3, 4), -1, (2, 1)),
        ((5,), 0, (2, 3)),
    ],
    ids=str,
)
def test_gather(case: tuple[tuple[int, ...], int, tuple[int, ...]], rng: np.random.Generator) -> None:
    shape, axis, ishape = case
    ax = axis % len(shape)
    dim = shape[ax]

    def by_hand(x: Array, idx: Array) -> Array:
        out_shape = (*shape[:ax], *ishape, *shape[ax + 1 :])
        out = np.empty(out_shape, dtype=x.dtype)
        for o in np.ndindex(*out_shape):
            before, ii, after = o[:ax], o[ax : ax + len(ishape)], o[ax + len(ishape) :]
            i = int(idx[ii])
            out[o] = x[(*before, i + dim if i < 0 else i, *after)]
        return out

    check(
        [Operand(shape, F32, floats()), Operand(ishape, I64, ints(-dim, dim, np.int64))],
        lambda x, i: build.gather(x, i, axis),
        by_hand,
        rng,
        exact=True,
    )


@pytest.mark.parametrize(
    "case", [((3, 4), (3, 2), 1), ((3, 4), (2, 4), 0), ((2, 3, 2), (2, 3, 1), -1)], ids=str
)
def test_gather_elements(
    case: tuple[tuple[int, ...], tuple[int, ...], int], rng: np.random.Generator
) -> None:
    shape, ishape, axis = case
    ax = axis % len(shape)

    def by_hand(x: Array, idx: Array) -> Array:
        out = np.empty(ishape, dtype=x.dtype)
        for o in np.ndindex(*ishape):
            src = list(o)
            src[ax] = int(idx[o]) % shape[ax]
            out[o] = x[tuple(src)]
        return out

    check(
        [Operand(shape, F32, floats()), Operand(ishape, I64, ints(-shape[ax], shape[ax], np.int64))],
        lambda x, i: build.gather_elements(x, i, axis),
        by_hand,
        rng,
        exact=True,
    )


@pytest.mark.parametrize(
    "case", [((3, 4, 2), (2, 2), 0), ((3, 4, 2), (3, 1), 1), ((3, 4), (2, 3, 2), 0)], ids=str
)
def test_gather_nd(case: tuple[tuple[int, ...], tuple[int, ...], int], rng: np.random.Generator) -> None:
    shape, ishape, b = case
    k = ishape[-1]

    def make_idx(r: np.random.Generator, s: tuple[int, ...]) -> Array:
        lead = s[:-1]
        cols = [r.integers(-shape[b + j], shape[b + j], lead) for j in range(k)]
        return np.stack(cols, axis=-1).astype(np.int64)

    def by_hand(x: Array, idx: Array) -> Array:
        out_shape = (*ishape[:-1], *shape[b + k :])
        out = np.empty(out_shape, dtype=x.dtype)
        for o in np.ndindex(*ishape[:-1]):
            where = [int(v) % shape[b + j] for j, v in enumerate(idx[o])]
            out[o] = x[(*o[:b], *where)]
        return out

    check(
        [Operand(shape, F32, floats()), Operand(ishape, I64, make_idx)],
        lambda x, i: build.gather_nd(x, i, b),
        by_hand,
        rng,
        exact=True,
    )


def _distinct_along(axis: int, dim: int) -> Maker:
    """Indices without repeats along `axis`, so that scatter without reduction is defined."""

    def make(r: np.random.Generator, s: tuple[int, ...]) -> Array:
        ax = axis + len(s) - 2  # the document axis, when present, comes first
        moved = list(s)
        n = moved.pop(ax)
        out = np.empty((*moved, n), dtype=np.int64)
        for idx in np.ndindex(*moved):
            out[idx] = r.permutation(dim)[:n]
        return np.moveaxis(out, -1, ax)

    return make


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements(reduction: str, rng: np.random.Generator) -> None:
    idx_maker = _distinct_along(1, 4) if reduction == "none" else ints(-4, 4, np.int64)

    def by_hand(x: Array, idx: Array, upd: Array) -> Array:
        out = x.copy()
        for o in np.ndindex(*idx.shape):
            t = (o[0], int(idx[o]) % 4)
            if reduction == "none":
                out[t] = upd[o]
            elif reduction == "add":
                out[t] += upd[o]
            elif reduction == "mul":
                out[t] *= upd[o]
            elif reduction == "max":
                out[t] = max(out[t], upd[o])
            else:
                out[t] = min(out[t], upd[o])
        return out

    check(
        [Operand((3, 4), F32, floats()), Operand((3, 2), I64, idx_maker), Operand((3, 2), F32, floats())],
        lambda x, i, u: build.scatter_elements(x, i, u, 1, reduction),
        by_hand,
        rng,
        rtol=1e-6,
    )


@pytest.mark.parametrize("reduction", ["none", "add", "max"])
def test_scatter_nd(reduction: str, rng: np.random.Generator) -> None:
    def make_idx(r: np.random.Generator, s: tuple[int, ...]) -> Array:
        if reduction != "none":
            return r.integers(-4, 4, s).astype(np.int64)
        lead = s[:-2]
        out = np.empty(s, dtype=np.int64)
        for idx in np.ndindex(*lead):
            out[idx] = r.permutation(4)[: s[-2]].reshape(s[-2], 1)
        return out

    def by_hand(x: Array, idx: Array, upd: Array) -> Array:
        out = x.copy()
        for j in range(idx.shape[0]):
            t = int(idx[j, 0]) % 4
            if reduction == "none":
                out[t] = upd[j]
            elif reduction == "add":
                out[t] = out[t] + upd[j]
            else:
                out[t] = np.where(upd[j] > out[t], upd[j], out[t])
        return out

    check(
        [Operand((4, 3), F32, floats()), Operand((2, 1), I64, make_idx), Operand((2, 3), F32, floats())],
        lambda x, i, u: build.scatter_nd(x, i, u, reduction),
        by_hand,
        rng,
        rtol=1e-6,
    )


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("axis,k", [(1, 2), (0, 3), (-1, 5), (1, 0)])
def test_topk(axis: int, k: int, largest: bool, rng: np.random.Generator) -> None:
    shape = (3, 5)
    ax = axis % 2

    def by_hand(x: Array) -> Array:
        xm = np.moveaxis(x, ax, -1)
        out = np.empty((*xm.shape[:-1], k), dtype=np.int64)
        for o in np.ndindex(*xm.shape[:-1]):
            row = [float(v) for v in xm[o]]
            # ties keep the lower index
            order = sorted(range(len(row)), key=lambda i: (-row[i] if largest else row[i], i))
            out[o] = order[:k]
        return np.moveaxis(out, -1, ax)

    check([Operand(shape, F32, ties())], lambda x: build.topk(x, k, axis, largest), by_hand, rng)


def test_every_primitive_is_covered() -> None:
    tested = {
        "map", "join", "select", "cast", "reduce", "arg_reduce", "scan", "matmul", "reshape", "transpose",
        "broadcast", "concat", "slice", "pad", "gather", "gather_elements", "gather_nd", "scatter_elements",
        "scatter_nd", "topk",
        "tree_ensemble",  # against a per-document walk in tests/trees/test_forest.py
        "lookup",  # against a dict in tests/expr/test_mapped_joins.py
    }  # fmt: skip
    assert tested == {op.label for op in Op if op not in (Op.INPUT, Op.CONSTANT)}


def test_erf_accuracy() -> None:
    x = np.linspace(-6, 6, 2001)
    node = build.map_("erf", build.input_("x", Role.QUERY, x.shape, CellType.FLOAT64))
    got = eval_node(node, [x], 1)
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
