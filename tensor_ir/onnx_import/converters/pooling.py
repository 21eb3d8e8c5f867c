"""Pooling converters: MaxPool, AveragePool, LpPool, their Global forms, and MaxUnpool.

Pooling extracts the input's windows (windows.py) and reduces their kernel axes; the global
forms reduce the spatial axes directly. MaxUnpool scatters values back to the flat positions
MaxPool's Indices name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import scalar_like
from tensor_ir.onnx_import.converters.linalg import integer_range
from tensor_ir.onnx_import.converters.windows import (
    Geometry,
    check_input,
    ints_attr,
    kernel_axes,
    patches,
    window_geometry,
)
from tensor_ir.onnx_import.registry import converter


def _pool_geometry(ctx: NodeContext, x: Node) -> Geometry:
    check_input(ctx, x)
    kernel = ctx.attr("kernel_shape")
    if not kernel or len(kernel) != x.rank - 2:
        raise ctx.error(f"kernel_shape {kernel} must name one size per spatial axis of {list(x.shape)}")
    # ceil_mode arrives with MaxPool/AveragePool-10 and LpPool-18; before it output sizes round
    # down, as the default ceil_mode=0 does
    ceil_mode = ctx.declares("ceil_mode") and bool(ctx.attr("ceil_mode"))
    return window_geometry(ctx, x.shape[2:], [int(k) for k in kernel], ceil_mode)


def _lowest(ct: CellType) -> float | int:
    return -math.inf if ct.is_float else integer_range(ct)[0]


@converter("MaxPool", 1, 8, 10, 11, 12, 22)
def max_pool(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    g = _pool_geometry(ctx, x)
    win = patches(x, g, _lowest(x.dtype))
    if not ctx.output_used(1):
        return [build.reduce(win, "max", kernel_axes(g), keepdims=False)]
    # Indices: flat positions in X of each window's first maximum
    # storage_order arrives with MaxPool-8, the first version with an Indices output
    storage_order = int(ctx.attr("storage_order")) if ctx.declares("storage_order") else 0
    if storage_order not in (0, 1):
        raise ctx.error(f"unsupported storage_order {storage_order}")
    r = g.rank
    taps = int(np.prod(g.kernel, dtype=np.int64))
    perm = [0, 1, *(2 + 2 * i for i in range(r)), *kernel_axes(g)]
    flat = build.reshape(build.transpose(win, perm), (*x.shape[:2], *g.out, taps))
    y = build.reduce(flat, "max", [flat.rank - 1], keepdims=False)
    tap = build.arg_reduce(flat, "argmax", flat.rank - 1, keepdims=False, last=False)
    spatial = x.shape[2:]
    if storage_order == 0:
        stride = [int(np.prod(spatial[i + 1:], dtype=np.int64)) for i in range(r)]
    else:
        stride = [int(np.prod(spatial[:i], dtype=np.int64)) for i in range(r)]
    # position = sum_i (o_i * s_i - pad_i + j_i * d_i) * stride_i + (n * C + c) * prod(spatial):
    # the tap part is a lookup by tap number, the rest a constant grid
    js = np.indices(g.kernel).reshape(r, -1)
    tap_offset = sum(js[i] * g.dilations[i] * stride[i] for i in range(r))
    grid = np.zeros(g.out, dtype=np.int64)
    for i in range(r):
        o = (np.arange(g.out[i]) * g.strides[i] - g.pads_begin[i]) * stride[i]
        grid = grid + o.reshape([-1 if j == i else 1 for j in range(r)])
    plane = int(np.prod(spatial, dtype=np.int64))
    nc = (np.arange(x.shape[0] * x.shape[1]) * plane).reshape(x.shape[0], x.shape[1], *([1] * r))
    base = build.as_array(grid + nc, CellType.INT64)
    idx = build.gather(build.as_array(np.asarray(tap_offset, dtype=np.int64), CellType.INT64), tap, axis=0)
    return [y, build.join("add", idx, base)]


def _window_counts(shape: Sequence[int], g: Geometry, valid: np.ndarray) -> Node:
    """How many cells of each window lie where `valid` (over the padded spatial grid) is 1."""
    mask = build.as_array(valid.reshape(1, 1, *valid.shape), CellType.FLOAT64)
    geom = Geometry(g.kernel, g.strides, g.dilations, (0,) * g.rank, (0,) * g.rank, (0,) * g.rank, g.out)
    counts = build.reduce(patches(mask, geom, 0), "sum", kernel_axes(g), keepdims=False)
    return build.reshape(counts, counts.shape[2:])


@converter("AveragePool", 1, 7, 10, 11, 19, 22)
def average_pool(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    ctx.float_types_only(x)
    g = _pool_geometry(ctx, x)
    total = build.reduce(patches(x, g, 0), "sum", kernel_axes(g), keepdims=False)
    # the divisor counts the input cells of each window, plus its explicit padding with
    # count_include_pad; never the cells ceil mode adds past the padding
    # count_include_pad arrives with AveragePool-7; AveragePool-1 excludes the padding, as
    # the opset-7 default count_include_pad=0 does
    include_pad = ctx.declares("count_include_pad") and bool(ctx.attr("count_include_pad"))
    grid = np.zeros([s + b + e + x_ for s, b, e, x_ in zip(x.shape[2:], g.pads_begin, g.pads_end, g.extra_end,
                                                               strict=True)])
    inner = tuple(slice(0 if include_pad else b, (b + s + e) if include_pad else (b + s))
                  for s, b, e in zip(x.shape[2:], g.pads_begin, g.pads_end, strict=True))
    grid[inner] = 1
    counts = _window_counts(x.shape[2:], g, grid)
    inv = build.cast(build.join("div", build.scalar(1.0, CellType.FLOAT64), counts), x.dtype)
    return [build.join("mul", total, inv)]


def _lp(x: Node, p: float, axes: Sequence[int], keepdims: bool) -> Node:
    if p == 2:
        return build.map_("sqrt", build.reduce(build.join("mul", x, x), "sum", axes, keepdims))
    if p == 1:
        return build.reduce(build.map_("abs", x), "sum", axes, keepdims)
    powered = build.join("pow", build.map_("abs", x), scalar_like(x, p))
    return build.join("pow", build.reduce(powered, "sum", axes, keepdims), scalar_like(x, 1.0 / p))


def _p_attr(ctx: NodeContext) -> float:
    p = float(ctx.attr("p"))
    if p <= 0:
        raise ctx.error(f"unsupported p={p} (must be positive)")
    return p


@converter("LpPool", 1, 2, 11, 18, 22)
def lp_pool(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    ctx.float_types_only(x)
    g = _pool_geometry(ctx, x)
    return [_lp(patches(x, g, 0), _p_attr(ctx), kernel_axes(g), keepdims=False)]


def _global_axes(ctx: NodeContext, x: Node) -> list[int]:
    check_input(ctx, x)
    return list(range(2, x.rank))


@converter("GlobalAveragePool", 1, 22)
def global_average_pool(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    ctx.float_types_only(x)
    axes = _global_axes(ctx, x)
    count = int(np.prod(x.shape[2:], dtype=np.int64))
    return [build.join("div", build.reduce(x, "sum", axes, keepdims=True), scalar_like(x, count))]


@converter("GlobalMaxPool", 1, 22)
def global_max_pool(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    return [build.reduce(x, "max", _global_axes(ctx, x), keepdims=True)]


@converter("GlobalLpPool", 1, 2, 22)
def global_lp_pool(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    ctx.float_types_only(x)
    return [_lp(x, _p_attr(ctx), _global_axes(ctx, x), keepdims=True)]


@converter("MaxUnpool", 9, 11, 22)
def max_unpool(ctx: NodeContext) -> Sequence[Node | None]:
    x, idx = ctx.input(0), ctx.input(1)
    check_input(ctx, x)
    if idx.shape != x.shape:
        raise ctx.error(f"I of shape {list(idx.shape)} differs from X of shape {list(x.shape)}")
    r = x.rank - 2
    given = ctx.optional_const_ints(2, "output_shape")
    if given is not None:
        if len(given) != x.rank:
            raise ctx.error(f"output_shape {given} must name all {x.rank} axes")
        shape = given
    else:
        kernel = ctx.attr("kernel_shape")
        if not kernel or len(kernel) != r:
            raise ctx.error(f"kernel_shape {kernel} must name one size per spatial axis")
        strides = ints_attr(ctx, "strides", r, 1)
        pads = ints_attr(ctx, "pads", 2 * r, 0)
        shape = [*x.shape[:2], *((x.shape[2 + i] - 1) * strides[i] + int(kernel[i]) - pads[i] - pads[r + i]
                                  for i in range(r))]
    total = int(np.prod(shape, dtype=np.int64))
    zeros = build.broadcast(scalar_like(x, 0), (total,))
    # I holds flat positions in the output (as MaxPool's Indices do in its input)
    out = build.scatter_elements(zeros, build.reshape(idx, (x.size,)), build.reshape(x, (x.size,)), 0, "none")
    return [build.reshape(out, shape)]
