"""Ranking expressions -> tensor program nodes, with Vespa's named-dimension semantics.

Values join by dimension name; numbers, comparisons of numbers and anything of rank 0
are double, as in Vespa; a tensor combined with a number keeps the tensor's cell type.
Everything the expression refers to outside itself (attributes, query inputs,
constants, profile functions, ONNX models) comes from a `Context`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import EvaluationError, IRError
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


def as_double(v: TValue) -> TValue:
    """Vespa has no rank-0 tensor of another cell type: every number is a double."""
    return with_cell(v, CellType.FLOAT64) if v.is_scalar else v


@dataclass
class Compiler:
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
                    raise self.error(
                        f"dimension '{n}' has size {sizes[n]} in one operand and {s} in another "
                        f"(operands: {', '.join(str(x.type) for x in values)})",
                        loc,
                    )
                sizes[n] = s
        return tuple(sorted(sizes.items()))

    def join(self, a: TValue, b: TValue, fn: Callable[[Node, Node], Node], loc: Location,
             cell: CellType | None = None) -> TValue:
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
        return TValue(out, TensorType(out.dtype, dims))

    def map(self, v: TValue, fn: Callable[[Node], Node]) -> TValue:
        ct = compute_cell(v.type.cell)
        node = fn(with_cell(v, ct).node)
        return TValue(node, TensorType(node.dtype, v.type.dims))

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
        return TValue(build.cast(v.node, ct), TensorType(ct, v.type.dims))

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
            def approx(x: Node, y: Node) -> Node:
                diff = build.map_("abs", build.join("sub", x, y))
                scale = build.join("max", build.map_("abs", x), build.map_("abs", y))
                tol = build.join("mul", scale, build.scalar(1e-6, x.dtype))
                return build.join("le", diff, build.join("max", tol, build.scalar(1e-9, x.dtype)))

            return self.truth(self.join(a, b, approx, loc), a, b)
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
        if e.output is not None:
            raise self.error(f"'{name}(...).{e.output}': only onnx(...) has named outputs", e.loc)
        if name in ("attribute", "query", "constant"):
            if len(args) != 1 or not isinstance(args[0], Name | Str):
                raise self.error(f"{name}() takes one name, as in {name}(my_name)", e.loc)
            ref = args[0].name if isinstance(args[0], Name) else args[0].value
            value: TValue = getattr(self.context, name)(ref, e.loc)
            return value
        if self.context.has_function(name):
            return self.context.function(name, [self.compile(a) for a in args], e.loc, self)
        handler = _CALLS.get(name)
        if handler is not None:
            return handler(self, e)
        if name in ("max", "min") and self.is_reduction(e):
            return self.reduce(self.compile(args[0]), name, [self.dim_name(a) for a in args[1:]], e.loc)
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

    def is_reduction(self, e: Call) -> bool:
        """max(t) and max(t, x) reduce when x names a dimension of t; max(a, b) of two
        values is the elementwise maximum. Vespa resolves the overload the same way."""
        if len(e.args) == 1:
            return True
        dims = e.args[1:]
        if not all(isinstance(d, Name) and d.name not in self.locals and not self.context.has_function(d.name)
                   for d in dims):
            return False
        if len(dims) > 1:
            return True
        first = self.compile(e.args[0])
        return isinstance(dims[0], Name) and dims[0].name in first.type.names

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

    def fill(self, v: TValue, t: TensorType, loc: Location) -> TValue:
        """v broadcast to the dimensions of t (a lambda body may use fewer of them)."""
        extra = set(v.type.names) - set(t.names)
        if extra:
            raise self.error(f"the lambda's result has dimensions {sorted(extra)} that {t} lacks", loc)
        node = build.broadcast(expand_to(with_cell(v, t.cell), t.dims), t.shape)
        return TValue(node, t)

    def generate(self, e: Generate) -> TValue:
        t = self.tensor_type(e.type)
        # each dimension name is bound to its index vector; the body joins them by name
        body = self.with_locals({n: self._iota(t, n) for n in t.names}).compile(e.body)
        extra = set(body.type.names) - set(t.names)
        if extra:
            raise self.error(f"generator body has dimensions {sorted(extra)} that the type {t} lacks", e.body.loc)
        return self.fill(body, t, e.body.loc)

    def _iota(self, t: TensorType, name: str) -> TValue:
        s = t.size_of(name)
        return TValue(build.constant(np.arange(s, dtype=np.float64), CellType.FLOAT64),
                      TensorType(CellType.FLOAT64, ((name, s),)))

    def tensor_type(self, spec: TypeSpec) -> TensorType:
        try:
            return parse_type(spec.text)
        except TypeSyntaxError as err:
            raise self.error(str(err), spec.loc) from None

    def cell_value(self, e: Expr) -> TValue:
        v = self.compile(e)
        if not v.is_scalar:
            raise self.error(f"a tensor literal's cell value must be a number, got {v.type}", e.loc)
        return as_double(v)

    def literal(self, e: Literal) -> TValue:
        t = self.tensor_type(e.type)
        size = int(np.prod(t.shape, dtype=np.int64))
        cells: list[TValue | None] = [None] * size
        if e.dense is not None:
            flat = self._dense_cells(e.dense, t, e.loc)
            if len(flat) != size:
                raise self.error(f"{t} has {size} cells but {len(flat)} values are given", e.loc)
            cells = [self.cell_value(x) for x in flat]
        else:
            assert e.cells is not None
            for addr, value in e.cells:
                given = dict(addr)
                if len(given) != len(addr) or set(given) != set(t.names):
                    raise self.error(f"cell address {{{', '.join(f'{n}:{i}' for n, i in addr)}}} does not name "
                                     f"each dimension of {t} once", value.loc)
                flat_index = 0
                for n, s in t.dims:
                    if not 0 <= given[n] < s:
                        raise self.error(f"cell index {n}:{given[n]} is outside 0..{s - 1}", value.loc)
                    flat_index = flat_index * s + given[n]
                if cells[flat_index] is not None:
                    raise self.error(f"cell {{{', '.join(f'{n}:{i}' for n, i in addr)}}} is given twice", value.loc)
                cells[flat_index] = self.cell_value(value)
        if all(c is None or c.node.op is Op.CONSTANT for c in cells):
            arr = np.asarray([0.0 if c is None else float(c.node.value) for c in cells], dtype=np.float64)
            return TValue(build.constant(arr.reshape(t.shape).astype(t.cell.np_dtype), t.cell), t)
        # cells computed from features (Vespa allows it in literals): stack them
        zero = scalar(0.0).node
        parts = [build.reshape(zero if c is None else c.node, [1]) for c in cells]
        node = build.reshape(build.cast(build.concat(parts, 0), t.cell), t.shape)
        return TValue(node, t)

    def _dense_cells(self, items: tuple[object, ...], t: TensorType, loc: Location) -> list[Expr]:
        """The values of a dense literal in cell order: either flat, or nested exactly as the
        type's dimensions ([[1,2],[3,4]] for x[2],y[2])."""
        if all(isinstance(it, Expr) for it in items):
            return [it for it in items if isinstance(it, Expr)]

        out: list[Expr] = []

        def walk(level: tuple[object, ...], depth: int) -> None:
            if depth >= t.rank:
                raise self.error(f"the values of {t} nest deeper than its {t.rank} dimensions", loc)
            want = t.dims[depth][1]
            if len(level) != want:
                raise self.error(f"dimension '{t.dims[depth][0]}' of {t} has size {want} but a list of "
                                 f"{len(level)} values is given for it", loc)
            for it in level:
                if depth == t.rank - 1:
                    if not isinstance(it, Expr):
                        raise self.error(f"the values of {t} nest deeper than its {t.rank} dimensions", loc)
                    out.append(it)
                elif isinstance(it, tuple):
                    walk(it, depth + 1)
                else:
                    raise self.error(f"expected a nested list for dimension '{t.dims[depth + 1][0]}' of {t}", loc)

        walk(items, 0)
        return out

    def slice(self, e: SliceExpr) -> TValue:
        v = self.compile(e.target)
        if e.index is not None:
            if v.type.rank != 1:
                raise self.error(f"t[i] needs a one-dimensional tensor, got {v.type}", e.loc)
            picks = [(v.type.names[0], e.index)]
        else:
            assert e.by_dim is not None
            picks = list(e.by_dim)
            seen = [d for d, _ in picks]
            if len(set(seen)) != len(seen):
                raise self.error("a slice names a dimension twice", e.loc)
        indices = []
        for dim, idx_expr in picks:
            if dim not in v.type.names:
                raise self.error(f"cannot slice dimension '{dim}': the value has type {v.type}", e.loc)
            indices.append((dim, self.compile(idx_expr), idx_expr.loc))
        # fixed indices first: t{x:y, y:1} peeks y:1 before x follows the generator's y
        fixed = [p for p in indices if p[1].is_scalar and p[1].node.op is Op.CONSTANT]
        for dim, idx, loc in fixed:
            v = self._slice_constant(v, dim, idx, loc)
        for dim, idx, loc in indices:
            if not any(dim == f[0] for f in fixed):
                v = self._slice_computed(v, dim, idx, loc)
        return as_double(v)

    def _slice_constant(self, v: TValue, dim: str, idx: TValue, loc: Location) -> TValue:
        axis = v.type.names.index(dim)
        size = v.type.size_of(dim)
        raw = float(idx.node.value)
        i = int(raw)
        if i != raw or not 0 <= i < size:
            raise self.error(f"index {raw:g} is not a cell of dimension '{dim}' (size {size}: 0..{size - 1})", loc)
        node = build.gather(v.node, build.scalar(i, CellType.INT64), axis)
        return TValue(node, TensorType(v.type.cell, tuple(d for d in v.type.dims if d[0] != dim)))

    def _slice_computed(self, v: TValue, dim: str, idx: TValue, loc: Location) -> TValue:
        """An index known only at run time, or one per cell of a generator: t{x:(d1+1)}.

        An index outside the dimension gives 0, as Vespa's peek does; indices are whole
        numbers, truncated toward zero."""
        axis = v.type.names.index(dim)
        size = v.type.size_of(dim)
        rest = [d for d in v.type.dims if d[0] != dim]
        clash = set(idx.type.names) & {n for n, _ in rest}
        if clash:
            raise self.error(f"the index of dimension '{dim}' varies along {sorted(clash)}, which the sliced "
                             f"value also has ({v.type}); rename one of them", loc)
        i = build.cast(idx.node, CellType.INT64)
        ok = build.join("and", build.join("ge", i, build.scalar(0, CellType.INT64)),
                        build.join("lt", i, build.scalar(size, CellType.INT64)))
        safe = build.select(ok, i, build.broadcast(build.scalar(0, CellType.INT64), i.shape))
        g = build.gather(v.node, safe, axis)
        names = [*v.type.names[:axis], *idx.type.names, *v.type.names[axis + 1:]]
        mask_shape = [1] * axis + list(idx.type.shape) + [1] * (v.type.rank - axis - 1)
        mask = build.reshape(ok, mask_shape)
        zero = build.scalar(0, g.dtype)
        out = build.select(mask, g, zero)
        if out.shape != g.shape:
            out = build.broadcast(out, g.shape)
        order = sorted(range(len(names)), key=lambda k: names[k])
        node = build.transpose(out, order)
        sizes = dict([*rest, *idx.type.dims])
        dims = tuple((names[k], sizes[names[k]]) for k in order)
        return TValue(node, TensorType(v.type.cell, dims))


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
    out = c.apply_lambda(lam, [v])
    if v.is_scalar:
        return as_double(c.fill(out, TensorType(CellType.FLOAT64, ()), lam.body.loc))
    return c.fill(out, TensorType(compute_cell(v.type.cell), v.type.dims), lam.body.loc)


