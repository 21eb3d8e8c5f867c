"""Softmax family, normalizations and inference-mode Dropout, as reductions and maps.

Normalizations compute their statistics in two passes (mean, then the mean of squared
deviations), which is what onnx's reference and onnxruntime do and is better conditioned
than E[x^2] - E[x]^2; MeanVarianceNormalization keeps the one-pass form because its
schema defines it that way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import scalar_like
from tensor_ir.onnx_import.registry import converter


def _axis(ctx: NodeContext, x: Node) -> int:
    axis = int(ctx.attr("axis"))
    if not -x.rank <= axis < max(x.rank, 1):
        raise ctx.error(f"axis {axis} is out of range for an input of rank {x.rank}")
    return axis % x.rank if x.rank else 0


def mean(x: Node, axes: Sequence[int]) -> Node:
    """Mean over `axes`, keeping them as size 1."""
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    return build.join("div", build.reduce(x, "sum", axes, keepdims=True), scalar_like(x, count))


def _float_input(ctx: NodeContext, i: int) -> Node:
    x = ctx.input(i)
    ctx.float_types_only(x)
    return x


def _stash_type(ctx: NodeContext) -> CellType:
    stash = ctx.dtype_attr("stash_type")
    if not stash.is_float:
        raise ctx.error(f"unsupported stash_type {stash.np_name}")
    return stash


def _work_type(stash: CellType, x: Node) -> CellType:
    """Statistics are computed in the stash type, but never below a float64 input's precision."""
    return CellType.FLOAT64 if x.dtype is CellType.FLOAT64 else stash


# ---------------------------------------------------------------- softmax family


def _softmax_axes(ctx: NodeContext, x: Node) -> list[int]:
    """Opset < 13 coerces the input to 2-D at `axis` (the schema's default is 1 there): the
    softmax runs over all axes from `axis` on. From 13 it runs over the one axis (default -1)."""
    if x.rank == 0:
        raise ctx.error("needs an input of rank >= 1")
    if ctx.opset < 13:
        return list(range(_axis(ctx, x), x.rank))
    return [_axis(ctx, x)]


def softmax_nodes(x: Node, axes: Sequence[int]) -> Node:
    shifted = build.join("sub", x, build.reduce(x, "max", axes, keepdims=True))
    e = build.map_("exp", shifted)
    return build.join("div", e, build.reduce(e, "sum", axes, keepdims=True))


def log_softmax_nodes(x: Node, axes: Sequence[int]) -> Node:
    shifted = build.join("sub", x, build.reduce(x, "max", axes, keepdims=True))
    total = build.reduce(build.map_("exp", shifted), "sum", axes, keepdims=True)
    return build.join("sub", shifted, build.map_("log", total))


@converter("Softmax", 1, 11, 13)
def softmax(ctx: NodeContext) -> Sequence[Node | None]:
    x = _float_input(ctx, 0)
    return [softmax_nodes(x, _softmax_axes(ctx, x))]


@converter("LogSoftmax", 1, 11, 13)
def log_softmax(ctx: NodeContext) -> Sequence[Node | None]:
    x = _float_input(ctx, 0)
    return [log_softmax_nodes(x, _softmax_axes(ctx, x))]


@converter("Hardmax", 1, 11, 13)
def hardmax(ctx: NodeContext) -> Sequence[Node | None]:
    x = _float_input(ctx, 0)
    axes = _softmax_axes(ctx, x)
    # the first maximal cell (in row-major order over `axes`) becomes 1
    a = axes[0]
    flat = build.reshape(x, (*x.shape[:a], int(np.prod(x.shape[a:], dtype=np.int64)))) if len(axes) > 1 else x
    am = build.arg_reduce(flat, "argmax", a, keepdims=True, last=False)
    n = flat.shape[a]
    iota = build.as_array(np.arange(n).reshape((n,) + (1,) * (flat.rank - a - 1)), CellType.INT64)
    hot = build.cast(build.join("eq", am, iota), x.dtype)
    return [build.reshape(hot, x.shape)]


# ---------------------------------------------------------------- layer-style normalizations


@converter("LayerNormalization", 17)
def layer_normalization(ctx: NodeContext) -> Sequence[Node | None]:
    x, scale, bias = _float_input(ctx, 0), ctx.input(1), ctx.optional(2)
    stash = _stash_type(ctx)
    a = _axis(ctx, x)
    axes = list(range(a, x.rank))
    xu = build.cast(x, _work_type(stash, x))
    mu = mean(xu, axes)
    dev = build.join("sub", xu, mu)
    var = mean(build.join("mul", dev, dev), axes)
    eps = scalar_like(var, float(ctx.attr("epsilon")))
    inv_std = build.map_("reciprocal", build.map_("sqrt", build.join("add", var, eps)))
    y = build.join("mul", build.cast(build.join("mul", dev, inv_std), x.dtype), build.cast(scale, x.dtype))
    if bias is not None:
        y = build.join("add", y, build.cast(bias, x.dtype))
    return [y, build.cast(mu, stash), build.cast(inv_std, stash)]


