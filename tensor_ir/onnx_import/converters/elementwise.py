"""Elementwise math, comparison, logic and bit ops: one MAP or JOIN each."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce as fold

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import legacy_broadcast, same_type, scalar_like
from tensor_ir.onnx_import.registry import converter

_UNARY = {
    "Abs": ("abs", (1, 6, 13)),
    "Neg": ("neg", (1, 6, 13)),
    "Exp": ("exp", (1, 6, 13)),
    "Log": ("log", (1, 6, 13)),
    "Sqrt": ("sqrt", (1, 6, 13)),
    "Reciprocal": ("reciprocal", (1, 6, 13)),
    "Sin": ("sin", (7, 22)),
    "Cos": ("cos", (7, 22)),
    "Tan": ("tan", (7, 22)),
    "Asin": ("asin", (7, 22)),
    "Acos": ("acos", (7, 22)),
    "Atan": ("atan", (7, 22)),
    "Sinh": ("sinh", (9, 22)),
    "Cosh": ("cosh", (9, 22)),
    "Asinh": ("asinh", (9, 22)),
    "Acosh": ("acosh", (9, 22)),
    "Atanh": ("atanh", (9, 22)),
    "Tanh": ("tanh", (1, 6, 13)),
    "Sigmoid": ("sigmoid", (1, 6, 13)),
    "Relu": ("relu", (1, 6, 13, 14)),
    "Erf": ("erf", (9, 13)),
    "Floor": ("floor", (1, 6, 13)),
    "Ceil": ("ceil", (1, 6, 13)),
    "Round": ("round", (11, 22)),
    "Sign": ("sign", (9, 13)),
    "Not": ("not", (1,)),
    "BitwiseNot": ("bitwise_not", (18,)),
    "IsNaN": ("isnan", (9, 13, 20)),
}

_BINARY = {
    "Add": ("add", (1, 6, 7, 13, 14)),
    "Sub": ("sub", (1, 6, 7, 13, 14)),
    "Mul": ("mul", (1, 6, 7, 13, 14)),
    "Div": ("div", (1, 6, 7, 13, 14)),
    "Equal": ("eq", (1, 7, 11, 13, 19)),
    "Greater": ("gt", (1, 7, 9, 13)),
    "Less": ("lt", (1, 7, 9, 13)),
    "GreaterOrEqual": ("ge", (12, 16)),
    "LessOrEqual": ("le", (12, 16)),
    "And": ("and", (1, 7)),
    "Or": ("or", (1, 7)),
    "Xor": ("xor", (1, 7)),
    "BitwiseAnd": ("bitwise_and", (18,)),
    "BitwiseOr": ("bitwise_or", (18,)),
    "BitwiseXor": ("bitwise_xor", (18,)),
}


def _unary(fn: str) -> object:
    def convert(ctx: NodeContext) -> Sequence[Node | None]:
        return [build.map_(fn, ctx.input(0), label=ctx.name)]

    return convert


def _binary(fn: str) -> object:
    def convert(ctx: NodeContext) -> Sequence[Node | None]:
        a, b = legacy_broadcast(ctx, ctx.input(0), ctx.input(1))
        same_type(ctx, a, b)
        return [build.join(fn, a, b, label=ctx.name)]

    return convert


for _op, (_fn, _versions) in _UNARY.items():
    converter(_op, *_versions)(_unary(_fn))  # type: ignore[arg-type]
for _op, (_fn, _versions) in _BINARY.items():
    converter(_op, *_versions)(_binary(_fn))  # type: ignore[arg-type]


@converter("IsInf", 10, 20)
def is_inf(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    pos, neg = bool(ctx.attr("detect_positive")), bool(ctx.attr("detect_negative"))
    if pos and neg:
        return [build.map_("isinf", x)]
    if pos:
        return [build.map_("isposinf", x)]
    if neg:
        return [build.map_("isneginf", x)]
    return [build.broadcast(build.scalar(False, CellType.BOOL), x.shape)]


@converter("Pow", 1, 7, 12, 13, 15)
def pow_(ctx: NodeContext) -> Sequence[Node | None]:
    base, exponent = legacy_broadcast(ctx, ctx.input(0), ctx.input(1))
    # ONNX lets the exponent have its own type; the result has the base's
    return [build.join("pow", base, build.cast(exponent, base.dtype))]


@converter("Mod", 10, 13, 28)
def mod(ctx: NodeContext) -> Sequence[Node | None]:
    a, b = ctx.input(0), ctx.input(1)
    same_type(ctx, a, b)
    fmod = bool(ctx.attr("fmod"))
    if not fmod and a.dtype.is_float and ctx.opset < 28:
        raise ctx.error("fmod=0 is only defined for integer inputs before opset 28")
    return [build.join("fmod" if fmod else "mod", a, b)]


@converter("BitShift", 11, 28)
def bit_shift(ctx: NodeContext) -> Sequence[Node | None]:
    a, b = ctx.input(0), ctx.input(1)
    same_type(ctx, a, b)
    direction = ctx.attr("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.error(f"direction must be LEFT or RIGHT, got {direction!r}")
    return [build.join("shift_left" if direction == "LEFT" else "shift_right", a, b)]


def _variadic(fn: str, ctx: NodeContext) -> Node:
    xs = [x for x in ctx.inputs if x is not None]
    if not xs:
        raise ctx.error("needs at least one input")
    same_type(ctx, *xs)
    return fold(lambda acc, x: build.join(fn, acc, x), xs[1:], xs[0])


@converter("Max", 1, 6, 8, 12, 13)
def max_(ctx: NodeContext) -> Sequence[Node | None]:
    return [_variadic("max", ctx)]


@converter("Min", 1, 6, 8, 12, 13)
def min_(ctx: NodeContext) -> Sequence[Node | None]:
    return [_variadic("min", ctx)]


@converter("Sum", 1, 6, 8, 13)
def sum_(ctx: NodeContext) -> Sequence[Node | None]:
    return [_variadic("add", ctx)]


@converter("Mean", 1, 6, 8, 13)
def mean(ctx: NodeContext) -> Sequence[Node | None]:
    total = _variadic("add", ctx)
    n = len([x for x in ctx.inputs if x is not None])
    return [build.join("div", total, scalar_like(total, n))]


@converter("Where", 9, 16)
def where(ctx: NodeContext) -> Sequence[Node | None]:
    return [build.select(ctx.input(0), ctx.input(1), ctx.input(2))]
