"""Activation functions: short chains of MAP, JOIN and SELECT.

Formulas are written so that no intermediate overflows where the result is finite
(softplus as max(x, 0) + log(1 + exp(-|x|)), exp only of non-positive values in the
ELU family), since a fused kernel cannot recover from an inf in a branch it discards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType, compute_type
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import same_type, scalar_like
from tensor_ir.onnx_import.registry import converter


def _float_input(ctx: NodeContext, i: int = 0) -> Node:
    x = ctx.input(i)
    ctx.float_types_only(x)
    return x


def _widened(x: Node, fn: Callable[[Node], Node]) -> Node:
    """fn(x) computed in float32 for 16-bit floats and rounded once at the end: chains like
    exp(x) - 1 lose most of their bits when every step rounds to bfloat16."""
    wide = compute_type(x.dtype)
    if wide is x.dtype:
        return fn(x)
    return build.cast(fn(build.cast(x, wide)), x.dtype)


def _f(ctx: NodeContext, name: str) -> float:
    value = ctx.attr(name)
    if value is None:
        raise ctx.error(f"attribute '{name}' is missing")
    return float(value)


def _mul(x: Node, k: float) -> Node:
    return build.join("mul", x, scalar_like(x, k))


def _add(x: Node, k: float) -> Node:
    return build.join("add", x, scalar_like(x, k))


def _clamp(x: Node, lo: float, hi: float) -> Node:
    return build.join("min", build.join("max", x, scalar_like(x, lo)), scalar_like(x, hi))


def _expm1_nonpos(x: Node) -> Node:
    """exp(min(x, 0)) - 1: the negative branch of the ELU family, finite for every x."""
    neg = build.join("min", x, scalar_like(x, 0))
    return build.join("sub", build.map_("exp", neg), scalar_like(x, 1))


def _softplus(x: Node) -> Node:
    pos = build.join("max", x, scalar_like(x, 0))
    tail = build.map_("exp", build.map_("neg", build.map_("abs", x)))
    return build.join("add", pos, build.map_("log", build.join("add", tail, scalar_like(x, 1))))


def _swish(x: Node, alpha: float) -> Node:
    gate = x if alpha == 1.0 else _mul(x, alpha)
    return build.join("mul", x, build.map_("sigmoid", gate))


@converter("Elu", 1, 6, 22)
def elu(ctx: NodeContext) -> Sequence[Node | None]:
    alpha = _f(ctx, "alpha")

    def f(x: Node) -> Node:
        return build.select(build.join("lt", x, scalar_like(x, 0)), _mul(_expm1_nonpos(x), alpha), x)

    return [_widened(_float_input(ctx), f)]


@converter("Selu", 1, 6, 22)
def selu(ctx: NodeContext) -> Sequence[Node | None]:
    alpha, gamma = _f(ctx, "alpha"), _f(ctx, "gamma")

    def f(x: Node) -> Node:
        neg = _mul(_expm1_nonpos(x), alpha)
        return _mul(build.select(build.join("gt", x, scalar_like(x, 0)), x, neg), gamma)

    return [_widened(_float_input(ctx), f)]


@converter("Celu", 12, 28)
def celu(ctx: NodeContext) -> Sequence[Node | None]:
    alpha = _f(ctx, "alpha")
    if alpha == 0:
        raise ctx.error("alpha must not be 0")

    def f(x: Node) -> Node:
        # max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
        if alpha > 0:
            # the second term is 0 for x >= 0, so exp needs only x / alpha <= 0
            neg = _mul(_expm1_nonpos(_mul(x, 1.0 / alpha)), alpha)
        else:
            e = build.join("sub", build.map_("exp", _mul(x, 1.0 / alpha)), scalar_like(x, 1))
            neg = build.join("min", _mul(e, alpha), scalar_like(x, 0))
        return build.join("add", build.join("max", x, scalar_like(x, 0)), neg)

    return [_widened(_float_input(ctx), f)]


@converter("LeakyRelu", 1, 6, 16)
def leaky_relu(ctx: NodeContext) -> Sequence[Node | None]:
    x = _float_input(ctx)
    return [build.select(build.join("lt", x, scalar_like(x, 0)), _mul(x, _f(ctx, "alpha")), x,
                         label=ctx.name)]


def _prelu_slope(ctx: NodeContext, x: Node, slope: Node) -> Node:
    pairs = zip(reversed(x.shape), reversed(slope.shape))
    if slope.rank <= x.rank and all(s in (d, 1) for d, s in pairs):
        return slope
    # opsets before 7 meant a per-channel slope [C] for an input [N, C, ...]
    if ctx.opset < 7 and slope.rank == 1 and x.rank >= 2 and x.shape[1] == slope.shape[0]:
        return build.reshape(slope, (slope.shape[0], *([1] * (x.rank - 2))))
    raise ctx.error(f"slope of shape {list(slope.shape)} does not broadcast to input {list(x.shape)}")


@converter("PRelu", 1, 6, 7, 9, 16)
def prelu(ctx: NodeContext) -> Sequence[Node | None]:
    x, slope = ctx.input(0), ctx.input(1)
    same_type(ctx, x, slope)
    slope = _prelu_slope(ctx, x, slope)
    return [build.select(build.join("lt", x, scalar_like(x, 0)), build.join("mul", x, slope), x, label=ctx.name)]


@converter("ThresholdedRelu", 10, 22)
def thresholded_relu(ctx: NodeContext) -> Sequence[Node | None]:
    x = _float_input(ctx)
    keep = build.join("gt", x, scalar_like(x, _f(ctx, "alpha")))
    return [build.select(keep, x, scalar_like(x, 0), label=ctx.name)]


@converter("HardSigmoid", 1, 6, 22)
def hard_sigmoid(ctx: NodeContext) -> Sequence[Node | None]:
    alpha, beta = _f(ctx, "alpha"), _f(ctx, "beta")
    return [_widened(_float_input(ctx), lambda x: _clamp(_add(_mul(x, alpha), beta), 0, 1))]


@converter("HardSwish", 14, 22)
def hard_swish(ctx: NodeContext) -> Sequence[Node | None]:
    def f(x: Node) -> Node:
        # x * HardSigmoid(x) with alpha = 1/6, beta = 0.5
        return build.join("mul", x, _clamp(_add(_mul(x, 1.0 / 6.0), 0.5), 0, 1))

    return [_widened(_float_input(ctx), f)]


@converter("Softplus", 1, 22)
def softplus(ctx: NodeContext) -> Sequence[Node | None]:
    return [_widened(_float_input(ctx), _softplus)]


@converter("Softsign", 1, 22)
def softsign(ctx: NodeContext) -> Sequence[Node | None]:
    return [_widened(_float_input(ctx), lambda x: build.join("div", x, _add(build.map_("abs", x), 1)))]


@converter("Mish", 18, 22)
def mish(ctx: NodeContext) -> Sequence[Node | None]:
    return [_widened(_float_input(ctx), lambda x: build.join("mul", x, build.map_("tanh", _softplus(x))))]


@converter("Gelu", 20)
def gelu(ctx: NodeContext) -> Sequence[Node | None]:
    approximate = ctx.attr("approximate")
    if approximate not in ("none", "tanh"):
        raise ctx.error(f"unsupported approximate='{approximate}' (expected 'none' or 'tanh')")

    def f(x: Node) -> Node:
        if approximate == "none":
            # 0.5 x (1 + erf(x / sqrt(2)))
            inner = build.map_("erf", _mul(x, 1.0 / math.sqrt(2.0)))
        else:
            # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
            cube = build.join("mul", build.join("mul", x, x), x)
            poly = build.join("add", x, _mul(cube, 0.044715))
            inner = build.map_("tanh", _mul(poly, math.sqrt(2.0 / math.pi)))
        return build.join("mul", _mul(x, 0.5), _add(inner, 1))

    return [_widened(_float_input(ctx), f)]


@converter("Swish", 24)
def swish(ctx: NodeContext) -> Sequence[Node | None]:
    alpha = _f(ctx, "alpha")
    return [_widened(_float_input(ctx), lambda x: _swish(x, alpha))]


@converter("SwiGLU", 28)
def swiglu(ctx: NodeContext) -> Sequence[Node | None]:
    a, b = _float_input(ctx, 0), _float_input(ctx, 1)
    same_type(ctx, a, b)
    if a.shape != b.shape:
        raise ctx.error(f"gate and value shapes differ: {list(a.shape)} and {list(b.shape)} (SwiGLU does "
                        "not broadcast)")
    wide = compute_type(a.dtype)
    out = build.join("mul", _swish(build.cast(a, wide), _f(ctx, "alpha")), build.cast(b, wide))
    return [build.cast(out, a.dtype)]


@converter("Shrink", 9)
def shrink(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    bias, lambd = _f(ctx, "bias"), _f(ctx, "lambd")
    # integer inputs compare against the float lambd and shift by the float bias, then
    # truncate back, as the ONNX reference does
    v = x if x.dtype.is_float else build.cast(x, CellType.FLOAT64)
    low = build.join("lt", v, scalar_like(v, -lambd))
    high = build.join("gt", v, scalar_like(v, lambd))
    out = build.select(low, _add(v, bias), build.select(high, _add(v, -bias), scalar_like(v, 0)))
    return [build.cast(out, x.dtype)]


def _clip_bound(ctx: NodeContext, x: Node, i: int, what: str) -> Node | None:
    bound = ctx.optional(i)
    if bound is None:
        return None
    if bound.dtype is not x.dtype:
        raise ctx.error(f"{what} is {bound.dtype.np_name} but the input is {x.dtype.np_name}")
    if bound.size != 1:
        raise ctx.error(f"{what} must be a scalar, got shape {list(bound.shape)}")
    return build.reshape(bound, ())


@converter("Clip", 1, 6, 11, 12, 13)
def clip(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    lo: Node | None
    hi: Node | None
    if ctx.opset < 11:
        ctx.float_types_only(x)
        lo_v, hi_v = ctx.attr("min"), ctx.attr("max")
        lo = None if lo_v is None else build.constant(np.asarray(lo_v, dtype=x.dtype.np_dtype), x.dtype)
        hi = None if hi_v is None else build.constant(np.asarray(hi_v, dtype=x.dtype.np_dtype), x.dtype)
    else:
        lo, hi = _clip_bound(ctx, x, 1, "min"), _clip_bound(ctx, x, 2, "max")
    out = x
    if lo is not None:
        out = build.join("max", out, lo)
    if hi is not None:
        # applied last, so min > max gives max everywhere, as ONNX specifies
        out = build.join("min", out, hi)
    return [out]
