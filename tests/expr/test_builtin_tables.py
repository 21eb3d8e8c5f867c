"""The tables of named functions: a name belongs to one table, and none is a name the
compiler resolves before them (such a builtin could never be called)."""

from __future__ import annotations

from tensor_ir.expr.math_functions import MATH_FUNCTIONS
from tensor_ir.expr.tensor_functions import TENSOR_FUNCTIONS


def test_no_name_in_both_tables() -> None:
    assert set(TENSOR_FUNCTIONS) & set(MATH_FUNCTIONS) == set()


def test_no_builtin_hides_behind_a_compiler_form() -> None:
    forms = {"onnx", "onnxModel", "attribute", "query", "constant"}
    assert (set(TENSOR_FUNCTIONS) | set(MATH_FUNCTIONS)) & forms == set()
