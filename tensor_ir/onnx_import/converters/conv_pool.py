"""Convolution and pooling as patch extraction followed by MATMUL or REDUCE.

A spatial axis of length L becomes two axes [out, kernel] holding x[o * stride + j * dilation]:
one GATHER with a constant [out, kernel] index table per spatial axis (a free reshape when
windows tile the axis exactly). The node count therefore grows with the number of spatial
axes, never with the kernel size. Convolution then contracts channels x kernel taps with one
MATMUL (im2col); pooling reduces the kernel axes. Transposed convolution spreads its input
with zeros (stride) and runs an ordinary convolution with the flipped kernel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import scalar_like
from tensor_ir.onnx_import.converters.linalg import integer_range, round_saturate
from tensor_ir.onnx_import.registry import converter

# ---------------------------------------------------------------- window geometry


@dataclass(frozen=True)
class _Geometry:
    """Sliding-window geometry over the spatial axes of an [N, C, *spatial] input."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]  # explicit or automatic padding
    extra_end: tuple[int, ...]  # past the padding, so ceil-mode windows stay in range
    out: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.kernel)


def _ints_attr(ctx: NodeContext, name: str, n: int, default: int) -> tuple[int, ...]:
    value = ctx.attr(name)
    if value is None or len(value) == 0:
        return (default,) * n
    if len(value) != n:
        raise ctx.error(f"attribute '{name}' has {len(value)} values for {n} spatial axes")
    return tuple(int(v) for v in value)


