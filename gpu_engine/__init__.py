"""The CuPy backend: programs lowered to fused kernels over device-resident shards.

- render.py: fused groups -> CuPy ElementwiseKernel / ReductionKernel source strings (no cupy)
- backend.py: CupyBackend / CupyProgram (cupy), the device top-k, the host emulation for tests
- nvrtc_check.py: compiles rendered kernels with NVRTC exactly as CuPy would, without a GPU

On a machine with a GPU, `bash bench/gpu_check.sh` runs the GPU tests, the conformance
suite and the benchmark. TENSORRANK_TF32=1 lets float32 matmuls use TF32 (off by default).
"""
