"""Vespa's bit, hamming, unpack_bits, merge, median, cell_order and subspace functions,
through the profile compiler and the numpy backend, against numpy written here and values
worked out by hand (the fields and inputs are those of tests/expr/helpers)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gpu_engine.backend import CupyBackend
from tensor_ir.expr.profile import compile_profile
from tests.expr.helpers import FIELDS, QUERIES, _no_models, compile_error, evaluate, fields, profile


def field(name: str) -> np.ndarray[Any, Any]:
    return np.asarray(FIELDS[name][1], dtype=np.float64)


def query(name: str) -> np.ndarray[Any, Any]:
    return np.asarray(QUERIES[name][1], dtype=np.float64)


def popcount(byte: int) -> int:
    return bin(byte & 0xFF).count("1")


# ---------------------------------------------------------------- bit and hamming

# -43 is 0b11010101 as a byte: bits 0..7 are 1,0,1,0,1,0,1,1
@pytest.mark.parametrize(("expr", "want"), [
    ("bit(-43, 0)", 1.0), ("bit(-43, 1)", 0.0), ("bit(-43, 4)", 1.0), ("bit(-43, 5)", 0.0), ("bit(-43, 7)", 1.0),
    ("bit(-43, 8)", 0.0),  # past the byte
    ("bit(-43, -1)", 0.0),  # (uint32_t) of a negative count is out of range
    ("bit(-43, 2.7)", 1.0),  # the count truncates to 2
    ("bit(-43, -0.5)", 1.0),  # ... and -0.5 to 0
    ("bit(-43.9, 0)", 1.0),  # the value truncates toward zero, to -43
    ("bit(300, 2)", 1.0),  # the low byte of 300 is 44 = 0b00101100
    ("bit(300, 8)", 0.0),
    ("hamming(-1, 0)", 8.0), ("hamming(0, -1)", 8.0), ("hamming(-52, -86)", 4.0), ("hamming(3.9, 2)", 1.0),
    ("hamming(127, -128)", 8.0), ("hamming(5, 5)", 0.0),
])  # fmt: skip
def test_bit_and_hamming_of_numbers(expr: str, want: float) -> None:
    out, t = evaluate(expr)
    assert str(t) == "double"
    assert out.tolist() == [want, want]


def test_query_only_bits_on_the_gpu_backend() -> None:
    # a chain of query-only kernels over numbers: its values stay numbers on the device
    compiled = compile_profile(profile("hamming(query(s), -1) + bit(query(s), 1)"), fields(), _no_models)
    assert compiled.features is not None
    out = CupyBackend.emulated().run(compiled.features, {"query(s)": np.float64(3.0)}, 2)
    assert out[compiled.match_features[0].program_output].tolist() == [7.0, 7.0]  # 3 = 0b11: 6 bits differ, bit 1 set


def test_bit_of_int8_cells_joins_with_float_cells() -> None:
    out, t = evaluate("bit(attribute(i8), 1)")
    assert str(t) == "tensor<float>(x[3])"
    np.testing.assert_array_equal(out, (field("i8").astype(np.int8).view(np.uint8) >> 1) & 1)


def test_bit_joins_by_dimension_name() -> None:
    # every bit of each int8 cell: x from the field, y from a generated tensor of counts
    out, t = evaluate("bit(attribute(i8), tensor(y[8])(y))")
    assert str(t) == "tensor(x[3],y[8])"  # int8 joined with double cells is double
    u = field("i8").astype(np.int8).view(np.uint8)
    want = (u[:, :, None] >> np.arange(8)[None, None, :]) & 1
    np.testing.assert_array_equal(out, want)


def test_hamming_of_int8_vectors_summed_is_the_distance() -> None:
    other = [7, 2, -128]
    out, t = evaluate(f"reduce(hamming(attribute(i8), tensor<int8>(x[3]):{other}), sum, x)")
    assert str(t) == "double"
    want = [sum(popcount(int(a) ^ b) for a, b in zip(doc, other, strict=True)) for doc in field("i8").astype(int)]
    np.testing.assert_array_equal(out, want)


def test_hamming_cell_types_follow_join() -> None:
    _, t = evaluate("hamming(attribute(i8), attribute(i8))")
    assert str(t) == "tensor<float>(x[3])"
    _, t = evaluate("hamming(attribute(dv), 1)")
    assert str(t) == "tensor(x[3])"


# ---------------------------------------------------------------- unpack_bits


def test_unpack_bits_is_big_endian_float_by_default() -> None:
    out, t = evaluate("unpack_bits(attribute(i8))")
    assert str(t) == "tensor<float>(x[24])"
    u = field("i8").astype(np.int8).view(np.uint8)
    np.testing.assert_array_equal(out, np.unpackbits(u, axis=-1, bitorder="big"))


def test_unpack_bits_of_nine_is_vespas_example() -> None:
    out, t = evaluate("unpack_bits(tensor<int8>(x[1]):[9])")
    assert str(t) == "tensor<float>(x[8])"
    assert out[0].tolist() == [0, 0, 0, 0, 1, 0, 0, 1]


def test_unpack_bits_little_endian_double_cells() -> None:
    out, t = evaluate("unpack_bits(attribute(i8), double, little)")
    assert str(t) == "tensor(x[24])"
    u = field("i8").astype(np.int8).view(np.uint8)
    np.testing.assert_array_equal(out, np.unpackbits(u, axis=-1, bitorder="little"))


def test_unpack_bits_expands_the_innermost_indexed_dimension() -> None:
    # y is innermost (dimensions sort by name): x[2] stays, y[2] becomes y[16]
    out, t = evaluate("unpack_bits(tensor<int8>(x[2],y[2]):[[1,-1],[-128,64]], int8)")
    assert str(t) == "tensor<int8>(x[2],y[16])"
    bytes_ = np.array([[1, -1], [-128, 64]], dtype=np.int8).view(np.uint8)
    np.testing.assert_array_equal(out[0], np.unpackbits(bytes_, axis=-1))


def test_unpack_bits_feeds_a_maxsim() -> None:
    # the ColBERT form: query tokens times unpacked document bits, summed over x
    out, _ = evaluate("reduce(query(qy) * unpack_bits(attribute(i8)), sum, x)")
    u = np.unpackbits(field("i8").astype(np.int8).view(np.uint8), axis=-1).astype(np.float64)
    np.testing.assert_allclose(out, u.sum(axis=-1)[:, None] * query("qy")[None, :])


@pytest.mark.parametrize(("expr", "words"), [
    ("unpack_bits(attribute(v))", "unpack_bits() needs int8 cells, got tensor<float>(x[3])"),
    ("unpack_bits(attribute(i8), float, middle)", "must be 'big' or 'little', got 'middle'"),
    ("unpack_bits(attribute(i8), quad)", "unpack_bits()"),
    ("unpack_bits(3)", "needs int8 cells"),
    ("unpack_bits()", "unpack_bits() takes an int8 tensor"),
])  # fmt: skip
def test_unpack_bits_errors(expr: str, words: str) -> None:
    assert words in compile_error(expr).message


# ---------------------------------------------------------------- merge


def test_merge_of_dense_tensors_applies_the_lambda_to_every_cell() -> None:
    out, t = evaluate("merge(attribute(v), query(q), f(a,b)(a * b + 1))")
    assert str(t) == "tensor<float>(x[3])"
    np.testing.assert_allclose(out, field("v") * query("q")[None, :] + 1)


def test_merge_keeps_the_operand_order_and_join_cell_types() -> None:
    out, t = evaluate("merge(attribute(dv), attribute(v), f(left,right)(left - 2 * right))")
    assert str(t) == "tensor(x[3])"
    np.testing.assert_allclose(out, field("dv") - 2 * field("v"))
    _, t = evaluate("merge(attribute(i8), attribute(i8), f(x,y)(x))")
    assert str(t) == "tensor<float>(x[3])"  # Vespa's conformance cases: int8 merged with int8 is float


def test_merge_of_numbers() -> None:
    out, t = evaluate("merge(2, 5, f(x,y)(x * 10 + y))")
    assert str(t) == "double"
    assert out.tolist() == [25.0, 25.0]


@pytest.mark.parametrize(("expr", "words"), [
    ("merge(attribute(v), attribute(m), f(a,b)(a+b))", "merge() needs two values of the same dimensions"),
    ("merge(attribute(v), tensor(x[4])(x), f(a,b)(a+b))", "same dimensions, got tensor<float>(x[3]) and tensor(x[4])"),
    ("merge(attribute(v), 1, f(a,b)(a+b))", "same dimensions"),
    ("merge(attribute(v), attribute(v), f(a)(a))", "merge() needs a lambda f(x, y)(...)"),
])  # fmt: skip
def test_merge_errors(expr: str, words: str) -> None:
    assert words in compile_error(expr).message


# ---------------------------------------------------------------- median


def test_median_over_one_dimension() -> None:
    out, t = evaluate("reduce(attribute(m), median, y)")
    assert str(t) == "tensor<float>(x[2])"
    np.testing.assert_array_equal(out, np.median(field("m"), axis=-1))


def test_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    out, t = evaluate("reduce(attribute(ids), median)")
    assert str(t) == "double"
    np.testing.assert_array_equal(out, [2.0, 5.5])  # sorted: 1,1,3,4 and 2,5,6,9


def test_median_over_several_dimensions_and_the_function_form() -> None:
    out, t = evaluate("median(attribute(m), x, y)")
    assert str(t) == "double"
    np.testing.assert_array_equal(out, np.median(field("m").reshape(2, -1), axis=-1))
    out, t = evaluate("median(attribute(m), x)")
    assert str(t) == "tensor<float>(y[3])"
    np.testing.assert_array_equal(out, np.median(field("m"), axis=1))


def test_median_is_nan_when_a_cell_is_nan() -> None:
    out, _ = evaluate("reduce(tensor(x[3]):[1, 0/0, 2], median)")
    assert np.isnan(out).all()
    out, _ = evaluate("reduce(tensor(x[2],y[2]):[[1, 0/0], [3, 4]], median, y)")
    assert np.isnan(out[:, 0]).all() and out[:, 1].tolist() == [3.5, 3.5]


def test_median_of_a_number_and_of_one_cell() -> None:
    out, t = evaluate("reduce(attribute(pop), median)")
    assert str(t) == "double"
    np.testing.assert_array_equal(out, field("pop"))
    out, _ = evaluate("reduce(tensor(x[1]):[-7], median)")
    assert out.tolist() == [-7.0, -7.0]


# ---------------------------------------------------------------- cell_order


def ranks(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The rank of each cell in an ascending stable sort of the flattened cells."""
    flat = x.reshape(-1)
    return np.argsort(np.argsort(flat, kind="stable"), kind="stable").reshape(x.shape)


