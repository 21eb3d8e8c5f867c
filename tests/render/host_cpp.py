"""Run the C++ that gpu_engine.render writes on the host, with g++, so its arithmetic can
be checked against the reference semantics on a machine without a GPU.

The rendered device functions use only CUDA's math library, CuPy's float16/bfloat16
classes and a few CUDA intrinsics; this module supplies host stand-ins for those (float16
through GCC's _Float16, bfloat16 with round-to-nearest-even by hand, as CUDA's
conversions round) and wraps each kernel's `<name>_map` in a C loop over flat arrays.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpu_engine.expressions import C_TYPES
from gpu_engine.render import HELPERS, KernelSource

PRELUDE = r"""
#include <math.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#define __device__
#define __forceinline__ inline
using std::isinf;
using std::isnan;
#define CUDART_INF_F std::numeric_limits<float>::infinity()
#define CUDART_NAN_F std::numeric_limits<float>::quiet_NaN()
#define CUDART_INF std::numeric_limits<double>::infinity()
#define CUDART_NAN std::numeric_limits<double>::quiet_NaN()
struct half { _Float16 v; };
inline half __double2half(double x) { half h; h.v = (_Float16)x; return h; }
struct float16 {
  _Float16 v;
  float16() : v(0) {}
  float16(float f) : v((_Float16)f) {}
  explicit float16(double d) : v((_Float16)(float)d) {}
  explicit float16(const half &h) : v(h.v) {}
  operator float() const { return (float)v; }
};
struct bfloat16 {
  uint16_t bits;
  bfloat16() : bits(0) {}
  bfloat16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) { bits = (uint16_t)((u >> 16) | 0x40u); return; }
    u += 0x7fffu + ((u >> 16) & 1u);
    bits = (uint16_t)(u >> 16);
  }
  operator float() const {
    uint32_t u = (uint32_t)bits << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};
"""


def available() -> str | None:
    if shutil.which("g++") is None:
        return "g++ is not installed"
    return None


def _host_body(src: KernelSource) -> str:
    return re.sub(r'^#include "cupy/.*"\n', "", src.body, flags=re.M)


def _wrapper(k: int, src: KernelSource) -> str:
    n = len(src.leaf_types)
    params = "".join(f"const {C_TYPES[t]} *a{i}, " for i, t in enumerate(src.leaf_types))
    args = ", ".join(f"a{i}[i * m + j]" for i in range(n))
    head = f'extern "C" void run_{k}({params}{C_TYPES[src.out_type]} *out, long rows, long m) {{\n'
    if src.kind == "elementwise":
        body = f"const long j = 0; out[i] = {src.name}_map({args});"
        return head + f"  for (long i = 0; i < rows; ++i) {{ {body} }}\n}}\n"
    # a reduction over each row of m values, with the kernel's reduce expression and
    # identity in place of CuPy's block-parallel template
    return head + (
        f"  typedef {src.reduce_type} RT;  // as CuPy's _type_reduce\n"
        f"  auto reduce = [](const RT &a, const RT &b) -> RT {{ return ({src.reduce_expr}); }};\n"
        f"  for (long i = 0; i < rows; ++i) {{\n"
        f"    RT s = RT({src.identity});\n"
        f"    for (long j = 0; j < m; ++j) s = reduce(s, static_cast<RT>({src.name}_map({args})));\n"
        f"    out[i] = {src.name}_post(s);\n  }}\n}}\n"
    )


class HostKernels:
    """Rendered kernels compiled into one shared library on the host."""

    def __init__(self, sources: Sequence[KernelSource]) -> None:
        self.sources = list(sources)
        seen: set[str] = set()
        parts = [PRELUDE, HELPERS]
        for src in self.sources:
            if src.name not in seen:
                seen.add(src.name)
                parts.append(_host_body(src))
        for k, src in enumerate(self.sources):
            parts.append(_wrapper(k, src))
        self._dir = tempfile.TemporaryDirectory(prefix="tensorrank-host-")
        cpp = Path(self._dir.name) / "kernels.cpp"
        lib = Path(self._dir.name) / "kernels.so"
        cpp.write_text("".join(parts))
        proc = subprocess.run(
            ["g++", "-std=c++17", "-O0", "-fno-fast-math", "-ffp-contract=off", "-shared", "-fPIC",
             "-o", str(lib), str(cpp)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"g++ failed:\n{proc.stderr[:20000]}")
        self._lib = ctypes.CDLL(str(lib))

    def run(self, k: int, args: Sequence[np.ndarray[Any, Any]], m: int = 1) -> np.ndarray[Any, Any]:
        """Kernel `k` over flat operands of rows * m cells (m: cells reduced into one)."""
        src = self.sources[k]
        flat = [np.ascontiguousarray(a, dtype=t.np_dtype).reshape(-1) for a, t in zip(args, src.leaf_types)]
        rows = flat[0].size // m if flat else 0
        out = np.empty(rows, dtype=src.out_type.np_dtype)
        fn = getattr(self._lib, f"run_{k}")
        fn(*(ctypes.c_void_p(a.ctypes.data) for a in flat), ctypes.c_void_p(out.ctypes.data),
           ctypes.c_long(rows), ctypes.c_long(m))
        return out

    def close(self) -> None:
        self._dir.cleanup()
