"""The CuPy device: kernels and arrays on the current CUDA device, the cell types it can
compute with, and how float32 matmuls run there.

Kernels are cached for the process by their source, whose name is a digest of the group's
code; CuPy caches each compiled binary per argument types and ranks (in memory and under
~/.cupy/kernel_cache), so one program group, cell types and rank compile once.

Matmul: TF32 tensor cores are off unless the environment sets TENSORRANK_TF32=1 (they round
float32 operands to 10 mantissa bits, which the reference does not).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from gpu_engine.expressions import GPU_CELL_TYPES
from gpu_engine.render import KernelSource
from tensor_ir.dtypes import CellType
from tensor_ir.passes.fusion import FusedGroup

log = logging.getLogger(__name__)

TF32_ENV = "TENSORRANK_TF32"

# kernel objects for the process, shared by every program (a name is a digest of the code)
_KERNELS: dict[tuple[str, str, str], Any] = {}


class CupyDevice:
    """Kernels and arrays on the current CUDA device."""

    def __init__(self) -> None:
        import cupy

        self.xp = cupy
        self.cell_types = _cupy_cell_types(cupy)
        _configure_matmul(cupy)

    def is_device_array(self, value: Any) -> bool:
        return isinstance(value, self.xp.ndarray)

    def asarray(self, value: Any) -> Any:
        return self.xp.asarray(value)

    def to_host(self, value: Any) -> np.ndarray[Any, Any]:
        if isinstance(value, self.xp.ndarray):
            return np.asarray(self.xp.asnumpy(value))
        return np.asarray(value)

    def kernel(self, src: KernelSource) -> Any:
        key = (src.kind, src.name, src.in_params)
        k = _KERNELS.get(key)
        if k is None:
            if src.kind == "elementwise":
                k = self.xp.ElementwiseKernel(**src.cupy_args())
            else:
                k = self.xp.ReductionKernel(**src.cupy_args())
            _KERNELS[key] = k
        return k

    def run_group(self, group: FusedGroup, src: KernelSource, leaves: list[Any], space: tuple[int, ...],
                  axes: tuple[int, ...]) -> Any:
        k = self.kernel(src)
        if group.reduce is None:
            out = self.xp.empty(space, dtype=group.root.dtype.np_dtype)
            k(*leaves, out)
            return out
        extra = [np.int32(0)] if src.extra_scalar else []
        return k(*leaves, *extra, axis=axes, keepdims=bool(group.reduce.attrs["keepdims"]))


_PROBED: dict[str, frozenset[CellType]] = {}


def _cupy_cell_types(cupy: Any) -> frozenset[CellType]:
    """The cell types this CuPy holds and computes with: bfloat16 needs a CuPy that knows
    ml_dtypes' bfloat16 and CUDA's cuda_bf16.h; without them bfloat16 runs on the host."""
    if "types" not in _PROBED:
        types = set(GPU_CELL_TYPES)
        try:
            probe = cupy.asarray(np.array([1.5, -2.0], dtype=CellType.BFLOAT16.np_dtype))
            if probe.astype(np.float32).get().tolist() != [1.5, -2.0]:
                raise ValueError("bfloat16 values changed on the device")
        except Exception as e:  # any failure means: not on this device
            log.warning("bfloat16 runs on the host: CuPy cannot compute with it here (%s: %s)", type(e).__name__, e)
            types.discard(CellType.BFLOAT16)
        _PROBED["types"] = frozenset(types)
    return _PROBED["types"]


def _configure_matmul(cupy: Any) -> None:
    from cupy._core import _routines_linalg as linalg

    tf32 = os.environ.get(TF32_ENV, "0") == "1"
    compute = linalg.COMPUTE_TYPE_TF32 if tf32 else linalg.COMPUTE_TYPE_DEFAULT
    # process-wide in CuPy; set explicitly so a stray CUPY_TF32=1 cannot turn TF32 on
    linalg.set_compute_type(np.float32, compute)
    log.info("float32 matmul: %s (%s=%s)", "TF32" if tf32 else "full float32", TF32_ENV, "1" if tf32 else "0")