def test_cell_order_is_vespas_documented_example() -> None:
    out, t = evaluate("cell_order(tensor(x[3]):[2,3,1], max)")
    assert str(t) == "tensor(x[3])"
    assert out[0].tolist() == [1, 0, 2]
    out, _ = evaluate("cell_order(tensor(x[3]):[2,3,1], min)")
    assert out[0].tolist() == [1, 2, 0]


def test_cell_order_ranks_all_cells_with_ties_in_cell_order() -> None:
    out, t = evaluate("cell_order(attribute(ids), max)")
    assert str(t) == "tensor<float>(x[4])"
    for doc, got in zip(field("ids"), out, strict=True):
        np.testing.assert_array_equal(got, ranks(-doc))
    assert out[0].tolist() == [1, 2, 0, 3]  # 4 > 3 > 1 = 1
    out, _ = evaluate("cell_order(attribute(m), min)")
    for doc, got in zip(field("m"), out, strict=True):
        np.testing.assert_array_equal(got, ranks(doc))


def test_cell_order_puts_nan_last_in_both_orders() -> None:
    out, _ = evaluate("cell_order(tensor(x[4]):[2, 0/0, 5, 1], max)")
    assert out[0].tolist() == [1, 3, 0, 2]
    out, _ = evaluate("cell_order(tensor(x[4]):[2, 0/0, 5, 1], min)")
    assert out[0].tolist() == [1, 3, 2, 0]