@converter("RMSNormalization", 23)
def rms_normalization(ctx: NodeContext) -> Sequence[Node | None]:
    x, scale = _float_input(ctx, 0), ctx.input(1)
    axes = list(range(_axis(ctx, x), x.rank))
    xu = build.cast(x, _work_type(_stash_type(ctx), x))
    ms = mean(build.join("mul", xu, xu), axes)
    rms = build.map_("sqrt", build.join("add", ms, scalar_like(ms, float(ctx.attr("epsilon")))))
    y = build.cast(build.join("div", xu, rms), x.dtype)
    return [build.join("mul", y, build.cast(scale, x.dtype))]


def _channel_param(p: Node, rank: int) -> Node:
    """A per-channel parameter [C] (or [C, D1, ...]) aligned at axis 1 of a rank-`rank` input."""
    return build.reshape(p, (*p.shape, *([1] * (rank - 1 - p.rank))))


@converter("BatchNormalization", 1, 6, 7, 9, 14, 15)
def batch_normalization(ctx: NodeContext) -> Sequence[Node | None]:
    x = _float_input(ctx, 0)
    scale, bias, mu, var = (ctx.input(i) for i in range(1, 5))
    if x.rank < 2:
        raise ctx.error(f"needs an input of rank >= 2 ([N, C, ...]), got {list(x.shape)}")
    if ctx.opset >= 14:
        if ctx.attr("training_mode"):
            raise ctx.error("unsupported training_mode=1 (only inference is supported)")
    elif any(ctx.output_used(i) for i in range(1, ctx.n_outputs)):
        raise ctx.error("unsupported training-mode outputs (mean, var, saved_mean, saved_var)")
    elif ctx.opset < 7 and not ctx.attr("is_test"):
        raise ctx.error("unsupported is_test=0 (training mode; only inference is supported)")
    for p in (scale, bias, mu, var):
        if p.rank == 0 or p.rank > x.rank - 1 or p.shape[0] != x.shape[1]:
            raise ctx.error(f"parameter of shape {list(p.shape)} does not match channels of {list(x.shape)}")
    # y = x * a + b with a = scale / sqrt(var + eps), b = bias - mean * a: with constant
    # parameters a and b fold at deploy, leaving one multiply-add per cell
    work = CellType.FLOAT64 if x.dtype is CellType.FLOAT64 else CellType.FLOAT32
    s, b, m, v = (build.cast(p, work) for p in (scale, bias, mu, var))
    eps = build.scalar(float(ctx.attr("epsilon")), work)
    a = build.join("div", s, build.map_("sqrt", build.join("add", v, eps)))
    b = build.join("sub", b, build.join("mul", m, a))
    a_t, b_t = (_channel_param(build.cast(p, x.dtype), x.rank) for p in (a, b))
    return [build.join("add", build.join("mul", x, a_t), b_t)]


@converter("InstanceNormalization", 1, 6, 22)
def instance_normalization(ctx: NodeContext) -> Sequence[Node | None]:
    x, scale, bias = _float_input(ctx, 0), ctx.input(1), ctx.input(2)
    if x.rank < 3:
        raise ctx.error(f"needs an input of rank >= 3 ([N, C, D1, ...]), got {list(x.shape)}")
    axes = list(range(2, x.rank))
    mu = mean(x, axes)
    dev = build.join("sub", x, mu)
    var = mean(build.join("mul", dev, dev), axes)
    eps = scalar_like(var, float(ctx.attr("epsilon")))
    norm = build.join("div", dev, build.map_("sqrt", build.join("add", var, eps)))
    y = build.join("mul", norm, _channel_param(build.cast(scale, x.dtype), x.rank))
    return [build.join("add", y, _channel_param(build.cast(bias, x.dtype), x.rank))]


