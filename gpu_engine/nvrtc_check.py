"""Compile rendered kernels with NVRTC, without a GPU.

The source handed to NVRTC is made by CuPy's own code generation (the functions its
ElementwiseKernel and ReductionKernel call when launched), with the headers and
compiler options CuPy adds, so what CI compiles is the text CuPy compiles on a GPU.
Only the target architecture is named here (CuPy asks the device for it).

Needs `cupy-cuda13x` and `nvidia-cuda-nvrtc` (and CUDA's headers, which CuPy finds in a
CUDA toolkit); `unavailable()` says why not when they are missing.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import multiprocessing
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gpu_engine.render import HELPERS, NVRTC_OPTIONS, KernelSource, render_group
from tensor_ir.errors import TensorRankError

log = logging.getLogger(__name__)

# kernel parameters: ndarray, indexer and scalar (cupy/_core/_kernel.pxd, _ArgKind)
_ARG_NDARRAY, _ARG_INDEXER, _ARG_SCALAR = 1, 2, 3
# CuPy's block size for ReductionKernel on CUDA (_reduction.pyx, _default_block_size)
_REDUCTION_BLOCK = 512
DEFAULT_ARCH = "90"


class NvrtcError(TensorRankError, RuntimeError):
    def __init__(self, message: str, log_text: str, source: str) -> None:
        super().__init__(f"{message}\n{log_text}")
        self.log_text = log_text
        self.source = source


def unavailable() -> str | None:
    """None when kernels can be compiled here, else why not."""
    try:
        import cupy  # noqa: F401
        from cupy.cuda import nvrtc
    except Exception as e:  # ImportError, or a CUDA library that fails to load
        return f"cupy is not importable: {type(e).__name__}: {e}"
    try:
        nvrtc.getVersion()
    except Exception as e:
        return f"NVRTC is not loadable (pip install nvidia-cuda-nvrtc): {type(e).__name__}: {e}"
    if "probe" not in _PROBE:
        try:
            compile_code(full_source('#include "cupy/float16.cuh"\n'
                                     'extern "C" __global__ void probe(float16 *x) { x[0] = float16(1.0f); }\n'))
            _PROBE["probe"] = None
        except NvrtcError as e:
            _PROBE["probe"] = f"NVRTC cannot compile CuPy's headers here (CUDA headers missing?): {e.log_text[:300]}"
    return _PROBE["probe"]


_PROBE: dict[str, str | None] = {}


def _cupy() -> tuple[Any, Any, Any, Any, Any]:
    import cupy
    import cupy._core._kernel as kernel
    import cupy._core._reduction as reduction
    import cupy._core.core as core
    from cupy._core import _carray, _scalar

    return cupy, kernel, reduction, core, (_carray, _scalar)


def _dtype(np_name: str) -> Any:
    from tensor_ir.dtypes import CellType

    for ct in CellType:
        if ct.np_name == np_name:
            return ct.np_dtype.type
    raise ValueError(f"unknown cell type {np_name}")


def _param_dtypes(params: str) -> list[Any]:
    """The numpy types of a CuPy parameter list such as 'float32 a0, bool a1'."""
    out = []
    for p in params.split(","):
        words = p.split()
        if words:
            out.append(_dtype(words[-2]))
    return out


def cupy_code(src: KernelSource, ndim: int, out_ndim: int | None = None) -> str:
    """The kernel code CuPy generates for `src` when its array arguments have `ndim`
    dimensions (`out_ndim` for a reduction's output), before CuPy's headers."""
    cupy, kernel, reduction, _core, (carray, scalar) = _cupy()
    in_params = kernel._get_param_info(src.in_params, True)
    out_params = kernel._get_param_info(src.out_params, False)
    in_types = tuple(_param_dtypes(src.in_params))
    out_types = tuple(_param_dtypes(src.out_params))

    def array(t: Any, nd: int, contiguous: bool) -> Any:
        return kernel._ArgInfo(_ARG_NDARRAY, cupy.ndarray, t, nd, contiguous, True)

    def scalar_arg(t: Any) -> Any:
        return kernel._ArgInfo(_ARG_SCALAR, scalar.CScalar, t, 0, True, True)

    in_infos = []
    for p, t in zip(src.in_params.split(","), in_types, strict=True):
        # leaves arrive as broadcast views (not contiguous, unless 0-d); the extra scalar
        # is a scalar
        in_infos.append(scalar_arg(t) if p.split()[-1] == "_tr_nocub" else array(t, ndim, ndim == 0))
    _, _, type_map = kernel._decide_params_type(in_params, out_params, in_types, out_types)
    if src.kind == "elementwise":
        params = in_params + out_params + kernel._get_param_info("CIndexer _ind", False)
        infos = (
            *in_infos,
            *(array(t, ndim, True) for t in out_types),
            kernel._ArgInfo(_ARG_INDEXER, carray.Indexer, None, ndim, True, True),
        )
        code: str = kernel._get_elementwise_kernel_code(
            tuple(infos), type_map, params, src.operation, src.name, src.preamble
        )
        return code
    ond = ndim if out_ndim is None else out_ndim
    # CuPy's reduction template declares its loop counters as IndexT, a typedef that the
    # launch adds to the type map (int32 when the indexers use 32-bit indices, as here)
    type_map = kernel._TypeMap((*type_map._pairs, ("IndexT", np.int32)))
    params = (
        in_params
        + out_params
        + kernel._get_param_info("CIndexer _in_ind, CIndexer _out_ind", False)
        + kernel._get_param_info("int32 _block_stride", True)
    )
    infos = (
        *in_infos,
        *(array(t, ond, True) for t in out_types),
        kernel._ArgInfo(_ARG_INDEXER, carray.Indexer, None, ndim, True, True),
        kernel._ArgInfo(_ARG_INDEXER, carray.Indexer, None, ond, True, True),
        scalar_arg(np.int32),
    )
    code = reduction._ReductionKernel_get_cached_function_code(
        len(in_params), len(out_params), params, tuple(infos), type_map, src.name, _REDUCTION_BLOCK,
        src.reduce_type, src.identity, src.map_expr, src.reduce_expr, src.post_map_expr, src.preamble, (),
    )
    return code


def full_source(code: str) -> str:
    """`code` with the headers CuPy's compile_with_cache puts in front of every kernel."""
    _, _, _, core, _ = _cupy()
    return "".join(f"#include <{h}>\n" for h in core._cupy_header_list) + code


def compiler_options(arch: str = DEFAULT_ARCH, options: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The NVRTC options CuPy passes for a kernel created with `options`
    (core.assemble_cupy_compiler_options, then compiler._compile_with_cache_cuda and
    _compile_using_nvrtc), for a given target."""
    _, _, _, core, _ = _cupy()
    opts: tuple[str, ...] = core.assemble_cupy_compiler_options(tuple(options))
    return (*opts, "-ftz=true", f"-arch=sm_{arch}", "--device-as-default-execution-space")


def compile_code(source: str, arch: str = DEFAULT_ARCH, name: str = "kern.cu",
                 options: tuple[str, ...] = NVRTC_OPTIONS) -> bytes:
    """Compile one translation unit to a cubin with CuPy's options and a kernel's own
    `options` (CuPy appends those first); NvrtcError carries NVRTC's log."""
    from cupy.cuda import compiler

    prog = compiler._NVRTCProgram(source, name, method="cubin")
    try:
        cubin, _ = prog.compile(compiler_options(arch, options))
    except compiler.CompileException as e:
        raise NvrtcError(f"NVRTC rejected {name}", e.get_message(), source) from None
    return bytes(cubin)


@dataclass
class CompileReport:
    kernels: int = 0  # distinct kernel codes compiled
    units: int = 0  # NVRTC translation units
    failures: list[tuple[str, str]] = field(default_factory=list)  # (kernel name, NVRTC log)


_HEADER_RE = re.compile(r'^#include "cupy/(?:b?float16)\.cuh"$', re.M)
_MACROS = ("REDUCE", "POST_MAP", "_REDUCE")


def _batch_unit(kind: str, codes: Sequence[str], headers: tuple[str, ...]) -> str:
    """Several kernels in one translation unit, each exactly as CuPy generates it.

    Elementwise kernels are concatenated as they are. CuPy's reduction template defines
    file-scope macros and a `_type_reduce` typedef, so each reduction sits in its own
    namespace with its macros undefined after it; the half-type headers and our helpers
    are included once in front, outside the namespaces (inside, their include guards
    make them no-ops). Kernels share a unit only with kernels that include the same
    half-type headers, so a kernel that forgot one still fails.
    """
    front = "".join(f"{h}\n" for h in headers)
    if kind == "elementwise":
        return front + "\n".join(codes)
    parts = [front, HELPERS]
    for k, code in enumerate(codes):
        parts.append(f"namespace tr_unit_{k} {{\n{code}\n}}\n")
        parts.extend(f"#undef {m}\n" for m in _MACROS)
    return "".join(parts)


def _compile_chunk(kind: str, headers: tuple[str, ...], options: tuple[str, ...], chunk: list[tuple[str, str]],
                   arch: str, cache_dir: str | None) -> tuple[int, list[tuple[str, str]]]:
    """Compile one unit (or its kernels one by one if it fails): (units used, failures)."""
    if len(chunk) == 1:
        source = full_source(chunk[0][1])
    else:
        source = full_source(_batch_unit(kind, [code for _, code in chunk], headers))
    stamp = None
    if cache_dir is not None:
        key = "\0".join((source, arch, *compiler_options(arch, options), repr(_nvrtc_version())))
        stamp = Path(cache_dir) / hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        if stamp.exists():
            return 0, []
    try:
        compile_code(source, arch, name=f"{chunk[0][0]}.cu", options=options)
        if stamp is not None:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(chunk[0][0])
        return 1, []
    except NvrtcError as e:
        if len(chunk) == 1:
            return 1, [(chunk[0][0], e.log_text)]
    log.info("a unit of %d %s kernels failed; compiling them one by one", len(chunk), kind)
    units, failures = 1, []
    for item in chunk:
        u, f = _compile_chunk(kind, headers, options, [item], arch, None)
        units += u
        failures += f
    return units, failures


def _nvrtc_version() -> tuple[int, int]:
    from cupy.cuda import nvrtc

    major, minor = nvrtc.getVersion()
    return int(major), int(minor)


def compile_kernels(
    kernels: Iterable[tuple[KernelSource, int, int | None]],
    arch: str = DEFAULT_ARCH,
    batch: int = 48,
    workers: int = 1,
    cache_dir: str | None = None,
    all_ranks: bool = False,
) -> CompileReport:
    """Compile each distinct kernel (at the ranks given) as CuPy would and collect failures.

    With batch > 1, kernels share translation units (see _batch_unit); a unit that fails
    is compiled again kernel by kernel, so failures name their kernels. `workers` > 1
    compiles units in that many processes. With `cache_dir`, a unit that compiled before
    with the same source, options and NVRTC is not compiled again (success is a pure
    function of those). Each kernel is compiled at one of the ranks it is launched with
    (and at rank 0 if it is launched with that), unless `all_ranks`."""
    report = CompileReport()
    groups: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[tuple[str, str]]] = {}
    seen: set[str] = set()
    ranks_seen: set[tuple[str, bool, bool]] = set()
    for src, ndim, out_ndim in kernels:
        if not all_ranks:
            # the rank only changes template arguments of CuPy's CArray/CIndexer, except
            # that 0-d arrays have their own specialisation
            key = (src.name, ndim == 0, out_ndim == 0)
            if key in ranks_seen:
                continue
            ranks_seen.add(key)
        code = cupy_code(src, ndim, out_ndim)
        if code in seen:
            continue
        seen.add(code)
        headers = tuple(sorted(set(_HEADER_RE.findall(code))))
        groups.setdefault((src.kind, headers, src.options), []).append((src.name, code))
    report.kernels = len(seen)
    size = max(batch, 1)
    jobs: list[tuple[str, tuple[str, ...], tuple[str, ...], list[tuple[str, str]]]] = []
    for (kind, headers, options), items in groups.items():
        # one kernel can appear at several ranks under one name: a unit holds each name once
        chunks: list[list[tuple[str, str]]] = []
        for item in items:
            for chunk in chunks:
                if len(chunk) < size and all(item[0] != other for other, _ in chunk):
                    chunk.append(item)
                    break
            else:
                chunks.append([item])
        jobs += [(kind, headers, options, chunk) for chunk in chunks]
    if workers > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(_compile_chunk, *zip(*jobs, strict=True), [arch] * len(jobs),
                                    [cache_dir] * len(jobs)))
    else:
        results = [_compile_chunk(kind, headers, options, chunk, arch, cache_dir)
                   for kind, headers, options, chunk in jobs]
    for units, failures in results:
        report.units += units
        report.failures += failures
    return report


def program_kernels(plan: Any) -> list[tuple[KernelSource, int, int | None]]:
    """The kernels of a fusion plan with the ranks they are launched with."""
    out: list[tuple[KernelSource, int, int | None]] = []
    for g in plan.groups:
        src = render_group(g)
        out.append((src, *kernel_ranks(src, len(g.space), g.root.rank, g.per_document)))
    return out


def kernel_ranks(src: KernelSource, space_rank: int, out_rank: int, per_document: bool) -> tuple[int, int | None]:
    """The array ranks a kernel is launched with (before CuPy merges contiguous axes)."""
    lead = 1 if per_document else 0
    nd = space_rank + lead
    return nd, (out_rank + lead if src.kind == "reduction" else None)


def describe_failures(failures: Sequence[tuple[str, str]]) -> str:
    return "\n\n".join(f"{name}:\n{text}" for name, text in failures)
