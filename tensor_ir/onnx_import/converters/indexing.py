"""Gathers, scatters, TopK and the ops whose output shape depends on values (NonZero,
Compress, Unique), which we accept only when those values are deploy-time constants."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import unsqueeze
from tensor_ir.onnx_import.registry import converter

_INT64 = CellType.INT64


def _axis(ctx: NodeContext, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def _indices(ctx: NodeContext, idx: Node) -> Node:
    if not idx.dtype.is_int:
        raise ctx.error(f"indices must be int32 or int64, got {idx.dtype.np_name}")
    return idx


def _check_static_indices(ctx: NodeContext, idx: Node, dim: int, what: str = "index") -> None:
    """Out-of-range constant indices fail at deploy, not on the first query."""
    if idx.is_constant and idx.size:
        v = idx.value.astype(np.int64)
        bad = v[(v < -dim) | (v >= dim)]
        if bad.size:
            raise ctx.error(f"{what} {int(bad.flat[0])} is out of range for an axis of size {dim}")


# ---------------------------------------------------------------- gathers


@converter("Gather", 1, 11, 13)
def gather(ctx: NodeContext) -> Sequence[Node | None]:
    x, idx = ctx.input(0), _indices(ctx, ctx.input(1))
    ax = _axis(ctx, int(ctx.attr("axis")), x.rank)
    _check_static_indices(ctx, idx, x.shape[ax])
    return [build.gather(x, idx, ax, label=ctx.name)]


@converter("GatherElements", 11, 13)
def gather_elements(ctx: NodeContext) -> Sequence[Node | None]:
    x, idx = ctx.input(0), _indices(ctx, ctx.input(1))
    ax = _axis(ctx, int(ctx.attr("axis")), x.rank)
    if idx.rank != x.rank:
        raise ctx.error(f"indices rank {idx.rank} differs from data rank {x.rank}")
    if any(i > d for a, (i, d) in enumerate(zip(idx.shape, x.shape, strict=True)) if a != ax):
        raise ctx.error(f"indices shape {list(idx.shape)} exceeds data shape {list(x.shape)} off the axis")
    _check_static_indices(ctx, idx, x.shape[ax])
    return [build.gather_elements(x, idx, ax, label=ctx.name)]


@converter("GatherND", 11, 12, 13)
def gather_nd(ctx: NodeContext) -> Sequence[Node | None]:
    x, idx = ctx.input(0), _indices(ctx, ctx.input(1))
    # batch_dims arrives with GatherND-12; GatherND-11 has no batch axes, as the opset-12
    # default batch_dims=0 says
    b = int(ctx.attr("batch_dims")) if ctx.declares("batch_dims") else 0
    if not 0 <= b < min(x.rank, max(idx.rank, 1)):
        raise ctx.error(f"batch_dims {b} must be below the ranks of data ({x.rank}) and indices ({idx.rank})")
    return [build.gather_nd(x, idx, b, label=ctx.name)]


# ---------------------------------------------------------------- scatters


def _reduction(ctx: NodeContext) -> str:
    # reduction arrives with ScatterElements/ScatterND-16; before it updates replace, as the
    # opset-16 default reduction='none' does
    red = str(ctx.attr("reduction")) if ctx.declares("reduction") else "none"
    allowed = {"none"} | ({"add", "mul"} if ctx.opset >= 16 else set()) | (
        {"max", "min"} if ctx.opset >= 18 else set())
    if red not in allowed:
        raise ctx.error(f"unsupported reduction '{red}'")
    if red != "none" and ctx.input(0).dtype.is_bool:
        raise ctx.error(f"unsupported reduction '{red}' on bool cells")
    return red


def _scatter_elements(ctx: NodeContext, reduction: str) -> Node:
    x, idx, upd = ctx.input(0), _indices(ctx, ctx.input(1)), ctx.input(2)
    ax = _axis(ctx, int(ctx.attr("axis")), x.rank)
    if idx.shape != upd.shape or idx.rank != x.rank:
        raise ctx.error(f"indices {list(idx.shape)} and updates {list(upd.shape)} must have one shape of "
                        f"the data's rank {x.rank}")
    if any(i > d for a, (i, d) in enumerate(zip(idx.shape, x.shape, strict=True)) if a != ax):
        raise ctx.error(f"indices shape {list(idx.shape)} exceeds data shape {list(x.shape)} off the axis")
    if upd.dtype is not x.dtype:
        raise ctx.error(f"updates are {upd.dtype.np_name} but data is {x.dtype.np_name}")
    _check_static_indices(ctx, idx, x.shape[ax])
    return build.scatter_elements(x, idx, upd, ax, reduction, label=ctx.name)


@converter("Scatter", 9, 11)
def scatter(ctx: NodeContext) -> Sequence[Node | None]:
    return [_scatter_elements(ctx, "none")]


@converter("ScatterElements", 11, 13, 16, 18)
def scatter_elements(ctx: NodeContext) -> Sequence[Node | None]:
    return [_scatter_elements(ctx, _reduction(ctx))]


@converter("ScatterND", 11, 13, 16, 18)
def scatter_nd(ctx: NodeContext) -> Sequence[Node | None]:
    x, idx, upd = ctx.input(0), _indices(ctx, ctx.input(1)), ctx.input(2)
    if upd.dtype is not x.dtype:
        raise ctx.error(f"updates are {upd.dtype.np_name} but data is {x.dtype.np_name}")
    if idx.rank < 1 or idx.shape[-1] > x.rank:
        raise ctx.error(f"indices of shape {list(idx.shape)} cannot address data of rank {x.rank}")
    if idx.is_constant and idx.size:
        v = idx.value.astype(np.int64)
        dims = np.asarray(x.shape[: idx.shape[-1]], dtype=np.int64)
        if ((v < -dims) | (v >= dims)).any():
            raise ctx.error(f"an index is out of range for data of shape {list(x.shape)}")
    return [build.scatter_nd(x, idx, upd, _reduction(ctx), label=ctx.name)]


# ---------------------------------------------------------------- TopK


@converter("TopK", 1, 10, 11, 24)
def topk(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    if ctx.opset < 10:
        if ctx.attr("k") is None:
            raise ctx.error("attribute 'k' is missing")
        k = int(ctx.attr("k"))
    else:
        ks = ctx.const_ints(1, "K")
        if len(ks) != 1:
            raise ctx.error(f"K must hold one value, got {ks}")
        k = ks[0]
    ax = _axis(ctx, int(ctx.attr("axis")), x.rank)
    if not 0 <= k <= x.shape[ax]:
        raise ctx.error(f"K={k} is outside 0..{x.shape[ax]} for axis {ax} of shape {list(x.shape)}")
    if x.dtype.is_bool:
        raise ctx.error("unsupported cell type bool")
    # largest arrives with TopK-11; TopK-1 and -10 always pick the largest, as the opset-11
    # default largest=1 does
    largest = bool(ctx.attr("largest")) if ctx.declares("largest") else True
    # sorted=0 leaves the order open; sorted output is one valid answer
    idx = build.topk(x, k, ax, largest, True, label=ctx.name)
    return [build.gather_elements(x, idx, ax), idx]


# ---------------------------------------------------------------- OneHot, Trilu, EyeLike


@converter("OneHot", 9, 11, 28)
def one_hot(ctx: NodeContext) -> Sequence[Node | None]:
    indices, values = ctx.input(0), ctx.input(2)
    depth_arr = ctx.const(1, "depth")
    if depth_arr.size != 1:
        raise ctx.error(f"depth must be one value, got shape {list(depth_arr.shape)}")
    depth = int(depth_arr.reshape(()).item())
    if depth < 1:
        raise ctx.error(f"depth must be positive, got {depth}")
    if values.size != 2:
        raise ctx.error(f"values must be [off_value, on_value], got shape {list(values.shape)}")
    out_rank = indices.rank + 1
    ax = _axis(ctx, int(ctx.attr("axis")), out_rank)
    # non-integer indices are cast to int64 first (truncating), as the spec says
    idx = build.cast(indices, _INT64)
    if indices.dtype.is_signed:
        d = build.scalar(depth, _INT64)
        idx = build.select(build.join("lt", idx, build.scalar(0, _INT64)), build.join("add", idx, d), idx)
    idx = unsqueeze(idx, [ax])
    targets = [1] * out_rank
    targets[ax] = depth
    hot = build.join("eq", idx, build.constant(np.arange(depth, dtype=np.int64).reshape(targets), _INT64))
    flat = build.reshape(values, (2,))
    off = build.reshape(build.slice_(flat, [0], [1], [1]), ())
    on = build.reshape(build.slice_(flat, [1], [2], [1]), ())
    return [build.select(hot, on, off, label=ctx.name)]


@converter("Trilu", 14)
def trilu(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    if x.rank < 2:
        raise ctx.error(f"needs rank >= 2, got shape {list(x.shape)}")
    kn = ctx.optional(1)
    if kn is None:
        k: Node = build.scalar(0, _INT64)
    else:
        if kn.size != 1:
            raise ctx.error(f"k must be one value, got shape {list(kn.shape)}")
        k = build.reshape(build.cast(kn, _INT64), ())
    n, m = x.shape[-2:]
    # column minus row: the diagonal a cell lies on
    diag = np.arange(m, dtype=np.int64)[None, :] - np.arange(n, dtype=np.int64)[:, None]
    keep = build.join("ge" if ctx.attr("upper") else "le", build.constant(diag, _INT64), k)
    return [build.select(keep, x, build.scalar(0, x.dtype), label=ctx.name)]


@converter("EyeLike", 9, 22)
def eye_like(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    if x.rank != 2:
        raise ctx.error(f"needs a 2-d input, got shape {list(x.shape)}")
    ct = ctx.dtype_attr("dtype") if ctx.attr("dtype") is not None else x.dtype
    eye = np.eye(x.shape[0], x.shape[1], k=int(ctx.attr("k")))
    return [build.constant(eye.astype(ct.np_dtype), ct, ctx.name)]


# ---------------------------------------------------------------- value-dependent shapes


@converter("NonZero", 9, 13)
def non_zero(ctx: NodeContext) -> Sequence[Node | None]:
    # the number of non-zero cells sets the output's shape, so only a constant can be known
    x = ctx.const(0, "input (NonZero's output shape depends on its values)")
    if x.ndim == 0:
        out = np.empty((0, int(np.count_nonzero(x))), dtype=np.int64)
    else:
        out = np.vstack(np.nonzero(x)).astype(np.int64)
    return [build.constant(out, _INT64, ctx.name)]


@converter("Compress", 9, 11, 28)
def compress(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    cond = np.asarray(ctx.const(1, "condition (Compress's output shape depends on it)")).reshape(-1)
    axis = ctx.attr("axis")
    if axis is None:
        x = build.reshape(x, (x.size,))
        ax = 0
    else:
        ax = _axis(ctx, int(axis), x.rank)
    picked = np.flatnonzero(cond.astype(bool))
    if picked.size and picked[-1] >= x.shape[ax]:
        raise ctx.error(f"condition selects index {int(picked[-1])} of an axis of {x.shape[ax]}")
    return [build.gather(x, build.constant(picked.astype(np.int64), _INT64), ax, label=ctx.name)]


@converter("Unique", 11, 28)
def unique(ctx: NodeContext) -> Sequence[Node | None]:
    x_node = ctx.input(0)
    x = ctx.const(0, "input (Unique's output shape depends on its values)")
    axis = ctx.attr("axis")
    if axis is None:
        x, ax = x.reshape(-1), 0
    else:
        ax = _axis(ctx, int(axis), x.ndim)
    y, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True, return_counts=True,
                                          axis=ax)
    inverse = inverse.reshape(-1)
    if not ctx.attr("sorted"):
        # order of first occurrence instead of sorted order
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse]
        y = np.take(x, first, axis=ax)
    ct = x_node.dtype
    return [
        build.constant(np.asarray(y, dtype=ct.np_dtype), ct),
        build.constant(first.astype(np.int64), _INT64),
        build.constant(inverse.astype(np.int64), _INT64),
        build.constant(counts.astype(np.int64), _INT64),
    ]