def test_cell_order_types() -> None:
    _, t = evaluate("cell_order(attribute(i8), max)")
    assert str(t) == "tensor<float>(x[3])"
    out, t = evaluate("cell_order(attribute(pop), min)")
    assert str(t) == "double" and out.tolist() == [0.0, 0.0]
    assert "must be 'max' or 'min', got 'avg'" in compile_error("cell_order(attribute(v), avg)").message


# ---------------------------------------------------------------- map_subspaces, filter_subspaces, top


def test_map_subspaces_of_a_dense_tensor_maps_the_whole_tensor() -> None:
    out, t = evaluate("map_subspaces(attribute(m), f(s)(reduce(s, sum, y) * 2))")
    assert str(t) == "tensor<float>(x[2])"
    np.testing.assert_allclose(out, field("m").sum(axis=-1) * 2)
    out, t = evaluate("map_subspaces(attribute(v), f(s)(s{x:0} + s{x:2}))")
    assert str(t) == "double"
    np.testing.assert_allclose(out, field("v")[:, 0] + field("v")[:, 2])


def test_map_subspaces_with_a_generator_of_bits() -> None:
    # Vespa's conformance form of unpack_bits
    out, t = evaluate("map_subspaces(attribute(i8), f(a)(tensor<int8>(y[24])(bit(a{x:(y/8)}, 7-y%8))))")
    assert str(t) == "tensor<int8>(y[24])"
    np.testing.assert_array_equal(out, np.unpackbits(field("i8").astype(np.int8).view(np.uint8), axis=-1))


