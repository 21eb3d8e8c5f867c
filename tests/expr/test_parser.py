"""The ranking-expression parser: precedence, located errors, and no stack exhaustion."""

from __future__ import annotations

import pytest

from tensor_ir.expr.ast import Binary, Call, Num, Str, Unary
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.parser import MAX_NESTING, parse_expression

from .helpers import evaluate


def shape(e: object) -> str:
    """The tree as a fully parenthesised string."""
    if isinstance(e, Binary):
        return f"({shape(e.left)} {e.op} {shape(e.right)})"
    if isinstance(e, Unary):
        return f"{e.op}{shape(e.operand)}"
    if isinstance(e, Num):
        return f"{e.value:g}"
    if isinstance(e, Call):
        return f"{e.name}({', '.join(shape(a) for a in e.args)})" + (f".{e.output}" if e.output else "")
    if isinstance(e, Str):
        return repr(e.value)
    return type(e).__name__


@pytest.mark.parametrize(("text", "tree"), [
    ("1 + 2 * 3", "(1 + (2 * 3))"),
    ("1 - 2 + 3", "((1 - 2) + 3)"),
    ("1 / 2 * 3", "((1 / 2) * 3)"),
    ("8 / 2 % 3", "((8 / 2) % 3)"),  # one level for * / %, as Vespa's C++ evaluator
    ("2 ^ 3 ^ 2", "(2 ^ (3 ^ 2))"),
    ("-2 ^ 2", "(-2 ^ 2)"),
    ("1 < 2 == 1", "((1 < 2) == 1)"),
    ("1 || 0 && 0", "(1 || (0 && 0))"),
    ("a + b > c && d", "(((Name + Name) > Name) && Name)"),
    ("!1 == 0", "(!1 == 0)"),
    ("onnx(m).out_1", "onnx(Name).out_1"),
    ('onnx("m.onnx", "o")', "onnx('m.onnx', 'o')"),
    ("1 in [1, 2]", "((1 == 1) || (1 == 2))"),
])
def test_precedence(text: str, tree: str) -> None:
    assert shape(parse_expression(text)) == tree


@pytest.mark.parametrize(("text", "line", "col", "message"), [
    ("1 + * 2", 1, 5, "expected a number, a name, a function call or '(', found '*'"),
    ("(1 + 2", 1, 7, "expected ')' to close '(', found end of expression"),
    ("1 2", 1, 3, "expected an operator or the end of the expression, found '2'"),
    ("sum(attribute(v)\n  ,)", 2, 4, "expected a number"),
    ("1 ; 2", 1, 3, "unexpected character ';'"),
    ('onnx("abc)', 1, 6, "unexpected character '\"'"),
    ("", 1, 1, "expected an expression"),
    ("tensor(x[3]):[1, 2", 1, 19, "expected ',' or ']' in the tensor values"),
    ("tensor(x[3])", 1, 13, "expected ':' and values, or '(' and a generator expression"),
    ("t{x 1}", 1, 5, "expected ':' after dimension 'x'"),
    ("tensor<float(x[3])(1)", 1, 13, "expected '>' to close the cell type"),
    ("tensor(x[3)(1)", 1, 11, "expected ']' to close the dimension size"),
    ("map(t, f(x)(x)", 1, 15, "to close the arguments of 'map'"),
])
def test_located_syntax_errors(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(RankingError) as err:
        parse_expression(text, "p.sd", 1, 1)
    assert err.value.location is not None
    assert (err.value.location.file, err.value.location.line, err.value.location.column) == ("p.sd", line, col)
    assert message in err.value.message


def test_location_offsets_from_the_schema() -> None:
    with pytest.raises(RankingError) as err:
        parse_expression("1 +\n  + )", "schemas/a.sd", 7, 30)
    assert str(err.value).startswith("schemas/a.sd:8:5: ")


def test_deep_nesting_is_a_located_error_not_a_crash() -> None:
    text = "(" * 5000 + "1" + ")" * 5000
    with pytest.raises(RankingError) as err:
        parse_expression(text)
    assert f"nests more than {MAX_NESTING} levels" in err.value.message
    for text in ("-" * 5000 + "1", "2" + "^2" * 5000, "tensor(x[1]):" + "[" * 3000):
        with pytest.raises(RankingError):
            parse_expression(text)


def test_nesting_within_the_limit_parses_and_compiles() -> None:
    depth = MAX_NESTING - 5
    value, _ = evaluate("(" * depth + "1" + ")" * depth)
    assert value.tolist() == [1.0, 1.0]
    nested_ifs = "1"
    for _ in range(30):  # a deep tree of a tree ensemble
        nested_ifs = f"if(attribute(pop) > 1, {nested_ifs}, 0)"
    value, _ = evaluate(nested_ifs)
    assert value.tolist() == [0.0, 1.0]


def test_long_flat_chains_have_no_limit() -> None:
    # a tree ensemble is a sum of thousands of trees: flat, not nested
    terms = 1200  # more than Python's recursion limit of frames
    value, _ = evaluate(" + ".join(["if(attribute(pop) > 1, 1, 0.5)"] * terms))
    assert value.tolist() == [terms * 0.5, float(terms)]
    value, _ = evaluate(" * ".join(["1"] * 1200) + " - " + " - ".join(["1"] * 1200))
    assert value.tolist() == [1.0 - 1200.0] * 2


def test_strings_and_escapes() -> None:
    e = parse_expression(r'onnx("a\"b\\c", "sec\ond")')
    assert isinstance(e, Call)
    assert [a.value for a in e.args if isinstance(a, Str)] == ['a"b\\c', "sec\\ond"]
    assert shape(parse_expression("onnx('modèle.onnx')")) == "onnx('modèle.onnx')"


def test_numbers() -> None:
    for text, value in (("1.5", 1.5), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0), ("2.5E-1", 0.25),
                        ("1.5f", 1.5), ("7L", 7.0)):
        e = parse_expression(text)
        assert isinstance(e, Num) and e.value == value


def test_comments_are_white_space() -> None:
    value, _ = evaluate("1 + # a comment ( with ' odd chars\n 2")
    assert value.tolist() == [3.0, 3.0]
