"""Expressions that cannot be compiled: each error says what is wrong, and where."""

from __future__ import annotations

import pytest

from tensor_ir.expr.profile import MAX_FUNCTION_DEPTH

from .helpers import compile_error

# (expression, column of the error in the expression, words the message must contain); an
# operator's place is its symbol, a slice's its '{', a call's its name
CASES: list[tuple[str, int, str]] = [
    ("foo(1)", 1, "unknown function 'foo'"),
    ("1 + nothing", 5, "unknown name 'nothing'"),
    ("exp(1, 2)", 1, "exp() takes 1 argument, got 2"),
    ("pow(2)", 1, "pow() takes 2 arguments, got 1"),
    ("twice(1, 2)", 1, "function 'twice' takes 1 argument (a), got 2"),
    ("reduce(attribute(v), mean)", 22,
     "unknown aggregator 'mean' (expected one of sum, avg, count, max, min, prod, median)"),
    ("reduce(attribute(v), median, y)", 1, "cannot reduce over dimension 'y'"),
    ("sum(attribute(v), y)", 1, "cannot reduce over dimension 'y': the value has type tensor<float>(x[3])"),
    ("attribute(v) * tensor(x[4])(1)", 14, "dimension 'x' has size 3 in one operand and 4 in another"),
    ("join(attribute(v), attribute(m), f(a,b)(a+b))", 1, "dimension 'x' has size 3 in one operand and 2"),
    ("attribute(v){y:0}", 13, "cannot slice dimension 'y': the value has type tensor<float>(x[3])"),
    ("attribute(m)[0]", 13, "t[i] needs a one-dimensional tensor, got tensor<float>(x[2],y[3])"),
    ("attribute(m){x:0, x:1}", 13, "a slice names a dimension twice"),
    ("map(attribute(v), f(a,b)(a))", 19, "map() needs a lambda f(x)(...)"),
    ("join(attribute(v), query(q), f(a)(a))", 30, "join() needs a lambda f(x, y)(...)"),
    ("map(attribute(v), f(a)(a * query(qy)))", 26,
     "a lambda must give a number for each cell, but gives tensor<float>"),
    ("rename(attribute(v), y, z)", 1, "cannot rename dimension 'y'"),
    ("rename(attribute(m), x, y)", 1, "rename() would give two dimensions the same name"),
    ("rename(attribute(m), (x, y), (z))", 1, "as many new names as old ones"),
    ("concat(attribute(m), tensor(y[2])(1), x)", 1, "concat: dimension 'y' has size 3 in one operand and 2"),
    ("tensor(x[3]):[1, 2]", 1, "tensor(x[3]) has 3 cells but 2 values are given"),
    ("tensor(x[2],y[2]):[[1, 2, 3], [4]]", 1, "dimension 'y' of tensor(x[2],y[2]) has size 2 but a list of 3"),
    ("tensor(x[2]):{{x:2}:1}", 21, "cell index x:2 is outside 0..1"),
    ("tensor(x[2]):{{x:0}:1, {x:0}:2}", 30, "cell {x:0} is given twice"),
    ("tensor(x[2],y[2]):{{x:0}:1}", 26, "does not name each dimension of tensor(x[2],y[2]) once"),
    ("tensor(x[2]):[attribute(v), 1]", 15, "a tensor literal's cell value must be a number, got tensor<float>(x[3])"),
    ("tensor(x[3])(x + y)", 18, "unknown name 'y'"),
    ("tensor(x[3])(attribute(m){x:0})", 26, "a generator's body must give a number for each cell of tensor(x[3])"),
    ("tensor(x{})(1)", 1, "mapped dimension 'x{}' is not supported"),
    ("tensor<half>(x[2])(1)", 1, "unknown Vespa cell type 'half'"),
    ("tensor(x[0])(1)", 1, "dimension 'x' must have a positive size"),
    ("tensor(x[])(1)", 1, "indexed dimension 'x[]' needs a size"),
    ("cell_cast(attribute(v), half)", 25, "unknown Vespa cell type 'half'"),
    ('"text" + 1', 1, "a string ('text') is only allowed as an onnx() model or output name"),
    ("f(x)(x)", 1, "a lambda is only allowed as the last argument of map() or join()"),
    ("attribute(nope)", 1, "attribute(nope): the schema has no field 'nope'"),
    ("attribute(v, m)", 1, "attribute() takes one name"),
    ("constant(nope)", 1, "constant(nope) is not defined (constants: c, w)"),
    ("sum(attribute(v)).out", 1, "only onnx(...) has named outputs"),
    ("tensor(y[2])(attribute(m){x:y})", 26, "a generator's body must give a number for each cell of tensor(y[2])"),
    ("expand(attribute(v), x)", 1, "expand(): the value already has dimension 'x'"),
    ("range(attribute(pop))", 7, "range()'s size must be a constant whole number"),
    ("onnx(1 + 2)", 8, "onnx(): the model must be a name or a quoted file name"),
    ("onnx(m, o).out", 1, "onnx(): output named twice"),
    ("onnx(nomodel)", 1, "no model 'nomodel' in these tests"),
]


def test_there_are_many_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("expr", "column", "message"), CASES, ids=[c[0] for c in CASES])
def test_compile_error(expr: str, column: int, message: str) -> None:
    err = compile_error(expr)
    assert message in err.message
    assert err.location is not None
    assert (err.location.line, err.location.column) == (1, column), str(err)


def test_recursive_functions() -> None:
    err = compile_error("a", {"a": ((), "b + 1"), "b": ((), "a * 2")})
    assert "function 'a' calls itself: a -> b -> a" in err.message
    err = compile_error("self_ref(1)", {"self_ref": (("x",), "self_ref(x)")})
    assert "calls itself: self_ref -> self_ref" in err.message


def test_function_depth_is_limited() -> None:
    chain = {f"f{i}": ((), f"f{i + 1} + 1") for i in range(MAX_FUNCTION_DEPTH + 5)}
    chain[f"f{MAX_FUNCTION_DEPTH + 5}"] = ((), "1")
    err = compile_error("f0", chain)
    assert f"more than {MAX_FUNCTION_DEPTH} deep" in err.message


def test_error_in_function_points_into_its_body() -> None:
    err = compile_error("broken", {"broken": ((), "1 + attribute(nope)")})
    assert err.location is not None
    assert (err.location.file, err.location.column) == ("fn.sd", 5)


def test_unused_function_is_checked_too() -> None:
    # Vespa validates every function of a profile at deploy, used or not
    err = compile_error("1", {"unused": ((), "sum(attribute(v), z)")})
    assert "cannot reduce over dimension 'z'" in err.message


def test_phases_must_be_one_number() -> None:
    from tensor_ir.expr.errors import RankingError
    from tensor_ir.expr.profile import compile_profile

    from .helpers import _no_models, fields, profile

    with pytest.raises(RankingError) as err:
        compile_profile(profile("1", first_phase="attribute(v)"), fields(), _no_models)
    assert "first-phase expression must produce one number per document, but produces tensor<float>(x[3])" \
        in err.value.message
