"""Convolution converters: Conv, ConvInteger, QLinearConv, ConvTranspose and Col2Im.

Convolution extracts the input's windows (windows.py) and contracts channels x kernel taps
with one MATMUL (im2col). Transposed convolution spreads its input with zeros (stride) and
runs an ordinary convolution with the flipped kernel; Col2Im, im2col's inverse, adds every
block cell into its image position with one scatter-add.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import scalar_like
from tensor_ir.onnx_import.converters.linalg import round_saturate
from tensor_ir.onnx_import.converters.windows import (
    Geometry,
    auto_pad_attr,
    check_input,
    ints_attr,
    patches,
    window_geometry,
)
from tensor_ir.onnx_import.registry import converter


def _conv(x: Node, w: Node, bias: Node | None, g: Geometry, groups: int) -> Node:
    """Grouped N-D convolution of x [N, C, *S] with w [M, C/groups, *k] as im2col + MATMUL."""
    n, c = x.shape[0], x.shape[1]
    m = w.shape[0]
    cg, mg = c // groups, m // groups
    taps = int(np.prod(g.kernel, dtype=np.int64))
    p = int(np.prod(g.out, dtype=np.int64))
    cols = patches(x, g, 0)  # [N, C, o1, k1, o2, k2, ...]
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
    check_input(ctx, x)
    if w.rank != x.rank:
        raise ctx.error(f"W of shape {list(w.shape)} does not match X of shape {list(x.shape)}")
    groups = int(ctx.attr("group"))
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
    return [_conv(x, w, bias, window_geometry(ctx, x.shape[2:], kernel), groups)]


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
    return [_conv(xi, wi, None, window_geometry(ctx, x.shape[2:], kernel), groups)]


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
                window_geometry(ctx, x.shape[2:], kernel), groups)
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
    check_input(ctx, x)
    if w.dtype is not x.dtype or (bias is not None and bias.dtype is not x.dtype):
        raise ctx.error("X, W and B must share one cell type")
    if w.rank != x.rank:
        raise ctx.error(f"W of shape {list(w.shape)} does not match X of shape {list(x.shape)}")
    groups = int(ctx.attr("group"))
    c = x.shape[1]
    if groups <= 0 or c % groups or w.shape[0] != c:
        raise ctx.error(f"group={groups} does not fit X channels {c} and W shape {list(w.shape)}")
    r = x.rank - 2
    spatial = list(x.shape[2:])
    kernel = list(w.shape[2:])
    given = ctx.attr("kernel_shape")
    if given and [int(k) for k in given] != kernel:
        raise ctx.error(f"kernel_shape {list(given)} differs from W's spatial shape {kernel}")
    strides = ints_attr(ctx, "strides", r, 1)
    dilations = ints_attr(ctx, "dilations", r, 1)
    out_pad = ints_attr(ctx, "output_padding", r, 0)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    full = [s * (size - 1) + op + w_ for s, size, op, w_ in zip(strides, spatial, out_pad, span, strict=True)]
    auto_pad = auto_pad_attr(ctx)
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
        pads = ints_attr(ctx, "pads", 2 * r, 0) if auto_pad == "NOTSET" else (0,) * (2 * r)
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
    g = Geometry(tuple(kernel), (1,) * r, tuple(dilations), (0,) * r, (0,) * r, (0,) * r, tuple(out))
    if bias is not None and bias.shape != (groups * mg,):
        raise ctx.error(f"B must have shape [{groups * mg}], got {list(bias.shape)}")
    return [_conv(spread, wf, bias, g, groups)]


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
    strides = ints_attr(ctx, "strides", r, 1)
    dilations = ints_attr(ctx, "dilations", r, 1)
    pads = ints_attr(ctx, "pads", 2 * r, 0)
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
