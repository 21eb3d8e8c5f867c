"""Kernels that write into a caller's buffer, for the blocked evaluator.

Each returns None when it does not apply (the evaluator then falls back to the
reference kernel, which allocates). Applying is a matter of speed, and the results are
those of tensor_ir.reference up to float rounding: the sigmoid here is 1 / (1 + exp(-x))
(the reference takes the two-branch form) and short sums go through BLAS, in another order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import numpy.typing as npt

from cpu_fallback.forest_native import native_walk
from tensor_ir.ir import Node, Op
from tensor_ir.reference import align

Array = npt.NDArray[Any]

_BINARY_UFUNCS: dict[str, np.ufunc] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "max": np.maximum,
    "min": np.minimum,
}
_FLOAT_BINARY_UFUNCS: dict[str, np.ufunc] = {"div": np.true_divide, "pow": np.power}


def _sigmoid_into(x: Array, out: Array) -> Array:
    # 1 / (1 + exp(-x)): exp overflows to inf for very negative x, giving exactly 0, never NaN
    np.negative(x, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=out)
    np.reciprocal(out, out=out)
    return out


def _relu_into(x: Array, out: Array) -> Array:
    return np.maximum(x, np.zeros((), x.dtype), out=out)


_UNARY_INTO: dict[str, Callable[[Array, Array], Array]] = {
    "neg": lambda x, o: np.negative(x, out=o),
    "abs": lambda x, o: np.abs(x, out=o),
    "exp": lambda x, o: np.exp(x, out=o),
    "log": lambda x, o: np.log(x, out=o),
    "sqrt": lambda x, o: np.sqrt(x, out=o),
    "tanh": lambda x, o: np.tanh(x, out=o),
    "floor": lambda x, o: np.floor(x, out=o),
    "ceil": lambda x, o: np.ceil(x, out=o),
    "relu": _relu_into,
    "sigmoid": _sigmoid_into,
}
_FLOAT_TYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})


_vecdot = getattr(np, "vecdot", None)  # numpy >= 2.0
# Below this row length BLAS's gemv wins: its threads split the rows, while vecdot's cost per
# row dominates (ms for [n, k] @ [k, 1], medians of 9: k = 16, n = 1e6: gemv 12.9, vecdot
# 47.5; k = 64: 31.3 / 27.1; k = 128, n = 5e5: 31.8 / 24.1; k = 256, n = 2.5e5: 47.4 / 32.5)
_VECDOT_MIN_ROW = 128


def streams_rows(node: Node) -> bool:
    """A matrix-vector product that matmul_into runs with vecdot, on one thread: the blocks'
    workers are what reads it in parallel (not BLAS's threads, as for gemv)."""
    return (node.op is Op.MATMUL and node.inputs[1].shape[-1] == 1
            and node.inputs[0].shape[-1] >= _VECDOT_MIN_ROW)


def matmul_into(node: Node, args: list[Array], out: Array) -> Array | None:
    a, b = args
    ia, ib = node.inputs
    if not ia.per_document or ib.per_document or ib.rank != 2:
        return None
    if a.dtype != out.dtype or b.dtype != out.dtype or a.dtype not in _FLOAT_TYPES:
        return None
    k = a.shape[-1]
    a2 = a.reshape(-1, k)
    out2 = _rows_view(out, b.shape[-1])
    if out2 is None:
        return None
    if b.shape[-1] == 1 and k >= _VECDOT_MIN_ROW:
        # a matrix-vector product over long rows (a nearest-neighbour d.q): OpenBLAS's gemv
        # reads them at half the memory bandwidth or less on a 2-core EPYC, numpy's vecdot at
        # all of it (1,000,000 x 384 floats, medians of 12 interleaved runs: gemv 140-230 ms,
        # einsum 79 ms, vecdot 63 ms, np.max of the same floats 72 ms)
        if _vecdot is not None:
            _vecdot(a2, b[:, 0], out=out2[:, 0])
        else:  # numpy < 2.0: einsum streams too, if a little slower
            np.einsum("ij,j->i", a2, b[:, 0], out=out2[:, 0])
        return out
    np.matmul(a2, b, out=out2)
    return out


def _rows_view(out: Array, width: int) -> Array | None:
    """`out` as a 2-D view of rows, or None where that takes a copy: `out` may be a strided
    slice of a concatenation's buffer, and a copy would swallow what is written into it."""
    view = out.reshape(-1, width)
    return view if view.__array_interface__["data"] == out.__array_interface__["data"] else None


def join_into(node: Node, args: list[Array], out: Array) -> Array | None:
    fn = node.attrs["fn"]
    uf = _BINARY_UFUNCS.get(fn)
    if uf is None and out.dtype in _FLOAT_TYPES:
        uf = _FLOAT_BINARY_UFUNCS.get(fn)
    if uf is None or out.dtype not in _FLOAT_TYPES:
        return None
    a, b = (align(v, i, node.rank) for v, i in zip(args, node.inputs, strict=True))
    if a.dtype != out.dtype or b.dtype != out.dtype:
        return None
    if fn == "pow" and _is_constant_two(node.inputs[1]):
        # LayerNorm's variance: x * x rounds once, as the correctly rounded pow(x, 2) does,
        # at a fraction of numpy's general power loop
        np.multiply(a, a, out=out)
        return out
    uf(a, b, out=out)
    return out


def _is_constant_two(node: Node) -> bool:
    return node.op is Op.CONSTANT and node.size <= 16 and bool(np.all(node.attrs["value"].array == 2))


def map_into(node: Node, args: list[Array], out: Array) -> Array | None:
    f = _UNARY_INTO.get(node.attrs["fn"])
    (x,) = args
    if f is None or out.dtype not in _FLOAT_TYPES or x.dtype != out.dtype:
        return None
    return f(x, out)  # the evaluator runs its blocks with floating-point warnings off


def concat_into(node: Node, args: list[Array], out: Array, in_place: Collection[int] = ()) -> Array | None:
    """`in_place`: positions of parts whose producer already wrote them into `out`."""
    if any(a.dtype != out.dtype for a in args):
        return None
    axis = node.attrs["axis"] + 1  # the rows come first
    offset = 0
    for j, (a, src) in enumerate(zip(args, node.inputs, strict=True)):
        width = src.shape[axis - 1]
        if j not in in_place:
            np.copyto(out[(slice(None),) * axis + (slice(offset, offset + width),)], a)  # a query part broadcasts
        offset += width
    return out


_SMALL_AXIS = 64


def reduce_into(node: Node, args: list[Array], out: Array) -> Array | None:
    """Reductions over one short trailing axis (LayerNorm's mean and variance, softmax's
    max and sum): numpy's reduce spends most of its time per row there, so sums go to a
    BLAS matrix-vector product and max/min/prod to a few whole-array passes."""
    (x,) = args
    src = node.inputs[0]
    axes = node.attrs["axes"]
    if len(axes) != 1 or axes[0] != src.rank - 1 or x.dtype not in _FLOAT_TYPES or x.dtype != out.dtype:
        return None
    k = src.shape[-1]
    if not 1 <= k <= _SMALL_AXIS:
        return None
    flat_out = out.reshape(-1)
    agg = node.attrs["agg"]
    if agg == "sum":
        np.matmul(x.reshape(-1, k), np.ones(k, dtype=x.dtype), out=flat_out)
        return out
    f = {"max": np.maximum, "min": np.minimum, "prod": np.multiply}[agg]
    if k >= 32:
        # rows this long reduce fast enough in place (ns per element, 2-core EPYC, k = 32 / 64:
        # numpy 1.6 / 0.8, the column passes below 1.8 / 1.5; at k = 16, 3.0 against 1.4)
        f.reduce(x.reshape(-1, k), axis=1, out=flat_out)
        return out
    # one transposing copy makes every column a contiguous run; then k - 1 fast passes
    columns = np.ascontiguousarray(np.moveaxis(x.reshape(-1, k), 1, 0))
    acc = flat_out
    np.copyto(acc, columns[0])
    for i in range(1, k):
        f(acc, columns[i], out=acc)
    return out


def forest_into(node: Node, args: list[Array], out: Array) -> Array | None:
    """The compiled walk of cpu_fallback/forest_native.py, where it applies and a compiler exists."""
    (x,) = args
    result = native_walk(node.attrs["forest"], x.reshape(-1, x.shape[-1]))
    if result is None:
        return None
    out[...] = result.reshape(out.shape)
    return out


INTO: dict[Op, Callable[[Node, list[Array], Array], Array | None]] = {
    Op.REDUCE: reduce_into,
    Op.MATMUL: matmul_into,
    Op.TREE_ENSEMBLE: forest_into,
    Op.JOIN: join_into,
    Op.MAP: map_into,
    Op.CONCAT: concat_into,
}
