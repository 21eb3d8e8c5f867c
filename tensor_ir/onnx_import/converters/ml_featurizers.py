"""ai.onnx.ml featurisers that ranking pipelines put before and after their trees, as
ordinary ops: Binarizer, ArrayFeatureExtractor, Scaler, Imputer, LinearRegressor and
FeatureVectorizer; ZipMap is refused (its output is a sequence of maps).

Binarizer keeps NaN as NaN (the spec compares, onnxruntime refuses NaN inputs outright).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.ml_common import array_attr, post_transform
from tensor_ir.onnx_import.registry import converter

ML = "ai.onnx.ml"


def _as_float(ctx: NodeContext, x: Node) -> Node:
    if x.dtype.is_int:
        return build.cast(x, CellType.FLOAT32)
    ctx.float_types_only(x)
    return x


@converter("Binarizer", 1, domain=ML)
def binarizer(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    ctx.float_types_only(x)
    t = build.scalar(float(ctx.attr("threshold")), x.dtype)
    one, zero = build.scalar(1, x.dtype), build.scalar(0, x.dtype)
    y = build.select(build.join("gt", x, t), one, zero)
    return [build.select(build.map_("isnan", x), x, y, label=ctx.name)]


@converter("ArrayFeatureExtractor", 1, domain=ML)
def array_feature_extractor(ctx: NodeContext) -> Sequence[Node | None]:
    x, idx = ctx.input(0), ctx.input(1)
    if not idx.dtype.is_int:
        raise ctx.error(f"indices must be int64, got {idx.dtype.np_name}")
    if x.rank == 0:
        raise ctx.error("input must have at least one axis")
    flat = build.reshape(idx, (idx.size,))
    if idx.is_constant:
        bad = [int(i) for i in flat.value if not -x.shape[-1] <= int(i) < x.shape[-1]]
        if bad:
            raise ctx.error(f"index {bad[0]} is out of range for the last axis of {x.shape[-1]} cells")
    y = build.gather(x, flat, -1, label=ctx.name)
    # a one-axis input gives [1, k], as onnxruntime's
    return [build.reshape(y, (1, y.shape[0])) if x.rank == 1 else y]


def _per_feature(ctx: NodeContext, values: npt.NDArray[Any] | None, x: Node, what: str,
                 default: float) -> Node:
    width = x.shape[-1] if x.rank else 1
    v = np.asarray([default] if values is None or len(values) == 0 else values, np.float64)
    if v.size not in (1, width):
        raise ctx.error(f"attribute '{what}' has {v.size} values for {width} features")
    return build.constant(v.astype(x.dtype.np_dtype))


@converter("Scaler", 1, domain=ML)
def scaler(ctx: NodeContext) -> Sequence[Node | None]:
    x = _as_float(ctx, ctx.input(0))
    x = build.cast(x, CellType.FLOAT32)
    offset = _per_feature(ctx, array_attr(ctx, "offset"), x, "offset", 0.0)
    scale = _per_feature(ctx, array_attr(ctx, "scale"), x, "scale", 1.0)
    return [build.join("mul", build.join("sub", x, offset), scale, label=ctx.name)]


@converter("Imputer", 1, domain=ML)
def imputer(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    if x.dtype.is_float:
        values = array_attr(ctx, "imputed_value_floats")
        replaced = float(ctx.attr("replaced_value_float") or 0.0)
    else:
        values = array_attr(ctx, "imputed_value_int64s")
        replaced = float(ctx.attr("replaced_value_int64") or 0)
    if values is None or len(values) == 0:
        raise ctx.error("needs imputed_value_floats or imputed_value_int64s")
    fill = _per_feature(ctx, values, x, "imputed_value_*", 0.0)
    hit = build.map_("isnan", x) if np.isnan(replaced) else build.join("eq", x, build.scalar(replaced, x.dtype))
    return [build.select(hit, build.broadcast(fill, x.shape) if fill.shape != x.shape else fill, x,
                         label=ctx.name)]


@converter("LinearRegressor", 1, domain=ML)
def linear_regressor(ctx: NodeContext) -> Sequence[Node | None]:
    x = build.cast(_as_float(ctx, ctx.input(0)), CellType.FLOAT32)
    targets = int(ctx.attr("targets") or 1)
    coef = array_attr(ctx, "coefficients")
    width = x.shape[-1] if x.rank else 1
    if coef is None or coef.size != targets * width:
        raise ctx.error(f"attribute 'coefficients' needs {targets} x {width} values")
    w = build.constant(np.asarray(coef, np.float32).reshape(targets, width).T.copy())
    xs = x if x.rank >= 2 else build.reshape(x, (1, width))
    y = build.matmul(xs, w)
    intercepts = array_attr(ctx, "intercepts")
    if intercepts is not None and len(intercepts):
        if len(intercepts) != targets:
            raise ctx.error(f"attribute 'intercepts' has {len(intercepts)} values for {targets} targets")
        y = build.join("add", y, build.constant(np.asarray(intercepts, np.float32)))
    return [post_transform(ctx, y, str(ctx.attr("post_transform")))]


@converter("FeatureVectorizer", 1, domain=ML)
def feature_vectorizer(ctx: NodeContext) -> Sequence[Node | None]:
    dims = array_attr(ctx, "inputdimensions")
    inputs = [ctx.input(i) for i in range(len(ctx.node.input))]
    if dims is None or len(dims) != len(inputs):
        raise ctx.error(f"attribute 'inputdimensions' needs one size per input ({len(inputs)})")
    parts = []
    for x, d in zip(inputs, dims.tolist(), strict=True):
        x = build.cast(_as_float(ctx, x), CellType.FLOAT32)
        if x.rank < 2:
            x = build.reshape(x, (1, x.size))
        have = x.shape[-1]
        if have >= d:
            x = build.slice_(x, [0] * x.rank, [*x.shape[:-1], int(d)], [1] * x.rank)
        else:
            x = build.pad(x, [(0, 0)] * (x.rank - 1) + [(0, int(d) - have)], "constant", 0.0)
        parts.append(x)
    return [build.concat(parts, -1, label=ctx.name)]


@converter("ZipMap", 1, domain=ML)
def zipmap(ctx: NodeContext) -> Sequence[Node | None]:
    raise ctx.error("ZipMap outputs a sequence of maps, which tensors cannot hold: convert the classifier with "
                    "zipmap=False (skl2onnx: options={'zipmap': False}) to get the probabilities as a tensor")
