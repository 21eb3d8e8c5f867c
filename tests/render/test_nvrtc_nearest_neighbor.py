"""The kernels the GPU backend launches for distance and closeness under every distance
metric (tensor_ir.distances), compiled with NVRTC as tests/render/test_nvrtc compiles the
others; skipped with the reason where NVRTC is missing."""

from __future__ import annotations

import pytest

from gpu_engine import nvrtc_check
from gpu_engine.backend import CupyBackend
from tests.expr.test_nearest_neighbor import FIELDS, _compile
from tests.render.test_nvrtc import WORKERS, cache_dir

pytestmark = pytest.mark.skipif(nvrtc_check.unavailable() is not None, reason=str(nvrtc_check.unavailable()))


def test_kernels_of_every_distance_metric_compile() -> None:
    backend = CupyBackend.emulated()
    kernels = []
    for field in sorted(FIELDS):
        compiled = _compile([f"closeness(field, {field})", f"distance(field, {field})"])
        assert compiled.features is not None
        kernels += nvrtc_check.program_kernels(backend.plan(compiled.features))
    assert len(kernels) >= len(FIELDS)
    report = nvrtc_check.compile_kernels(kernels, workers=WORKERS, cache_dir=cache_dir())
    assert not report.failures, nvrtc_check.describe_failures(report.failures[:10])
