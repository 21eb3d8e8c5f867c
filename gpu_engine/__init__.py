"""The CuPy backend: programs lowered to fused kernels over device-resident shards.

- backend.py: CupyBackend / CupyProgram: the compiled program, its steps and where each runs
- device.py: the CuPy device (kernel cache and launches, the cell-type probe, matmul settings)
- emulation.py: HostEmulation, numpy in place of the device, for tests without a GPU
- render.py: fused groups -> CuPy ElementwiseKernel / ReductionKernel source strings (no cupy)
- expressions.py: the C++ expression of each node's arithmetic, and what can be fused
- helpers.cuh: the device functions those expressions call, the start of every preamble
- nvrtc_check.py: compiles rendered kernels with NVRTC exactly as CuPy would, without a GPU

Structural and indexing steps and matmul run tensor_ir.reference's own portable kernels
with xp=cupy. On a machine with a GPU, `bash bench/gpu_check.sh` runs the GPU tests, the
conformance suite and the benchmark. TENSORRANK_TF32=1 lets float32 matmuls use TF32 (off
by default).
"""
