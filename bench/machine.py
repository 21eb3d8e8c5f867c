"""What a benchmark ran on: CPU model and the SIMD flags that decide kernel choice, the BLAS
library and the kernel family it picked (threadpoolctl), versions, and the environment
variables that override that choice.

OPENBLAS_CORETYPE (with OPENBLAS_L2_SIZE) forces OpenBLAS onto one kernel family whatever
the CPU: some machines set it to dodge bugs of old OpenBLAS builds, which puts numpy on
Haswell kernels on an AVX-512 host while onnxruntime's MLAS picks its own. A user's machine
has neither, so benchmarks are run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`, and
every report says which kernels it got.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

# the flags that change which kernels BLAS, MLAS and numpy's SIMD loops run
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile")
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                  "MKL_ENABLE_INSTRUCTIONS")


def cpu() -> tuple[str, list[str]]:
    """The CPU's model name and which of SIMD_FLAGS it has (Linux; the platform's name elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model or platform.machine(), [f for f in SIMD_FLAGS if f in flags]


def blas() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process and the kernel family each chose."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl is not installed"}]
    return [{k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "prefix")}
            for info in threadpool_info() if info.get("user_api") == "blas"]


def describe() -> dict[str, Any]:
    """Everything above, for a benchmark's JSON and its printed header."""
    import onnx

    model, flags = cpu()
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": model, "simd": flags, "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__, "onnx": onnx.__version__,
        "blas": blas(), "overrides": {k: os.environ[k] for k in BLAS_OVERRIDES if k in os.environ},
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def summary(info: dict[str, Any]) -> str:
    """One paragraph for a report: machine, kernels, versions, and a warning on overrides."""
    kernels = "; ".join(f"{b.get('internal_api')} {b.get('version')} {b.get('architecture')} kernels, "
                        f"{b.get('num_threads')} threads" for b in info["blas"]) or "no BLAS found"
    text = (f"{info['cpu']} ({info['usable_cpus']} of {info['cpus']} CPUs usable; "
            f"{' '.join(info['simd']) or 'no SIMD flags read'}); BLAS: {kernels}; Python {info['python']}, "
            f"numpy {info['numpy']}, onnx {info['onnx']}, onnxruntime {info['onnxruntime']}; {info['date']}")
    if info["overrides"]:
        text += (f". WARNING: {', '.join(f'{k}={v}' for k, v in info['overrides'].items())} set: BLAS kernels are "
                 "forced; run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` for what users get")
    return text
