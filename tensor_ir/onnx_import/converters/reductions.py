"""Reductions: ReduceSum and its relatives as REDUCE with maps around it, ArgMax/ArgMin
as ARG_REDUCE, CumSum/CumProd as SCAN.

Axes come as an attribute in older opsets and as an optional constant input in newer
ones (ReduceSum from 13, the others from 18). With no axes every axis is reduced, unless
noop_with_empty_axes is set: then nothing is reduced and only the elementwise part of the
op applies (ReduceL1 gives |x|, ReduceSumSquare x*x), as the ONNX reference does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ml_dtypes
import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType, compute_type
from tensor_ir.errors import IRError
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import axes_input_or_attr, scalar_like
from tensor_ir.onnx_import.registry import converter

# None: every axis; (): no axis (noop_with_empty_axes)
Axes = tuple[int, ...] | None


def _axes(ctx: NodeContext, x: Node) -> Axes:
    axes = axes_input_or_attr(ctx, 1)
    if not axes:
        # noop_with_empty_axes arrives with ReduceSum-13 and the other reductions' version 18;
        # before it, no or empty axes reduce every axis, as noop_with_empty_axes=0 does
        noop = ctx.declares("noop_with_empty_axes") and bool(ctx.attr("noop_with_empty_axes"))
        return () if noop else None
    try:
        return tuple(sorted({build.normalize_axis(a, x.rank) for a in axes}))
    except IRError as e:
        raise ctx.error(f"axes {axes}: {e}") from None


def _reduced(x: Node, axes: Axes) -> tuple[int, ...]:
    return tuple(range(x.rank)) if axes is None else axes


def _count(x: Node, axes: Axes) -> int:
    return int(np.prod([x.shape[a] for a in _reduced(x, axes)], dtype=np.int64))


def _extreme(ct: CellType, largest: bool) -> float | int | bool:
    """The identity of max (largest=False gives the smallest value) or of min."""
    if ct.is_bool:
        return largest
    if ct.is_float:
        return float("inf") if largest else float("-inf")
    info = ml_dtypes.iinfo(ct.np_dtype)  # type: ignore[no-untyped-call]
    return int(info.max) if largest else int(info.min)


def _reduce(x: Node, agg: str, axes: Axes, keepdims: bool) -> Node:
    if axes == ():
        return x
    ax = _reduced(x, axes)
    if agg in ("max", "min") and any(x.shape[a] == 0 for a in ax) and not x.dtype.is_float:
        # ONNX: the type's smallest (max) or largest (min) value; the IR's reduce
        # has no identity for these, and the result does not depend on the input
        shape = [1 if i in ax else d for i, d in enumerate(x.shape)] if keepdims else [
            d for i, d in enumerate(x.shape) if i not in ax
        ]
        fill = _extreme(x.dtype, largest=agg == "min")
        return build.constant(np.full(shape, fill, dtype=x.dtype.np_dtype), x.dtype)
    return build.reduce(x, agg, ax, keepdims)


def _keepdims(ctx: NodeContext) -> bool:
    return bool(ctx.attr("keepdims"))


def _no_ints(ctx: NodeContext, x: Node) -> None:
    if not x.dtype.is_float:
        raise ctx.error(f"unsupported: {ctx.op_type} of {x.dtype.np_name} cells (the ONNX reference "
                        "defines it for float types only)")


def _sum(ctx: NodeContext, x: Node) -> Node:
    return _reduce(x, "sum", _axes(ctx, x), _keepdims(ctx))


def _mean(ctx: NodeContext, x: Node) -> Node:
    axes = _axes(ctx, x)
    total = _reduce(x, "sum", axes, _keepdims(ctx))
    if axes == ():
        return total
    # integer means truncate toward zero, as numpy's mean with an int dtype and onnxruntime do
    return build.join("div", total, scalar_like(total, _count(x, axes)))


def _max(ctx: NodeContext, x: Node) -> Node:
    return _reduce(x, "max", _axes(ctx, x), _keepdims(ctx))


def _min(ctx: NodeContext, x: Node) -> Node:
    return _reduce(x, "min", _axes(ctx, x), _keepdims(ctx))


def _prod(ctx: NodeContext, x: Node) -> Node:
    return _reduce(x, "prod", _axes(ctx, x), _keepdims(ctx))


def _l1(ctx: NodeContext, x: Node) -> Node:
    return _reduce(build.map_("abs", x), "sum", _axes(ctx, x), _keepdims(ctx))


def _sum_square(ctx: NodeContext, x: Node) -> Node:
    return _reduce(build.join("mul", x, x), "sum", _axes(ctx, x), _keepdims(ctx))


def _l2(ctx: NodeContext, x: Node) -> Node:
    # integer cells: the root truncates back to the integer type, as the ONNX reference does
    return build.map_("sqrt", _sum_square(ctx, x))


def _log_sum(ctx: NodeContext, x: Node) -> Node:
    _no_ints(ctx, x)
    return build.map_("log", _sum(ctx, x))


def _log_sum_exp(ctx: NodeContext, x: Node) -> Node:
    """log(sum(exp(x - m))) + m with m the max, so large cells do not overflow exp."""
    _no_ints(ctx, x)
    axes = _axes(ctx, x)
    keepdims = _keepdims(ctx)
    if axes == ():
        return x
    m = _reduce(x, "max", axes, True)
    # an all -inf (or empty) slice has m = -inf, and +inf gives m = +inf: x - m would be
    # NaN there, while shifting by 0 gives the exact -inf / +inf
    m = build.select(build.map_("isinf", m), scalar_like(m, 0), m)
    shifted = build.map_("exp", build.join("sub", x, m))
    out = build.map_("log", _reduce(shifted, "sum", axes, keepdims))
    if not keepdims:
        m = build.reshape(m, out.shape)
    return build.join("add", out, m)


# name: (conversion, since_versions, computed in float32 for 16-bit floats). The single
# reductions already accumulate wide; the chains widen so that x * x, or a mean's sum, do
# not overflow or round at every step in float16.
_REDUCERS: dict[str, tuple[Callable[[NodeContext, Node], Node], tuple[int, ...], bool]] = {
    "ReduceSum": (_sum, (1, 11, 13), False),
    "ReduceMean": (_mean, (1, 11, 13, 18), True),
    "ReduceMax": (_max, (1, 11, 12, 13, 18, 20), False),
    "ReduceMin": (_min, (1, 11, 12, 13, 18, 20), False),
    "ReduceProd": (_prod, (1, 11, 13, 18), False),
    "ReduceL1": (_l1, (1, 11, 13, 18), True),
    "ReduceL2": (_l2, (1, 11, 13, 18), True),
    "ReduceSumSquare": (_sum_square, (1, 11, 13, 18), True),
    "ReduceLogSum": (_log_sum, (1, 11, 13, 18, 28), True),
    "ReduceLogSumExp": (_log_sum_exp, (1, 11, 13, 18, 28), True),
}


def _reducer(
    fn: Callable[[NodeContext, Node], Node], widen: bool
) -> Callable[[NodeContext], Sequence[Node | None]]:
    def convert(ctx: NodeContext) -> Sequence[Node | None]:
        x = ctx.input(0)
        wide = compute_type(x.dtype)
        if not widen or wide is x.dtype or not x.dtype.is_float:
            return [fn(ctx, x)]
        return [build.cast(fn(ctx, build.cast(x, wide)), x.dtype)]

    return convert


for _op, (_fn, _versions, _widen) in _REDUCERS.items():
    converter(_op, *_versions)(_reducer(_fn, _widen))


def _arg(ctx: NodeContext, agg: str) -> Node:
    x = ctx.input(0)
    if x.rank == 0:
        raise ctx.error(f"{ctx.op_type} of a scalar has no axis")
    # select_last_index arrives with ArgMax/ArgMin-12; before it ties went to the first
    # index, as the opset-12 default select_last_index=0 does
    last = ctx.declares("select_last_index") and bool(ctx.attr("select_last_index"))
    return build.arg_reduce(x, agg, int(ctx.attr("axis")), bool(ctx.attr("keepdims")), last, label=ctx.name)


@converter("ArgMax", 1, 11, 12, 13)
def arg_max(ctx: NodeContext) -> Sequence[Node | None]:
    return [_arg(ctx, "argmax")]


@converter("ArgMin", 1, 11, 12, 13)
def arg_min(ctx: NodeContext) -> Sequence[Node | None]:
    return [_arg(ctx, "argmin")]


def _scan(ctx: NodeContext, agg: str) -> Node:
    x = ctx.input(0)
    axis = ctx.const_ints(1, "axis")
    if len(axis) != 1:
        raise ctx.error(f"axis must hold one value, got {axis}")
    if x.rank == 0:
        raise ctx.error(f"{ctx.op_type} of a scalar has no axis")
    return build.scan(x, agg, axis[0], bool(ctx.attr("exclusive")), bool(ctx.attr("reverse")), label=ctx.name)


@converter("CumSum", 11, 14)
def cum_sum(ctx: NodeContext) -> Sequence[Node | None]:
    return [_scan(ctx, "sum")]


@converter("CumProd", 26)
def cum_prod(ctx: NodeContext) -> Sequence[Node | None]:
    return [_scan(ctx, "prod")]
