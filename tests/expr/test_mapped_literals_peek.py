"""Tensor literals of mapped and mixed types, and peeks on mapped dimensions (issue #13).

Each expression runs through the profile compiler and the numpy backend with its
parameters given as query inputs, as attributes (two documents) and as profile
constants, on the numpy backend and on the GPU backend's plan run on the host; the
expected values are worked out by hand from the inputs below."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from gpu_engine.backend import CupyBackend
from tensor_ir.expr.ast import Literal, Num, SliceExpr
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.types import parse_type
from tensor_ir.vespa_conformance import Case, SpecTensor, compile_case, run_case

MODES = ("query", "attribute", "constant")


def mapped(type_: str, cells: dict[Any, Any]) -> SpecTensor:
    """A mapped or mixed value: address (a label, or a tuple of labels in the order of the
    type's mapped dimensions) -> the dense block (a number for a sparse type)."""
    t = parse_type(type_, allow_mapped=True)
    blocks = [{"address": dict(zip(t.mapped, addr if isinstance(addr, tuple) else (addr,), strict=True)),
               "values": [float(x) for x in np.ravel(block)]}
              for addr, block in cells.items()]
    return SpecTensor(type_, None, blocks)


def dense(type_: str, values: Any) -> SpecTensor:
    return SpecTensor(type_, tuple(float(x) for x in np.ravel(values)))


def number(value: float) -> SpecTensor:
    return dense("double", [value])


# The parameters: a function of each name gives the value as query input, attribute or constant.
INPUTS: dict[str, SpecTensor] = {
    "t": mapped("tensor(x{},y{})", {("a", "p"): 1, ("a", "q"): 2, ("b", "p"): 3, ("3", "p"): 4,
                                    ("n", "p"): 7, ("2", "p"): 9}),
    "t2": mapped("tensor(x{})", {"1": 10, "3": 30}),
    "m": mapped("tensor<float>(x{},y[3])", {"k": [1, 2, 3], "m": [4, 5, 6]}),
    "b16": mapped("tensor<bfloat16>(x{},y[2])", {"k": [1.5, -2]}),
    "i8": mapped("tensor<int8>(x{},y{})", {("a", "p"): -3, ("b", "p"): 5}),
    "n": number(2.9),
    "u": number(0.25),
    "f": number(1.005859375),  # 1 + 0.75 * 2^-7: bfloat16 truncates it to 1, rounding would give 1.0078125
}


def check(expr: str, expected: SpecTensor, modes: tuple[str, ...] = MODES) -> None:
    """`expr` gives `expected` in every mode, on both backends."""
    used = {name: value for name, value in INPUTS.items() if name in expr}
    case = Case("hand", "test", "test", expr, used, expected)
    for backend in (NumpyBackend(), CupyBackend.emulated()):
        for mode in modes:
            result = run_case(case, mode, backend)
            assert result.status == "passed", (type(backend).__name__, mode, result.detail)


# ------------------------------------------------------------------ literals

LITERALS: list[tuple[str, SpecTensor]] = [
    ("tensor<float>(x{}):{{x:a}:1,{x:b}:2}", mapped("tensor<float>(x{})", {"a": 1, "b": 2})),
    ("tensor(x{}):{a:1, \"b c\":2, 7:3, -1:4, 'e':5}",
     mapped("tensor(x{})", {"a": 1, "b c": 2, "7": 3, "-1": 4, "e": 5})),
    ("tensor(x{},y[2]):{a:[1,2],b:[3,4]}", mapped("tensor(x{},y[2])", {"a": [1, 2], "b": [3, 4]})),
    # a cell not given is 0
    ("tensor(x{},y[2]):{{x:a,y:0}:1,{x:a,y:1}:2,{x:b,y:1}:5}",
     mapped("tensor(x{},y[2])", {"a": [1, 2], "b": [0, 5]})),
    ("tensor(x{},y{}):{{y:p,x:a}:1,{x:b,y:q}:2}", mapped("tensor(x{},y{})", {("a", "p"): 1, ("b", "q"): 2})),
    ("tensor(x{},y[2],z[2]):{a:[[1,2],[3,4]]}", mapped("tensor(x{},y[2],z[2])", {"a": [1, 2, 3, 4]})),
    ("tensor<bfloat16>(x{}):{a:1.005859375,b:-1.005859375}", mapped("tensor<bfloat16>(x{})", {"a": 1, "b": -1})),
    ("tensor<int8>(x{},y[2]):{a:[3,-2]}", mapped("tensor<int8>(x{},y[2])", {"a": [3, -2]})),
    ("tensor(x{}):{}", mapped("tensor(x{})", {})),
    ("tensor<float>(x{},y[2]):{}", mapped("tensor<float>(x{},y[2])", {})),
    # cells computed from the parameters
    ("tensor(x{}):{a:n,b:n+u}", mapped("tensor(x{})", {"a": 2.9, "b": 3.15})),
    ("tensor<float>(x{},y[2]):{k:[u,u*2]}", mapped("tensor<float>(x{},y[2])", {"k": [0.25, 0.5]})),
    ("tensor(x{},y[2]):{{x:a,y:1}:u}", mapped("tensor(x{},y[2])", {"a": [0, 0.25]})),
    ("tensor<bfloat16>(x{}):{a:f}", mapped("tensor<bfloat16>(x{})", {"a": 1})),
    ("tensor<int8>(x{}):{a:u*8,b:-u*12}", mapped("tensor<int8>(x{})", {"a": 2, "b": -3})),
    # used with other values
    ("tensor(x{}):{a:1,b:2}{x:b}", number(2)),
    ("tensor(i[2])(tensor(x{}):{a:i,b:i*10}{x:b})", dense("tensor(i[2])", [0, 10])),
    ("t2 * tensor(x{}):{\"1\":2,\"5\":7}", mapped("tensor(x{})", {"1": 20})),
]


@pytest.mark.parametrize(("expr", "expected"), LITERALS, ids=[e for e, _ in LITERALS])
def test_mapped_literal(expr: str, expected: SpecTensor) -> None:
    check(expr, expected)


def test_a_mapped_literal_parses_by_form() -> None:
    short = parse_expression("tensor(x{}):{a:1,-2:[3]}")
    assert isinstance(short, Literal) and short.cells is None and short.blocks is not None
    assert [label for label, _ in short.blocks] == ["a", -2]
    full = parse_expression("tensor(x{},y[2]):{{x:'a b',y:1}:2}")
    assert isinstance(full, Literal) and full.cells is not None
    assert full.cells[0][0] == (("x", "a b"), ("y", 1))


LITERAL_ERRORS: list[tuple[str, str, int]] = [
    ("tensor(x{}):{a:1,a:2}", "the label x:a is given twice", 20),
    ("tensor(x{}):{{x:a}:1,{x:a}:2}", "cell {x:a} is given twice", 28),
    ("tensor(x{},y[2]):{{x:a,y:2}:1}", "cell index y:2 is outside 0..1", 29),
    ("tensor(x{},y[2]):{{x:a,y:b}:1}",
     "cell label y:b is not an index: 'y' is an indexed dimension of tensor(x{},y[2])", 29),
    ("tensor(x{},y[2]):{{x:a}:1}", "cell address {x:a} does not name each dimension of tensor(x{},y[2]) once", 25),
    ("tensor(x{},y{}):{a:1}", "tensor(x{},y{}) has 2 mapped dimensions: give each cell with its full address, "
     "as in {{x:label, y:label}:value}", 1),
    ("tensor(x{},y[2]):{a:1}", "tensor(x{},y[2]) is mixed: label a takes a list of its 2 cells, as in a:[...]", 21),
    ("tensor(x{}):{a:[1]}", "tensor(x{}) has no indexed dimension: label a takes one number, not a list", 1),
    ("tensor(x{},y[2]):{a:[1,2,3]}", "label a of tensor(x{},y[2]) has 2 cells but 3 values are given", 1),
    ("tensor(x{}):[1,2]", "tensor(x{}) has mapped dimensions: give its values as {label:value, ...} or "
     "{{dim:label, ...}:value, ...}, not as a list", 1),
    ("tensor(x[2]):{{x:a}:1}", "cell label x:a is not an index: 'x' is an indexed dimension of tensor(x[2])", 21),
]


@pytest.mark.parametrize(("expr", "message", "column"), LITERAL_ERRORS, ids=[e for e, _, _ in LITERAL_ERRORS])
def test_a_bad_literal_is_located(expr: str, message: str, column: int) -> None:
    assert_refused(expr, message, column)


def assert_refused(expr: str, message: str, column: int) -> None:
    used = {name: value for name, value in INPUTS.items() if name in expr}
    for mode in ("query", "attribute"):
        with pytest.raises(RankingError) as err:
            compile_case(Case("hand", "test", "test", expr, used, None), mode)
        assert err.value.message == message
        assert err.value.location is not None and err.value.location.column == column


# ------------------------------------------------------------------ peek

PEEKS: list[tuple[str, SpecTensor]] = [
    ("t{x:b,y:p}", number(3)),
    ("t{x:c,y:p}", number(0)),  # no such address
    ("t{x:a}", mapped("tensor(y{})", {"p": 1, "q": 2})),
    ("t{y:p}", mapped("tensor(x{})", {"a": 1, "b": 3, "3": 4, "n": 7, "2": 9})),
    ("t{x:zz}", mapped("tensor(y{})", {})),
    # a bare name is the label itself, even where it names a parameter; parentheses compute
    ("t{x:n,y:p}", number(7)),
    ("t{x:(n),y:p}", number(9)),  # 2.9 truncates to label "2"
    ("t{x:(n+1),y:p}", number(4)),
    ("t{x:(n-5),y:p}", number(0)),  # -2: no such label
    ("t{x:3,y:p}", number(4)),
    ("t{x:\"b\",y:'p'}", number(3)),
    # peeks of one value on different labels, joined
    ("t{x:a} * t{x:b}", mapped("tensor(y{})", {"p": 3})),
    ("sum(t{x:a})", number(3)),
    # mixed values: indexed and mapped dimensions in one peek
    ("m{y:1}", mapped("tensor<float>(x{})", {"k": 2, "m": 5})),
    ("m{y:(n)}", mapped("tensor<float>(x{})", {"k": 3, "m": 6})),
    ("m{y:(n+5)}", mapped("tensor<float>(x{})", {})),  # outside y: no subspace, as in Vespa
    ("m{x:m}", dense("tensor<float>(y[3])", [4, 5, 6])),
    ("m{x:zz}", dense("tensor<float>(y[3])", [0, 0, 0])),
    ("m{x:k,y:(n)}", number(3)),
    ("m{y:2,x:m}", number(6)),
    ("b16{x:k}", dense("tensor<bfloat16>(y[2])", [1.5, -2])),
    ("b16{x:k,y:1}", number(-2)),
    ("i8{x:a}", mapped("tensor<int8>(y{})", {"p": -3})),
    ("i8{y:p}", mapped("tensor<int8>(x{})", {"a": -3, "b": 5})),
    # a generator's variable as a label
    ("tensor(i[4])(t2{x:(i)})", dense("tensor(i[4])", [0, 10, 0, 30])),
    ("tensor<bfloat16>(i[4])(t2{x:(i)})", dense("tensor<bfloat16>(i[4])", [0, 10, 0, 30])),
    ("tensor(i[3])(m{x:m,y:(i)})", dense("tensor(i[3])", [4, 5, 6])),
    ("tensor(i[2],y[3])(m{x:(i),y:(y)})", dense("tensor(i[2],y[3])", [0] * 6)),
    ("tensor(j[3])(t{x:(j+1),y:p})", dense("tensor(j[3])", [0, 9, 4])),
]


@pytest.mark.parametrize(("expr", "expected"), PEEKS, ids=[e for e, _ in PEEKS])
def test_mapped_peek(expr: str, expected: SpecTensor) -> None:
    check(expr, expected)


def test_a_bare_name_label_is_noted_as_written() -> None:
    e = parse_expression("t{x:a, y:(b), z:c+1, w:'d'}")
    assert isinstance(e, SliceExpr) and e.by_dim is not None
    assert e.verbatim == (("x", "a"),)
    assert [d for d, _ in e.by_dim] == ["x", "y", "z", "w"]
    assert isinstance(parse_expression("t{x:1}"), SliceExpr)
    one = parse_expression("t{x:1}")
    assert isinstance(one, SliceExpr) and one.verbatim == () and one.by_dim == (("x", Num(one.loc, 1.0)),)


PEEK_ERRORS: list[tuple[str, str, int]] = [
    ("t{x:a,z:1}", "cannot slice dimension 'z': the value has type tensor(x{},y{})", 2),
    ("t{x:(m)}", "a label must be a number or a name, got tensor<float>(x{},y[3])", 6),
    ("t[0]", "t[i] needs a one-dimensional tensor, got tensor(x{},y{})", 2),
]


@pytest.mark.parametrize(("expr", "message", "column"), PEEK_ERRORS, ids=[e for e, _, _ in PEEK_ERRORS])
def test_a_bad_peek_is_located(expr: str, message: str, column: int) -> None:
    assert_refused(expr, message, column)
