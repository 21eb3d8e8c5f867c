"""The syntax tree of a ranking expression."""

from __future__ import annotations

from dataclasses import dataclass, field

from tensor_ir.expr.errors import Location


@dataclass(frozen=True)
class Expr:
    loc: Location = field(compare=False)


@dataclass(frozen=True)
class Num(Expr):
    value: float


@dataclass(frozen=True)
class Str(Expr):
    value: str


@dataclass(frozen=True)
class Name(Expr):
    """A bare identifier: a function argument, lambda variable or dimension name."""

    name: str


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "-" or "!"
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call(Expr):
    """name(args) with an optional `.output` suffix (onnx(model).out)."""

    name: str
    args: tuple[Expr, ...]
    output: str | None = None


@dataclass(frozen=True)
class Lambda(Expr):
    params: tuple[str, ...]
    body: Expr


@dataclass(frozen=True)
class NameList(Expr):
    """A parenthesised list of dimension names, as in rename(t, (a, b), (c, d))."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class TypeSpec(Expr):
    text: str  # a Vespa type string, parsed by the compiler


@dataclass(frozen=True)
class Generate(Expr):
    """tensor<float>(x[3],y[2])(body): body may use the dimension names as indices."""

    type: TypeSpec
    body: Expr


# A label as written in a literal's address: a name or quoted string, or a whole number.
Label = str | int


@dataclass(frozen=True)
class Literal(Expr):
    """tensor<float>(x[3]):[1,2,3] (dense form), tensor(x[2]):{{x:0}:1,{x:1}:2} (cells,
    also for mapped and mixed types: {{x:a,y:0}:1}) or, for one mapped dimension, the short
    form tensor(x{}):{a:1,b:2} / tensor(x{},y[2]):{a:[1,2]} (blocks)."""

    type: TypeSpec
    dense: tuple[object, ...] | None  # nested tuples of Expr
    cells: tuple[tuple[tuple[tuple[str, Label], ...], Expr], ...] | None
    blocks: tuple[tuple[Label, object], ...] | None = None  # label -> Expr, or nested tuples of Expr


@dataclass(frozen=True)
class SliceExpr(Expr):
    """t{x:1,y:0} (by dimension) or t[1] (by position on a one-dimensional tensor)."""

    target: Expr
    by_dim: tuple[tuple[str, Expr], ...] | None
    index: Expr | None
    # (dimension, name) where the label is a bare name: on a mapped dimension that is the
    # label itself, verbatim (`t{x:a}` is label "a"), while `t{x:(a)}` computes it
    verbatim: tuple[tuple[str, str], ...] = ()
