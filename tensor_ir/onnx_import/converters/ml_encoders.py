"""ai.onnx.ml Normalizer, OneHotEncoder and LabelEncoder on numbers, as ordinary ops.

Normalizer divides each row by max(x) (MAX, as the spec writes it: not max |x|), sum |x| (L1) or
sqrt(sum x^2) (L2); a row whose norm is 0 stays 0, as onnxruntime leaves it (the spec does not say).
OneHotEncoder gives a value outside `cats_int64s` a row of zeros whatever `zeros` says: a value
read from a document cannot fail one query alone. String categories and labels are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from onnx import numpy_helper

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.ml_common import array_attr
from tensor_ir.onnx_import.registry import converter

ML = "ai.onnx.ml"


@converter("Normalizer", 1, domain=ML)
def normalizer(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    x = build.cast(x, CellType.FLOAT32)
    norm = str(ctx.attr("norm"))
    if norm == "MAX":
        scale = build.reduce(x, "max", [-1], True)
    elif norm == "L1":
        scale = build.reduce(build.map_("abs", x), "sum", [-1], True)
    elif norm == "L2":
        scale = build.map_("sqrt", build.reduce(build.join("mul", x, x), "sum", [-1], True))
    else:
        raise ctx.error(f"norm '{norm}' is not MAX, L1 or L2")
    zero = build.scalar(0.0, CellType.FLOAT32)
    is_zero = build.join("eq", scale, zero)
    safe = build.select(is_zero, build.scalar(1.0, CellType.FLOAT32), scale)
    return [build.join("div", x, safe, label=ctx.name)]


@converter("OneHotEncoder", 1, domain=ML)
def one_hot_encoder(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    cats = array_attr(ctx, "cats_int64s")
    if cats is None or len(cats) == 0:
        raise ctx.error("only cats_int64s are supported (string categories need string tensors)")
    if x.dtype.is_float:
        x = build.cast(x, CellType.INT64)
    elif not x.dtype.is_int:
        raise ctx.error(f"needs numeric cells, got {x.dtype.np_name}")
    x = build.cast(x, CellType.INT64)
    table = build.constant(np.asarray(cats, np.int64))
    hot = build.join("eq", build.reshape(x, (*x.shape, 1)), table)
    return [build.cast(hot, CellType.FLOAT32, label=ctx.name)]


def _tensor_attr(ctx: NodeContext, name: str) -> npt.NDArray[Any] | None:
    if not ctx.declares(name):
        return None
    t = ctx.attr(name)
    return None if t is None else np.asarray(numpy_helper.to_array(t)).reshape(-1)


@converter("LabelEncoder", 2, 4, domain=ML)
def label_encoder(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    keys = _tensor_attr(ctx, "keys_tensor")
    values = _tensor_attr(ctx, "values_tensor")
    default = _tensor_attr(ctx, "default_tensor")
    if keys is None:
        keys = array_attr(ctx, "keys_int64s") if x.dtype.is_int else array_attr(ctx, "keys_floats")
    if values is None:
        values = array_attr(ctx, "values_int64s")
        if values is None or len(values) == 0:
            floats = array_attr(ctx, "values_floats")
            # a float attribute holds float32 values
            values = None if floats is None else floats.astype(np.float32)
    if keys is None or values is None or len(keys) == 0 or len(keys) != len(values):
        raise ctx.error("needs numeric keys and values of one length (string keys or values are not supported)")
    if keys.dtype.kind not in "iuf" or values.dtype.kind not in "iuf":
        raise ctx.error("string keys or values are not supported (numeric tensors only)")
    out_type = CellType.INT64 if values.dtype.kind in "iu" else CellType.FLOAT32
    if values.dtype == np.float64:
        out_type = CellType.FLOAT64
    if default is None:
        default = np.asarray([ctx.attr("default_int64") if out_type is CellType.INT64 else ctx.attr("default_float")])
    key_node = build.constant(np.asarray(keys, x.dtype.np_dtype))
    hit = build.join("eq", build.reshape(x, (*x.shape, 1)), key_node)  # [..., keys]
    found = build.reduce(build.cast(hit, CellType.INT64), "max", [-1], False)
    index = build.arg_reduce(build.cast(hit, CellType.INT64), "argmax", -1, False, False)
    table = build.constant(np.asarray(values, out_type.np_dtype))
    mapped = build.gather(table, index, 0)
    fallback = build.scalar(np.asarray(default).reshape(-1)[0].item(), out_type)
    return [build.select(build.join("gt", found, build.scalar(0, CellType.INT64)), mapped, fallback,
                         label=ctx.name)]