def _join(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    lam = c.lambda_of(e.args[2], 2, "join")
    dims = c.joint_dims([a, b], e.loc)
    cell = CellType.FLOAT64 if not dims else unify_cells(a, b)
    joint = TensorType(cell, dims)
    na = TValue(build.broadcast(expand_to(with_cell(a, cell), dims), joint.shape), joint)
    nb = TValue(build.broadcast(expand_to(with_cell(b, cell), dims), joint.shape), joint)
    return c.fill(c.apply_lambda(lam, [na, nb]), joint, lam.body.loc)


def _reduce(c: Compiler, e: Call) -> TValue:
    if len(e.args) < 2:
        raise c.error("reduce() takes a tensor, an aggregator and optional dimensions", e.loc)
    agg = c.dim_name(e.args[1])
    if agg not in _AGGREGATORS:
        hint = " ('median' is not supported)" if agg == "median" else ""
        raise c.error(f"unknown aggregator '{agg}' (expected one of {', '.join(_AGGREGATORS)}){hint}", e.args[1].loc)
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
    if len(set(src)) != len(src):
        raise c.error("rename() names a dimension twice", e.loc)
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
    others: dict[str, int] = {}
    for v in (a, b):
        for n, sz in v.type.dims:
            if n != dim and others.setdefault(n, sz) != sz:
                raise c.error(f"concat: dimension '{n}' has size {others[n]} in one operand and {sz} in the other",
                              e.loc)
    sa = a.type.size_of(dim) if dim in a.type.names else 1
    sb = b.type.size_of(dim) if dim in b.type.names else 1
    cell = unify_cells(a, b)
    parts = []
    dims_out = tuple(sorted({**others, dim: sa + sb}.items()))
    for v, s in ((a, sa), (b, sb)):
        dims_v = tuple(sorted({**others, dim: s}.items()))
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
    # a number keeps the rounding of the cast but stays a double
    return as_double(TValue(build.cast(v.node, cell), TensorType(cell, v.type.dims)))


def _l2_normalize(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    dim = c.dim_name(e.args[1])
    sq = c.join(v, v, lambda x, y: build.join("mul", x, y), e.loc)
    norm = c.map(c.reduce(sq, "sum", [dim], e.loc), lambda n: build.map_("sqrt", n))
    return c.join(v, with_cell(norm, compute_cell(v.type.cell)) if not norm.is_scalar else norm,
                  lambda x, y: build.join("div", x, y), e.loc)


def _l1_normalize(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    total = c.reduce(v, "sum", [c.dim_name(e.args[1])], e.loc)
    return c.join(v, with_cell(total, compute_cell(v.type.cell)) if not total.is_scalar else total,
                  lambda x, y: build.join("div", x, y), e.loc)


def _matmul(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    dim = c.dim_name(e.args[2])
    prod = c.join(a, b, lambda x, y: build.join("mul", x, y), e.loc)
    return c.reduce(prod, "sum", [dim], e.loc)


def _euclidean(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    diff = c.join(a, b, lambda x, y: build.join("sub", x, y), e.loc)
    sq = c.join(diff, diff, lambda x, y: build.join("mul", x, y), e.loc)
    return c.map(c.reduce(sq, "sum", [c.dim_name(e.args[2])], e.loc), lambda n: build.map_("sqrt", n))


def _softmax(c: Compiler, e: Call) -> TValue:
    if len(e.args) not in (1, 2):
        raise c.error("softmax() takes a tensor and a dimension", e.loc)
    v = c.compile(e.args[0])
    dims = [c.dim_name(e.args[1])] if len(e.args) == 2 else list(v.type.names)
    # shifted by the maximum: the same value as Vespa's exp(x)/sum(exp(x)) without overflow
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
        best = with_cell(best, compute_cell(v.type.cell)) if not best.is_scalar else best
        return c.truth(c.join(v, best, lambda x, y: build.join("eq", x, y), e.loc), v)

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


def _expand(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    v = c.compile(e.args[0])
    dim = c.dim_name(e.args[1])
    if dim in v.type.names:
        raise c.error(f"expand(): the value already has dimension '{dim}' ({v.type})", e.loc)
    dims = tuple(sorted((*v.type.dims, (dim, 1))))
    cell = compute_cell(v.type.cell) if not v.is_scalar else CellType.FLOAT64
    return TValue(build.reshape(with_cell(v, cell).node, [s for _, s in dims]), TensorType(cell, dims))


def _const_size(c: Compiler, e: Expr, what: str) -> int:
    v = c.compile(e)
    raw = float(v.node.value) if v.is_scalar and v.node.op is Op.CONSTANT else -1.0
    if raw != int(raw) or raw < 1:
        raise c.error(f"{what} must be a constant whole number of at least 1", e.loc)
    return int(raw)


def _range(c: Compiler, e: Call) -> TValue:
    c.arity(e, 1)
    n = _const_size(c, e.args[0], "range()'s size")
    t = TensorType(CellType.FLOAT64, (("i", n),))
    return TValue(build.constant(np.arange(n, dtype=np.float64)), t)


def _diag(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    n1 = _const_size(c, e.args[0], "diag()'s first size")
    n2 = _const_size(c, e.args[1], "diag()'s second size")
    t = TensorType(CellType.FLOAT64, (("i", n1), ("j", n2)))
    return TValue(build.constant(np.eye(n1, n2, dtype=np.float64)), t)


_CALLS: dict[str, Callable[[Compiler, Call], TValue]] = {
    "if": _if,
    "map": _map,
    "join": _join,
    "reduce": _reduce,
    "rename": _rename,
    "concat": _concat,
    "cell_cast": _cell_cast,
    "l1_normalize": _l1_normalize,
    "l2_normalize": _l2_normalize,
    "matmul": _matmul,
    "euclidean_distance": _euclidean,
    "softmax": _softmax,
    "xw_plus_b": _xw_plus_b,
    "argmax": _arg("max"),
    "argmin": _arg("min"),
    "cosine_similarity": _cosine,
    "isNan": _is_nan,
    "square": _square,
    "log10": _log10,
    "elu": _elu,
    "atan2": _atan2,
    "ldexp": _ldexp,
    "expand": _expand,
    "range": _range,
    "diag": _diag,
}
