"""Ranking expressions -> tensor program nodes, with Vespa's named-dimension semantics.

Values join by dimension name; numbers, comparisons of numbers and anything of rank 0
are double, as in Vespa; a tensor combined with a number keeps the tensor's cell type.
Everything the expression refers to outside itself (attributes, query inputs,
constants, profile functions, ONNX models) comes from a `Context`.

This module holds the core: names, operators, calls, reductions and onnx(). Tensor
literals and generators are compiled in literals, slices in slices, and the functions
called by name (Vespa's builtins) in tensor_functions and math_functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import EvaluationError, IRError
from tensor_ir.expr import sparse as sp
from tensor_ir.expr.ast import (
    Binary,
    Call,
    Expr,
    Generate,
    Lambda,
    Literal,
    Name,
    NameList,
    Num,
    SliceExpr,
    Str,
    Unary,
)
from tensor_ir.expr.contraction import as_matmul
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.generator_functions import generated, takes_dimensions
from tensor_ir.expr.literals import generate, literal
from tensor_ir.expr.math_functions import MATH_FUNCTIONS
from tensor_ir.expr.slices import slice_value
from tensor_ir.expr.sparse_reduce import reduce_mapped
from tensor_ir.expr.tensor_functions import TENSOR_FUNCTIONS
from tensor_ir.expr.types import HIDDEN_MARK, TensorType, is_hidden
from tensor_ir.expr.values import (
    TValue,
    as_double,
    compute_cell,
    expand_to,
    hidden_names,
    move_axes,
    rename_dims,
    scalar,
    unify_cells,
    with_cell,
)
from tensor_ir.ir import Node

# as_double moved to values; it stays importable from here
__all__ = ["Compiler", "Context", "as_double"]


class Context(Protocol):
    """What an expression can refer to. Each method raises RankingError when unknown."""

    def attribute(self, name: str, loc: Location) -> TValue: ...

    def query(self, name: str, loc: Location) -> TValue: ...

    def constant(self, name: str, loc: Location) -> TValue: ...

    def has_function(self, name: str) -> bool: ...

    def function(self, name: str, args: list[TValue], loc: Location, compiler: Compiler) -> TValue: ...

    def onnx(self, model: str, output: str | None, loc: Location, compiler: Compiler) -> TValue: ...

    def feature(self, call: Call, compiler: Compiler) -> TValue | None:
        """A rank feature (`closeness(field, x)`, `now`, ...) by name, or None when the
        name is not one this context knows. A bare name arrives as a call without arguments."""
        ...


_ARITH: dict[str, str] = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "fmod", "^": "pow"}
_COMPARE: dict[str, str] = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}

# Vespa's builtins by name. A profile's own function of the same name comes first.
_BUILTINS: dict[str, Callable[[Compiler, Call], TValue]] = {**TENSOR_FUNCTIONS, **MATH_FUNCTIONS}


@dataclass
class Compiler:
    """Compiles expressions against a context; `locals` are the function arguments and
    lambda variables in scope."""

    context: Context
    locals: dict[str, TValue] = field(default_factory=dict)

    def error(self, message: str, loc: Location) -> RankingError:
        return RankingError(message, loc)

    def compile(self, e: Expr) -> TValue:
        try:
            return self._compile(e)
        except (IRError, EvaluationError) as err:
            # from building or folding a node: the innermost expression is where it happened
            raise self.error(str(err), e.loc) from None

    def with_locals(self, bound: Mapping[str, TValue]) -> Compiler:
        return Compiler(self.context, {**self.locals, **bound})

    # ------------------------------------------------------------ dispatch

    def _compile(self, e: Expr) -> TValue:
        if isinstance(e, Num):
            return scalar(e.value)
        if isinstance(e, Name):
            return self.name(e)
        if isinstance(e, Unary):
            v = self.compile(e.operand)
            if e.op == "-":
                return self.map(v, lambda n: build.map_("neg", n))
            return self.truth(self.map(v, lambda n: build.map_("not", self.nonzero(n))), v)
        if isinstance(e, Binary):
            return self.binary(e)
        if isinstance(e, Call):
            return self.call(e)
        if isinstance(e, Generate):
            return generate(self, e)
        if isinstance(e, Literal):
            return literal(self, e)
        if isinstance(e, SliceExpr):
            return slice_value(self, e)
        if isinstance(e, Str):
            raise self.error(f"a string ('{e.value}') is only allowed as an onnx() model or output name", e.loc)
        if isinstance(e, Lambda):
            raise self.error("a lambda is only allowed as the last argument of map() or join()", e.loc)
        if isinstance(e, NameList):
            raise self.error("a list of dimension names is only allowed in rename()", e.loc)
        raise self.error(f"unexpected {type(e).__name__}", e.loc)

    def name(self, e: Name) -> TValue:
        if e.name in self.locals:
            return self.locals[e.name]
        if self.context.has_function(e.name):
            return self.context.function(e.name, [], e.loc, self)
        value = self.context.feature(Call(e.loc, e.name, ()), self)
        if value is not None:
            return value
        raise self.error(f"unknown name '{e.name}': not a function argument, lambda variable or function", e.loc)

    # ------------------------------------------------------------ joins and maps

    def joint_mapped(self, values: list[TValue], loc: Location) -> tuple[str, ...]:
        """The mapped dimensions of a join of `values`; a dimension mapped in one and
        indexed in another is refused, as Vespa's type resolution does."""
        mapped = sorted({d for v in values for d in v.type.mapped})
        for v in values:
            clash = set(mapped) & set(v.type.visible_names)
            if clash:
                raise self.error(
                    f"dimension '{min(clash)}' is mapped in one operand and indexed in another "
                    f"(operands: {', '.join(str(x.type) for x in values)})", loc)
        return tuple(mapped)

    def joint_dims(self, values: list[TValue], loc: Location) -> tuple[tuple[str, int], ...]:
        sizes: dict[str, int] = {}
        for v in values:
            for n, s in v.type.dims:
                if n in sizes and sizes[n] != s:
                    raise self.error(
                        f"dimension '{n}' has size {sizes[n]} in one operand and {s} in another "
                        f"(operands: {', '.join(str(x.type) for x in values)})",
                        loc,
                    )
                sizes[n] = s
        return tuple(sorted(sizes.items()))

    def join(self, a: TValue, b: TValue, fn: Callable[[Node, Node], Node], loc: Location,
             cell: CellType | None = None) -> TValue:
        mapped = self.joint_mapped([a, b], loc)
        if mapped:
            a, b = sp.aligned(a, b)
        dims = self.joint_dims([a, b], loc)
        ct = cell or unify_cells(a, b)
        na = expand_to(with_cell(a, ct), dims)
        nb = expand_to(with_cell(b, ct), dims)
        try:
            out = fn(na, nb)
        except IRError as err:
            raise self.error(str(err), loc) from None
        if out.shape != tuple(s for _, s in dims):
            out = build.broadcast(out, [s for _, s in dims])
        return sp.with_sparse(out, out.dtype, dims, mapped, sp.joint_sparse(a, b))

    def map(self, v: TValue, fn: Callable[[Node], Node]) -> TValue:
        ct = compute_cell(v.type.cell)
        node = fn(with_cell(v, ct).node)
        return TValue(node, TensorType(node.dtype, v.type.dims, v.type.mapped), v.sparse)

    def nonzero(self, n: Node) -> Node:
        return n if n.dtype.is_bool else build.join("ne", n, build.scalar(0, n.dtype))

    def truth(self, v: TValue, *like: TValue) -> TValue:
        """Vespa's booleans are numbers, 1.0 or 0.0, in the cell type the operands were
        computed in (double for numbers, float for float tensors)."""
        if v.is_scalar:
            ct = CellType.FLOAT64
        elif len(like) == 2:
            ct = unify_cells(like[0], like[1])
        elif like:
            ct = compute_cell(like[0].type.cell) if not like[0].is_scalar else CellType.FLOAT64
        else:
            ct = CellType.FLOAT32
        return TValue(build.cast(v.node, ct), TensorType(ct, v.type.dims, v.type.mapped), v.sparse)

    def binary(self, e: Binary) -> TValue:
        # a left-leaning chain (a + b + c + ..., the thousands of trees of a tree ensemble)
        # is folded in a loop: recursing down its left spine would exhaust the stack
        spine: list[Binary] = []
        left: Expr = e
        while isinstance(left, Binary):
            spine.append(left)
            left = left.left
        acc = self.compile(left)
        for b in reversed(spine):
            acc = self.operator(b.op, acc, self.compile(b.right), b.loc)
        return acc

    def operator(self, op: str, a: TValue, b: TValue, loc: Location) -> TValue:
        if op in _ARITH:
            fn = _ARITH[op]
            return self.join(a, b, lambda x, y: build.join(fn, x, y), loc)
        if op in _COMPARE:
            fn = _COMPARE[op]
            return self.truth(self.join(a, b, lambda x, y: build.join(fn, x, y), loc), a, b)
        if op == "~=":
            return self.truth(self.join(a, b, approx_equal, loc), a, b)
        if op in ("&&", "||"):
            fn = "and" if op == "&&" else "or"
            joined = self.join(a, b, lambda x, y: build.join(fn, self.nonzero(x), self.nonzero(y)), loc)
            return self.truth(joined, a, b)
        raise self.error(f"unknown operator '{op}'", loc)

    # ------------------------------------------------------------ calls

    def call(self, e: Call) -> TValue:
        name, args = e.name, e.args
        if name == "onnx" or name == "onnxModel":
            return self.onnx_call(e)
        if takes_dimensions(e):
            # random(x[2]), range(x[3]), diag(x[2],y[2]): Vespa's parser reads these before
            # any function or feature of the same name
            return generated(self, e)
        if e.output is not None:
            # rank features have named outputs too (freshness(f).logscale)
            named = None if self.context.has_function(name) else self.context.feature(e, self)
            if named is not None:
                return named
            raise self.error(f"'{name}(...).{e.output}': only onnx(...) has named outputs", e.loc)
        if name in ("attribute", "query", "constant"):
            if len(args) != 1 or not isinstance(args[0], Name | Str):
                raise self.error(f"{name}() takes one name, as in {name}(my_name)", e.loc)
            ref = args[0].name if isinstance(args[0], Name) else args[0].value
            value: TValue = getattr(self.context, name)(ref, e.loc)
            return value
        if self.context.has_function(name):
            return self.context.function(name, [self.compile(a) for a in args], e.loc, self)
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            return builtin(self, e)
        feature = self.context.feature(e, self)
        if feature is not None:
            return feature
        raise self.error(f"unknown function '{name}' (not a rank profile function nor a supported feature)", e.loc)

    def arity(self, e: Call, n: int) -> None:
        if len(e.args) != n:
            raise self.error(f"{e.name}() takes {n} argument{'s' if n != 1 else ''}, got {len(e.args)}", e.loc)

    def dim_name(self, e: Expr) -> str:
        if isinstance(e, Name):
            return e.name
        if isinstance(e, Str):
            return e.value
        raise self.error("expected a dimension name", e.loc)

    def reduce(self, v: TValue, agg: str, dims: list[str], loc: Location) -> TValue:
        """Over the named visible dimensions, or all visible ones; hidden dimensions (one
        number per generator cell) stay."""
        if v.sparse is not None:
            return reduce_mapped(self, v, agg, dims, loc)
        visible = v.type.visible_names
        for d in dims:
            if d not in visible:
                raise self.error(f"cannot reduce over dimension '{d}': the value has type {v.type}", loc)
        gone = set(dims or visible)
        axes = [i for i, n in enumerate(v.type.names) if n in gone]
        kept = tuple(d for d in v.type.dims if d[0] not in gone)
        ct = CellType.FLOAT64 if not any(not is_hidden(n) for n, _ in kept) else compute_cell(v.type.cell)
        x = with_cell(v, ct).node
        count = int(np.prod([v.type.dims[a][1] for a in axes], dtype=np.int64))
        shape = [s for _, s in kept]
        if agg == "count":
            out = build.broadcast(build.scalar(count, ct), shape)
        elif not axes:
            out = x
        elif agg == "avg":
            out = build.join("div", build.reduce(x, "sum", axes, False), build.scalar(count, ct))
        elif agg in ("max", "min"):
            out = _first_nan_kept(x, agg, axes, shape)
        else:
            out = (agg == "sum" and as_matmul(x, axes)) or build.reduce(x, agg, axes, False)
        return TValue(out, TensorType(ct, kept))

    def onnx_call(self, e: Call) -> TValue:
        if not e.args or len(e.args) > 2:
            raise self.error("onnx() takes a model name or file and optionally an output name", e.loc)
        model_arg = e.args[0]
        if isinstance(model_arg, Str):
            model = model_arg.value
        elif isinstance(model_arg, Name):
            model = model_arg.name
        else:
            raise self.error("onnx(): the model must be a name or a quoted file name", model_arg.loc)
        output = e.output
        if len(e.args) == 2:
            out_arg = e.args[1]
            if not isinstance(out_arg, Str | Name):
                raise self.error("onnx(): the output must be a name", out_arg.loc)
            if output is not None:
                raise self.error("onnx(): output named twice", e.loc)
            output = out_arg.value if isinstance(out_arg, Str) else out_arg.name
        return self.context.onnx(model, output, e.loc, self)

    # ------------------------------------------------------------ lambdas and filling a type

    def lambda_of(self, e: Expr, n: int, fn_name: str) -> Lambda:
        if not isinstance(e, Lambda) or len(e.params) != n:
            raise self.error(f"{fn_name}() needs a lambda f({', '.join('xyz'[:n])})(...) as its last argument", e.loc)
        return e

    def apply_lambda(self, lam: Lambda, values: list[TValue]) -> TValue:
        """The lambda's body with its parameters bound to `values` as they are."""
        return self.with_locals(dict(zip(lam.params, values, strict=True))).compile(lam.body)

    def apply_per_cell(self, lam: Lambda, values: list[TValue]) -> TValue:
        """The lambda applied to each cell of `values` (all of one type): in Vespa each
        parameter is one number, so here the cells' dimensions are hidden while the body
        compiles (tensor_ir.expr.types) and come back on its result, which must be a number."""
        names = sorted({n for v in values for n in v.type.visible_names})
        hidden = hidden_names(names)
        first = values[0]
        if first.sparse is None:
            cells = [rename_dims(v, hidden) for v in values]
        else:
            # the slot axes are hidden too while the body compiles: one number per slot and cell
            hidden.update({n: f"slot{HIDDEN_MARK}{h[1:]}" for n, h in
                           ((n, sp.fresh_slot()) for n, _ in first.type.slots)})
            cells = []
            for v in values:
                node, dims = move_axes(v.node, v.type.dims, hidden)
                cells.append(TValue(node, TensorType(v.type.cell, dims)))
        out = self.with_locals(dict(zip(lam.params, cells, strict=True))).compile(lam.body)
        if not out.is_scalar:
            raise self.error(f"a lambda must give a number for each cell, but gives {out.type}", lam.body.loc)
        back = {h: n for n, h in hidden.items()}
        if first.sparse is None:
            return rename_dims(out, back)
        want = tuple(sorted({**dict(out.type.dims), **{hidden[n]: s for n, s in first.type.slots}}.items()))
        node = build.broadcast(expand_to(out, want), [s for _, s in want])
        node, dims = move_axes(node, want, back)
        return TValue(node, TensorType(out.type.cell, dims, first.type.mapped), first.sparse)

    def fill(self, v: TValue, t: TensorType, loc: Location) -> TValue:
        """v broadcast to the dimensions of t (a lambda body may use fewer of them); the
        hidden dimensions v has stay."""
        extra = set(v.type.visible_names) - set(t.names)
        if extra:
            raise self.error(f"the lambda's result has dimensions {sorted(extra)} that {t} lacks", loc)
        dims = tuple(sorted({**dict(v.type.hidden), **dict(v.type.slots), **dict(t.dims)}.items()))
        node = build.broadcast(expand_to(with_cell(v, t.cell), dims), [s for _, s in dims])
        return TValue(node, TensorType(t.cell, dims, v.type.mapped), v.sparse)


