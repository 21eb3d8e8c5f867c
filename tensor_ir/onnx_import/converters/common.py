"""Small building blocks shared by converter modules."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext


def scalar_like(x: Node, value: float | int | bool) -> Node:
    return build.scalar(value, x.dtype)


def unsqueeze(x: Node, axes: Sequence[int]) -> Node:
    rank = x.rank + len(axes)
    norm = sorted(build.normalize_axis(a, rank) for a in axes)
    shape = list(x.shape)
    for a in norm:
        shape.insert(a, 1)
    return build.reshape(x, shape)


def squeeze(x: Node, axes: Sequence[int] | None = None) -> Node:
    if axes is None:
        return build.reshape(x, [d for d in x.shape if d != 1])
    norm = {build.normalize_axis(a, x.rank) for a in axes}
    for a in norm:
        if x.shape[a] != 1:
            raise IRError(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return build.reshape(x, [d for i, d in enumerate(x.shape) if i not in norm])


def legacy_broadcast(ctx: NodeContext, a: Node, b: Node) -> tuple[Node, Node]:
    """Opset < 7 binary ops: with broadcast=1 and an axis, `b` aligns at that axis of `a`."""
    # only the opset < 7 schemas declare broadcast (and axis); PRelu-1/6 declare neither
    if not ctx.declares("broadcast") or not ctx.attr("broadcast"):
        return a, b
    axis = ctx.attr("axis")
    if axis is None or b.rank == 0:
        return a, b
    axis = build.normalize_axis(int(axis), a.rank)
    trailing = a.rank - axis - b.rank
    if trailing > 0:
        b = build.reshape(b, (*b.shape, *([1] * trailing)))
    return a, b


def same_type(ctx: NodeContext, *nodes: Node) -> None:
    types = {n.dtype for n in nodes}
    if len(types) > 1:
        raise ctx.error("operands differ in cell type: " + ", ".join(n.dtype.np_name for n in nodes))


def axes_input_or_attr(ctx: NodeContext, input_index: int, attr: str = "axes") -> list[int] | None:
    """Axes given as an attribute (older opsets) or as a constant input (newer ones)."""
    if ctx.optional(input_index) is not None:
        return ctx.const_ints(input_index, "axes")
    if not ctx.declares(attr):
        return None
    value = ctx.attr(attr)
    return None if value is None else [int(a) for a in value]


def to_float(x: Node) -> Node:
    return x if x.dtype.is_float else build.cast(x, CellType.FLOAT32)


def const_of(values: object, dtype: CellType) -> Node:
    return build.constant(np.asarray(values, dtype=dtype.np_dtype), dtype)
