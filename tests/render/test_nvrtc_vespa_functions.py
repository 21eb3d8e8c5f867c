"""The kernels the GPU backend launches for Vespa's bit, hamming, unpack_bits, merge,
median and cell_order (tensor_ir.expr's bit_functions, merge_functions, order_functions),
compiled with NVRTC as tests/render/test_nvrtc compiles the others; skipped with the
reason where NVRTC is missing."""

from __future__ import annotations

import pytest

from gpu_engine import nvrtc_check
from gpu_engine.backend import CupyBackend
from tensor_ir.expr.profile import compile_profile
from tensor_ir.program import Program
from tests.expr.helpers import _no_models, fields, profile
from tests.render.test_nvrtc import WORKERS, cache_dir

pytestmark = pytest.mark.skipif(nvrtc_check.unavailable() is not None, reason=str(nvrtc_check.unavailable()))

EXPRESSIONS = [
    "bit(attribute(i8), tensor(y[8])(y))",
    "bit(attribute(v), query(s))",
    "hamming(attribute(i8), tensor<int8>(x[3]):[1,-2,3])",
    "reduce(hamming(attribute(i8), attribute(i8) * 3), sum, x)",
    "hamming(query(s), 3)",
    "unpack_bits(attribute(i8))",
    "unpack_bits(attribute(i8), bfloat16, little) * query(q){x:0}",
    "merge(attribute(v), query(q), f(a,b)(a * b + 1))",
    "reduce(attribute(m), median, y)",
    "median(attribute(ids)) + 1",
    "cell_order(attribute(m), max)",
    "cell_order(attribute(b16), min) * 2",
]


def program(expr: str) -> Program:
    compiled = compile_profile(profile(expr), fields(), _no_models)
    assert compiled.features is not None
    return compiled.features


def test_kernels_of_vespa_functions_compile() -> None:
    backend = CupyBackend.emulated()
    kernels = []
    for expr in EXPRESSIONS:
        kernels += nvrtc_check.program_kernels(backend.plan(program(expr)))
    assert len(kernels) >= len(EXPRESSIONS)
    report = nvrtc_check.compile_kernels(kernels, workers=WORKERS, cache_dir=cache_dir())
    assert not report.failures, nvrtc_check.describe_failures(report.failures[:10])
