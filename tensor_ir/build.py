"""Constructors for IR nodes: each validates its operands, infers the per-document
shape, cell type and variance, and folds at once when every operand is a constant.

This is the only way nodes are made, so every node in a program is well formed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError as IRError  # re-exported: converters raise build.IRError
from tensor_ir.ir import (
    BINARY_FUNCTIONS,
    COMPARISONS,
    LOGICAL,
    PAD_MODES,
    REDUCE_AGGREGATIONS,
    SCATTER_REDUCTIONS,
    UNARY_FUNCTIONS,
    Attrs,
    ConstValue,
    Node,
    Op,
    Role,
    Variance,
)
from tensor_ir.trees.forest import Forest

_PREDICATES = frozenset({"not", "isnan", "isinf", "isposinf", "isneginf"})


def _variance(nodes: Sequence[Node]) -> Variance:
    v = Variance.CONSTANT
    for n in nodes:
        v |= n.variance
    return v


def _make(
    op: Op,
    inputs: Sequence[Node],
    attrs: dict[str, Any],
    shape: Sequence[int],
    dtype: CellType,
    label: str = "",
) -> Node:
    node = Node(op, tuple(inputs), Attrs(attrs), tuple(shape), dtype, _variance(inputs), label)
    if inputs and all(i.op is Op.CONSTANT for i in inputs):
        from tensor_ir.reference import eval_node

        value = eval_node(node, [i.value for i in inputs], 1)
        return constant(value, dtype=dtype, label=label)
    return node


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise IRError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        raise IRError(
            "shapes " + ", ".join(str(list(s)) for s in shapes) + " cannot be broadcast together"
        ) from None


# ---------------------------------------------------------------- leaves


def input_(name: str, role: Role, shape: Sequence[int], dtype: CellType) -> Node:
    if any(d < 0 for d in shape):
        raise IRError(f"input '{name}' has an unresolved dimension in shape {list(shape)}")
    return Node(Op.INPUT, (), Attrs({"name": name, "role": role.value}), tuple(shape), dtype,
                role.variance, name)


def constant(value: Any, dtype: CellType | None = None, label: str = "") -> Node:
    arr = np.asarray(value)
    if dtype is None:
        dtype = CellType.from_numpy(arr.dtype)
    arr = np.asarray(arr, dtype=dtype.np_dtype)
    return Node(Op.CONSTANT, (), Attrs({"value": ConstValue(arr)}), arr.shape, dtype,
                Variance.CONSTANT, label)


def scalar(value: float | int | bool, dtype: CellType) -> Node:
    return constant(np.array(value, dtype=dtype.np_dtype), dtype)


# ---------------------------------------------------------------- elementwise


def map_(fn: str, x: Node, label: str = "") -> Node:
    if fn not in UNARY_FUNCTIONS:
        raise IRError(f"unknown unary function '{fn}'")
    if fn == "not" and not x.dtype.is_bool:
        raise IRError(f"'not' needs bool cells, got {x.dtype.np_name}")
    if fn == "bitwise_not" and not x.dtype.is_int:
        raise IRError(f"'bitwise_not' needs integer cells, got {x.dtype.np_name}")
    out = CellType.BOOL if fn in _PREDICATES else x.dtype
    return _make(Op.MAP, [x], {"fn": fn}, x.shape, out, label)


def join(fn: str, a: Node, b: Node, label: str = "") -> Node:
    if fn not in BINARY_FUNCTIONS:
        raise IRError(f"unknown binary function '{fn}'")
    if a.dtype is not b.dtype:
        raise IRError(f"'{fn}' joins {a.dtype.np_name} with {b.dtype.np_name}; cast one side first")
    if fn in LOGICAL and not a.dtype.is_bool:
        raise IRError(f"'{fn}' needs bool cells, got {a.dtype.np_name}")
    if (fn.startswith("bitwise") or fn.startswith("shift")) and not a.dtype.is_int:
        raise IRError(f"'{fn}' needs integer cells, got {a.dtype.np_name}")
    shape = broadcast_shapes(a.shape, b.shape)
    out = CellType.BOOL if fn in COMPARISONS else a.dtype
    return _make(Op.JOIN, [a, b], {"fn": fn}, shape, out, label)


def select(cond: Node, a: Node, b: Node, label: str = "") -> Node:
    if not cond.dtype.is_bool:
        raise IRError(f"select needs a bool condition, got {cond.dtype.np_name}")
    if a.dtype is not b.dtype:
        raise IRError(f"select branches differ in type: {a.dtype.np_name} and {b.dtype.np_name}")
    shape = broadcast_shapes(cond.shape, a.shape, b.shape)
    return _make(Op.SELECT, [cond, a, b], {}, shape, a.dtype, label)


E8M0_ROUND_MODES = frozenset({"up", "down", "nearest"})


def cast(x: Node, to: CellType, saturate: bool = True, label: str = "", round_mode: str = "up") -> Node:
    """`saturate` matters for float8 targets only, `round_mode` for float8e8m0 only."""
    if x.dtype is to:
        return x
    attrs: dict[str, Any] = {"to": to.name, "saturate": bool(saturate)}
    if to is CellType.FLOAT8E8M0:
        # kept out of other casts' attrs so it cannot split them apart in CSE
        if round_mode not in E8M0_ROUND_MODES:
            raise IRError(f"unknown float8e8m0 round_mode '{round_mode}'")
        attrs["round_mode"] = round_mode
    return _make(Op.CAST, [x], attrs, x.shape, to, label)


# ---------------------------------------------------------------- reductions


def reduce(x: Node, agg: str, axes: Sequence[int] | None, keepdims: bool, label: str = "") -> Node:
    if agg not in REDUCE_AGGREGATIONS:
        raise IRError(f"unknown aggregation '{agg}'")
    if x.dtype.is_bool and agg in ("sum", "prod"):
        raise IRError(f"cannot {agg} bool cells")
    ax = tuple(range(x.rank)) if axes is None else tuple(sorted({normalize_axis(a, x.rank) for a in axes}))
    if agg in ("max", "min") and any(x.shape[a] == 0 for a in ax) and not x.dtype.is_float:
        raise IRError(f"{agg} over an empty axis of {x.dtype.np_name} cells has no identity")
    if keepdims:
        shape = tuple(1 if i in ax else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in ax)
    if all(x.shape[a] == 1 for a in ax):
        # one cell per result: every aggregation returns it unchanged. Common: Vespa's
        # sum(onnx(...)) over a model's [1] output; as a view it costs the evaluators nothing
        return reshape(x, shape, label)
    return _make(Op.REDUCE, [x], {"agg": agg, "axes": ax, "keepdims": keepdims}, shape, x.dtype, label)


def arg_reduce(x: Node, agg: str, axis: int, keepdims: bool, last: bool, label: str = "") -> Node:
    if agg not in ("argmax", "argmin"):
        raise IRError(f"unknown arg aggregation '{agg}'")
    ax = normalize_axis(axis, x.rank)
    if x.shape[ax] == 0:
        raise IRError(f"{agg} over an empty axis")
    shape = tuple(1 if i == ax else d for i, d in enumerate(x.shape)) if keepdims else tuple(
        d for i, d in enumerate(x.shape) if i != ax
    )
    attrs = {"agg": agg, "axis": ax, "keepdims": keepdims, "last": last}
    return _make(Op.ARG_REDUCE, [x], attrs, shape, CellType.INT64, label)


def scan(x: Node, agg: str, axis: int, exclusive: bool, reverse: bool, label: str = "") -> Node:
    if agg not in ("sum", "prod"):
        raise IRError(f"unknown scan aggregation '{agg}'")
    ax = normalize_axis(axis, x.rank)
    attrs = {"agg": agg, "axis": ax, "exclusive": exclusive, "reverse": reverse}
    return _make(Op.SCAN, [x], attrs, x.shape, x.dtype, label)


# ---------------------------------------------------------------- contraction


def matmul(a: Node, b: Node, label: str = "") -> Node:
    if a.rank < 2 or b.rank < 2:
        raise IRError(f"matmul needs rank >= 2 operands, got {list(a.shape)} and {list(b.shape)}")
    if a.dtype is not b.dtype:
        raise IRError(f"matmul of {a.dtype.np_name} with {b.dtype.np_name}; cast one side first")
    if a.shape[-1] != b.shape[-2]:
        raise IRError(f"matmul inner dimensions differ: {list(a.shape)} @ {list(b.shape)}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return _make(Op.MATMUL, [a, b], {}, (*batch, a.shape[-2], b.shape[-1]), a.dtype, label)


# ---------------------------------------------------------------- structural


def reshape(x: Node, shape: Sequence[int], label: str = "") -> Node:
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise IRError(f"reshape target {list(shape)} has a negative dimension")
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise IRError(f"cannot reshape {list(x.shape)} ({x.size} cells) to {list(shape)}")
    if shape == x.shape:
        return x
    return _make(Op.RESHAPE, [x], {"shape": shape}, shape, x.dtype, label)


def transpose(x: Node, perm: Sequence[int], label: str = "") -> Node:
    perm = tuple(int(p) for p in perm)
    if sorted(perm) != list(range(x.rank)):
        raise IRError(f"transpose perm {list(perm)} is not a permutation of rank {x.rank}")
    if perm == tuple(range(x.rank)):
        return x
    shape = tuple(x.shape[p] for p in perm)
    return _make(Op.TRANSPOSE, [x], {"perm": perm}, shape, x.dtype, label)


def broadcast(x: Node, shape: Sequence[int], label: str = "") -> Node:
    shape = tuple(int(d) for d in shape)
    if broadcast_shapes(x.shape, shape) != shape:
        raise IRError(f"cannot broadcast {list(x.shape)} to {list(shape)}")
    if shape == x.shape:
        return x
    return _make(Op.BROADCAST, [x], {"shape": shape}, shape, x.dtype, label)


def concat(xs: Sequence[Node], axis: int, label: str = "") -> Node:
    if not xs:
        raise IRError("concat of nothing")
    rank = xs[0].rank
    ax = normalize_axis(axis, rank)
    for x in xs:
        if x.rank != rank or x.dtype is not xs[0].dtype:
            raise IRError("concat operands differ in rank or cell type: "
                          + ", ".join(f"{x.dtype.np_name}{list(x.shape)}" for x in xs))
        if any(x.shape[i] != xs[0].shape[i] for i in range(rank) if i != ax):
            raise IRError(f"concat along axis {ax} of mismatched shapes "
                          + ", ".join(str(list(x.shape)) for x in xs))
    if len(xs) == 1:
        return xs[0]
    shape = list(xs[0].shape)
    shape[ax] = sum(x.shape[ax] for x in xs)
    return _make(Op.CONCAT, list(xs), {"axis": ax}, shape, xs[0].dtype, label)


def slice_(x: Node, starts: Sequence[int], stops: Sequence[int], steps: Sequence[int], label: str = "") -> Node:
    """Python slicing per axis; starts/stops are clamped here so backends never see overflow."""
    if not (len(starts) == len(stops) == len(steps) == x.rank):
        raise IRError(f"slice needs one start, stop and step per axis of rank {x.rank}")
    norm: list[tuple[int, int, int]] = []
    shape: list[int] = []
    for d, (s0, s1, st) in zip(x.shape, zip(starts, stops, steps, strict=True), strict=True):
        if st == 0:
            raise IRError("slice step of 0")
        a, b, c = slice(int(s0), int(s1), int(st)).indices(d)
        n = len(range(a, b, c))
        if n == 0:
            # one spelling for every empty slice: a start of -1 with a negative step would
            # otherwise read as "from the last cell" to anyone slicing with these numbers
            a, b, c = 0, 0, 1
        elif b < 0:
            # a reversed slice through index 0: as a stop, -1 means the last cell, -d-1 means
            # "before index 0" both to Python slicing and to normalising again (the verifier)
            b = -d - 1
        norm.append((a, b, c))
        shape.append(n)
    if all(n == (0, d, 1) for n, d in zip(norm, x.shape, strict=True)):
        return x
    attrs = {"starts": [n[0] for n in norm], "stops": [n[1] for n in norm], "steps": [n[2] for n in norm]}
    return _make(Op.SLICE, [x], attrs, shape, x.dtype, label)


def pad(x: Node, pads: Sequence[tuple[int, int]], mode: str, value: float | int | bool = 0,
        label: str = "") -> Node:
    if mode not in PAD_MODES:
        raise IRError(f"unknown pad mode '{mode}'")
    if len(pads) != x.rank:
        raise IRError(f"pad needs (before, after) for each of {x.rank} axes")
    shape = []
    for d, (b, a) in zip(x.shape, pads, strict=True):
        n = d + int(b) + int(a)
        if n < 0:
            raise IRError(f"padding {b},{a} removes more than the {d} cells of an axis")
        if mode != "constant" and d == 0 and (b > 0 or a > 0):
            raise IRError(f"cannot {mode}-pad an empty axis")
        shape.append(n)
    attrs = {"pads": [(int(b), int(a)) for b, a in pads], "mode": mode, "value": value}
    return _make(Op.PAD, [x], attrs, shape, x.dtype, label)


# ---------------------------------------------------------------- indexing


def _check_indices(idx: Node, what: str) -> None:
    if not idx.dtype.is_int:
        raise IRError(f"{what} indices must be integers, got {idx.dtype.np_name}")


def gather(x: Node, idx: Node, axis: int, label: str = "") -> Node:
    _check_indices(idx, "gather")
    ax = normalize_axis(axis, x.rank)
    shape = (*x.shape[:ax], *idx.shape, *x.shape[ax + 1:])
    return _make(Op.GATHER, [x, idx], {"axis": ax}, shape, x.dtype, label)


def lookup(keys: Node, values: Node, label: str = "") -> Node:
    """Where each of `values` is among `keys` (Op.LOOKUP): a join of mapped labels."""
    if keys.rank != 1 or keys.dtype is not CellType.INT32 or values.dtype is not CellType.INT32:
        raise IRError("lookup needs int32 keys of rank 1 and int32 values")
    if keys.per_document:
        raise IRError("lookup keys must be the same for every document")
    return _make(Op.LOOKUP, [keys, values], {}, values.shape, CellType.INT32, label)


def gather_elements(x: Node, idx: Node, axis: int, label: str = "") -> Node:
    _check_indices(idx, "gather_elements")
    ax = normalize_axis(axis, x.rank)
    if idx.rank != x.rank:
        raise IRError(f"gather_elements indices rank {idx.rank} differs from data rank {x.rank}")
    return _make(Op.GATHER_ELEMENTS, [x, idx], {"axis": ax}, idx.shape, x.dtype, label)


def gather_nd(x: Node, idx: Node, batch_dims: int, label: str = "") -> Node:
    _check_indices(idx, "gather_nd")
    k = idx.shape[-1] if idx.rank else 0
    if idx.rank < 1 or k > x.rank - batch_dims:
        raise IRError(f"gather_nd index depth {k} exceeds data rank {x.rank} less {batch_dims} batch dims")
    if x.shape[:batch_dims] != idx.shape[:batch_dims]:
        raise IRError("gather_nd batch dimensions of data and indices differ")
    shape = (*idx.shape[:-1], *x.shape[batch_dims + k:])
    return _make(Op.GATHER_ND, [x, idx], {"batch_dims": batch_dims}, shape, x.dtype, label)


def scatter_elements(x: Node, idx: Node, upd: Node, axis: int, reduction: str, label: str = "") -> Node:
    _check_indices(idx, "scatter_elements")
    if reduction not in SCATTER_REDUCTIONS:
        raise IRError(f"unknown scatter reduction '{reduction}'")
    if idx.shape != upd.shape or idx.rank != x.rank:
        raise IRError("scatter_elements indices and updates must have the data's rank and one shape")
    if upd.dtype is not x.dtype:
        raise IRError("scatter_elements updates differ in cell type from data")
    ax = normalize_axis(axis, x.rank)
    return _make(Op.SCATTER_ELEMENTS, [x, idx, upd], {"axis": ax, "reduction": reduction}, x.shape,
                 x.dtype, label)


def scatter_nd(x: Node, idx: Node, upd: Node, reduction: str, label: str = "") -> Node:
    _check_indices(idx, "scatter_nd")
    if reduction not in SCATTER_REDUCTIONS:
        raise IRError(f"unknown scatter reduction '{reduction}'")
    k = idx.shape[-1] if idx.rank else 0
    want = (*idx.shape[:-1], *x.shape[k:])
    if idx.rank < 1 or k > x.rank or upd.shape != want:
        raise IRError(f"scatter_nd updates shape {list(upd.shape)} should be {list(want)}")
    if upd.dtype is not x.dtype:
        raise IRError("scatter_nd updates differ in cell type from data")
    return _make(Op.SCATTER_ND, [x, idx, upd], {"reduction": reduction}, x.shape, x.dtype, label)


def topk(x: Node, k: int, axis: int, largest: bool, sorted_: bool = True, label: str = "") -> Node:
    """Indices of the k largest (or smallest) cells along an axis; ties keep the lower index."""
    ax = normalize_axis(axis, x.rank)
    if not 0 <= k <= x.shape[ax]:
        raise IRError(f"topk k={k} is outside 0..{x.shape[ax]}")
    shape = tuple(k if i == ax else d for i, d in enumerate(x.shape))
    attrs = {"axis": ax, "k": int(k), "largest": largest, "sorted": sorted_}
    return _make(Op.TOPK, [x], attrs, shape, CellType.INT64, label)


def tree_ensemble(x: Node, forest: Forest, label: str = "") -> Node:
    """The forest's scores ([..., targets], its accumulation type) for inputs [..., features];
    base values added, no post-transform (those stay ordinary ops)."""
    if not isinstance(forest, Forest):
        raise IRError(f"tree_ensemble needs a canonical Forest, got {type(forest).__name__}")
    if x.rank < 1:
        raise IRError("tree_ensemble needs inputs with a feature axis, got a scalar")
    if x.dtype is not forest.input_type:
        raise IRError(f"{forest!r} compares {forest.input_type.np_name} inputs, got {x.dtype.np_name}; cast first")
    if x.shape[-1] < forest.n_features:
        raise IRError(f"{forest!r} reads {forest.n_features} features, the input has {x.shape[-1]}")
    shape = (*x.shape[:-1], forest.n_targets)
    return _make(Op.TREE_ENSEMBLE, [x], {"forest": forest}, shape, forest.accumulate_type, label)


def as_array(values: npt.ArrayLike, dtype: CellType) -> Node:
    return constant(np.asarray(values, dtype=dtype.np_dtype), dtype)
