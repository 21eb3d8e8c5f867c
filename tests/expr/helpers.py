"""Evaluate one ranking expression for a few documents, through the real profile compiler
and the numpy backend, without an application package."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from cpu_fallback import NumpyBackend
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import FieldDef, FunctionDef, ModelLoader, ProfileDef, QueryInput, compile_profile
from tensor_ir.expr.types import TensorType, parse_type

# Two documents. Fields: (type, one value per document).
FIELDS: dict[str, tuple[str, Any]] = {
    "v": ("tensor<float>(x[3])", [[1, 2, 3], [4, 5, 6]]),
    "dv": ("tensor(x[3])", [[1, 2, 3], [-1, 0, 2]]),
    "m": ("tensor<float>(x[2],y[3])", [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]),
    "b16": ("tensor<bfloat16>(x[3])", [[1, 2, 3], [4, 5, 6]]),
    "i8": ("tensor<int8>(x[3])", [[1, -2, 3], [4, 5, -6]]),
    "ids": ("tensor<float>(x[4])", [[3, 1, 4, 1], [5, 9, 2, 6]]),
    "pop": ("float", [0.5, 2.0]),
    "n": ("long", [3, -7]),
}
# Query inputs: (type, value).
QUERIES: dict[str, tuple[str, Any]] = {
    "q": ("tensor<float>(x[3])", [1, 0, -1]),
    "qy": ("tensor<float>(y[3])", [1, 2, 3]),
    "qd": ("tensor(y[2])", [10, 20]),
    "s": ("double", 3.0),
}
CONSTANTS: dict[str, tuple[str, Any]] = {
    "w": ("tensor<float>(x[3],y[2])", [[0, 1], [2, 3], [4, 5]]),
    "c": ("double", 0.25),
}
FUNCTIONS: dict[str, tuple[Sequence[str], str]] = {
    "twice": (["a"], "a * 2"),
    "add": (["a", "b"], "a + b"),
    "boosted": ([], "attribute(pop) + 1"),
    "uses_boosted": ([], "boosted * 10"),
    "dot": (["a", "b"], "sum(a * b)"),
}


def _no_models(ref: str, loc: Location) -> Any:
    raise RankingError(f"no model '{ref}' in these tests", loc)


def profile(expr: str, functions: Mapping[str, tuple[Sequence[str], str]] | None = None,
            first_phase: str = "0") -> ProfileDef:
    p = ProfileDef("p", Location("test.sd", 1, 1))
    for name, (t, _) in QUERIES.items():
        p.inputs[name] = QueryInput(name, parse_type(t), None, Location())
    for name, (t, value) in CONSTANTS.items():
        tt = parse_type(t)
        p.constants[name] = (tt, np.asarray(value, dtype=tt.cell.np_dtype).reshape(tt.shape))
    for name, (params, body) in {**FUNCTIONS, **(functions or {})}.items():
        p.functions[name] = FunctionDef(name, tuple(params), parse_expression(body, "fn.sd", 1, 1), Location())
    p.first_phase = parse_expression(first_phase)
    p.match_features = [(expr, parse_expression(expr))]
    return p


def fields() -> dict[str, FieldDef]:
    return {n: FieldDef(n, parse_type(t), True, Location()) for n, (t, _) in FIELDS.items()}


def evaluate(expr: str, functions: Mapping[str, tuple[Sequence[str], str]] | None = None,
             load_model: ModelLoader = _no_models) -> tuple[npt.NDArray[Any], TensorType]:
    """The value of `expr` for each of the two documents ([2, *shape]) and its type."""
    compiled = compile_profile(profile(expr, functions), fields(), load_model)
    program = compiled.features
    assert program is not None
    feeds: dict[str, Any] = {}
    for name, spec in program.inputs.items():
        kind, ref = name[:-1].split("(", 1)
        source = FIELDS if kind == "attribute" else QUERIES
        feeds[name] = np.asarray(source[ref][1] if ref in source else 0.0, dtype=spec.dtype.np_dtype)
    out = NumpyBackend().run(program, feeds, 2)
    feature = compiled.match_features[0]
    return out[feature.program_output], feature.type


def compile_error(expr: str, functions: Mapping[str, tuple[Sequence[str], str]] | None = None) -> RankingError:
    try:
        compile_profile(profile(expr, functions), fields(), _no_models)
    except RankingError as e:
        return e
    raise AssertionError(f"{expr!r} compiled without an error")
