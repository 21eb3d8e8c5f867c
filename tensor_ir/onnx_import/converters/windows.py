"""Sliding windows over the spatial axes of an [N, C, *spatial] input, shared by the
convolution and pooling converters.

A spatial axis of length L becomes two axes [out, kernel] holding x[o * stride + j * dilation]:
one GATHER with a constant [out, kernel] index table per spatial axis (a free reshape when
windows tile the axis exactly). The node count therefore grows with the number of spatial
axes, never with the kernel size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext


@dataclass(frozen=True)
class Geometry:
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


def ints_attr(ctx: NodeContext, name: str, n: int, absent: int) -> tuple[int, ...]:
    """strides, dilations, pads, output_padding: the schemas declare them optional without a
    default, and the spec gives each absent one a per-axis value (`absent`: 1 for strides and
    dilations, 0 for pads). Pooling before MaxPool-10, AveragePool-19 and LpPool-18 declares no
    dilations at all, which means the same as dilations of 1."""
    value = ctx.attr(name) if ctx.declares(name) else None
    if value is None or len(value) == 0:
        return (absent,) * n
    if len(value) != n:
        raise ctx.error(f"attribute '{name}' has {len(value)} values for {n} spatial axes")
    return tuple(int(v) for v in value)


def auto_pad_attr(ctx: NodeContext) -> str:
    # some exporters write auto_pad="", which onnxruntime reads as NOTSET
    return str(ctx.attr("auto_pad") or "NOTSET")


def window_geometry(
    ctx: NodeContext, spatial: Sequence[int], kernel: Sequence[int], ceil_mode: bool = False
) -> Geometry:
    n = len(spatial)
    strides = ints_attr(ctx, "strides", n, 1)
    dilations = ints_attr(ctx, "dilations", n, 1)
    if any(s <= 0 for s in strides) or any(d <= 0 for d in dilations) or any(k <= 0 for k in kernel):
        raise ctx.error(f"kernel {list(kernel)}, strides {list(strides)} and dilations {list(dilations)} "
                        "must be positive")
    auto_pad = auto_pad_attr(ctx)
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
            pads = ints_attr(ctx, "pads", 2 * n, 0)
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
    return Geometry(tuple(kernel), strides, dilations, tuple(begin), tuple(end), tuple(extra), tuple(out))


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


def patches(x: Node, g: Geometry, pad_value: float | int) -> Node:
    """[N, C, *spatial] -> [N, C, o1, k1, o2, k2, ...] (windows of the padded input)."""
    pads = [(0, 0), (0, 0)] + [(b, e + x_) for b, e, x_ in zip(g.pads_begin, g.pads_end, g.extra_end, strict=True)]
    if any(p != (0, 0) for p in pads):
        x = build.pad(x, pads, "constant", pad_value)
    for i in range(g.rank):
        x = _windows(x, 2 + 2 * i, g.out[i], g.kernel[i], g.strides[i], g.dilations[i])
    return x


def kernel_axes(g: Geometry) -> list[int]:
    return [3 + 2 * i for i in range(g.rank)]


def check_input(ctx: NodeContext, x: Node, what: str = "X") -> None:
    if x.rank < 3:
        raise ctx.error(f"{what} must be [N, C, D1, ...] (rank >= 3), got {list(x.shape)}")
