"""The GPU backend's forest kernel: compiled by NVRTC as CuPy compiles it (no GPU needed), run
through the backend's host emulation, and on CuPy where a GPU exists, against the numpy
backend's scores bit for bit."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from gpu_engine import nvrtc_check
from gpu_engine.backend import CupyBackend
from gpu_engine.forest_kernel import forest_tables, render_forest
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.program import Program
from tensor_ir.trees import canonical_forest
from tests.backends.conftest import cupy_unavailable
from tests.trees.test_forest import EVERY, NUMERIC, inputs, random_spec

NVRTC = nvrtc_check.unavailable()


def forests(rng: np.random.Generator) -> list:  # type: ignore[type-arg]
    out = []
    for aggregate in ("sum", "average", "min", "max"):
        for double in (False, True):
            t = CellType.FLOAT64 if double else CellType.FLOAT32
            out.append(canonical_forest(random_spec(rng, EVERY, n_targets=2, aggregate=aggregate, input_type=t,
                                                    accumulate=t)))
    return out


@pytest.mark.skipif(NVRTC is not None, reason=str(NVRTC))
def test_forest_kernels_compile_with_nvrtc(rng: np.random.Generator) -> None:
    for forest in forests(rng):
        src = render_forest(forest)
        cubin = nvrtc_check.compile_code(nvrtc_check.full_source(src.code), name=f"{src.name}.cu",
                                         options=src.options)
        assert cubin


def _program(forest: object, width: int, dtype: CellType) -> Program:
    x = build.input_("attribute(x)", Role.ATTRIBUTE, (width,), dtype)
    return Program({"s": build.tree_ensemble(x, forest)})  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["gpu-emulated", "cupy"])
def test_the_backend_runs_forests_as_the_numpy_backend(kind: str, rng: np.random.Generator) -> None:
    if kind == "cupy" and (reason := cupy_unavailable()) is not None:
        pytest.skip(reason)
    backends = [CupyBackend.emulated() if kind == "gpu-emulated" else CupyBackend()]
    spec = random_spec(rng, NUMERIC, n_trees=40, depth=6, n_targets=1)
    for forest in [*forests(rng), canonical_forest(spec)]:
        x = inputs(rng, 500, forest.n_features, forest.input_type.np_dtype)
        program = _program(forest, forest.n_features, forest.input_type)
        want = NumpyBackend().compile(program).run({"attribute(x)": x}, 500)["s"]
        for backend in backends:
            got = backend.to_host(backend.compile(program).run({"attribute(x)": backend.asarray(x)}, 500)["s"])
            np.testing.assert_array_equal(got, want)


HOST = r"""
#include <cmath>
#include <cstdint>
using std::isnan; using std::trunc;
#define __global__
#define __restrict__
struct Dim { long long x; };
static Dim blockIdx, threadIdx, blockDim;
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
@pytest.mark.parametrize("aggregate", ["sum", "average", "min", "max"])
@pytest.mark.parametrize("double", [False, True])
def test_kernel_arithmetic_on_the_host_equals_numpy(tmp_path: Path, rng: np.random.Generator, aggregate: str,
                                                    double: bool) -> None:
    """The kernel's own C++ compiled with g++ (CUDA's thread index made a loop, FMA off) gives
    the numpy backend's scores bit for bit."""
    t = CellType.FLOAT64 if double else CellType.FLOAT32
    forest = canonical_forest(random_spec(rng, EVERY, n_targets=2, aggregate=aggregate, input_type=t, accumulate=t))
    src = render_forest(forest)
    driver = (f'\nextern "C" void run_all(long long n, void** a) {{ blockDim.x = 1; threadIdx.x = 0;\n'
              f"  for (long long d = 0; d < n; ++d) {{ blockIdx.x = d; {src.name}(\n"
              f"    (const XT*)a[0], n, *(const int*)a[1], (const int*)a[2], (const XT*)a[3],\n"
              "    (const unsigned char*)a[4], (const unsigned char*)a[5], (const int*)a[6], (const int*)a[7],\n"
              "    (const int*)a[8], (const int*)a[9], (const XT*)a[10], (const int*)a[11], (const int*)a[12],\n"
              "    (const AT*)a[13], (const unsigned char*)a[14], (const AT*)a[15], (AT*)a[16]); } }\n")
    ctype = "double" if double else "float"
    code = HOST + src.code + driver.replace("XT", ctype).replace("AT", ctype)
    (tmp_path / "k.cpp").write_text(code)
    lib = tmp_path / "k.so"
    subprocess.run(["g++", "-std=c++17", "-O1", "-fno-fast-math", "-ffp-contract=off", "-shared", "-fPIC",
                    str(tmp_path / "k.cpp"), "-o", str(lib)], check=True, capture_output=True)
    x = np.ascontiguousarray(inputs(rng, 300, forest.n_features, t.np_dtype))
    out = np.empty((300, forest.n_targets), t.np_dtype)
    arrays = [x, np.array([forest.n_features], np.int32),
              *[np.ascontiguousarray(a) for a in forest_tables(forest)], out]
    pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
    ctypes.CDLL(str(lib)).run_all(ctypes.c_longlong(300), pointers)
    program = _program(forest, forest.n_features, t)
    want = NumpyBackend().compile(program).run({"attribute(x)": x}, 300)["s"]
    np.testing.assert_array_equal(out, want)