def _geometry(
    ctx: NodeContext, spatial: Sequence[int], kernel: Sequence[int], ceil_mode: bool = False
) -> _Geometry:
    n = len(spatial)
    strides = _ints_attr(ctx, "strides", n, 1)
    dilations = _ints_attr(ctx, "dilations", n, 1)
    if any(s <= 0 for s in strides) or any(d <= 0 for d in dilations) or any(k <= 0 for k in kernel):
        raise ctx.error(f"kernel {list(kernel)}, strides {list(strides)} and dilations {list(dilations)} "
                        "must be positive")
    auto_pad = str(ctx.attr("auto_pad", "NOTSET") or "NOTSET")
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [-(-size // s) for size, s in zip(spatial, strides, strict=True)]
        total = [max(0, (o - 1) * s + w - size) for o, s, w, size in zip(out, strides, span, spatial, strict=True)]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        begin, end = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad in ("NOTSET", "VALID"):
        if auto_pad == "VALID":
            begin, end = [0] * n, [0] * n
        else:
            pads = _ints_attr(ctx, "pads", 2 * n, 0)
            begin, end = list(pads[:n]), list(pads[n:])
        out = []
        for size, s, w, b, e in zip(spatial, strides, span, begin, end, strict=True):
            room = size + b + e - w
            if room < 0:
                raise ctx.error(f"the window ({w} cells) is larger than the padded input ({size + b + e})")
            o = (-(-room // s) if ceil_mode else room // s) + 1
            # ceil mode: the last window must start inside the input or its leading padding
            if ceil_mode and (o - 1) * s >= size + b:
                o -= 1
            out.append(o)
    else:
        raise ctx.error(f"unsupported auto_pad '{auto_pad}'")
    extra = [max(0, (o - 1) * s + w - (size + b + e))
             for o, s, w, size, b, e in zip(out, strides, span, spatial, begin, end, strict=True)]
    return _Geometry(tuple(kernel), strides, dilations, tuple(begin), tuple(end), tuple(extra), tuple(out))


def _windows(x: Node, axis: int, out: int, k: int, stride: int, dilation: int) -> Node:
    """Replace `axis` by two axes [out, k] with y[.., o, j, ..] = x[.., o * stride + j * dilation, ..]."""
    shape = list(x.shape)
    starts, steps = [0] * x.rank, [1] * x.rank
    if k == 1 or (dilation == 1 and stride == k):
        # the windows tile a prefix of the axis: a slice and a reshape, no data movement
        stops = list(shape)
        stops[axis] = (out - 1) * stride + 1 if k == 1 else out * k
        steps[axis] = stride if k == 1 else 1
        y = build.slice_(x, starts, stops, steps)
        return build.reshape(y, (*shape[:axis], out, k, *shape[axis + 1:]))
    idx = np.arange(out)[:, None] * stride + np.arange(k)[None, :] * dilation
    return build.gather(x, build.as_array(idx, CellType.INT64), axis=axis)


def _patches(x: Node, g: _Geometry, pad_value: float | int) -> Node:
    """[N, C, *spatial] -> [N, C, o1, k1, o2, k2, ...] (windows of the padded input)."""
    pads = [(0, 0), (0, 0)] + [(b, e + x_) for b, e, x_ in zip(g.pads_begin, g.pads_end, g.extra_end, strict=True)]
    if any(p != (0, 0) for p in pads):
        x = build.pad(x, pads, "constant", pad_value)
    for i in range(g.rank):
        x = _windows(x, 2 + 2 * i, g.out[i], g.kernel[i], g.strides[i], g.dilations[i])
    return x


def _kernel_axes(g: _Geometry) -> list[int]:
    return [3 + 2 * i for i in range(g.rank)]


def _check_input(ctx: NodeContext, x: Node, what: str = "X") -> None:
    if x.rank < 3:
        raise ctx.error(f"{what} must be [N, C, D1, ...] (rank >= 3), got {list(x.shape)}")


# ---------------------------------------------------------------- convolution


def _conv(x: Node, w: Node, bias: Node | None, g: _Geometry, groups: int) -> Node:
    """Grouped N-D convolution of x [N, C, *S] with w [M, C/groups, *k] as im2col + MATMUL."""
    n, c = x.shape[0], x.shape[1]
    m = w.shape[0]
    cg, mg = c // groups, m // groups
    taps = int(np.prod(g.kernel, dtype=np.int64))
    p = int(np.prod(g.out, dtype=np.int64))
    cols = _patches(x, g, 0)  # [N, C, o1, k1, o2, k2, ...]
    r = g.rank
    # rows are output positions, columns (channel, taps): [N, P, groups, cg * taps]
    perm = [0, *(2 + 2 * i for i in range(r)), 1, *(3 + 2 * i for i in range(r))]
    cols = build.reshape(build.transpose(cols, perm), (n, p, groups, cg * taps))
    if groups == 1:
        wt = build.transpose(build.reshape(w, (m, cg * taps)), (1, 0))  # [C * taps, M]
        y = build.matmul(build.reshape(cols, (n, p, cg * taps)), wt)  # [N, P, M]
        y = build.transpose(y, (0, 2, 1))
    else:
        wt = build.transpose(build.reshape(w, (groups, mg, cg * taps)), (0, 2, 1))  # [G, cg*taps, mg]
        y = build.matmul(build.transpose(cols, (0, 2, 1, 3)), wt)  # [N, G, P, mg]
        y = build.transpose(y, (0, 1, 3, 2))
    y = build.reshape(y, (n, m, *g.out))
    if bias is not None:
        y = build.join("add", y, build.reshape(bias, (m, *([1] * r))))
    return y


def _conv_operands(ctx: NodeContext, x: Node, w: Node) -> tuple[int, list[int]]:
    _check_input(ctx, x)
    if w.rank != x.rank:
        raise ctx.error(f"W of shape {list(w.shape)} does not match X of shape {list(x.shape)}")
    groups = int(ctx.attr("group", 1))
    kernel = list(w.shape[2:])
    given = ctx.attr("kernel_shape")
    if given and [int(k) for k in given] != kernel:
        raise ctx.error(f"kernel_shape {list(given)} differs from W's spatial shape {kernel}")
    if groups <= 0 or x.shape[1] % groups or w.shape[0] % groups or w.shape[1] * groups != x.shape[1]:
        raise ctx.error(f"group={groups} does not fit X channels {x.shape[1]} and W shape {list(w.shape)}")
    return groups, kernel


@converter("Conv", 1, 11, 22)
def conv(ctx: NodeContext) -> Sequence[Node | None]:
    x, w, bias = ctx.input(0), ctx.input(1), ctx.optional(2)
    ctx.float_types_only(x)
    if w.dtype is not x.dtype or (bias is not None and bias.dtype is not x.dtype):
        raise ctx.error("X, W and B must share one cell type")
    groups, kernel = _conv_operands(ctx, x, w)
    if bias is not None and bias.shape != (w.shape[0],):
        raise ctx.error(f"B must have shape [{w.shape[0]}], got {list(bias.shape)}")
    return [_conv(x, w, bias, _geometry(ctx, x.shape[2:], kernel), groups)]


def _int_operand(x: Node, zp: Node | None, per_channel_rank: int = 0) -> Node:
    """x - zero_point in int32; a 1-D zero point of a weight is per output channel."""
    x32 = build.cast(x, CellType.INT32)
    if zp is None:
        return x32
    z = build.cast(zp, CellType.INT32)
    if per_channel_rank and z.rank == 1 and z.shape[0] != 1:
        z = build.reshape(z, (z.shape[0], *([1] * (per_channel_rank - 1))))
    else:
        z = build.reshape(z, ()) if z.size == 1 else z
    return build.join("sub", x32, z)


@converter("ConvInteger", 10)
def conv_integer(ctx: NodeContext) -> Sequence[Node | None]:
    x, w = ctx.input(0), ctx.input(1)
    groups, kernel = _conv_operands(ctx, x, w)
    # padding with 0 after subtracting the zero point pads with the zero point, as onnx requires
    xi = _int_operand(x, ctx.optional(2))
    wi = _int_operand(w, ctx.optional(3), per_channel_rank=w.rank)
    return [_conv(xi, wi, None, _geometry(ctx, x.shape[2:], kernel), groups)]


@converter("QLinearConv", 10)
def qlinear_conv(ctx: NodeContext) -> Sequence[Node | None]:
    x, x_scale, x_zp = ctx.input(0), ctx.input(1), ctx.optional(2)
    w, w_scale, w_zp = ctx.input(3), ctx.input(4), ctx.optional(5)
    y_scale, y_zp, bias = ctx.input(6), ctx.optional(7), ctx.optional(8)
    groups, kernel = _conv_operands(ctx, x, w)
    out_type = y_zp.dtype if y_zp is not None else x.dtype
    if out_type not in (CellType.INT8, CellType.UINT8):
        raise ctx.error(f"unsupported output type {out_type.np_name}")
    xi = _int_operand(x, x_zp)
    wi = _int_operand(w, w_zp, per_channel_rank=w.rank)
    acc = _conv(xi, wi, None if bias is None else build.cast(bias, CellType.INT32),
                _geometry(ctx, x.shape[2:], kernel), groups)
    ws = w_scale
    if ws.rank == 1 and ws.shape[0] != 1:
        ws = build.reshape(ws, (ws.shape[0], *([1] * (x.rank - 2))))
    else:
        ws = build.reshape(ws, ())
    factor = build.join("div", build.join("mul", build.reshape(x_scale, ()), ws), build.reshape(y_scale, ()))
    y = build.join("mul", build.cast(acc, CellType.FLOAT64), build.cast(factor, CellType.FLOAT64))
    if y_zp is not None:
        y = build.join("add", y, build.cast(build.reshape(y_zp, ()), CellType.FLOAT64))
    return [round_saturate(y, out_type)]


def _spread(x: Node, strides: Sequence[int]) -> Node:
    """Insert stride - 1 zeros after every cell of each spatial axis: [.., S*s, ..] (trailing
    zeros included; the caller's padding crops them)."""
    if all(s == 1 for s in strides):
        return x
    r = len(strides)
    spatial = x.shape[2:]
    y = build.reshape(x, (*x.shape[:2], *(v for size in spatial for v in (size, 1))))
    y = build.pad(y, [(0, 0), (0, 0), *((p, q) for s in strides for p, q in ((0, 0), (0, s - 1)))],
                  "constant", 0)
    return build.reshape(y, (*x.shape[:2], *(spatial[i] * strides[i] for i in range(r))))


@converter("ConvTranspose", 1, 11, 22)
def conv_transpose(ctx: NodeContext) -> Sequence[Node | None]:
    x, w, bias = ctx.input(0), ctx.input(1), ctx.optional(2)
    ctx.float_types_only(x)
    _check_input(ctx, x)
    if w.dtype is not x.dtype or (bias is not None and bias.dtype is not x.dtype):
        raise ctx.error("X, W and B must share one cell type")
    if w.rank != x.rank:
        raise ctx.error(f"W of shape {list(w.shape)} does not match X of shape {list(x.shape)}")
    groups = int(ctx.attr("group", 1))
    c = x.shape[1]
    if groups <= 0 or c % groups or w.shape[0] != c:
        raise ctx.error(f"group={groups} does not fit X channels {c} and W shape {list(w.shape)}")
    r = x.rank - 2
    spatial = list(x.shape[2:])
    kernel = list(w.shape[2:])
    given = ctx.attr("kernel_shape")
    if given and [int(k) for k in given] != kernel:
        raise ctx.error(f"kernel_shape {list(given)} differs from W's spatial shape {kernel}")
    strides = _ints_attr(ctx, "strides", r, 1)
    dilations = _ints_attr(ctx, "dilations", r, 1)
    out_pad = _ints_attr(ctx, "output_padding", r, 0)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    full = [s * (size - 1) + op + w_ for s, size, op, w_ in zip(strides, spatial, out_pad, span, strict=True)]
    auto_pad = str(ctx.attr("auto_pad", "NOTSET") or "NOTSET")
    output_shape = ctx.attr("output_shape")
    if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # onnx: padding is derived from the wanted output shape (input * stride for SAME_*):
        # SAME_UPPER puts the smaller half first, everything else the larger half
        if output_shape:
            want = [int(v) for v in output_shape][-r:]
            if len(want) != r:
                raise ctx.error(f"output_shape {list(output_shape)} does not name {r} spatial sizes")
        else:
            want = [size * s for size, s in zip(spatial, strides, strict=True)]
        total = [f - o for f, o in zip(full, want, strict=True)]
        if auto_pad == "SAME_UPPER":
            begin = [t // 2 for t in total]
        else:
            begin = [t - t // 2 for t in total]
        end = [t - b for t, b in zip(total, begin, strict=True)]
    elif auto_pad in ("NOTSET", "VALID"):
        pads = _ints_attr(ctx, "pads", 2 * r, 0) if auto_pad == "NOTSET" else (0,) * (2 * r)
        begin, end = list(pads[:r]), list(pads[r:])
    else:
        raise ctx.error(f"unsupported auto_pad '{auto_pad}'")
    out = [f - b - e for f, b, e in zip(full, begin, end, strict=True)]
    if any(o <= 0 for o in out):
        raise ctx.error(f"output size {out} is not positive")
    # the transposed convolution is a stride-1 convolution of the zero-spread input, padded by
    # span - 1 - pad, with the spatially flipped kernel whose in/out channels are swapped per group
    spread = _spread(x, strides)
    spread_pads = [(0, 0), (0, 0)]
    for i in range(r):
        lead = span[i] - 1 - begin[i]
        # the spread input already ends in stride - 1 zeros
        trail = span[i] - 1 - end[i] + out_pad[i] - (strides[i] - 1)
        spread_pads.append((lead, trail))
    spread = build.pad(spread, spread_pads, "constant", 0)
    cg, mg = c // groups, w.shape[1]
    wf = build.reshape(w, (groups, cg, mg, *kernel))
    wf = build.transpose(wf, (0, 2, 1, *range(3, 3 + r)))
    wf = build.reshape(wf, (groups * mg, cg, *kernel))
    wf = build.slice_(wf, [0, 0, *(k - 1 for k in kernel)], [groups * mg, cg, *(-k - 1 for k in kernel)],
                      [1, 1, *([-1] * r)])
    g = _Geometry(tuple(kernel), (1,) * r, tuple(dilations), (0,) * r, (0,) * r, (0,) * r, tuple(out))
    if bias is not None and bias.shape != (groups * mg,):
        raise ctx.error(f"B must have shape [{groups * mg}], got {list(bias.shape)}")
    return [_conv(spread, wf, bias, g, groups)]


# ---------------------------------------------------------------- pooling


def _pool_geometry(ctx: NodeContext, x: Node) -> _Geometry:
    _check_input(ctx, x)
    kernel = ctx.attr("kernel_shape")
    if not kernel or len(kernel) != x.rank - 2:
        raise ctx.error(f"kernel_shape {kernel} must name one size per spatial axis of {list(x.shape)}")
    return _geometry(ctx, x.shape[2:], [int(k) for k in kernel], bool(ctx.attr("ceil_mode", 0)))


def _lowest(ct: CellType) -> float | int:
    return -math.inf if ct.is_float else integer_range(ct)[0]


@converter("MaxPool", 1, 8, 10, 11, 12, 22)
def max_pool(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    g = _pool_geometry(ctx, x)
    win = _patches(x, g, _lowest(x.dtype))
    if not ctx.output_used(1):
        return [build.reduce(win, "max", _kernel_axes(g), keepdims=False)]
    # Indices: flat positions in X of each window's first maximum
    if ctx.attr("storage_order", 0) not in (0, 1):
        raise ctx.error(f"unsupported storage_order {ctx.attr('storage_order')}")
    r = g.rank
    taps = int(np.prod(g.kernel, dtype=np.int64))
    perm = [0, 1, *(2 + 2 * i for i in range(r)), *_kernel_axes(g)]
    flat = build.reshape(build.transpose(win, perm), (*x.shape[:2], *g.out, taps))
    y = build.reduce(flat, "max", [flat.rank - 1], keepdims=False)
    tap = build.arg_reduce(flat, "argmax", flat.rank - 1, keepdims=False, last=False)
    spatial = x.shape[2:]
    if ctx.attr("storage_order", 0) == 0:
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


def _window_counts(shape: Sequence[int], g: _Geometry, valid: np.ndarray) -> Node:
    """How many cells of each window lie where `valid` (over the padded spatial grid) is 1."""
    mask = build.as_array(valid.reshape(1, 1, *valid.shape), CellType.FLOAT64)
    geom = _Geometry(g.kernel, g.strides, g.dilations, (0,) * g.rank, (0,) * g.rank, (0,) * g.rank, g.out)
    counts = build.reduce(_patches(mask, geom, 0), "sum", _kernel_axes(g), keepdims=False)
    return build.reshape(counts, counts.shape[2:])


@converter("AveragePool", 1, 7, 10, 11, 19, 22)
def average_pool(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    ctx.float_types_only(x)
    g = _pool_geometry(ctx, x)
    total = build.reduce(_patches(x, g, 0), "sum", _kernel_axes(g), keepdims=False)
    # the divisor counts the input cells of each window, plus its explicit padding with
    # count_include_pad; never the cells ceil mode adds past the padding
    include_pad = bool(ctx.attr("count_include_pad", 0))
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
    p = float(ctx.attr("p", 2))
    if p <= 0:
        raise ctx.error(f"unsupported p={p} (must be positive)")
    return p


@converter("LpPool", 1, 2, 11, 18, 22)
def lp_pool(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    ctx.float_types_only(x)
    g = _pool_geometry(ctx, x)
    return [_lp(_patches(x, g, 0), _p_attr(ctx), _kernel_axes(g), keepdims=False)]


def _global_axes(ctx: NodeContext, x: Node) -> list[int]:
    _check_input(ctx, x)
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
    _check_input(ctx, x)
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
        strides = _ints_attr(ctx, "strides", r, 1)
        pads = _ints_attr(ctx, "pads", 2 * r, 0)
        shape = [*x.shape[:2], *((x.shape[2 + i] - 1) * strides[i] + int(kernel[i]) - pads[i] - pads[r + i]
                                  for i in range(r))]
    total = int(np.prod(shape, dtype=np.int64))
    zeros = build.broadcast(scalar_like(x, 0), (total,))
    # I holds flat positions in the output (as MaxPool's Indices do in its input)
    out = build.scatter_elements(zeros, build.reshape(idx, (x.size,)), build.reshape(x, (x.size,)), 0, "none")
    return [build.reshape(out, shape)]


@converter("Col2Im", 18)
def col2im(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    image = ctx.const_ints(1, "image_shape")
    block = ctx.const_ints(2, "block_shape")
    r = len(image)
    if x.rank != 3 or len(block) != r or r == 0:
        raise ctx.error(f"input must be [N, C * prod(block_shape), L], got {list(x.shape)} for image_shape "
                        f"{image} and block_shape {block}")
    taps = int(np.prod(block, dtype=np.int64))
    n, ck, length = x.shape
    if ck % taps:
        raise ctx.error(f"input axis 1 ({ck}) is not a multiple of the block size {taps}")
    c = ck // taps
    strides = _ints_attr(ctx, "strides", r, 1)
    dilations = _ints_attr(ctx, "dilations", r, 1)
    pads = _ints_attr(ctx, "pads", 2 * r, 0)
    padded = [image[i] + pads[i] + pads[r + i] for i in range(r)]
    out = [(padded[i] - ((block[i] - 1) * dilations[i] + 1)) // strides[i] + 1 for i in range(r)]
    if any(o <= 0 for o in out) or int(np.prod(out, dtype=np.int64)) != length:
        raise ctx.error(f"{length} blocks do not tile image {image} with block {block}, strides {list(strides)}, "
                        f"dilations {list(dilations)} and pads {list(pads)}")
    # every (tap, block) cell adds into one position of the padded image: a single scatter-add
    js = np.indices(block).reshape(r, taps, 1)
    os_ = np.indices(out).reshape(r, 1, length)
    pos = [os_[i] * strides[i] + js[i] * dilations[i] for i in range(r)]
    flat = np.ravel_multi_index(tuple(pos), padded).reshape(-1)
    idx = build.broadcast(build.as_array(flat, CellType.INT64), (n, c, taps * length))
    zeros = build.broadcast(scalar_like(x, 0), (n, c, int(np.prod(padded, dtype=np.int64))))
    y = build.scatter_elements(zeros, idx, build.reshape(x, (n, c, taps * length)), 2, "add")
    y = build.reshape(y, (n, c, *padded))
    return [build.slice_(y, [0, 0, *pads[:r]], [n, c, *(pads[i] + image[i] for i in range(r))], [1] * (r + 2))]