@converter("GroupNormalization", 18, 21)
def group_normalization(ctx: NodeContext) -> Sequence[Node | None]:
    x, scale, bias = _float_input(ctx, 0), ctx.input(1), ctx.input(2)
    if ctx.attr("num_groups") is None:
        raise ctx.error("attribute 'num_groups' is missing")
    groups = int(ctx.attr("num_groups"))
    if x.rank < 2:
        raise ctx.error(f"needs an input of rank >= 2 ([N, C, ...]), got {list(x.shape)}")
    n, c = x.shape[0], x.shape[1]
    if groups <= 0 or c % groups:
        raise ctx.error(f"num_groups={groups} does not divide the {c} channels")
    # opset 18 computes in the input type with per-group scale and bias; 21 in stash_type
    # with per-channel scale and bias
    work = _work_type(_stash_type(ctx), x) if ctx.opset >= 21 else x.dtype
    xg = build.reshape(build.cast(x, work), (n, groups, x.size // max(n * groups, 1)))
    mu = mean(xg, [2])
    dev = build.join("sub", xg, mu)
    var = mean(build.join("mul", dev, dev), [2])
    eps = scalar_like(var, float(ctx.attr("epsilon")))
    norm = build.join("div", dev, build.map_("sqrt", build.join("add", var, eps)))
    want = groups if ctx.opset < 21 else c
    for p in (scale, bias):
        if p.shape != (want,):
            raise ctx.error(f"scale and bias must have shape [{want}], got {list(p.shape)}")
    if ctx.opset < 21:
        s, b = (build.reshape(build.cast(p, x.dtype), (groups, 1)) for p in (scale, bias))
        return [build.reshape(build.join("add", build.join("mul", norm, s), b), x.shape)]
    norm = build.cast(build.reshape(norm, x.shape), x.dtype)
    s, b = (_channel_param(build.cast(p, x.dtype), x.rank) for p in (scale, bias))
    return [build.join("add", build.join("mul", norm, s), b)]


@converter("LpNormalization", 1, 22)
def lp_normalization(ctx: NodeContext) -> Sequence[Node | None]:
    x = _float_input(ctx, 0)
    axis = _axis(ctx, x)
    p = int(ctx.attr("p"))
    if p == 1:
        norm = build.reduce(build.map_("abs", x), "sum", [axis], keepdims=True)
    elif p == 2:
        norm = build.map_("sqrt", build.reduce(build.join("mul", x, x), "sum", [axis], keepdims=True))
    else:
        raise ctx.error(f"unsupported p={p} (1 or 2)")
    zero = scalar_like(x, 0)
    # a zero vector stays zero rather than becoming NaN (onnxruntime and the reference agree)
    is_zero = build.join("eq", norm, zero)
    safe = build.select(is_zero, scalar_like(x, 1), norm)
    return [build.select(is_zero, zero, build.join("div", x, safe))]


@converter("MeanVarianceNormalization", 9, 13)
def mean_variance_normalization(ctx: NodeContext) -> Sequence[Node | None]:
    x = _float_input(ctx, 0)
    axes = sorted({build.normalize_axis(int(a), x.rank) for a in ctx.attr("axes")})
    mu = mean(x, axes)
    var = build.join("sub", mean(build.join("mul", x, x), axes), build.join("mul", mu, mu))
    std = build.join("add", build.map_("sqrt", var), scalar_like(x, 1e-9))
    return [build.join("div", build.join("sub", x, mu), std)]


_LRN_SHIFTED_VIEWS = 8


@converter("LRN", 1, 13)
def lrn(ctx: NodeContext) -> Sequence[Node | None]:
    x = _float_input(ctx, 0)
    if ctx.attr("size") is None:
        raise ctx.error("attribute 'size' is missing")
    size = int(ctx.attr("size"))
    if size <= 0:
        raise ctx.error("attribute 'size' must be positive")
    if x.rank < 3:
        raise ctx.error(f"needs an input of rank >= 3 ([N, C, D1, ...]), got {list(x.shape)}")
    alpha, beta, bias = (float(ctx.attr(k)) for k in ("alpha", "beta", "bias"))
    sq = build.join("mul", x, x)
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    c = x.shape[1]
    if size <= _LRN_SHIFTED_VIEWS:
        # the window sum over channels as `size` shifted views (3 or 5 in practice)
        padded = build.pad(sq, [(0, 0), (lo, hi), *([(0, 0)] * (x.rank - 2))], "constant", 0)
        total: Node | None = None
        for k in range(size):
            starts = [0, k] + [0] * (x.rank - 2)
            stops = [x.shape[0], k + c, *x.shape[2:]]
            view = build.slice_(padded, starts, stops, [1] * x.rank)
            total = view if total is None else build.join("add", total, view)
        assert total is not None
    else:
        # wide windows: one matmul with a banded 0/1 matrix over the channel axis
        # band[j, c] = 1 where input channel j lies in output channel c's window [c - lo, c + hi]
        src, dst = np.arange(c)[:, None], np.arange(c)[None, :]
        band = ((dst - src <= lo) & (src - dst <= hi)).astype(x.dtype.np_dtype)
        perm = [0, *range(2, x.rank), 1]
        moved = build.matmul(build.transpose(sq, perm), build.constant(band, x.dtype))
        total = build.transpose(moved, [0, x.rank - 1, *range(1, x.rank - 1)])
    base = build.join("add", scalar_like(x, bias), build.join("mul", scalar_like(x, alpha / size), total))
    return [build.join("div", x, build.join("pow", base, scalar_like(x, beta)))]


# ---------------------------------------------------------------- Dropout


@converter("Dropout", 1, 6, 7, 10, 12, 13, 22)
def dropout(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    if ctx.opset >= 12:
        training = ctx.optional(2)
        if training is not None and bool(np.asarray(ctx.const(2, "training_mode")).reshape(-1)[0]):
            ratio = 0.5 if ctx.optional(1) is None else float(np.asarray(ctx.const(1, "ratio")).reshape(-1)[0])
            if ratio != 0.0:
                raise ctx.error("unsupported training_mode=True with a non-zero ratio (random dropout)")
    elif ctx.opset < 7 and not ctx.attr("is_test") and float(ctx.attr("ratio")) != 0.0:
        raise ctx.error("unsupported is_test=0 (random dropout in training mode)")
    outs: list[Node | None] = [x]
    if ctx.output_used(1):
        mask_type = CellType.BOOL if ctx.opset >= 10 else x.dtype
        outs.append(build.broadcast(build.scalar(1, mask_type), x.shape))
    return outs
