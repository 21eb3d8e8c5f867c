"""The kernels the GPU backend launches for mapped and mixed tensors (tensor_ir.expr.sparse:
masks, lookups, masked reductions, MaxSim's GEMM and max), compiled with NVRTC as
tests/render/test_nvrtc compiles the others; skipped with the reason where NVRTC is missing."""

from __future__ import annotations

import pytest

from gpu_engine import nvrtc_check
from gpu_engine.backend import CupyBackend
from tests.expr.mapped_helpers import compiled_features
from tests.render.test_nvrtc import WORKERS, cache_dir

pytestmark = pytest.mark.skipif(nvrtc_check.unavailable() is not None, reason=str(nvrtc_check.unavailable()))

FIELDS = {"c": "tensor<float>(cat{})", "dt": "tensor<bfloat16>(dt{},x[16])", "cs": "tensor<float>(cat{},shop{})",
          "e": "tensor<float>(p{},x[4])"}
QUERIES = {"u": "tensor<float>(cat{})", "qt": "tensor<float>(qt{},x[16])", "qv": "tensor<float>(x[4])"}
CAPS = {"attribute(c)": 8, "attribute(dt)": 6, "attribute(cs)": 5, "attribute(e)": 3, "query(u)": 4, "query(qt)": 4}
EXPRESSIONS = [
    "sum(query(u) * attribute(c))",
    "query(u) * attribute(c) + 1",
    "sum(reduce(sum(query(qt) * attribute(dt), x), max, dt), qt)",
    "reduce(attribute(cs), sum, shop)",
    "reduce(attribute(c), avg) + reduce(attribute(c), count)",
    "merge(attribute(c), query(u), f(a,b)(a - b))",
    "closeness(field, e) + distance(field, e)",
    "closest(e)",
    "filter_subspaces(attribute(c), f(s)(s > 0))",
]


def test_kernels_of_mapped_tensors_compile() -> None:
    backend = CupyBackend.emulated()
    kernels = []
    for expr in EXPRESSIONS:
        program = compiled_features(expr, FIELDS, QUERIES, CAPS)
        assert program is not None
        kernels += nvrtc_check.program_kernels(backend.plan(program))
    assert len(kernels) >= len(EXPRESSIONS)
    report = nvrtc_check.compile_kernels(kernels, workers=WORKERS, cache_dir=cache_dir())
    assert not report.failures, nvrtc_check.describe_failures(report.failures[:10])
