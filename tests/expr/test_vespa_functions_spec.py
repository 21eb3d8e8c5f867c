"""Vespa's own conformance cases (../shared/vespa-tensor-spec) of the functions in
bit_functions, merge_functions, order_functions and subspace_functions: every case
without a mapped dimension passes, with its parameters as query inputs, attributes and
constants, on the numpy backend and on the GPU backend's plan run on the host (fused groups
interpreted; tests/render compiles their kernels). Expected results are Vespa's (its README
says by whom)."""

from __future__ import annotations

import pytest

from cpu_fallback import NumpyBackend
from gpu_engine.backend import CupyBackend
from tensor_ir.backend import Backend
from tensor_ir.vespa_conformance import run_conformance
from tests.shared_data import shared

# what an expression must contain to be a case of that function; the smallest number of
# cases without a mapped dimension that the spec has of each, so a lost case is noticed
FUNCTIONS: dict[str, tuple[str, int]] = {
    "merge": ("merge(", 897),
    "bit": ("bit(", 185),
    "hamming": ("hamming(", 6),
    "median": ("median", 54),
    "cell_order": ("cell_order(", 28),
    "map_subspaces": ("map_subspaces(", 28),
}


def backend(name: str) -> Backend:
    return NumpyBackend() if name == "numpy" else CupyBackend.emulated()


@pytest.mark.parametrize("backend_name", ["numpy", "gpu-emulated"])
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_spec_cases_pass(function: str, backend_name: str) -> None:
    spec = shared("vespa-tensor-spec")
    needle, at_least = FUNCTIONS[function]
    report = run_conformance(backend(backend_name), spec, select=lambda case: needle in case.expression)
    for mode in report.modes():
        counts = report.counts(mode)
        assert counts["passed"] >= at_least, (mode, dict(counts))
    failed = [r for r in report.results if r.status not in ("passed", "mapped")]
    assert not failed, "\n".join(f"{r.id} ({r.mode}) {r.status}: {r.detail}" for r in failed[:10])
