"""Ranking expressions -> tensor program nodes, with Vespa's named-dimension semantics.

Values join by dimension name; numbers, comparisons and reductions to a scalar are
double, as in Vespa. Everything the expression refers to outside itself (attributes,
query inputs, constants, profile functions, ONNX models) comes from a `Context`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
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
    TypeSpec,
    Unary,
)
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.expr.values import TValue, compute_cell, expand_to, scalar, unify_cells, with_cell
from tensor_ir.ir import Node, Op


class Context(Protocol):
    """What an expression can refer to. Each method raises RankingError when unknown."""

    def attribute(self, name: str, loc: Location) -> TValue: ...

    def query(self, name: str, loc: Location) -> TValue: ...

    def constant(self, name: str, loc: Location) -> TValue: ...

    def has_function(self, name: str) -> bool: ...

    def function(self, name: str, args: list[TValue], loc: Location, compiler: Compiler) -> TValue: ...

    def onnx(self, model: str, output: str | None, loc: Location, compiler: Compiler) -> TValue: ...


_UNARY_MATH: dict[str, str] = {
    "exp": "exp", "log": "log", "sqrt": "sqrt", "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu",
    "abs": "abs", "fabs": "abs", "floor": "floor", "ceil": "ceil", "sin": "sin", "cos": "cos", "tan": "tan",
    "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh", "erf": "erf",
    "neg": "neg", "sign": "sign",
}  # fmt: skip
_BINARY_MATH: dict[str, str] = {"pow": "pow", "max": "max", "min": "min", "fmod": "fmod"}
_ARITH: dict[str, str] = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "fmod", "^": "pow"}
_COMPARE: dict[str, str] = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_AGGREGATORS = ("sum", "avg", "count", "max", "min", "prod")


@dataclass
class Compiler:
    context: Context
    locals: dict[str, TValue] = field(default_factory=dict)

    def error(self, message: str, loc: Location) -> RankingError:
        return RankingError(message, loc)

    def compile(self, e: Expr) -> TValue:
        try:
            return self._compile(e)
        except IRError as err:
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
            return self.truth(self.map(v, lambda n: build.map_("not", self.nonzero(n))))
        if isinstance(e, Binary):
            return self.binary(e)
        if isinstance(e, Call):
            return self.call(e)
        if isinstance(e, Generate):
            return self.generate(e)
        if isinstance(e, Literal):
            return self.literal(e)
        if isinstance(e, SliceExpr):
            return self.slice(e)
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
        raise self.error(f"unknown name '{e.name}': not a function argument, lambda variable or function", e.loc)

    # ------------------------------------------------------------ joins and maps

    def joint_dims(self, values: list[TValue], loc: Location) -> tuple[tuple[str, int], ...]:
        sizes: dict[str, int] = {}
        for v in values:
            for n, s in v.type.dims:
                if n in sizes and sizes[n] != s:
                    raise self.error(f"dimension '{n}' has size {sizes[n]} in one operand and {s} in another", loc)
                sizes[n] = s
        return tuple(sorted(sizes.items()))

    def join(self, a: TValue, b: TValue, fn: Callable[[Node, Node], Node], loc: Location,
             cell: CellType | None = None) -> TValue:
        dims = self.joint_dims([a, b], loc)
        ct = cell or unify_cells(a, b)
        na = expand_to(with_cell(a, ct), dims)
        nb = expand_to(with_cell(b, ct), dims)
        out = fn(na, nb)
        if out.shape != tuple(s for _, s in dims):
            out = build.broadcast(out, [s for _, s in dims])
        return TValue(out, TensorType(out.dtype, dims))

    def map(self, v: TValue, fn: Callable[[Node], Node]) -> TValue:
        ct = compute_cell(v.type.cell)
        node = fn(with_cell(v, ct).node)
        return TValue(node, TensorType(node.dtype, v.type.dims))

    def nonzero(self, n: Node) -> Node:
        return n if n.dtype.is_bool else build.join("ne", n, build.scalar(0, n.dtype))

    def truth(self, v: TValue) -> TValue:
        """Vespa's booleans are numbers: 1.0 or 0.0, in double for scalars."""
        ct = CellType.FLOAT64 if v.is_scalar else CellType.FLOAT32
        node = build.cast(v.node, ct)
        return TValue(node, TensorType(ct, v.type.dims))

    def binary(self, e: Binary) -> TValue:
        a, b = self.compile(e.left), self.compile(e.right)
        if e.op in _ARITH:
            fn = _ARITH[e.op]
            return self.join(a, b, lambda x, y: build.join(fn, x, y), e.loc)
        if e.op in _COMPARE:
            fn = _COMPARE[e.op]
            return self.truth(self.join(a, b, lambda x, y: build.join(fn, x, y), e.loc))
        if e.op == "~=":
            def approx(x: Node, y: Node) -> Node:
                diff = build.map_("abs", build.join("sub", x, y))
                scale = build.join("max", build.map_("abs", x), build.map_("abs", y))
                tol = build.join("mul", scale, build.scalar(1e-6, x.dtype))
                return build.join("le", diff, build.join("max", tol, build.scalar(1e-9, x.dtype)))

            return self.truth(self.join(a, b, approx, e.loc))
        if e.op in ("&&", "||"):
            fn = "and" if e.op == "&&" else "or"
            return self.truth(self.join(a, b, lambda x, y: build.join(fn, self.nonzero(x), self.nonzero(y)), e.loc))
        raise self.error(f"unknown operator '{e.op}'", e.loc)

    # ------------------------------------------------------------ calls

    def call(self, e: Call) -> TValue:
        name, args = e.name, e.args
        if name == "onnx" or name == "onnxModel":
            return self.onnx_call(e)
        if e.output is not None:
            raise self.error(f"'{name}(...).{e.output}': only onnx(...) has named outputs", e.loc)
        if name in ("attribute", "query", "constant"):
            if len(args) != 1 or not isinstance(args[0], Name | Str):
                raise self.error(f"{name}() takes one name", e.loc)
            ref = args[0].name if isinstance(args[0], Name) else args[0].value
            return getattr(self.context, name)(ref, e.loc)  # type: ignore[no-any-return]
        if self.context.has_function(name):
            return self.context.function(name, [self.compile(a) for a in args], e.loc, self)
        handler = _CALLS.get(name)
        if handler is not None:
            return handler(self, e)
        if name in _UNARY_MATH:
            self.arity(e, 1)
            fn = _UNARY_MATH[name]
            return self.map(self.compile(args[0]), lambda n: build.map_(fn, n))
        if name in _BINARY_MATH:
            self.arity(e, 2)
            fn2 = _BINARY_MATH[name]
            return self.join(self.compile(args[0]), self.compile(args[1]), lambda x, y: build.join(fn2, x, y), e.loc)
        if name in _AGGREGATORS:
            if not args:
                raise self.error(f"{name}() needs a tensor argument", e.loc)
            return self.reduce(self.compile(args[0]), name, [self.dim_name(a) for a in args[1:]], e.loc)
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
        names = v.type.names
        for d in dims:
            if d not in names:
                raise self.error(f"cannot reduce over dimension '{d}': the value has type {v.type}", loc)
        axes = [names.index(d) for d in dims] if dims else list(range(len(names)))
        kept = tuple((n, s) for n, s in v.type.dims if n not in (dims or names))
        ct = CellType.FLOAT64 if not kept else compute_cell(v.type.cell)
        x = with_cell(v, ct).node
        count = int(np.prod([v.type.dims[a][1] for a in axes], dtype=np.int64))
        if agg == "count":
            out = build.broadcast(build.scalar(count, ct), [s for _, s in kept])
        elif agg == "avg":
            out = build.join("div", build.reduce(x, "sum", axes, False), build.scalar(count, ct))
        else:
            out = build.reduce(x, agg, axes, False)
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

    # ------------------------------------------------------------ tensor functions

    def lambda_of(self, e: Expr, n: int, fn_name: str) -> Lambda:
        if not isinstance(e, Lambda) or len(e.params) != n:
            raise self.error(f"{fn_name}() needs a lambda f({', '.join('xyz'[:n])})(...) as its last argument", e.loc)
        return e

    def apply_lambda(self, lam: Lambda, values: list[TValue]) -> TValue:
        return self.with_locals(dict(zip(lam.params, values, strict=True))).compile(lam.body)

    def generate(self, e: Generate) -> TValue:
        t = self.tensor_type(e.type)
        # each dimension name is bound to its index vector; the body joins them by name
        body = self.with_locals({n: self._iota(t, n) for n in t.names}).compile(e.body)
        extra = set(body.type.names) - set(t.names)
        if extra:
            raise self.error(f"generator body has dimensions {sorted(extra)} that the type {t} lacks", e.body.loc)
        node = build.broadcast(expand_to(with_cell(body, t.cell), t.dims), t.shape)
        return TValue(node, t)

    def _iota(self, t: TensorType, name: str) -> TValue:
        s = t.size_of(name)
        return TValue(build.constant(np.arange(s, dtype=np.float64), CellType.FLOAT64),
                      TensorType(CellType.FLOAT64, ((name, s),)))

    def tensor_type(self, spec: TypeSpec) -> TensorType:
        try:
            return parse_type(spec.text)
        except TypeSyntaxError as err:
            raise self.error(str(err), spec.loc) from None

    def const_number(self, e: Expr) -> float:
        v = self.compile(e)
        if v.node.op is not Op.CONSTANT or not v.is_scalar:
            raise self.error("expected a constant number", e.loc)
        return float(v.node.value)

    def literal(self, e: Literal) -> TValue:
        t = self.tensor_type(e.type)
        arr = np.zeros(t.shape, dtype=np.float64)
        if e.dense is not None:
            flat: list[float] = []

            def walk(items: tuple[object, ...]) -> None:
                for it in items:
                    if isinstance(it, tuple):
                        walk(it)
                    else:
                        assert isinstance(it, Expr)
                        flat.append(self.const_number(it))

            walk(e.dense)
            if len(flat) != arr.size:
                raise self.error(f"{t} has {arr.size} cells but {len(flat)} values are given", e.loc)
            arr = np.asarray(flat, dtype=np.float64).reshape(t.shape)
        else:
            assert e.cells is not None
            for addr, value in e.cells:
                given = dict(addr)
                if set(given) != set(t.names):
                    raise self.error(f"cell address {given} does not name exactly the dimensions of {t}", value.loc)
                idx = []
                for n, s in t.dims:
                    if not 0 <= given[n] < s:
                        raise self.error(f"cell index {n}:{given[n]} is outside 0..{s - 1}", value.loc)
                    idx.append(given[n])
                arr[tuple(idx)] = self.const_number(value)
        return TValue(build.constant(arr.astype(t.cell.np_dtype), t.cell), t)

    def slice(self, e: SliceExpr) -> TValue:
        v = self.compile(e.target)
        if e.index is not None:
            if v.type.rank != 1:
                raise self.error(f"t[i] needs a one-dimensional tensor, got {v.type}", e.loc)
            picks = [(v.type.names[0], e.index)]
        else:
            assert e.by_dim is not None
            picks = list(e.by_dim)
        for dim, idx_expr in picks:
            if dim not in v.type.names:
                raise self.error(f"cannot slice dimension '{dim}': the value has type {v.type}", e.loc)
            axis = v.type.names.index(dim)
            size = v.type.size_of(dim)
            idx = self.compile(idx_expr)
            if not idx.is_scalar:
                raise self.error("a slice index must be a number", idx_expr.loc)
            if idx.node.op is Op.CONSTANT:
                i = int(idx.node.value)
                if not 0 <= i < size:
                    raise self.error(f"index {i} is outside dimension '{dim}' of size {size}", idx_expr.loc)
                node = build.gather(v.node, build.scalar(i, CellType.INT64), axis)
            else:
                node = build.gather(v.node, build.cast(idx.node, CellType.INT64), axis)
            v = TValue(node, TensorType(v.type.cell, tuple(d for d in v.type.dims if d[0] != dim)))
        return v


