"""Cast and CastLike against onnxruntime, three documents with different values each.

Narrow targets (float8, int4, int2, float8e8m0) are checked through a cast back to float,
since onnxruntime's Python API does not hand those cell types out. Fractional floats into
int4/int2 are left out: onnxruntime rounds them, the ONNX reference truncates, and the
spec leaves the choice open; we truncate, as for every other integer type.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper

from tensor_ir.ir import Op, topological_order
from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of, run_ours

SPECIAL = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e6, -1e6, 1e-7, 0.5, 2.5, -448.0, 464.0, 57344.0],
                   dtype=np.float32)


def _floats(rng: np.random.Generator, i: int, n: int = 24) -> np.ndarray:
    x = rng.normal(scale=10.0 ** (i - 1), size=n).astype(np.float32)
    x[: len(SPECIAL)] = np.roll(SPECIAL, i)
    return x


def _cast(to: int, **attrs: Any) -> Any:
    return helper.make_node("Cast", ["x"], ["y"], to=to, **attrs)


@pytest.mark.parametrize("to", [T.FLOAT16, T.DOUBLE, T.BOOL])
def test_float_to_float_and_bool(rng: np.random.Generator, to: int) -> None:
    docs = docs_of(rng, lambda r, i: {"x": _floats(r, i)})
    check(model_of(_cast(to), docs[0], 19), docs, rtol=0, atol=0)


@pytest.mark.parametrize("src", [np.float32, np.float64, np.float16])
def test_bfloat16_round_trip(rng: np.random.Generator, src: Any) -> None:
    with np.errstate(over="ignore"):  # 1e6 is inf in float16, on purpose
        docs = docs_of(rng, lambda r, i: {"x": _floats(r, i).astype(src)})
    nodes = [helper.make_node("Cast", ["x"], ["b"], to=T.BFLOAT16),
             helper.make_node("Cast", ["b"], ["y"], to=T.FLOAT)]
    check(model_of(nodes, docs[0], 13), docs, rtol=0, atol=0)


@pytest.mark.parametrize("to", [T.INT8, T.UINT8, T.INT16, T.INT32, T.INT64, T.UINT32])
def test_float_to_int_truncates(rng: np.random.Generator, to: int) -> None:
    # in range only: out-of-range and NaN casts are undefined by ONNX
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.uniform(0 if to in (T.UINT8, T.UINT32) else -100, 100, size=20).astype(np.float32)}

    docs = docs_of(rng, make)
    check(model_of(_cast(to), docs[0], 13), docs)


@pytest.mark.parametrize(("src", "to"), [(np.int64, T.INT8), (np.int32, T.UINT8), (np.uint16, T.INT16),
                                         (np.int8, T.UINT64), (np.int64, T.FLOAT), (np.uint64, T.DOUBLE),
                                         (np.int32, T.BOOL), (np.bool_, T.FLOAT), (np.bool_, T.INT32),
                                         (np.int16, T.FLOAT16)])
def test_integer_and_bool_sources_wrap(rng: np.random.Generator, src: Any, to: int) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        if src is np.bool_:
            return {"x": r.integers(0, 2, size=12).astype(np.bool_)}
        info = np.iinfo(src)
        return {"x": r.integers(info.min, info.max, size=12, endpoint=True, dtype=src)}

    docs = docs_of(rng, make)
    check(model_of(_cast(to), docs[0], 13), docs)


FLOAT8 = [T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ]


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("to", FLOAT8)
def test_float8_round_trip(rng: np.random.Generator, to: int, saturate: int) -> None:
    docs = docs_of(rng, lambda r, i: {"x": _floats(r, i)})
    nodes = [helper.make_node("Cast", ["x"], ["f8"], to=to, saturate=saturate),
             helper.make_node("Cast", ["f8"], ["y"], to=T.FLOAT)]
    check(model_of(nodes, docs[0], 19), docs, rtol=0, atol=0)


@pytest.mark.parametrize("src", [np.float16, np.int32])
def test_float8_from_half_and_int_sources(rng: np.random.Generator, src: Any) -> None:
    docs = docs_of(rng, lambda r, i: {"x": (r.normal(scale=100, size=16) * (i + 1)).astype(src)})
    nodes = [helper.make_node("Cast", ["x"], ["f8"], to=T.FLOAT8E4M3FN),
             helper.make_node("Cast", ["f8"], ["y"], to=T.FLOAT)]
    check(model_of(nodes, docs[0], 19), docs, rtol=0, atol=0)


@pytest.mark.parametrize(("to", "opset"), [(T.INT4, 21), (T.UINT4, 21), (T.INT2, 25), (T.UINT2, 25)])
def test_narrow_ints_keep_the_low_bits(rng: np.random.Generator, to: int, opset: int) -> None:
    # whole numbers in and beyond the range: the result keeps the low bits (two's complement)
    docs = docs_of(rng, lambda r, i: {"x": r.integers(-20, 20, size=16).astype(np.float32)})
    nodes = [helper.make_node("Cast", ["x"], ["n"], to=to),
             helper.make_node("Cast", ["n"], ["y"], to=T.FLOAT)]
    check(model_of(nodes, docs[0], opset), docs, rtol=0, atol=0)


def test_narrow_ints_to_wider_ints(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.integers(-8, 8, size=10).astype(np.int8)})
    nodes = [helper.make_node("Cast", ["x"], ["n"], to=T.INT4),
             helper.make_node("Cast", ["n"], ["y"], to=T.INT64)]
    check(model_of(nodes, docs[0], 21), docs)


@pytest.mark.parametrize(("saturate", "mode"), [(1, "up"), (1, "nearest"), (1, "down"), (0, "up"),
                                                (0, "nearest"), (0, "down")])
def test_float8e8m0_round_modes(rng: np.random.Generator, saturate: int, mode: str) -> None:
    # ends of the range, subnormals, zero and a negative value (below the smallest power)
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        x = np.exp2(r.uniform(-20, 20, size=24)).astype(np.float32)
        x[:14] = np.roll([1.5, 2.0, 3.0, 1.2, np.inf, -np.inf, 3e38, 1.2 * 2.0**127, np.nan, 0.0, 1e-39,
                          2.0**-127, 1.5 * 2.0**-127, -2.0], i)
        return {"x": x}

    docs = docs_of(rng, make)
    nodes = [helper.make_node("Cast", ["x"], ["e"], to=T.FLOAT8E8M0, saturate=saturate, round_mode=mode),
             helper.make_node("Cast", ["e"], ["y"], to=T.FLOAT)]
    check(model_of(nodes, docs[0], 24), docs, rtol=0, atol=0)


def test_float4_against_the_reference_evaluator(rng: np.random.Generator) -> None:
    # onnxruntime has no float4e2m1 Cast
    docs = docs_of(rng, lambda r, i: {"x": _floats(r, i)})
    nodes = [helper.make_node("Cast", ["x"], ["f4"], to=T.FLOAT4E2M1),
             helper.make_node("Cast", ["f4"], ["y"], to=T.FLOAT)]
    model = model_of(nodes, docs[0], 23)
    got = run_ours(model, docs)
    for i, d in enumerate(docs):
        want = d["x"].astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
        np.testing.assert_array_equal(got["y"][i], want)


@pytest.mark.parametrize("opset", [15, 19, 21])
def test_cast_like_takes_only_the_type(rng: np.random.Generator, opset: int) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.normal(scale=50, size=8).astype(np.float32), "like": r.integers(0, 9, size=3).astype(np.int16)}

    docs = docs_of(rng, make)
    model = model_of(helper.make_node("CastLike", ["x", "like"], ["y"]), docs[0], opset)
    check(model, docs)
    used = {n.attrs["name"] for n in topological_order(list(import_model(model).program.outputs.values()))
            if n.op is Op.INPUT}
    assert used == {"x"}, "target_type's value must not become a dependency"


def test_cast_like_to_float8_without_saturation(rng: np.random.Generator) -> None:
    like = np.zeros(2, ml_dtypes.float8_e4m3fn)
    docs = docs_of(rng, lambda r, i: {"x": _floats(r, i)})
    nodes = [helper.make_node("CastLike", ["x", "like"], ["f8"], saturate=0),
             helper.make_node("Cast", ["f8"], ["y"], to=T.FLOAT)]
    check(model_of(nodes, docs[0], 19, {"like": like}), docs, rtol=0, atol=0)


def test_cast_1_names_the_type_as_a_string(rng: np.random.Generator) -> None:
    # onnxruntime runs no opset below 7: worked out with numpy
    docs = docs_of(rng, lambda r, i: {"x": r.normal(scale=20, size=6).astype(np.float32)})
    model = model_of(helper.make_node("Cast", ["x"], ["y"], to="INT32"), docs[0], 1)
    got = run_ours(model, docs)
    for i, d in enumerate(docs):
        np.testing.assert_array_equal(got["y"][i], d["x"].astype(np.int32))


def test_same_type_cast_is_no_node() -> None:
    model = model_of(_cast(T.FLOAT), {"x": np.zeros(3, np.float32)}, 13)
    program = import_model(model).program
    assert program.outputs["y"].op.label == "input"


def test_string_casts_are_refused() -> None:
    model = model_of(_cast(T.STRING), {"x": np.zeros(3, np.float32)}, 13)
    with pytest.raises(ModelImportError, match="unsupported: string target type"):
        import_model(model)


def test_unknown_round_mode_is_refused() -> None:
    model = model_of(_cast(T.FLOAT8E8M0), {"x": np.ones(3, np.float32)}, 24)
    model.graph.node[0].attribute.append(helper.make_attribute("round_mode", "sideways"))
    with pytest.raises(ModelImportError, match="unsupported round_mode 'sideways'"):
        import_model(model)
