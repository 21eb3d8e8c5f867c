"""Every kernel the GPU backend would launch for the conformance suite's programs and for
hand-made programs covering every function, cast and reduction, compiled with NVRTC for
sm_90 exactly as CuPy compiles it (CuPy's own code generation, headers and options), on
a machine without a GPU.

Needs cupy-cuda13x and nvidia-cuda-nvrtc (the `gpu` extra); skipped with the reason when
they are missing. Units that compiled before are remembered under
~/.cache/tensorrank/nvrtc (TENSORRANK_NVRTC_CACHE=0 turns that off).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpu_engine import nvrtc_check
from gpu_engine.backend import CupyBackend
from gpu_engine.expressions import C_TYPES, can_fuse
from gpu_engine.render import KernelSource, render_group
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.passes.fusion import fuse
from tensor_ir.program import Program
from tests.render.kernels import conformance_programs, coverage_programs

pytestmark = pytest.mark.skipif(nvrtc_check.unavailable() is not None, reason=str(nvrtc_check.unavailable()))

WORKERS = min(4, os.cpu_count() or 1)


def cache_dir() -> str | None:
    if os.environ.get("TENSORRANK_NVRTC_CACHE", "1") == "0":
        return None
    return str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tensorrank" / "nvrtc")


def kernels_of(programs: list[tuple[str, Program]]) -> list[tuple[KernelSource, int, int | None]]:
    """The kernels the GPU backend launches for these programs (its own plan: the
    optimisation pipeline, then fusion)."""
    backend = CupyBackend.emulated()
    out = []
    for _, program in programs:
        out += nvrtc_check.program_kernels(backend.plan(program))
    return out


def test_c_type_names_are_cupys() -> None:
    from cupy._core._scalar import get_typename

    for ct, name in C_TYPES.items():
        assert get_typename(ct.np_dtype.type) == name, ct


def test_hand_made_kernels_compile() -> None:
    kernels = kernels_of(coverage_programs())
    assert len(kernels) > 50
    report = nvrtc_check.compile_kernels(kernels, workers=WORKERS, cache_dir=cache_dir())
    assert not report.failures, nvrtc_check.describe_failures(report.failures)


def test_conformance_kernels_compile() -> None:
    programs = conformance_programs()
    assert len(programs) > 300, "too few conformance cases import"
    kernels = kernels_of(programs)
    report = nvrtc_check.compile_kernels(kernels, workers=WORKERS, cache_dir=cache_dir())
    print(f"NVRTC: {report.kernels} distinct kernels of {len(programs)} programs, {report.units} units")
    assert report.kernels > 200
    assert not report.failures, nvrtc_check.describe_failures(report.failures[:10])


def _kernel(body_edit: tuple[str, str] | None = None) -> KernelSource:
    x = build.input_("x", Role.ATTRIBUTE, (4,), CellType.FLOAT32)
    node = build.map_("sigmoid", build.join("mul", x, build.scalar(2.0, CellType.FLOAT32)))
    src = render_group(fuse(Program({"y": node}), can_fuse).groups[0])
    if body_edit is None:
        return src
    old, new = body_edit
    body = src.body.replace(old, new)
    return KernelSource(**{**src.__dict__, "body": body, "preamble": src.preamble.replace(src.body, body)})


def test_a_broken_kernel_fails_and_is_named() -> None:
    good = _kernel()
    broken = _kernel(("expf(", "expf_undefined("))
    broken = KernelSource(**{**broken.__dict__, "name": broken.name + "_broken",
                             "operation": broken.operation.replace(good.name, good.name + "_broken"),
                             "body": broken.body.replace(good.name, good.name + "_broken"),
                             "preamble": broken.preamble.replace(good.name, good.name + "_broken")})
    report = nvrtc_check.compile_kernels([(good, 2, None), (broken, 2, None)], cache_dir=None)
    assert [name for name, _ in report.failures] == [broken.name]
    assert "expf_undefined" in report.failures[0][1]


def test_a_kernel_missing_a_header_fails() -> None:
    """A float16 value inside a float32 kernel needs cupy/float16.cuh, which CuPy only
    includes for argument types: without our include the kernel must not compile."""
    x = build.input_("x", Role.ATTRIBUTE, (4,), CellType.FLOAT32)
    node = build.cast(build.cast(x, CellType.FLOAT16), CellType.FLOAT32)
    src = render_group(fuse(Program({"y": node}), can_fuse).groups[0])
    assert '#include "cupy/float16.cuh"' in src.body
    stripped = src.body.replace('#include "cupy/float16.cuh"\n', "")
    bad = KernelSource(**{**src.__dict__, "body": stripped, "preamble": src.preamble.replace(src.body, stripped)})
    assert nvrtc_check.compile_kernels([(src, 2, None)], cache_dir=None).failures == []
    assert len(nvrtc_check.compile_kernels([(bad, 2, None)], cache_dir=None).failures) == 1


def test_cupy_generates_the_kernel_around_our_strings() -> None:
    src = _kernel()
    code = nvrtc_check.cupy_code(src, 2)
    assert f'extern "C" __global__ void {src.name}(' in code
    assert src.operation in code and src.body in code
    assert "const float &a0 = _raw_a0[_ind.get()];" in code
    red = render_group(fuse(Program({"y": build.reduce(
        build.input_("x", Role.ATTRIBUTE, (4,), CellType.FLOAT32), "sum", [0], False)}), can_fuse).groups[0])
    code = nvrtc_check.cupy_code(red, 2, 1)
    assert f"#define POST_MAP(a) ({red.post_map_expr})" in code
    assert "typedef float _type_reduce;" in code
    assert "typedef int IndexT;" in code  # added by the launch, as CuPy does


def test_example_and_benchmark_kernels_compile(tmp_path: Path) -> None:
    from tests.render.kernels import application_programs

    programs = application_programs(tmp_path)
    assert len(programs) >= 4, [name for name, _ in programs]
    kernels = kernels_of(programs)
    assert kernels, "the example programs render no fused kernel"
    report = nvrtc_check.compile_kernels(kernels, workers=WORKERS, cache_dir=cache_dir())
    print(f"NVRTC: {report.kernels} distinct kernels of {len(programs)} application programs")
    assert not report.failures, nvrtc_check.describe_failures(report.failures[:10])
