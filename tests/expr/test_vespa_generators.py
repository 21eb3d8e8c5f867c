"""Expression-language items real Vespa packages use (issue #12): arithmetic slice labels
(`{x:1-x}`), the tensor-generating functions `random`, `range` and `diag` over dimension
lists, and query-item match features refused by name. Expected values are worked out by
hand from the fields of tests/expr/helpers.py:

    v = tensor<float>(x[3]): [1, 2, 3] and [4, 5, 6]
    m = tensor<float>(x[2],y[3]): [[0, 1, 2], [3, 4, 5]] and [[6, 7, 8], [9, 10, 11]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tensor_ir.expr.ast import Binary, Name, Num, SliceExpr
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.parser import parse_expression

from .helpers import compile_error, evaluate

# ------------------------------------------------------------------ slice labels

LABELS: list[tuple[str, str, Any]] = [
    # vt-tensor's profile7: x reversed, y from the generator's d0
    ("tensor<float>(d0[1],x[2])(attribute(m){x:1-x, y:d0})", "tensor<float>(d0[1],x[2])",
     [[[3, 0]], [[9, 6]]]),
    ("tensor(x[3])(attribute(v){x:2-x})", "tensor(x[3])", [[3, 2, 1], [6, 5, 4]]),
    # x-1 is -1 at x=0: outside the dimension, so 0, as Vespa's peek gives
    ("tensor(x[4])(attribute(v){x:x-1})", "tensor(x[4])", [[0, 1, 2, 3], [0, 4, 5, 6]]),
    # fractional labels truncate: 0.5 -> 0, 1.0 -> 1, 1.5 -> 1
    ("tensor(x[3])(attribute(v){x:x/2+0.5})", "tensor(x[3])", [[1, 2, 2], [4, 5, 5]]),
    # a label that is a constant sum, with and without parentheses
    ("attribute(v){x:1+1}", "double", [3, 6]),
    ("attribute(v){x:(1+1)}", "double", [3, 6]),
    ("attribute(m){x:2-1, y:0*5+2}", "double", [5, 11]),
    # a bare name is still the generator's variable
    ("tensor(x[3])(attribute(v){x:x})", "tensor(x[3])", [[1, 2, 3], [4, 5, 6]]),
    # a label computed per document: attribute(pop) is 0.5 and 2.0, so x:2 and x:3.5 -> 3 (outside: 0)
    ("attribute(v){x:attribute(pop) + 1.5}", "double", [3, 0]),
]


@pytest.mark.parametrize(("expr", "type_", "want"), LABELS, ids=[c[0] for c in LABELS])
def test_arithmetic_slice_labels(expr: str, type_: str, want: Any) -> None:
    got, t = evaluate(expr)
    assert str(t) == type_
    np.testing.assert_array_equal(got, np.asarray(want, dtype=np.float64))


def test_a_label_names_a_function_argument_and_a_function() -> None:
    # vt-tensor's profile9 form: the generator's variable plus a function of the profile
    got, _ = evaluate("tensor(x[2])(attribute(v){x: x + shift})", {"shift": ((), "1")})
    np.testing.assert_array_equal(got, [[2, 3], [5, 6]])
    got, _ = evaluate("pick(attribute(v), 0)", {"pick": (("t", "i"), "t{x:i+1}")})
    np.testing.assert_array_equal(got, [2, 5])


def test_a_label_parses_as_an_expression() -> None:
    e = parse_expression("t{x:1-x, y:d0}")
    assert isinstance(e, SliceExpr) and e.by_dim is not None
    assert e.by_dim == (("x", Binary(e.loc, "-", Num(e.loc, 1.0), Name(e.loc, "x"))), ("y", Name(e.loc, "d0")))


@pytest.mark.parametrize(("text", "column", "message"), [
    ("attribute(v){x:1-}", 18, "expected a number, a name, a function call or '(', found '}'"),
    ("attribute(v){x:1 2}", 18, "expected '}' to close the slice, found '2'"),
])
def test_a_broken_label_is_located(text: str, column: int, message: str) -> None:
    with pytest.raises(RankingError) as err:
        parse_expression(text, "p.sd", 3, 1)
    assert err.value.message == message
    assert err.value.location is not None
    assert (err.value.location.file, err.value.location.line, err.value.location.column) == ("p.sd", 3, column)


def test_an_unclosed_mapped_literal_is_located() -> None:
    with pytest.raises(RankingError) as err:
        parse_expression("tensor(key{}):{a:[1", "p.sd", 2, 10)
    assert err.value.message == "expected ']' to close the tensor's values, found end of expression"
    assert err.value.location is not None and (err.value.location.line, err.value.location.column) == (2, 29)


# ------------------------------------------------------------------ random, range, diag

GENERATORS: list[tuple[str, str, Any]] = [
    ("range(x[3])", "tensor(x[3])", [0, 1, 2]),
    # the sum of a cell's indices
    ("range(x[2],y[3])", "tensor(x[2],y[3])", [[0, 1, 2], [1, 2, 3]]),
    ("diag(x[3])", "tensor(x[3])", [1, 1, 1]),
    ("diag(x[2],y[3])", "tensor(x[2],y[3])", [[1, 0, 0], [0, 1, 0]]),
    # any number of dimensions: 1 where all indices are equal
    ("diag(x[2],y[2],z[3])", "tensor(x[2],y[2],z[3])",
     [[[1, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 1, 0]]]),
    # dimensions are ordered by name whatever order they are given in
    ("range(y[3],x[2])", "tensor(x[2],y[3])", [[0, 1, 2], [1, 2, 3]]),
    ("reduce(random(x[2],y[3]), count)", "double", 6),
    # vt-tensor's profile1 and profile2, on this test's fields
    ("sum(attribute(m) * reduce(random(x[2],y[3]), count))", "double", None),  # 6 * sum(m)
    # sum over x of m[x,y] * [x == y == z]: m[0,0] + m[1,1]
    ("sum(matmul(attribute(m), diag(x[2],y[3],z[2]), x))", "double", None),
]
BY_DOCUMENT = {
    "sum(attribute(m) * reduce(random(x[2],y[3]), count))": [6 * 15, 6 * 51],
    "sum(matmul(attribute(m), diag(x[2],y[3],z[2]), x))": [0 + 4, 6 + 10],
}


@pytest.mark.parametrize(("expr", "type_", "want"), GENERATORS, ids=[c[0] for c in GENERATORS])
def test_generators_over_dimensions(expr: str, type_: str, want: Any) -> None:
    got, t = evaluate(expr)
    assert str(t) == type_
    expected = BY_DOCUMENT[expr] if want is None else [want, want]  # the same for both documents
    np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.float64))


def test_random_cells_are_doubles_in_zero_to_one() -> None:
    got, t = evaluate("random(x[4],y[5])")
    assert str(t) == "tensor(x[4],y[5])" and got.shape == (2, 4, 5)
    assert np.all((got >= 0) & (got < 1))
    assert len(np.unique(got[0])) == 20  # drawn, not one value repeated
    again, _ = evaluate("random(x[4],y[5])")
    np.testing.assert_array_equal(again, got)  # every compile (every shard) draws the same


def test_the_number_forms_and_the_random_feature_stay() -> None:
    got, t = evaluate("range(3)")
    assert str(t) == "tensor(i[3])"
    np.testing.assert_array_equal(got, [[0, 1, 2], [0, 1, 2]])
    got, t = evaluate("diag(2, 2)")
    np.testing.assert_array_equal(got, [[[1, 0], [0, 1]]] * 2)
    err = compile_error("random(a, b)")  # the feature takes one name
    assert err.message == "random takes at most one argument, a name for an independent instance"


@pytest.mark.parametrize(("expr", "column", "message"), [
    ("random(x{})", 1, "mapped dimension 'x{}' is not supported; use an indexed dimension such as x[N]"),
    ("range(x[2], 3)", 13, "range(x[N], ...): each argument must be a dimension such as x[10]"),
    ("diag(x[2.5])", 8, "dimension 'x' must have a whole number as its size, not 2.5"),
    ("range(x[0])", 1, "dimension 'x' must have a positive size"),
    ("diag(x[2],x[3])", 1, "dimension names repeat: ['x', 'x']"),
    ("1 + random(x[2]).match", 5, "random(dimensions) has no named outputs (.match)"),
    ("attribute(v){}", 13, "a slice needs at least one dimension and label, as in t{x:1}"),
], ids=lambda x: str(x))
def test_generator_errors_are_located(expr: str, column: int, message: str) -> None:
    err = compile_error(expr)
    assert err.message == message
    assert err.location is not None and (err.location.line, err.location.column) == (1, column)


# ------------------------------------------------------------------ query-item match features

_SCORING = "wand, dotProduct, weakAnd or nearestNeighbor items of the query matched against a field"
_PREDICATE = "a predicate item of the query matched against a predicate field"


@pytest.mark.parametrize(("expr", "column", "feature", "needs"), [
    ("rawScore(v)", 1, "rawScore", _SCORING),
    ("rawScore", 1, "rawScore", _SCORING),
    ("attribute(pop) + itemRawScore(label)", 18, "itemRawScore", _SCORING),
    ("subqueries(target)", 1, "subqueries", _PREDICATE),
    ("subqueries(target).lsb", 1, "subqueries", _PREDICATE),
    ("2 * subqueries(target).msb", 5, "subqueries", _PREDICATE),
], ids=lambda x: str(x))
def test_query_item_match_features_are_refused_by_name(expr: str, column: int, feature: str, needs: str) -> None:
    err = compile_error(expr)
    assert err.message == f"query-item match feature {feature} is not supported yet (it needs {needs}: issue #14)"
    assert err.location is not None and (err.location.line, err.location.column) == (1, column)


def test_text_match_features_keep_their_own_kind() -> None:
    err = compile_error("bm25(title)")
    assert err.message == "text-match feature bm25 is not supported yet (it needs text matching of query terms)"


def test_a_profile_function_of_the_same_name_wins() -> None:
    got, _ = evaluate("rawScore + 1", {"rawScore": ((), "attribute(pop) * 2")})
    np.testing.assert_array_equal(got, [2, 5])
