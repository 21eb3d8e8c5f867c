"""Programs evaluated by each backend and compared with values worked out by hand, one
document at a time (tests/backends/cases.py), within float32 rounding: elementwise chains,
reductions, matmul, gathers, concat and the other structural ops, with per-document, query
and constant operands."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from tensor_ir import build
from tensor_ir.backend import Backend
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.program import Program
from tests.backends.cases import CASES, Case, doc, elementwise_f32, long_reduction, matmuls, merge, softmax_layernorm
from tests.conftest import SEED

I64 = CellType.INT64
N = 7


def feeds_for(program: Program, rng: np.random.Generator, n: int) -> dict[str, Any]:
    """Values where every case's math is defined: no float -> int cast leaves its range
    (|x * 10| stays far below 128 for normal draws; the oracle saturates if it does not)."""
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


def expected(case: Case, feeds: dict[str, Any], n: int) -> dict[str, np.ndarray[Any, Any]]:
    """The oracle's answers, one document at a time, stacked on a leading document axis
    (every output has one, the broadcast ones too: CompiledProgram.run)."""
    specs = case.program.inputs
    docs = {k: np.asarray(v) for k, v in feeds.items() if specs[k].role is Role.ATTRIBUTE}
    query = {k: np.asarray(v) for k, v in feeds.items() if specs[k].role is not Role.ATTRIBUTE}
    rows = [case.oracle({k: v[i] for k, v in docs.items()}, query) for i in range(n)]
    if n == 0:  # the shapes and types of no documents: those of a document of zeros
        zeros = case.oracle({k: np.zeros(v.shape[1:], v.dtype) for k, v in docs.items()}, query)
        return {k: np.empty((0, *np.shape(v)), np.asarray(v).dtype) for k, v in zeros.items()}
    return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}


def assert_close(name: str, got: np.ndarray[Any, Any], want: np.ndarray[Any, Any], rtol: float | None = None) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f" or want.dtype == ml_dtypes.bfloat16 or "float8" in str(want.dtype):
        if rtol is None:
            rtol = 1e-5 if want.dtype.itemsize >= 4 else 2e-3
            if want.dtype == ml_dtypes.bfloat16:
                rtol = 1e-2
        w = want.astype(np.float64)
        # sums cancel: their float32 error follows the size of the terms, not of the result
        atol = 1e-6 * max(1.0, float(np.max(np.abs(w), initial=0.0)))
        np.testing.assert_allclose(got.astype(np.float64), w, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


def check(backend: Backend, case: Case, feeds: dict[str, Any], n: int) -> None:
    want = expected(case, feeds, n)
    got = backend.run(case.program, feeds, n)
    assert set(got) == set(want) == set(case.program.outputs)
    for name in want:
        assert_close(name, np.asarray(got[name]), want[name], case.rtol.get(name))


@pytest.mark.parametrize("case", sorted(CASES))
def test_case(backend: Backend, case: str) -> None:
    rng = np.random.default_rng(SEED)
    c = CASES[case](rng)
    check(backend, c, feeds_for(c.program, rng, N), N)


@pytest.mark.parametrize("n", [0, 1, 300])
def test_document_counts(backend: Backend, n: int) -> None:
    rng = np.random.default_rng(SEED + n)
    case = merge(softmax_layernorm(rng), matmuls(rng))
    check(backend, case, feeds_for(case.program, rng, n), n)


def test_long_reduction_axis(backend: Backend) -> None:
    """More cells per document than a CUDA block has threads."""
    rng = np.random.default_rng(SEED)
    case = long_reduction(rng)
    check(backend, case, feeds_for(case.program, rng, 5), 5)


def test_resident_inputs(backend: Backend) -> None:
    """Attribute columns already on the backend's device are used where they lie."""
    rng = np.random.default_rng(SEED)
    case = elementwise_f32(rng)
    feeds = feeds_for(case.program, rng, N)
    device_feeds = {k: backend.asarray(v) for k, v in feeds.items()}
    want = expected(case, feeds, N)
    got = backend.compile(case.program).run(device_feeds, N)
    assert set(got) == set(want)
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
