"""Vespa's scalar math functions, by the name an expression calls them: exp, log, sqrt,
the trigonometric functions, pow, fmod, isNan, log10, elu, atan2, ldexp, ...

Each applies cell by cell to numbers and tensors alike (two arguments join by dimension
name). A new one goes here, into MATH_FUNCTIONS; max and min, which are also reductions,
are tensor functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from tensor_ir import build
from tensor_ir.expr import bit_functions
from tensor_ir.expr.ast import Call
from tensor_ir.expr.values import TValue
from tensor_ir.ir import Node

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler

# the name in an expression -> the IR's elementwise op
_UNARY: dict[str, str] = {
    "exp": "exp", "log": "log", "sqrt": "sqrt", "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu",
    "abs": "abs", "fabs": "abs", "floor": "floor", "ceil": "ceil", "sin": "sin", "cos": "cos", "tan": "tan",
    "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh", "erf": "erf",
    "neg": "neg", "sign": "sign",
}  # fmt: skip
_BINARY: dict[str, str] = {"pow": "pow", "fmod": "fmod"}


def _unary(fn: str) -> Callable[[Compiler, Call], TValue]:
    def convert(c: Compiler, e: Call) -> TValue:
        c.arity(e, 1)
        return c.map(c.compile(e.args[0]), lambda n: build.map_(fn, n))

    return convert


def _binary(fn: str) -> Callable[[Compiler, Call], TValue]:
    def convert(c: Compiler, e: Call) -> TValue:
        c.arity(e, 2)
        return c.join(c.compile(e.args[0]), c.compile(e.args[1]), lambda x, y: build.join(fn, x, y), e.loc)

    return convert


def _is_nan(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)
    v = c.compile(e.args[0])
    return c.truth(c.map(v, lambda n: build.map_("isnan", n)), v)


def _square(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)
    v = c.compile(e.args[0])
    return c.join(v, v, lambda x, y: build.join("mul", x, y), e.loc)


def _log10(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)
    # divided, not multiplied by 1/ln 10: log10(100) is then exactly 2
    return c.map(c.compile(e.args[0]),
                 lambda n: build.join("div", build.map_("log", n), build.scalar(math.log(10), n.dtype)))


def _elu(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)

    def elu(n: Node) -> Node:
        neg = build.join("sub", build.map_("exp", n), build.scalar(1, n.dtype))
        return build.select(build.join("lt", n, build.scalar(0, n.dtype)), neg, n)

    return c.map(c.compile(e.args[0]), elu)


def _atan2(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)

    def atan2(y: Node, x: Node) -> Node:
        def k(v: float) -> Node:
            return build.scalar(v, y.dtype)

        base = build.map_("atan", build.join("div", y, x))
        y_neg = build.join("lt", y, k(0))
        # x < 0: shift by pi toward y's sign; x == 0: +-pi/2 or 0
        left = build.join("add", base, build.select(y_neg, k(-math.pi), k(math.pi)))
        axis = build.select(build.join("gt", y, k(0)), k(math.pi / 2),
                            build.select(y_neg, k(-math.pi / 2), k(0)))
        return build.select(build.join("gt", x, k(0)), base,
                            build.select(build.join("lt", x, k(0)), left, axis))

    return c.join(c.compile(e.args[0]), c.compile(e.args[1]), atan2, e.loc)


def _ldexp(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)

    def ldexp(x: Node, p: Node) -> Node:
        # C's ldexp takes a whole exponent: truncate toward zero
        whole = build.join("mul", build.map_("sign", p), build.map_("floor", build.map_("abs", p)))
        return build.join("mul", x, build.join("pow", build.scalar(2, x.dtype), whole))

    return c.join(c.compile(e.args[0]), c.compile(e.args[1]), ldexp, e.loc)


MATH_FUNCTIONS: dict[str, Callable[[Compiler, Call], TValue]] = {
    **{name: _unary(fn) for name, fn in _UNARY.items()},
    **{name: _binary(fn) for name, fn in _BINARY.items()},
    "isNan": _is_nan,
    "square": _square,
    "log10": _log10,
    "elu": _elu,
    "atan2": _atan2,
    "ldexp": _ldexp,
    "bit": bit_functions.bit,
    "hamming": bit_functions.hamming,
}