def _first_nan_kept(x: Node, agg: str, axes: list[int], shape: list[int]) -> Node:
    """Vespa's max and min keep their first operand where a comparison fails, so a
    reduction is NaN only where its first cell (in cell order) is, and skips later NaNs."""
    fill = build.scalar(-np.inf if agg == "max" else np.inf, x.dtype)
    skipped = build.select(build.map_("isnan", x), fill, x)
    best = build.reduce(skipped, agg, axes, False)
    starts = [0] * x.rank
    stops = [1 if i in axes else s for i, s in enumerate(x.shape)]
    first = build.reshape(build.slice_(x, starts, stops, [1] * x.rank), shape)
    return build.select(build.map_("isnan", first), first, best)


def approx_equal(x: Node, y: Node) -> Node:
    """vespalib's approx_equal (Vespa's `~=`), in doubles: equal, or beyond 1 in
    magnitude a ratio within one float step of 1, or else the two as floats at most one
    float step apart (the midpoint of two floats, exact in double, rounds to one of them
    exactly when no float lies between them)."""
    f32, f64 = CellType.FLOAT32, CellType.FLOAT64
    x, y = build.cast(x, f64), build.cast(y, f64)

    def k(value: float, ct: CellType = f64) -> Node:
        return build.scalar(value, ct)

    equal = build.join("eq", x, y)
    big = build.join("gt", build.map_("abs", x), k(1.0))
    ratio = build.cast(build.join("div", y, x), f32)
    near_one = build.join("and", build.join("ge", ratio, k(1.0 - 2.0**-24, f32)),
                          build.join("le", ratio, k(1.0 + 2.0**-23, f32)))
    fx, fy = build.cast(x, f32), build.cast(y, f32)
    mid = build.cast(build.join("mul", build.join("add", build.cast(fx, f64), build.cast(fy, f64)), k(0.5)), f32)
    adjacent = build.join("and", build.join("or", build.join("eq", mid, fx), build.join("eq", mid, fy)),
                          build.join("le", build.map_("abs", fy), k(2.0, f32)))
    return build.join("or", equal, build.select(big, near_one, adjacent))
