"""Programs evaluated by each backend and compared with the numpy backend (the reference
semantics) within float32 rounding: elementwise chains, reductions, matmul, gathers,
concat and the other structural ops, with per-document, query and constant operands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from tensor_ir import build
from tensor_ir.backend import Backend
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node, Role
from tensor_ir.program import Program
from tests.conftest import SEED

F32, F16, F64, I32, I64, BOOL = (CellType.FLOAT32, CellType.FLOAT16, CellType.FLOAT64, CellType.INT32,
                                 CellType.INT64, CellType.BOOL)
N = 7

Case = tuple[Program, dict[str, Any], int]


def doc(name: str, shape: tuple[int, ...], ct: CellType = F32) -> Node:
    return build.input_(name, Role.ATTRIBUTE, shape, ct)


def query(name: str, shape: tuple[int, ...], ct: CellType = F32) -> Node:
    return build.input_(name, Role.QUERY, shape, ct)


def const(rng: np.random.Generator, shape: tuple[int, ...], ct: CellType = F32) -> Node:
    return build.constant(rng.standard_normal(shape).astype(ct.np_dtype), ct)


def s(v: float, ct: CellType = F32) -> Node:
    return build.scalar(v, ct)


def feeds_for(program: Program, rng: np.random.Generator, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in program.inputs.items():
        shape = (n, *spec.shape) if spec.role is Role.ATTRIBUTE else spec.shape
        if spec.dtype.is_bool:
            out[name] = rng.random(shape) < 0.5
        elif spec.dtype.is_int:
            out[name] = rng.integers(-20, 20, shape).astype(spec.dtype.np_dtype)
        else:
            out[name] = (rng.standard_normal(shape) * 2).astype(spec.dtype.np_dtype)
    return out


# ---------------------------------------------------------------- cases


def elementwise_f32(rng: np.random.Generator) -> Program:
    x, q = doc("x", (4, 8)), query("q", (8,))
    c = const(rng, (4, 1))
    y = build.join("sub", build.map_("sigmoid", build.join("add", build.join("mul", x, q), c)), s(0.5))
    z = build.select(build.join("gt", x, s(0.0)), build.map_("sqrt", build.map_("abs", x)), build.map_("neg", y))
    return Program({"y": y, "z": z, "e": build.map_("erf", build.join("div", x, s(1.41421356)))})


def elementwise_mixed_types(rng: np.random.Generator) -> Program:
    h = doc("h", (5,), F16)
    t = build.cast(build.join("mul", build.map_("tanh", h), s(3.0, F16)), F32)
    i = doc("i", (5,), I32)
    k = build.join("shift_right", build.join("mod", build.join("div", i, s(3, I32)), s(5, I32)), s(1, I32))
    b = build.join("and", build.join("lt", i, s(4, I32)), build.map_("not", build.join("eq", k, s(0, I32))))
    r = build.cast(build.map_("round", build.join("mul", build.cast(i, F64), s(0.25, F64))), I64)
    return Program({"t": t, "k": k, "b": b, "r": r, "h2": build.join("max", h, s(0.5, F16))})


def reductions(rng: np.random.Generator) -> Program:
    x = doc("x", (3, 5))
    q = query("q", (4, 6))
    out = {
        "sum_last": build.reduce(x, "sum", [1], True),
        "max_all": build.reduce(x, "max", None, False),
        "min_first": build.reduce(build.map_("exp", x), "min", [0], False),
        "prod": build.reduce(build.join("mul", x, s(0.5)), "prod", [1], False),
        "post": build.map_("sqrt", build.join("add", build.reduce(build.join("mul", x, x), "sum", [0, 1], False),
                                                  s(1e-3))),
        "query_only": build.reduce(q, "sum", [1], False),
        "doc_times_query_max": build.join("mul", build.reduce(x, "sum", None, False),
                                          build.reduce(q, "max", None, False)),
        "int_sum": build.reduce(doc("i", (6,), I32), "sum", [0], False),
        "bool_any": build.reduce(doc("b", (4,), BOOL), "max", [0], False),
    }
    return Program(out)


def softmax_layernorm(rng: np.random.Generator) -> Program:
    x = doc("x", (3, 6))
    m = build.reduce(x, "max", [1], True)
    e = build.map_("exp", build.join("sub", x, m))
    sm = build.join("div", e, build.reduce(e, "sum", [1], True))
    mean = build.join("div", build.reduce(x, "sum", [1], True), s(6.0))
    d = build.join("sub", x, mean)
    var = build.join("div", build.reduce(build.join("mul", d, d), "sum", [1], True), s(6.0))
    ln = build.join("add", build.join("mul", build.join("div", d, build.map_("sqrt", build.join("add", var, s(1e-5)))),
                                      const(rng, (6,))), const(rng, (6,)))
    return Program({"softmax": sm, "layernorm": ln})


def matmuls(rng: np.random.Generator) -> Program:
    v = doc("v", (8,))
    h = build.map_("relu", build.join("add", build.matmul(build.reshape(v, (1, 8)), const(rng, (8, 16))),
                                      const(rng, (16,))))
    mlp = build.matmul(h, const(rng, (16, 1)))
    a, b = doc("a", (3, 4)), doc("b", (4, 2))
    q1, q2 = query("q1", (2, 3)), query("q2", (4, 5))
    return Program({
        "mlp": mlp,
        "doc_doc": build.matmul(a, b),
        "query_doc": build.matmul(q1, a),
        "doc_query": build.matmul(a, q2),
        "batched_const": build.matmul(doc("t", (2, 3, 4)), const(rng, (2, 4, 3))),
        "f16": build.matmul(doc("h", (2, 4), F16), build.constant(rng.standard_normal((4, 3)).astype(np.float16))),
    })


def gathers(rng: np.random.Generator) -> Program:
    table = const(rng, (10, 4))
    idx = build.constant(np.array([3, -1, 0], np.int64))
    data = doc("data", (5, 4))
    didx = build.input_("didx", Role.ATTRIBUTE, (3,), I64)
    pos = build.join("mod", didx, s(5, I64))
    return Program({
        "const_by_doc_idx": build.gather(table, build.join("mod", didx, s(10, I64)), 0),
        "doc_by_const_idx": build.gather(data, idx, 0),
        "doc_by_doc_idx": build.gather(data, pos, 0),
        "doc_axis1": build.gather(data, build.constant(np.array([[1, 2], [3, 0]], np.int64)), 1),
        "elements": build.gather_elements(data, build.constant(np.array([[4, 0, 1, 2]] * 5, np.int64) % 4), 1),
        "elements_doc_idx": build.gather_elements(table, build.reshape(build.join("mod", didx, s(4, I64)), (3, 1)), 1),
        "nd": build.gather_nd(data, build.constant(np.array([[1], [4]], np.int64)), 0),
        "nd_doc_idx": build.gather_nd(table, build.reshape(build.join("mod", didx, s(10, I64)), (3, 1)), 0),
    })


def structural(rng: np.random.Generator) -> Program:
    x, q = doc("x", (2, 3)), query("q", (2, 2))
    v = doc("v", (3,))
    return Program({
        "concat_doc_query": build.concat([x, q], 1),
        "concat_vec": build.concat([v, query("w", (2,)), build.constant(np.array([9.0], np.float32))], 0),
        "transpose": build.transpose(x, [1, 0]),
        "reshape": build.reshape(x, (3, 2)),
        "slice_rev": build.slice_(x, [1, 2], [-3, -4], [-1, -2]),
        "pad_const": build.pad(x, [(1, 0), (0, 2)], "constant", 1.5),
        "pad_reflect": build.pad(x, [(0, 0), (2, 1)], "reflect"),
        "pad_edge": build.pad(x, [(1, 1), (0, 0)], "edge"),
        "pad_wrap_crop": build.pad(x, [(0, 0), (-1, 2)], "wrap"),
        "broadcast": build.broadcast(v, (2, 3)),
        "broadcast_then_exp": build.map_("exp", build.broadcast(build.reshape(v, (3, 1)), (3, 4))),
    })


def scans_and_args(rng: np.random.Generator) -> Program:
    x = doc("x", (3, 4))
    return Program({
        "cumsum": build.scan(x, "sum", 1, False, False),
        "cumsum_excl_rev": build.scan(x, "sum", 0, True, True),
        "cumprod": build.scan(build.join("mul", x, s(0.5)), "prod", 1, False, False),
        "argmax": build.arg_reduce(x, "argmax", 1, False, False),
        "argmin_last_keep": build.arg_reduce(build.map_("round", x), "argmin", 0, True, True),
        "topk": build.topk(x, 2, 1, True),
    })


def casts_and_fallbacks(rng: np.random.Generator) -> Program:
    x = doc("x", (6,))
    f8 = build.cast(build.cast(x, CellType.FLOAT8E4M3FN), F32)  # no GPU kernels: the host fallback
    return Program({
        "to_int8": build.cast(build.join("mul", x, s(10.0)), CellType.INT8),
        "to_bool": build.cast(build.map_("round", x), BOOL),
        "bool_to_f": build.cast(build.join("gt", x, s(0.0)), F16),
        "to_bf16": build.cast(x, CellType.BFLOAT16),
        "via_float8": build.join("add", f8, s(1.0)),
        "int_pow": build.join("pow", build.cast(build.map_("abs", build.join("mul", x, s(2.0))), I32), s(3, I32)),
    })


def leaves_as_outputs(rng: np.random.Generator) -> Program:
    x = doc("x", (3,))
    q = query("q", (2,))
    return Program({"x": x, "q": q, "c": build.constant(np.arange(4, dtype=np.float32)),
                    "q2": build.join("mul", q, s(2.0))})


CASES: dict[str, Callable[[np.random.Generator], Program]] = {
    "elementwise_f32": elementwise_f32,
    "elementwise_mixed_types": elementwise_mixed_types,
    "reductions": reductions,
    "softmax_layernorm": softmax_layernorm,
    "matmuls": matmuls,
    "gathers": gathers,
    "structural": structural,
    "scans_and_args": scans_and_args,
    "casts_and_fallbacks": casts_and_fallbacks,
    "leaves_as_outputs": leaves_as_outputs,
}


def assert_close(name: str, got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f" or want.dtype == ml_dtypes.bfloat16 or "float8" in str(want.dtype):
        rtol = 1e-5 if want.dtype.itemsize >= 4 else 2e-3
        if want.dtype == ml_dtypes.bfloat16:
            rtol = 1e-2
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=1e-6,
                                   equal_nan=True, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


def check(backend: Backend, program: Program, feeds: dict[str, Any], n: int) -> None:
    want = NumpyBackend().run(program, feeds, n)
    got = backend.run(program, feeds, n)
    assert set(got) == set(want)
    for name in want:
        assert_close(name, np.asarray(got[name]), np.asarray(want[name]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_case(backend: Backend, case: str) -> None:
    rng = np.random.default_rng(SEED)
    program = CASES[case](rng)
    check(backend, program, feeds_for(program, rng, N), N)


@pytest.mark.parametrize("n", [0, 1, 300])
def test_document_counts(backend: Backend, n: int) -> None:
    rng = np.random.default_rng(SEED + n)
    program = softmax_layernorm(rng)
    mm = matmuls(rng)
    program = Program({**program.outputs, **{k: v for k, v in mm.outputs.items() if k in ("mlp", "doc_doc")}})
    check(backend, program, feeds_for(program, rng, n), n)


def test_long_reduction_axis(backend: Backend) -> None:
    """More cells per document than a CUDA block has threads."""
    rng = np.random.default_rng(SEED)
    x = doc("x", (2, 1500))
    program = Program({"sum": build.reduce(x, "sum", [1], False), "max": build.reduce(x, "max", None, True)})
    check(backend, program, feeds_for(program, rng, 5), 5)


def test_resident_inputs(backend: Backend) -> None:
    """Attribute columns already on the backend's device are used where they lie."""
    rng = np.random.default_rng(SEED)
    program = elementwise_f32(rng)
    feeds = feeds_for(program, rng, N)
    device_feeds = {k: backend.asarray(v) for k, v in feeds.items()}
    want = NumpyBackend().run(program, feeds, N)
    got = backend.compile(program).run(device_feeds, N)
    for name in want:
        assert_close(name, backend.to_host(got[name]), want[name])


def test_bad_inputs_are_refused(backend: Backend) -> None:
    from tensor_ir.errors import EvaluationError

    program = Program({"y": build.map_("exp", doc("x", (3,)))})
    with pytest.raises(EvaluationError, match=r"missing value for attribute\(x\)"):
        backend.run(program, {}, 2)
    with pytest.raises(EvaluationError, match=r"got a value of shape \[2, 4\], want \[2, 3\]"):
        backend.run(program, {"x": np.zeros((2, 4), np.float32)}, 2)


def test_out_of_range_gather_raises(backend: Backend) -> None:
    from tensor_ir.errors import EvaluationError

    idx = build.input_("i", Role.ATTRIBUTE, (), I64)
    program = Program({"y": build.gather(build.constant(np.arange(4, dtype=np.float32)), idx, 0)})
    with pytest.raises(EvaluationError, match="out of range"):
        backend.run(program, {"i": np.array([1, 4], np.int64)}, 2)
