"""Ops that make tensors from attributes and shapes: Constant, ConstantOfShape, Range,
and the random generators, which we refuse (a ranking must be reproducible)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.registry import converter

# Range outputs past this many cells are almost certainly a model bug (or a limit of
# INT64_MAX used as "to the end"), and would exhaust memory at deploy time
_MAX_RANGE_CELLS = 1 << 28


def tensor_value(ctx: NodeContext, t: onnx.TensorProto, what: str) -> Node:
    """A TensorProto attribute as a constant node."""
    if t.data_type == onnx.TensorProto.STRING:
        raise ctx.error(f"unsupported {what}: string tensors are not supported")
    try:
        ct = CellType.from_onnx(t.data_type)
        arr = numpy_helper.to_array(t)
    except (ValueError, TypeError) as e:
        raise ctx.error(f"unsupported {what}: {e}") from None
    return build.constant(arr, ct, ctx.node.output[0] if ctx.node.output else "")


_LIST_FORMS: dict[str, tuple[CellType, bool]] = {
    "value_float": (CellType.FLOAT32, False),
    "value_floats": (CellType.FLOAT32, True),
    "value_int": (CellType.INT64, False),
    "value_ints": (CellType.INT64, True),
}


@converter("Constant", 1, 9, 11, 12, 13, 19, 21, 23, 24, 25)
def constant(ctx: NodeContext) -> Sequence[Node | None]:
    given = [a.name for a in ctx.node.attribute]
    if len(given) != 1:
        raise ctx.error(f"needs exactly one value attribute, got {given or 'none'}")
    name = given[0]
    if not ctx.declares(name):
        # the name comes from the model, so this is the model's error, not a converter's
        raise ctx.error(f"attribute '{name}' is not part of Constant at this opset")
    value: Any = ctx.attr(name)
    label = ctx.node.output[0] if ctx.node.output else ""
    if name == "value":
        return [tensor_value(ctx, value, "constant")]
    if name == "sparse_value":
        raise ctx.error("unsupported constant form: sparse_value (sparse tensors are not supported)")
    if name in ("value_string", "value_strings"):
        raise ctx.error(f"unsupported constant form: {name} (string tensors are not supported)")
    if name in _LIST_FORMS:
        ct, is_list = _LIST_FORMS[name]
        arr = np.asarray(list(value) if is_list else value, dtype=ct.np_dtype)
        return [build.constant(arr, ct, label)]
    raise ctx.error(f"unsupported constant attribute '{name}'")


@converter("ConstantOfShape", 9, 20, 21, 23, 24, 25)
def constant_of_shape(ctx: NodeContext) -> Sequence[Node | None]:
    shape = ctx.const_ints(0, "shape")
    if any(d < 0 for d in shape):
        raise ctx.error(f"shape {shape} has a negative dimension")
    t = ctx.attr("value")
    if t is None:
        fill: Node = build.scalar(0.0, CellType.FLOAT32)
    else:
        fill = tensor_value(ctx, t, "value")
        if fill.size != 1:
            raise ctx.error(f"value must hold one element, got shape {list(fill.shape)}")
        fill = build.reshape(fill, ())
    return [build.broadcast(fill, shape, label=ctx.name)]


_STASH: dict[int, type[np.floating[Any]]] = {int(onnx.TensorProto.FLOAT): np.float32,
                                              int(onnx.TensorProto.DOUBLE): np.float64}


@converter("Range", 11, 27)
def range_(ctx: NodeContext) -> Sequence[Node | None]:
    # the output's length depends on the operands' values, so they must all be known
    start, limit, delta = (ctx.const(i, what) for i, what in enumerate(("start", "limit", "delta")))
    x = ctx.input(0)
    for v, what in ((start, "start"), (limit, "limit"), (delta, "delta")):
        if v.size != 1:
            raise ctx.error(f"{what} must be a scalar, got shape {list(v.shape)}")
    if any(ctx.input(i).dtype is not x.dtype for i in (1, 2)):
        raise ctx.error("start, limit and delta differ in cell type")
    if not (x.dtype.is_float or x.dtype.is_int):
        raise ctx.error(f"unsupported cell type {x.dtype.np_name}")
    if float(delta.reshape(())) == 0:
        raise ctx.error("delta is 0")
    s, lim, d = (v.reshape(()).item() for v in (start, limit, delta))
    n = max(int(np.ceil((float(lim) - float(s)) / float(d))), 0)
    if n > _MAX_RANGE_CELLS:
        raise ctx.error(f"would make {n} cells (limit {lim}), more than the {_MAX_RANGE_CELLS} we allow")
    out_type = x.dtype.np_dtype
    if ctx.opset >= 27 and x.dtype in (CellType.FLOAT16, CellType.BFLOAT16):
        stash = _STASH.get(int(ctx.attr("stash_type")))
        if stash is None:
            raise ctx.error(f"unsupported stash_type {ctx.attr('stash_type')}")
        arr = np.arange(stash(s), float(lim), float(d), dtype=stash).astype(out_type)
    else:
        arr = np.arange(s, lim, d).astype(out_type)
    return [build.constant(arr, x.dtype, ctx.name)]


def _random(ctx: NodeContext) -> Sequence[Node | None]:
    raise ctx.error(
        f"unsupported op: {ctx.op_type} draws random numbers, and a ranking must give the same "
        "score every time; remove it from the model (e.g. export it in inference mode)"
    )


for _op, _versions in {
    "RandomNormal": (1, 22),
    "RandomUniform": (1, 22),
    "RandomNormalLike": (1, 22),
    "RandomUniformLike": (1, 22),
    "Bernoulli": (15, 22),
    "Multinomial": (7, 22),
}.items():
    converter(_op, *_versions)(_random)
