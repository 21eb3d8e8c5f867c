"""Single-op models against onnxruntime over random shapes, axes, broadcasting and cell
types (hypothesis, derandomized; the numpy seed is tensorrank's SEED, printed in the pytest
header). Each example is evaluated for two documents at once and compared with one
onnxruntime run per document."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.conftest import SEED
from tests.property.helpers import N_DOCS, PROPERTY, check_against_onnxruntime, one_op_model, rng_for

FLOATS = [np.float32, np.float64]
INTS = [np.int32, np.int64]


@pytest.fixture(autouse=True, scope="module")
def _print_seed() -> None:
    print(f"property tests: numpy seed {SEED}; hypothesis derandomized (each test replays its own examples)")


def _values(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, lo: float = -3, hi: float = 3
) -> Any:
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        return rng.integers(int(lo), int(hi) + 1, shape).astype(dt)
    return rng.uniform(lo, hi, shape).astype(dt)


def _docs(make: Any) -> list[dict[str, np.ndarray]]:
    # np.asarray: numpy draws of shape () are scalars, which onnxruntime does not take
    return [{k: np.asarray(v) for k, v in make(d).items()} for d in range(N_DOCS)]


# ---------------------------------------------------------------- elementwise binary

_BINARY: dict[str, list[Any]] = {
    "Add": [*FLOATS, *INTS, np.float16],
    "Sub": [*FLOATS, *INTS],
    "Mul": [*FLOATS, *INTS],
    "Div": [*FLOATS, *INTS],
    "Pow": FLOATS,
    "Max": [*FLOATS, *INTS],
    "Min": [*FLOATS, *INTS],
    "Equal": [np.int32, np.int64, np.bool_],
    "Less": [*FLOATS, *INTS],
    "Greater": [*FLOATS, *INTS],
    "LessOrEqual": [np.float32, np.int64],
    "GreaterOrEqual": [np.float32, np.int64],
    "And": [np.bool_],
    "Or": [np.bool_],
    "Xor": [np.bool_],
}


@st.composite
def binary_cases(draw: st.DrawFn) -> tuple[str, Any, tuple[int, ...], tuple[int, ...], int]:
    op = draw(st.sampled_from(sorted(_BINARY)))
    dtype = draw(st.sampled_from(_BINARY[op]))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
    return op, dtype, shapes.input_shapes[0], shapes.input_shapes[1], draw(st.integers(0, 2**31))


@PROPERTY
@given(binary_cases())
def test_elementwise_binary(case: tuple[str, Any, tuple[int, ...], tuple[int, ...], int]) -> None:
    op, dtype, sa, sb, seed = case
    rng = rng_for(seed)

    def make(_: int) -> dict[str, np.ndarray]:
        if op == "Pow":
            return {"a": _values(rng, sa, dtype, 0.1, 3), "b": _values(rng, sb, dtype, -2, 2)}
        a = _values(rng, sa, dtype, -9, 9)
        b = _values(rng, sb, dtype, -9, 9)
        if op == "Div":
            b = np.where(b == 0, 1, b).astype(dtype)  # integer division by zero is undefined
        if (
            op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")
            and np.dtype(dtype).kind in "iu"
        ):
            a, b = a % 3, b % 3  # ties happen
        return {"a": a, "b": b}

    docs = _docs(make)
    model = one_op_model(op, docs[0])
    tol = 1e-3 if dtype is np.float16 else 1e-5
    check_against_onnxruntime(model, docs, rtol=tol, atol=tol)


# ---------------------------------------------------------------- unary math

_UNARY: dict[str, tuple[float, float]] = {
    "Abs": (-5, 5), "Neg": (-5, 5), "Exp": (-5, 5), "Log": (0.05, 9), "Sqrt": (0, 9), "Reciprocal": (0.2, 5),
    "Sin": (-6, 6), "Cos": (-6, 6), "Tan": (-1.3, 1.3), "Asin": (-0.99, 0.99), "Acos": (-0.99, 0.99),
    "Atan": (-9, 9), "Sinh": (-5, 5), "Cosh": (-5, 5), "Asinh": (-9, 9), "Acosh": (1, 9),
    "Atanh": (-0.99, 0.99), "Tanh": (-5, 5), "Sigmoid": (-20, 20), "Relu": (-5, 5), "Floor": (-5, 5),
    "Ceil": (-5, 5), "Erf": (-4, 4), "Sign": (-2, 2), "Round": (-5, 5), "Softplus": (-9, 9),
    "Softsign": (-9, 9), "Elu": (-5, 5), "Selu": (-5, 5), "HardSigmoid": (-5, 5), "LeakyRelu": (-5, 5),
    "Gelu": (-5, 5), "Mish": (-5, 5), "HardSwish": (-5, 5),
}  # fmt: skip
_UNARY_F64 = [
    "Abs",
    "Neg",
    "Exp",
    "Log",
    "Sqrt",
    "Reciprocal",
    "Sin",
    "Cos",
    "Tanh",
    "Sigmoid",
    "Relu",
    "Floor",
    "Ceil",
    "Sign",
    "Round",
]
_UNARY_INT = ["Abs", "Neg", "Sign"]


@st.composite
def unary_cases(draw: st.DrawFn) -> tuple[str, Any, tuple[int, ...], int]:
    op = draw(st.sampled_from(sorted(_UNARY)))
    types: list[Any] = [np.float32, np.float16]
    if op in _UNARY_F64:
        types.append(np.float64)
    if op in _UNARY_INT:
        types += INTS
    dtype = draw(st.sampled_from(types))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, max_side=4))
    return op, dtype, shape, draw(st.integers(0, 2**31))


@PROPERTY
@given(unary_cases())
def test_unary_math(case: tuple[str, Any, tuple[int, ...], int]) -> None:
    op, dtype, shape, seed = case
    rng = rng_for(seed)
    lo, hi = _UNARY[op]

    def make(_: int) -> dict[str, np.ndarray]:
        x = _values(rng, shape, dtype, lo, hi)
        if op == "Round" and np.dtype(dtype).kind == "f":
            x = (np.round(x.astype(np.float64) * 2) / 2).astype(dtype)  # halves: round to even
        return {"x": x}

    docs = _docs(make)
    opset = 20 if op == "Gelu" else 18
    tol = 2e-3 if dtype is np.float16 else 1e-5
    check_against_onnxruntime(one_op_model(op, docs[0], opset=opset), docs, rtol=tol, atol=tol)


# ---------------------------------------------------------------- reductions

_REDUCE: dict[str, list[Any]] = {
    "ReduceSum": [np.float32, np.float64, np.int32, np.int64],
    "ReduceMean": [np.float32, np.float64],
    "ReduceMax": [np.float32, np.int32, np.int64],
    "ReduceMin": [np.float32, np.int32, np.int64],
    "ReduceProd": [np.float32, np.int32],
    "ReduceL1": [np.float32],
    "ReduceL2": [np.float32],
    "ReduceLogSum": [np.float32],
    "ReduceLogSumExp": [np.float32],
    "ReduceSumSquare": [np.float32],
}


@st.composite
def reduce_cases(draw: st.DrawFn) -> tuple[str, Any, tuple[int, ...], list[int] | None, int, int, int]:
    op = draw(st.sampled_from(sorted(_REDUCE)))
    dtype = draw(st.sampled_from(_REDUCE[op]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4))
    rank = len(shape)
    axes: list[int] | None = None
    if draw(st.booleans()):
        picked = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
        axes = [a - rank if draw(st.booleans()) else a for a in picked]
    keepdims = draw(st.integers(0, 1))
    opset = draw(st.sampled_from([13, 18]))
    return op, dtype, shape, axes, keepdims, opset, draw(st.integers(0, 2**31))


@PROPERTY
@given(reduce_cases())
def test_reductions(case: tuple[str, Any, tuple[int, ...], list[int] | None, int, int, int]) -> None:
    op, dtype, shape, axes, keepdims, opset, seed = case
    rng = rng_for(seed)
    lo, hi = (0.5, 1.5) if op in ("ReduceProd", "ReduceLogSum") else (-3, 3)
    if op == "ReduceProd" and np.dtype(dtype).kind == "i":
        lo, hi = -2, 2
    docs = _docs(lambda _: {"x": _values(rng, shape, dtype, lo, hi)})
    # axes: an input from opset 18 on (13 for ReduceSum), an attribute before
    as_input = opset >= 18 or op == "ReduceSum"
    if axes is None:
        model = one_op_model(op, docs[0], opset=opset, keepdims=keepdims)
    elif as_input:
        model = one_op_model(
            op, docs[0], opset=opset, initializers={"axes": np.array(axes, dtype=np.int64)}, keepdims=keepdims
        )
    else:
        model = one_op_model(op, docs[0], opset=opset, axes=axes, keepdims=keepdims)
    check_against_onnxruntime(model, docs, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- structural


@st.composite
def transpose_cases(draw: st.DrawFn) -> tuple[tuple[int, ...], list[int] | None, Any, int]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=5, max_side=4))
    perm = draw(st.none() | st.permutations(list(range(len(shape)))))
    dtype = draw(st.sampled_from([np.float32, np.int64, np.bool_, np.float16]))
    return shape, perm, dtype, draw(st.integers(0, 2**31))


@PROPERTY
@given(transpose_cases())
def test_transpose(case: tuple[tuple[int, ...], list[int] | None, Any, int]) -> None:
    shape, perm, dtype, seed = case
    rng = rng_for(seed)
    docs = _docs(lambda _: {"x": _values(rng, shape, dtype)})
    attrs = {} if perm is None else {"perm": list(perm)}
    check_against_onnxruntime(one_op_model("Transpose", docs[0], **attrs), docs)


@st.composite
def concat_cases(draw: st.DrawFn) -> tuple[list[tuple[int, ...]], int, Any, int]:
    base = list(draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4)))
    rank = len(base)
    axis = draw(st.integers(-rank, rank - 1))
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    shapes = []
    for s in sizes:
        shape = list(base)
        shape[axis] = s
        shapes.append(tuple(shape))
    dtype = draw(st.sampled_from([np.float32, np.int64, np.bool_]))
    return shapes, axis, dtype, draw(st.integers(0, 2**31))


@PROPERTY
@given(concat_cases())
def test_concat(case: tuple[list[tuple[int, ...]], int, Any, int]) -> None:
    shapes, axis, dtype, seed = case
    rng = rng_for(seed)
    docs = _docs(lambda _: {f"x{i}": _values(rng, s, dtype) for i, s in enumerate(shapes)})
    check_against_onnxruntime(one_op_model("Concat", docs[0], opset=13, axis=axis), docs)


@st.composite
def slice_cases(
    draw: st.DrawFn,
) -> tuple[tuple[int, ...], list[int], list[int], list[int], list[int] | None, int]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
    rank = len(shape)
    axes = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
    starts, ends, steps = [], [], []
    big = 2**62
    for a in axes:
        d = shape[a]
        # the clamping edges are where ONNX and Python slicing part ways: draw them often
        bound = st.integers(-2 * d - 1, 2 * d + 1) | st.sampled_from([big, -big, -d - 1, -d, d, -1, 0])
        starts.append(draw(bound))
        ends.append(draw(bound))
        steps.append(draw(st.sampled_from([1, 1, 2, 3, -1, -2, -3])))
    signed = [a - rank if draw(st.booleans()) else a for a in axes]
    with_steps = draw(st.booleans()) or any(s != 1 for s in steps)
    return shape, starts, ends, signed, (steps if with_steps else None), draw(st.integers(0, 2**31))


@PROPERTY
@given(slice_cases())
# ONNX clamps a start before the first cell to 0 for a negative step (Python: empty)
@example(((1,), [-(2**62)], [-(2**62)], [0], [-1], 0))
@example(((1, 1), [0, -2], [0, -(2**62)], [0, 1], [1, -1], 0))
@example(((5,), [-6], [-7], [0], [-1], 0))
def test_slice(case: tuple[tuple[int, ...], list[int], list[int], list[int], list[int] | None, int]) -> None:
    shape, starts, ends, axes, steps, seed = case
    rng = rng_for(seed)
    docs = _docs(lambda _: {"x": _values(rng, shape, np.float32)})
    consts = {
        "starts": np.array(starts, dtype=np.int64),
        "ends": np.array(ends, dtype=np.int64),
        "axes": np.array(axes, dtype=np.int64),
    }
    if steps is not None:
        consts["steps"] = np.array(steps, dtype=np.int64)
    check_against_onnxruntime(one_op_model("Slice", docs[0], opset=13, initializers=consts), docs)


@st.composite
def gather_cases(draw: st.DrawFn) -> tuple[tuple[int, ...], int, tuple[int, ...], Any, Any, int]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    ishape = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    dtype = draw(st.sampled_from([np.float32, np.int64, np.bool_]))
    itype = draw(st.sampled_from([np.int64, np.int32]))
    return shape, axis, ishape, dtype, itype, draw(st.integers(0, 2**31))


@PROPERTY
@given(gather_cases())
def test_gather(case: tuple[tuple[int, ...], int, tuple[int, ...], Any, Any, int]) -> None:
    shape, axis, ishape, dtype, itype, seed = case
    rng = rng_for(seed)
    d = shape[axis]
    # the indices vary per document: data-dependent addressing on both operands
    docs = _docs(
        lambda _: {"data": _values(rng, shape, dtype), "indices": rng.integers(-d, d, ishape).astype(itype)}
    )
    check_against_onnxruntime(one_op_model("Gather", docs[0], opset=13, axis=axis), docs)


@st.composite
def matmul_cases(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], Any, int]:
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    a: tuple[int, ...] = (*batch.input_shapes[0], m, k)
    b: tuple[int, ...] = (*batch.input_shapes[1], k, n)
    # 1-d operands: a vector on either side
    if draw(st.integers(0, 4)) == 0:
        a = (k,)
    elif draw(st.integers(0, 4)) == 0:
        b = (k,)
    dtype = draw(st.sampled_from([np.float32, np.float32, np.float64, np.int32, np.int64]))
    return a, b, dtype, draw(st.integers(0, 2**31))


@PROPERTY
@given(matmul_cases())
def test_matmul(case: tuple[tuple[int, ...], tuple[int, ...], Any, int]) -> None:
    sa, sb, dtype, seed = case
    rng = rng_for(seed)
    docs = _docs(lambda _: {"a": _values(rng, sa, dtype), "b": _values(rng, sb, dtype)})
    check_against_onnxruntime(one_op_model("MatMul", docs[0], opset=13), docs, rtol=1e-5, atol=1e-5)


@st.composite
def softmax_cases(draw: st.DrawFn) -> tuple[str, tuple[int, ...], int | None, int, Any, int]:
    op = draw(st.sampled_from(["Softmax", "LogSoftmax"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4))
    axis = draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    opset = draw(st.sampled_from([11, 13]))  # 11 flattens at the axis, 13 normalises along it
    if opset == 11 and axis is None and len(shape) < 2:
        axis = 0  # opset 11's default axis is 1
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return op, shape, axis, opset, dtype, draw(st.integers(0, 2**31))


@PROPERTY
@given(softmax_cases())
def test_softmax(case: tuple[str, tuple[int, ...], int | None, int, Any, int]) -> None:
    op, shape, axis, opset, dtype, seed = case
    rng = rng_for(seed)
    docs = _docs(lambda _: {"x": _values(rng, shape, dtype, -9, 9)})
    attrs = {} if axis is None else {"axis": axis}
    check_against_onnxruntime(one_op_model(op, docs[0], opset=opset, **attrs), docs, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- cast

_CAST_TYPES = [
    np.float32,
    np.float64,
    np.float16,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
]


def _range(dtype: Any) -> tuple[float, float]:
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return 0, 1
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return float(info.min), float(info.max)
    return -1e4, 1e4


@st.composite
def cast_cases(draw: st.DrawFn) -> tuple[Any, Any, tuple[int, ...], int]:
    src = draw(st.sampled_from(_CAST_TYPES))
    dst = draw(st.sampled_from(_CAST_TYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
    return src, dst, shape, draw(st.integers(0, 2**31))


@PROPERTY
@given(cast_cases())
def test_cast(case: tuple[Any, Any, tuple[int, ...], int]) -> None:
    src, dst, shape, seed = case
    rng = rng_for(seed)
    # values every type involved represents; out-of-range conversions are undefined in C++
    lo = max(_range(src)[0], _range(dst)[0], -200.0)
    hi = min(_range(src)[1], _range(dst)[1], 200.0)

    def make(_: int) -> dict[str, np.ndarray]:
        if np.dtype(src) == np.bool_:
            return {"x": rng.random(shape) < 0.5}
        whole = rng.integers(int(lo), int(hi) + 1, shape)
        if np.dtype(src).kind == "f":
            # quarters are exact in float16; float to int truncates toward zero
            frac = rng.integers(0, 4, shape) / 4.0
            value = np.clip(whole + np.where(whole >= 0, frac, -frac), lo, hi)
            return {"x": value.astype(src)}
        return {"x": whole.astype(src)}

    docs = _docs(make)
    to = {np.dtype(v): k for k, v in _ONNX_TYPES.items()}[np.dtype(dst)]
    check_against_onnxruntime(one_op_model("Cast", docs[0], opset=19, to=to), docs, rtol=0, atol=0)


_ONNX_TYPES = {
    1: np.float32,
    11: np.float64,
    10: np.float16,
    3: np.int8,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    2: np.uint8,
    4: np.uint16,
    12: np.uint32,
    13: np.uint64,
    9: np.bool_,
}