# ---------------------------------------------------------------- named tensor functions


def _if(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    cond, a, b = (c.compile(x) for x in e.args)
    cell = unify_cells(a, b)
    dims = c.joint_dims([cond, a, b], e.loc)
    shape = [s for _, s in dims]
    test = c.nonzero(expand_to(cond, dims))
    node = build.select(test, expand_to(with_cell(a, cell), dims), expand_to(with_cell(b, cell), dims))
    return TValue(build.broadcast(node, shape), TensorType(cell, dims))


def _map(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    lam = c.lambda_of(e.args[1], 1, "map")
    out = c.apply_lambda(lam, [TValue(v.node, v.type)])
    if set(out.type.names) != set(v.type.names):
        raise c.error("map()'s lambda must not change the dimensions", lam.loc)
    return with_cell(out, compute_cell(v.type.cell)) if not v.is_scalar else out


def _join(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    lam = c.lambda_of(e.args[2], 2, "join")
    joint = c.join(a, b, lambda x, y: build.join("add", x, y), e.loc)
    na = TValue(build.broadcast(expand_to(with_cell(a, joint.type.cell), joint.type.dims), joint.type.shape), joint.type)
    nb = TValue(build.broadcast(expand_to(with_cell(b, joint.type.cell), joint.type.dims), joint.type.shape), joint.type)
    return with_cell(c.apply_lambda(lam, [na, nb]), joint.type.cell)


def _reduce(c: Compiler, e: Call) -> TValue:
    if len(e.args) < 2:
        raise c.error("reduce() takes a tensor, an aggregator and optional dimensions", e.loc)
    agg = c.dim_name(e.args[1])
    if agg not in _AGGREGATORS:
        raise c.error(f"unknown aggregator '{agg}' (expected one of {', '.join(_AGGREGATORS)})", e.args[1].loc)
    return c.reduce(c.compile(e.args[0]), agg, [c.dim_name(a) for a in e.args[2:]], e.loc)


def _rename(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    v = c.compile(e.args[0])

    def names(x: Expr) -> tuple[str, ...]:
        if isinstance(x, NameList):
            return x.names
        return (c.dim_name(x),)

    src, dst = names(e.args[1]), names(e.args[2])
    if len(src) != len(dst):
        raise c.error("rename() needs as many new names as old ones", e.loc)
    mapping = dict(zip(src, dst, strict=True))
    for s in src:
        if s not in v.type.names:
            raise c.error(f"cannot rename dimension '{s}': the value has type {v.type}", e.loc)
    renamed = [(mapping.get(n, n), i) for i, n in enumerate(v.type.names)]
    if len({n for n, _ in renamed}) != len(renamed):
        raise c.error("rename() would give two dimensions the same name", e.loc)
    order = sorted(renamed)
    node = build.transpose(v.node, [i for _, i in order])
    dims = tuple((n, v.type.dims[i][1]) for n, i in order)
    return TValue(node, TensorType(v.type.cell, dims))


def _concat(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    dim = c.dim_name(e.args[2])
    others = {n: s for n, s in (*a.type.dims, *b.type.dims) if n != dim}
    sa = a.type.size_of(dim) if dim in a.type.names else 1
    sb = b.type.size_of(dim) if dim in b.type.names else 1
    cell = unify_cells(a, b) if not (a.is_scalar and b.is_scalar) else CellType.FLOAT64
    parts = []
    dims_out = tuple(sorted({**others, dim: sa + sb}.items()))
    for v, s in ((a, sa), (b, sb)):
        dims_v = tuple(sorted({**others, dim: s}.items()))
        for n, sz in v.type.dims:
            if n != dim and others[n] != sz:
                raise c.error(f"concat: dimension '{n}' sizes differ", e.loc)
        parts.append(build.broadcast(expand_to(with_cell(v, cell), dims_v), [z for _, z in dims_v]))
    axis = [n for n, _ in dims_out].index(dim)
    return TValue(build.concat(parts, axis), TensorType(cell, dims_out))


def _cell_cast(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    try:
        cell = CellType.from_vespa(c.dim_name(e.args[1]))
    except ValueError as err:
        raise c.error(str(err), e.args[1].loc) from None
    return TValue(build.cast(v.node, cell), TensorType(cell, v.type.dims))


def _l2_normalize(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    dim = c.dim_name(e.args[1])
    sq = c.join(v, v, lambda x, y: build.join("mul", x, y), e.loc)
    norm = c.map(c.reduce(sq, "sum", [dim], e.loc), lambda n: build.map_("sqrt", n))
    return c.join(v, with_cell(norm, compute_cell(v.type.cell)) if not norm.is_scalar else norm,
                  lambda x, y: build.join("div", x, y), e.loc)


def _matmul(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    dim = c.dim_name(e.args[2])
    prod = c.join(a, b, lambda x, y: build.join("mul", x, y), e.loc)
    return c.reduce(prod, "sum", [dim], e.loc)


def _softmax(c: Compiler, e: Call) -> TValue:
    if len(e.args) not in (1, 2):
        raise c.error("softmax() takes a tensor and a dimension", e.loc)
    v = c.compile(e.args[0])
    dims = [c.dim_name(e.args[1])] if len(e.args) == 2 else list(v.type.names)
    mx = c.reduce(v, "max", dims, e.loc)
    shifted = c.join(v, with_cell(mx, compute_cell(v.type.cell)), lambda x, y: build.join("sub", x, y), e.loc)
    ex = c.map(shifted, lambda n: build.map_("exp", n))
    total = c.reduce(ex, "sum", dims, e.loc)
    return c.join(ex, with_cell(total, ex.type.cell), lambda x, y: build.join("div", x, y), e.loc)


def _xw_plus_b(c: Compiler, e: Call) -> TValue:
    c.arity(e, 4)
    x, w, b = (c.compile(a) for a in e.args[:3])
    dim = c.dim_name(e.args[3])
    xw = c.reduce(c.join(x, w, lambda p, q: build.join("mul", p, q), e.loc), "sum", [dim], e.loc)
    return c.join(xw, b, lambda p, q: build.join("add", p, q), e.loc)


def _arg(agg: str) -> Callable[[Compiler, Call], TValue]:
    def convert(c: Compiler, e: Call) -> TValue:
        if not e.args:
            raise c.error(f"arg{agg}() needs a tensor", e.loc)
        v = c.compile(e.args[0])
        dims = [c.dim_name(a) for a in e.args[1:]] or list(v.type.names)
        best = c.reduce(v, agg, dims, e.loc)
        return c.truth(c.join(v, with_cell(best, compute_cell(v.type.cell)) if not best.is_scalar else best,
                              lambda x, y: build.join("eq", x, y), e.loc))

    return convert


def _cosine(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    dim = c.dim_name(e.args[2])
    ab = c.reduce(c.join(a, b, lambda x, y: build.join("mul", x, y), e.loc), "sum", [dim], e.loc)
    aa = c.reduce(c.join(a, a, lambda x, y: build.join("mul", x, y), e.loc), "sum", [dim], e.loc)
    bb = c.reduce(c.join(b, b, lambda x, y: build.join("mul", x, y), e.loc), "sum", [dim], e.loc)
    denom = c.map(c.join(aa, bb, lambda x, y: build.join("mul", x, y), e.loc), lambda n: build.map_("sqrt", n))
    return c.join(ab, denom, lambda x, y: build.join("div", x, y), e.loc)


def _is_nan(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)
    return c.truth(c.map(c.compile(e.args[0]), lambda n: build.map_("isnan", n)))


def _square(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)
    v = c.compile(e.args[0])
    return c.join(v, v, lambda x, y: build.join("mul", x, y), e.loc)


def _log10(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)
    v = c.map(c.compile(e.args[0]), lambda n: build.map_("log", n))
    return c.map(v, lambda n: build.join("mul", n, build.scalar(1 / math.log(10), n.dtype)))


def _elu(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)

    def elu(n: Node) -> Node:
        neg = build.join("sub", build.map_("exp", n), build.scalar(1, n.dtype))
        return build.select(build.join("lt", n, build.scalar(0, n.dtype)), neg, n)

    return c.map(c.compile(e.args[0]), elu)


_CALLS: dict[str, Callable[[Compiler, Call], TValue]] = {
    "if": _if,
    "map": _map,
    "join": _join,
    "reduce": _reduce,
    "rename": _rename,
    "concat": _concat,
    "cell_cast": _cell_cast,
    "l2_normalize": _l2_normalize,
    "matmul": _matmul,
    "softmax": _softmax,
    "xw_plus_b": _xw_plus_b,
    "argmax": _arg("max"),
    "argmin": _arg("min"),
    "cosine_similarity": _cosine,
    "isNan": _is_nan,
    "square": _square,
    "log10": _log10,
    "elu": _elu,
}
