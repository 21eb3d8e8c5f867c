"""Shape and layout ops: reshape, transpose, concat, split, slice, pad and friends.

Shapes are static per document in our IR, so every shape, axis, split size and slice
bound must be known at deploy time; `Shape` and `Size` therefore fold to constants, which
lets the Shape -> Gather -> Concat -> Reshape chains of exported transformers fold away.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import axes_input_or_attr, squeeze, unsqueeze
from tensor_ir.onnx_import.registry import converter


def _axis(ctx: NodeContext, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ctx.error(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def _axes(ctx: NodeContext, axes: Sequence[int], rank: int, what: str = "axes") -> list[int]:
    norm = [_axis(ctx, int(a), rank, what) for a in axes]
    if len(set(norm)) != len(norm):
        raise ctx.error(f"{what} {list(axes)} name an axis twice")
    return norm


@converter("Identity", 1, 13, 14, 16, 19, 21, 23, 24, 25)
def identity(ctx: NodeContext) -> Sequence[Node | None]:
    return [ctx.input(0)]


# ---------------------------------------------------------------- shapes


def reshape_target(ctx: NodeContext, x: Node, shape: Sequence[int], allowzero: bool) -> list[int]:
    """ONNX Reshape's target: 0 copies the input's dimension (unless allowzero), -1 is inferred."""
    out: list[int] = []
    infer = -1
    for i, d in enumerate(shape):
        if d == -1:
            if infer >= 0:
                raise ctx.error(f"shape {list(shape)} has more than one -1")
            infer = i
            out.append(1)
        elif d == 0 and not allowzero:
            if i >= x.rank:
                raise ctx.error(f"shape {list(shape)} copies dimension {i} that input {list(x.shape)} lacks")
            out.append(x.shape[i])
        elif d < 0:
            raise ctx.error(f"shape {list(shape)} has a negative dimension {d}")
        else:
            out.append(d)
    if infer >= 0:
        known = int(np.prod(out, dtype=np.int64))
        if known == 0 or x.size % known:
            raise ctx.error(f"cannot reshape {list(x.shape)} to {list(shape)}")
        out[infer] = x.size // known
    if int(np.prod(out, dtype=np.int64)) != x.size:
        raise ctx.error(f"cannot reshape {list(x.shape)} ({x.size} cells) to {list(shape)}")
    return out


@converter("Reshape", 1, 5, 13, 14, 19, 21, 23, 24, 25)
def reshape(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    if ctx.opset < 5:
        if ctx.attr("shape") is None:
            raise ctx.error("attribute 'shape' is missing")
        shape = [int(d) for d in ctx.attr("shape")]
    else:
        shape = ctx.const_ints(1, "shape")
    # allowzero arrives with Reshape-14; before it a 0 always copied the input's dimension,
    # as the opset-14 default allowzero=0 does
    allowzero = ctx.declares("allowzero") and bool(ctx.attr("allowzero"))
    if allowzero and 0 in shape and -1 in shape:
        raise ctx.error("allowzero=1 forbids a shape with both 0 and -1")
    return [build.reshape(x, reshape_target(ctx, x, shape, allowzero), label=ctx.name)]


@converter("Shape", 1, 13, 15, 19, 21, 23, 24, 25)
def shape_(ctx: NodeContext) -> Sequence[Node | None]:
    # a per-document shape is static: the value is known at deploy time
    x = ctx.input(0)
    rank = x.rank
    # start and end arrive with Shape-15; before it Shape gave every dimension, as the
    # opset-15 default start=0 with no end does
    start = int(ctx.attr("start")) if ctx.declares("start") else 0
    end = ctx.attr("end") if ctx.declares("end") else None
    stop = rank if end is None else int(end)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    stop = min(max(stop + rank if stop < 0 else stop, 0), rank)
    dims = list(x.shape[start:stop]) if start < stop else []
    return [build.constant(np.asarray(dims, dtype=np.int64), CellType.INT64, ctx.name)]


@converter("Size", 1, 13, 19, 21, 23, 24, 25)
def size(ctx: NodeContext) -> Sequence[Node | None]:
    return [build.constant(np.asarray(ctx.input(0).size, dtype=np.int64), CellType.INT64, ctx.name)]


@converter("Squeeze", 1, 11, 13, 21, 23, 24, 25)
def squeeze_(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    axes = axes_input_or_attr(ctx, 1)
    if axes is None:
        return [squeeze(x)]
    norm = _axes(ctx, axes, x.rank)
    for a in norm:
        if x.shape[a] != 1:
            raise ctx.error(f"cannot squeeze axis {a} of size {x.shape[a]} (shape {list(x.shape)})")
    return [squeeze(x, norm)]


@converter("Unsqueeze", 1, 11, 13, 21, 23, 24, 25)
def unsqueeze_(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    axes = axes_input_or_attr(ctx, 1)
    if axes is None:
        raise ctx.error("axes are missing")
    _axes(ctx, axes, x.rank + len(axes))
    return [unsqueeze(x, axes)]


@converter("Flatten", 1, 9, 11, 13, 21, 23, 24, 25)
def flatten(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    axis = int(ctx.attr("axis"))
    if not -x.rank <= axis <= x.rank:
        raise ctx.error(f"axis {axis} is out of range for rank {x.rank}")
    if axis < 0:
        axis += x.rank
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis:], dtype=np.int64))
    return [build.reshape(x, (outer, inner), label=ctx.name)]


@converter("Transpose", 1, 13, 21, 23, 24, 25)
def transpose(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    perm = ctx.attr("perm")
    order = list(range(x.rank))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(order) != list(range(x.rank)):
        raise ctx.error(f"perm {order} is not a permutation of the axes of rank {x.rank}")
    return [build.transpose(x, order, label=ctx.name)]


@converter("Expand", 8, 13)
def expand(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    shape = ctx.const_ints(1, "shape")
    try:
        out = np.broadcast_shapes(x.shape, tuple(shape))
    except ValueError:
        raise ctx.error(f"cannot expand {list(x.shape)} to {shape}") from None
    return [build.broadcast(x, out, label=ctx.name)]


def tile(x: Node, repeats: Sequence[int]) -> Node:
    """Repeat the whole tensor `repeats[i]` times along each axis i."""
    if all(r == 1 for r in repeats):
        return x
    split = [v for d in x.shape for v in (1, d)]
    big = [v for r, d in zip(repeats, x.shape, strict=True) for v in (r, d)]
    wide = build.broadcast(build.reshape(x, split), big)
    return build.reshape(wide, [r * d for r, d in zip(repeats, x.shape, strict=True)])


@converter("Tile", 1, 6, 13)
def tile_(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    if ctx.opset < 6:
        tiles = ctx.const_ints(1, "tiles")
        axis = ctx.const_ints(2, "axis")
        if len(tiles) != 1 or len(axis) != 1:
            raise ctx.error("tiles and axis must be scalars")
        repeats = [1] * x.rank
        repeats[_axis(ctx, axis[0], x.rank)] = tiles[0]
    else:
        repeats = ctx.const_ints(1, "repeats")
    if len(repeats) != x.rank:
        raise ctx.error(f"repeats {repeats} need one entry per axis of rank {x.rank}")
    if any(r < 0 for r in repeats):
        raise ctx.error(f"repeats {repeats} has a negative entry")
    return [tile(x, repeats)]


# ---------------------------------------------------------------- concat, split, slice


@converter("Concat", 1, 4, 11, 13)
def concat(ctx: NodeContext) -> Sequence[Node | None]:
    xs = [x for x in ctx.inputs if x is not None]
    if not xs:
        raise ctx.error("needs at least one input")
    # Concat-1's schema declares axis optional without a default value, but its description
    # says "Default value is 1"; from Concat-4 on axis is required
    axis = ctx.attr("axis")
    if axis is None:
        if ctx.opset >= 4:
            raise ctx.error("attribute 'axis' is missing")
        axis = 1
    types = {x.dtype for x in xs}
    if len(types) > 1:
        raise ctx.error("operands differ in cell type: " + ", ".join(x.dtype.np_name for x in xs))
    ax = _axis(ctx, int(axis), xs[0].rank)
    return [build.concat(xs, ax, label=ctx.name)]


def _split_sizes(ctx: NodeContext, dim: int, n_out: int) -> list[int]:
    split: list[int] | None = None
    if ctx.optional(1) is not None:
        split = ctx.const_ints(1, "split")
    elif ctx.declares("split") and ctx.attr("split") is not None:
        # the split attribute exists up to Split-11; Split-13 moved it to input 1
        split = [int(s) for s in ctx.attr("split")]
    # num_outputs arrives with Split-18; before it the node's output count alone decides
    num_outputs = ctx.attr("num_outputs") if ctx.declares("num_outputs") else None
    if split is not None:
        if num_outputs is not None:
            raise ctx.error("give either the split sizes or num_outputs, not both")
        if len(split) != n_out or any(s < 0 for s in split) or sum(split) != dim:
            raise ctx.error(f"split {split} does not cut an axis of {dim} into {n_out} parts")
        return split
    if num_outputs is not None:
        n = int(num_outputs)
        if n != n_out:
            raise ctx.error(f"num_outputs={n} but the node has {n_out} outputs")
        chunk = -(-dim // n)
        sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
        if sizes[-1] < 0:
            raise ctx.error(f"cannot split an axis of {dim} into {n} chunks of {chunk}")
        return sizes
    if dim % n_out:
        raise ctx.error(f"cannot split an axis of {dim} into {n_out} equal parts")
    return [dim // n_out] * n_out


@converter("Split", 1, 2, 11, 13, 18)
def split(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    axis = ctx.attr("axis")
    if axis is None:
        # Split-1 declares axis without a default (or any documented meaning of absence);
        # Split-2 made 0 the default, and we read Split-1 the same way
        axis = 0
    ax = _axis(ctx, int(axis), x.rank)
    sizes = _split_sizes(ctx, x.shape[ax], ctx.n_outputs)
    outs: list[Node | None] = []
    start = 0
    for s in sizes:
        starts = [0] * x.rank
        stops = list(x.shape)
        starts[ax], stops[ax] = start, start + s
        outs.append(build.slice_(x, starts, stops, [1] * x.rank))
        start += s
    return outs


def slice_axes(
    ctx: NodeContext,
    x: Node,
    starts: Sequence[int],
    ends: Sequence[int],
    axes: Sequence[int] | None,
    steps: Sequence[int] | None,
) -> Node:
    """ONNX Slice: per listed axis, negative bounds count from the end, then starts clamp to
    [0, d] (positive steps) or [0, d-1] (negative steps) and ends to [0, d] or [-1, d-1].
    That is Python's slice.indices except for a negative step's start below -d, which
    Python reads as "before index 0" (nothing) and ONNX clamps to index 0."""
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.error(f"starts {list(starts)}, ends {list(ends)}, axes {list(axes)} and steps "
                        f"{list(steps)} differ in length")
    norm = _axes(ctx, axes, x.rank)
    lo = [0] * x.rank
    hi = list(x.shape)
    st = [1] * x.rank
    for a, s0, s1, step in zip(norm, starts, ends, steps, strict=True):
        if step == 0:
            raise ctx.error("slice step of 0")
        if step < 0 and s0 < -x.shape[a]:
            s0 = 0
        lo[a], hi[a], st[a] = s0, s1, step
    return build.slice_(x, lo, hi, st, label=ctx.name)


@converter("Slice", 1, 10, 11, 13)
def slice_(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    if ctx.opset < 10:
        starts = [int(v) for v in ctx.attr("starts") or []]
        ends = [int(v) for v in ctx.attr("ends") or []]
        axes_attr = ctx.attr("axes")
        axes = None if axes_attr is None else [int(a) for a in axes_attr]
        return [slice_axes(ctx, x, starts, ends, axes, None)]
    starts = ctx.const_ints(1, "starts")
    ends = ctx.const_ints(2, "ends")
    return [slice_axes(ctx, x, starts, ends, ctx.optional_const_ints(3, "axes"),
                       ctx.optional_const_ints(4, "steps"))]


# ---------------------------------------------------------------- padding


def _pad_value(ctx: NodeContext, x: Node, index: int) -> Node | None:
    """The constant_value input as a scalar of x's type (None: absent or empty, i.e. 0)."""
    v = ctx.optional(index)
    if v is None or v.size == 0:
        return None
    if v.size != 1:
        raise ctx.error(f"constant_value must be one value, got shape {list(v.shape)}")
    if v.dtype is not x.dtype:
        raise ctx.error(f"constant_value is {v.dtype.np_name} but data is {x.dtype.np_name}")
    return build.reshape(v, ())


