"""The CuPy backend: programs lowered to fused kernels over device-resident shards."""