@pytest.mark.parametrize("expr", [
    "filter_subspaces(attribute(v), f(s)(s > 1))",
    "top(2, attribute(v))",
])  # fmt: skip
def test_functions_of_mapped_tensors_are_refused_naming_the_reason(expr: str) -> None:
    assert "mapped dimension" in compile_error(expr).message


# ---------------------------------------------------------------- inside generators


@pytest.mark.parametrize(("expr", "by_hand"), [
    # a generator's variable is one number per cell: each z orders or reduces on its own
    ("tensor(z[2])(median(attribute(v) + z))", lambda v, m: np.median(v, axis=-1)[:, None] + [0, 1]),
    ("tensor(z[2])(reduce(attribute(m) * z, median, y){x:1})",
     lambda v, m: np.median(m[:, 1], axis=-1)[:, None] * [0, 1]),
    ("tensor(z[2])(cell_order(attribute(v) * (z - 0.5), max){x:0})", lambda v, m: np.array([[0, 2], [0, 2]])),
    ("tensor(z[2])(merge(attribute(v), attribute(v) * z, f(a,b)(a+b)){x:1})", lambda v, m: v[:, 1:2] * [1, 2]),
    ("tensor(z[3])(reduce(map_subspaces(attribute(v), f(s)(s * z)), sum))",
     lambda v, m: v.sum(-1)[:, None] * [0, 1, 2]),
    ("tensor(z[8])(bit(-43, z))", lambda v, m: np.array([[1, 0, 1, 0, 1, 0, 1, 1]] * 2)),
])  # fmt: skip
def test_functions_see_generator_variables_as_numbers(expr: str, by_hand: Any) -> None:
    out, t = evaluate(expr)
    assert str(t) == expr[: expr.index(")") + 1]
    np.testing.assert_allclose(out, by_hand(field("v"), field("m")))
