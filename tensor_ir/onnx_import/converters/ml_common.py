"""What the ai.onnx.ml converters share: attributes given as lists or as tensors, and the
post-transforms of tree ensembles and linear models as ordinary ops over the last axis.

PROBIT uses the approximation of erfinv onnxruntime uses (Winitzki's, a = 0.147), not an exact
inverse: scores then agree with onnxruntime to float precision, as its own tests expect.
SOFTMAX_ZERO leaves cells within 1e-7 of zero out of the sum, as the spec and onnxruntime do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from onnx import numpy_helper

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.normalization import softmax_nodes

POST_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")  # opset 5's ints index this


def array_attr(ctx: NodeContext, name: str, tensor_name: str | None = None) -> npt.NDArray[Any] | None:
    """A list attribute, or its `*_as_tensor` twin (which wins, keeping its precision)."""
    if tensor_name is not None and ctx.declares(tensor_name):
        t = ctx.attr(tensor_name)
        if t is not None:
            return np.asarray(numpy_helper.to_array(t)).reshape(-1)
    if not ctx.declares(name):
        return None
    value = ctx.attr(name)
    if value is None:
        return None
    if hasattr(value, "dims"):  # a TensorProto attribute (opset 5)
        return np.asarray(numpy_helper.to_array(value)).reshape(-1)
    return np.asarray(value)


def tensor_is_double(ctx: NodeContext, *names: str) -> bool:
    for name in names:
        if ctx.declares(name):
            t = ctx.attr(name)
            if t is not None and numpy_helper.to_array(t).dtype == np.float64:
                return True
    return False


def _k(x: Node, v: float) -> Node:
    return build.scalar(v, x.dtype)


def post_transform(ctx: NodeContext, scores: Node, transform: str) -> Node:
    """`transform` applied to scores [..., targets] (float cells)."""
    if transform == "NONE":
        return scores
    if transform == "LOGISTIC":
        return build.map_("sigmoid", scores)
    if transform == "SOFTMAX":
        return softmax_nodes(scores, [-1])
    if transform == "SOFTMAX_ZERO":
        top = build.reduce(scores, "max", [-1], True)
        kept = build.join("gt", build.map_("abs", scores), _k(scores, 1e-7))
        e = build.select(kept, build.map_("exp", build.join("sub", scores, top)),
                         build.join("mul", scores, build.map_("exp", build.map_("neg", top))))
        total = build.reduce(build.select(kept, e, _k(e, 0.0)), "sum", [-1], True)
        return build.join("div", e, total)
    if transform == "PROBIT":
        return build.join("mul", erfinv_approx(build.join("sub", build.join("mul", scores, _k(scores, 2.0)),
                                                         _k(scores, 1.0))), _k(scores, 1.41421356))
    raise ctx.error(f"post_transform '{transform}' is not one of {', '.join(POST_TRANSFORMS)}")


def erfinv_approx(x: Node) -> Node:
    a = 0.147
    sign = build.select(build.join("lt", x, _k(x, 0.0)), _k(x, -1.0), _k(x, 1.0))
    ln = build.map_("log", build.join("mul", build.join("sub", _k(x, 1.0), x), build.join("add", _k(x, 1.0), x)))
    v = build.join("add", _k(x, 2.0 / (3.14159 * a)), build.join("mul", _k(x, 0.5), ln))
    v2 = build.join("mul", _k(x, 1.0 / a), ln)
    root = build.map_("sqrt", build.join("sub", build.join("mul", v, v), v2))
    return build.join("mul", sign, build.map_("sqrt", build.join("sub", root, v)))


def float_features(ctx: NodeContext, x: Node, want: CellType) -> Node:
    """Integer inputs compared as the thresholds' type, as onnxruntime converts them."""
    if x.dtype.is_int:
        return build.cast(x, want)
    if not x.dtype.is_float:
        raise ctx.error(f"needs numeric cells, got {x.dtype.np_name}")
    return x