def pad_node(x: Node, pads: Sequence[tuple[int, int]], mode: str, value: Node | None) -> Node:
    """Pad `x`; a non-constant fill value is applied with a mask of the padded cells."""
    if mode != "constant" or value is None:
        return build.pad(x, pads, mode, 0)
    if value.is_constant:
        return build.pad(x, pads, mode, value.value.item())
    inside = build.pad(build.constant(np.ones(x.shape, dtype=bool), CellType.BOOL), pads, "constant", False)
    return build.select(inside, build.pad(x, pads, "constant", 0), value)


@converter("Pad", 1, 2, 11, 13, 18, 19, 21, 23, 24, 25)
def pad(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    mode = str(ctx.attr("mode"))
    if mode not in ("constant", "reflect", "edge", "wrap") or (mode == "wrap" and ctx.opset < 19):
        raise ctx.error(f"unsupported pad mode '{mode}'")
    value: Node | None
    axes: list[int] | None = None
    if ctx.opset < 11:
        raw = ctx.attr("paddings" if ctx.opset < 2 else "pads")
        if raw is None:
            raise ctx.error("attribute 'pads' is missing")
        pads_flat = [int(p) for p in raw]
        fill = float(ctx.attr("value"))
        value = None if fill == 0 else build.scalar(fill, x.dtype)
    else:
        pads_flat = ctx.const_ints(1, "pads")
        value = _pad_value(ctx, x, 2)
        if ctx.opset >= 18 and ctx.optional(3) is not None:
            axes = _axes(ctx, ctx.const_ints(3, "axes"), x.rank)
    if axes is None:
        axes = list(range(x.rank))
    if len(pads_flat) != 2 * len(axes):
        raise ctx.error(f"pads {pads_flat} need a begin and an end for each of {len(axes)} axes")
    per_axis = [(0, 0)] * x.rank
    for i, a in enumerate(axes):
        per_axis[a] = (pads_flat[i], pads_flat[len(axes) + i])
    return [pad_node(x, per_axis, mode, value)]


@converter("CenterCropPad", 18)
def center_crop_pad(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    target = ctx.const_ints(1, "shape")
    axes_attr = ctx.attr("axes")
    axes = _axes(ctx, list(range(x.rank)) if axes_attr is None else axes_attr, x.rank)
    if len(target) != len(axes):
        raise ctx.error(f"shape {target} needs one size per axis of {axes}")
    starts, stops = [0] * x.rank, list(x.shape)
    pads = [(0, 0)] * x.rank
    for a, want in zip(axes, target, strict=True):
        have = x.shape[a]
        if want < 0:
            raise ctx.error(f"shape {target} has a negative size")
        if want < have:
            starts[a] = (have - want) // 2
            stops[a] = starts[a] + want
        elif want > have:
            before = (want - have) // 2
            pads[a] = (before, want - have - before)
    cropped = build.slice_(x, starts, stops, [1] * x.rank)
    return [build.pad(cropped, pads, "constant", 0)]


# ---------------------------------------------------------------- depth <-> space


def _blocks(ctx: NodeContext, x: Node) -> int:
    if x.rank != 4:
        raise ctx.error(f"needs a 4-d [N, C, H, W] input, got shape {list(x.shape)}")
    if ctx.attr("blocksize") is None:
        raise ctx.error("attribute 'blocksize' is missing")
    b = int(ctx.attr("blocksize"))
    if b <= 0:
        raise ctx.error(f"blocksize must be positive, got {b}")
    return b


@converter("DepthToSpace", 1, 11, 13, 28)
def depth_to_space(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    b = _blocks(ctx, x)
    n, c, h, w = x.shape
    if c % (b * b):
        raise ctx.error(f"channels {c} are not a multiple of blocksize^2 = {b * b}")
    # mode arrives with DepthToSpace-11; DepthToSpace-1 always reorders depth-column-row,
    # as the opset-11 default mode='DCR' does
    mode = str(ctx.attr("mode")) if ctx.declares("mode") else "DCR"
    if mode == "DCR":
        tmp = build.reshape(x, (n, b, b, c // (b * b), h, w))
        tmp = build.transpose(tmp, (0, 3, 4, 1, 5, 2))
    elif mode == "CRD":
        tmp = build.reshape(x, (n, c // (b * b), b, b, h, w))
        tmp = build.transpose(tmp, (0, 1, 4, 2, 5, 3))
    else:
        raise ctx.error(f"unsupported mode '{mode}'")
    return [build.reshape(tmp, (n, c // (b * b), h * b, w * b), label=ctx.name)]


@converter("SpaceToDepth", 1, 13, 28)
def space_to_depth(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    b = _blocks(ctx, x)
    n, c, h, w = x.shape
    if h % b or w % b:
        raise ctx.error(f"spatial size {h}x{w} is not a multiple of blocksize {b}")
    # mode arrives with SpaceToDepth-28; SpaceToDepth-1 and -13 always reorder
    # depth-column-row, as the opset-28 default mode='DCR' does
    mode = str(ctx.attr("mode")) if ctx.declares("mode") else "DCR"
    tmp = build.reshape(x, (n, c, h // b, b, w // b, b))
    if mode == "DCR":
        tmp = build.transpose(tmp, (0, 3, 5, 1, 2, 4))
    elif mode == "CRD":
        tmp = build.transpose(tmp, (0, 1, 3, 5, 2, 4))
    else:
        raise ctx.error(f"unsupported mode '{mode}'")
    return [build.reshape(tmp, (n, c * b * b, h // b, w // b), label=ctx.name)]


# ---------------------------------------------------------------- ReverseSequence


@converter("ReverseSequence", 10, 28)
def reverse_sequence(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    lens = ctx.input(1)
    if x.rank < 2:
        raise ctx.error(f"needs rank >= 2, got shape {list(x.shape)}")
    b_ax = _axis(ctx, int(ctx.attr("batch_axis")), x.rank, "batch_axis")
    t_ax = _axis(ctx, int(ctx.attr("time_axis")), x.rank, "time_axis")
    if b_ax == t_ax or b_ax > 1 or t_ax > 1:
        raise ctx.error(f"batch_axis {b_ax} and time_axis {t_ax} must be 0 and 1 in some order")
    if lens.shape != (x.shape[b_ax],):
        raise ctx.error(f"sequence_lens has shape {list(lens.shape)}, want [{x.shape[b_ax]}]")
    if lens.is_constant:
        bad = [int(v) for v in lens.value if not 0 <= int(v) <= x.shape[t_ax]]
        if bad:
            raise ctx.error(f"sequence_lens {bad} are outside 0..{x.shape[t_ax]}")
    # source time index of each (time, batch) cell: reversed inside the sequence, kept after it
    steps = x.shape[t_ax]
    t_shape = [1, 1]
    t_shape[t_ax] = steps
    b_shape = [1, 1]
    b_shape[b_ax] = x.shape[b_ax]
    t = build.constant(np.arange(steps, dtype=np.int64).reshape(t_shape), CellType.INT64)
    length = build.reshape(build.cast(lens, CellType.INT64), b_shape)
    flipped = build.join("sub", build.join("sub", length, build.scalar(1, CellType.INT64)), t)
    src = build.select(build.join("lt", t, length), flipped, t)
    src = build.reshape(src, (*src.shape, *([1] * (x.rank - 2))))
    src = build.broadcast(src, x.shape)
    return [build.gather_elements(x, src, t_ax, label=ctx.name)]
