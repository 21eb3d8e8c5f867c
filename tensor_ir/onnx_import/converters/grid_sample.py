"""The GridSample converter.

GridSample's grid is usually data, so its source positions are computed elementwise at run
time: per spatial axis a few integer tap coordinates and their weights, combined into flat
indices into the spatial cells of each channel and read with one GATHER_ELEMENTS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import scalar_like, squeeze
from tensor_ir.onnx_import.converters.interpolation import interpolation_cell_type
from tensor_ir.onnx_import.registry import converter

_GRID_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest", "bicubic": "cubic", "cubic": "cubic"}
_CUBIC_A = -0.75  # GridSample's cubic kernel is fixed (PyTorch's)


def _reflect(x: Node, lo: float, hi: float) -> Node:
    """Fold `x` back into [lo, hi] by reflecting at the bounds (onnx's _gs_reflect)."""
    span = hi - lo
    if span <= 0:
        return build.broadcast(scalar_like(x, lo), x.shape)
    below = build.join("lt", x, scalar_like(x, lo))
    above = build.join("gt", x, scalar_like(x, hi))
    dx = build.select(below, build.join("sub", scalar_like(x, lo), x), build.join("sub", x, scalar_like(x, hi)))
    turns = build.map_("floor", build.join("div", dx, scalar_like(x, span)))
    rest = build.join("sub", dx, build.join("mul", turns, scalar_like(x, span)))
    even = build.join("eq", build.join("mod", turns, scalar_like(x, 2)), scalar_like(x, 0))
    from_lo = build.join("add", scalar_like(x, lo), rest)
    from_hi = build.join("sub", scalar_like(x, hi), rest)
    low_side = build.select(even, from_lo, from_hi)
    high_side = build.select(even, from_hi, from_lo)
    return build.select(below, low_side, build.select(above, high_side, x))


def _clamp(x: Node, lo: float, hi: float) -> Node:
    return build.join("min", build.join("max", x, scalar_like(x, lo)), scalar_like(x, hi))


def _cubic_weights(t: Node) -> list[Node]:
    """Weights of taps floor-1 .. floor+2 for the fraction t in [0, 1)."""
    a = _CUBIC_A

    def near(u: Node) -> Node:  # ((a + 2) u - (a + 3)) u^2 + 1
        inner = build.join("sub", build.join("mul", scalar_like(u, a + 2), u), scalar_like(u, a + 3))
        return build.join("add", build.join("mul", inner, build.join("mul", u, u)), scalar_like(u, 1))

    def far(u: Node) -> Node:  # ((a u - 5a) u + 8a) u - 4a
        p = build.join("sub", build.join("mul", scalar_like(u, a), u), scalar_like(u, 5 * a))
        p = build.join("add", build.join("mul", p, u), scalar_like(u, 8 * a))
        return build.join("sub", build.join("mul", p, u), scalar_like(u, 4 * a))

    one_minus = build.join("sub", scalar_like(t, 1), t)
    return [
        far(build.join("add", t, scalar_like(t, 1))),
        near(t),
        near(one_minus),
        far(build.join("add", one_minus, scalar_like(t, 1))),
    ]


def _axis_taps(
    coord: Node, size: int, mode: str, padding: str, align_corners: bool
) -> list[tuple[Node, Node | None, Node | None]]:
    """For one spatial axis: (index, weight, in-range mask) per tap, from the normalised grid
    coordinate. Indices are int64 within the axis; weight None means 1; mask None means always."""
    lo, hi = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    if align_corners:
        x = build.join("mul", build.join("div", build.join("add", coord, scalar_like(coord, 1)),
                                         scalar_like(coord, 2)), scalar_like(coord, size - 1))
    else:
        x = build.join("div", build.join("sub", build.join("mul", build.join("add", coord, scalar_like(coord, 1)),
                                                           scalar_like(coord, size)), scalar_like(coord, 1)),
                       scalar_like(coord, 2))
    if mode == "nearest":
        x = build.map_("round", x)  # half to even, as PyTorch
    outside = build.join("or", build.join("lt", x, scalar_like(x, lo)), build.join("gt", x, scalar_like(x, hi)))
    if padding == "border" and mode != "cubic":
        # onnx's reference clamps a cubic coordinate too, onnxruntime and PyTorch clamp only
        # its taps (below): the clamped taps keep the kernel's shape at the border
        x = build.select(outside, _clamp(x, 0, size - 1), x)
    elif padding == "reflection":
        x = build.select(outside, _reflect(x, lo, hi), x)

    weights: list[Node | None] = [None]
    offsets = [0]
    base = x
    if mode != "nearest":
        base = build.map_("floor", x)
        t = build.join("sub", x, base)
        if mode == "linear":
            weights = [build.join("sub", scalar_like(t, 1), t), t]
            offsets = [0, 1]
        else:
            weights = list(_cubic_weights(t))
            offsets = [-1, 0, 1, 2]

    taps: list[tuple[Node, Node | None, Node | None]] = []
    for off, w in zip(offsets, weights, strict=True):
        i = base if off == 0 else build.join("add", base, scalar_like(base, off))
        mask: Node | None = None
        if padding == "zeros":
            in_range = build.join("le", i, scalar_like(i, size - 1))
            mask = build.join("and", build.join("ge", i, scalar_like(i, 0)), in_range)
        elif padding == "reflection":
            i = _reflect(i, lo, hi)
        # every index the gather sees is in range; zeros padding masks the clamped reads out
        idx = build.cast(_clamp(i, 0, size - 1), CellType.INT64)
        taps.append((idx, w, mask))
    return taps


@converter("GridSample", 16, 20, 22)
def grid_sample(ctx: NodeContext) -> Sequence[Node | None]:
    x, grid = ctx.input(0), ctx.input(1)
    mode_name = str(ctx.attr("mode"))
    mode = _GRID_MODES.get(mode_name)
    if mode is None:
        raise ctx.error(f"unsupported mode '{mode_name}'")
    padding = str(ctx.attr("padding_mode"))
    if padding not in ("zeros", "border", "reflection"):
        raise ctx.error(f"unsupported padding_mode '{padding}'")
    align_corners = bool(ctx.attr("align_corners"))
    ctx.float_types_only(grid)
    r = x.rank - 2
    if r < 1 or grid.rank != r + 2 or grid.shape[-1] != r or grid.shape[0] != x.shape[0]:
        raise ctx.error(f"grid of shape {list(grid.shape)} does not fit input {list(x.shape)}: "
                        f"expected [N, *out, {r}] for N = {x.shape[0] if x.rank else '?'}")
    if ctx.opset < 20 and r != 2:
        raise ctx.error(f"GridSample before opset 20 takes 4-D input, got rank {x.rank}")
    if mode != "nearest" and not x.dtype.is_float and not x.dtype.is_int:
        raise ctx.error(f"unsupported: interpolating {x.dtype.np_name} cells")
    batch, channels, spatial = x.shape[0], x.shape[1], x.shape[2:]
    out_spatial = grid.shape[1:-1]
    n_out = math.prod(out_spatial)
    n_in = math.prod(spatial)

    g = build.cast(grid, CellType.FLOAT64 if grid.dtype is CellType.FLOAT64 else CellType.FLOAT32)
    g = build.reshape(g, (batch, n_out, r))
    per_axis = []
    for axis in range(r):
        # grid coordinates run innermost axis first: (x, y, z) for [.., D, H, W]
        c = squeeze(build.slice_(g, [0, 0, r - 1 - axis], [batch, n_out, r - axis], [1, 1, 1]), [2])
        per_axis.append(_axis_taps(c, spatial[axis], mode, padding, align_corners))

    strides = [math.prod(spatial[a + 1:]) for a in range(r)]
    indices: list[Node] = []
    weights: list[Node] = []
    masks: list[Node] = []
    for combo in product(*per_axis):
        flat: Node | None = None
        weight: Node | None = None
        mask: Node | None = None
        for (idx, w, m), stride in zip(combo, strides, strict=True):
            term = idx if stride == 1 else build.join("mul", idx, scalar_like(idx, stride))
            flat = term if flat is None else build.join("add", flat, term)
            if w is not None:
                weight = w if weight is None else build.join("mul", weight, w)
            if m is not None:
                mask = m if mask is None else build.join("and", mask, m)
        assert flat is not None
        indices.append(build.reshape(flat, (batch, 1, n_out)))
        if weight is not None:
            weights.append(build.reshape(weight, (batch, 1, n_out)))
        if mask is not None:
            masks.append(build.reshape(mask, (batch, 1, n_out)))
    taps = len(indices)

    index = build.concat(indices, axis=1) if taps > 1 else indices[0]  # [N, taps, P]
    index = build.broadcast(build.reshape(index, (batch, 1, taps * n_out)), (batch, channels, taps * n_out))
    data = build.reshape(x, (batch, channels, n_in))
    if n_in == 0:
        raise ctx.error("cannot sample from an empty input")
    picked = build.gather_elements(data, index, axis=2)
    picked = build.reshape(picked, (batch, channels, taps, n_out))
    compute = x.dtype if mode == "nearest" else interpolation_cell_type(ctx, x.dtype)
    values = build.cast(picked, compute)
    if weights:
        w = build.concat(weights, axis=1) if taps > 1 else weights[0]  # [N, taps, P]
        w = build.cast(build.reshape(w, (batch, 1, taps, n_out)), compute)
        values = build.join("mul", values, w)
    if masks:
        m = build.concat(masks, axis=1) if taps > 1 else masks[0]
        m = build.reshape(m, (batch, 1, taps, n_out))
        values = build.select(m, values, scalar_like(values, 0))
    y = build.reduce(values, "sum", [2], keepdims=False) if taps > 1 else squeeze(values, [2])
    # the onnx reference stores the float result into the input's cell type as numpy does
    y = build.cast(y, x.dtype)
    return [build.reshape(y, (batch, channels, *out_spatial))]
