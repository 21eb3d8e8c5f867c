"""The backend fixture: every case runs on numpy, on the GPU backend's host emulation
(its fusion, leaf alignment and array steps with numpy in place of CuPy), and on CuPy
where a GPU is present (skipped with the reason otherwise)."""

from __future__ import annotations

import pytest

from cpu_fallback import NumpyBackend
from gpu_engine.backend import CupyBackend
from tensor_ir.backend import Backend


def cupy_unavailable() -> str | None:
    try:
        import cupy
    except Exception as e:  # ImportError, or a CUDA library that fails to load
        return f"cupy is not importable: {type(e).__name__}: {e}"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as e:  # CUDARuntimeError when there is no driver
        return f"no CUDA device: {type(e).__name__}: {e}"
    return None if count > 0 else "no CUDA device: getDeviceCount() == 0"


@pytest.fixture(params=["numpy", "gpu-emulated", "cupy"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "numpy":
        return NumpyBackend()
    if request.param == "gpu-emulated":
        return CupyBackend.emulated()
    reason = cupy_unavailable()
    if reason is not None:
        pytest.skip(reason)
    return CupyBackend()
