"""Fill CuPy's kernel cache for a GPU conformance run, compiling in several processes.

CuPy compiles a kernel with NVRTC the first time it is launched (a few tenths of a second
each) and keeps the binary under ~/.cupy/kernel_cache, keyed by its exact source. The
conformance suite's programs launch several hundred distinct kernels: run once in k
shards at the same time, the suite compiles them k times faster, and the run that
records the results (`tensorrank conformance --backend gpu`) then finds them all cached.

Usage: python -m bench.gpu_warm [--shards 8]      (case failures do not make it fail)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import zlib


def run_shard(shard: int, shards: int) -> int:
    from gpu_engine.backend import CupyBackend
    from tensor_ir.conformance import run_conformance

    t0 = time.perf_counter()
    report = run_conformance(CupyBackend(), select=lambda name: zlib.crc32(name.encode()) % shards == shard)
    print(f"shard {shard}/{shards}: {report.summary_line()} in {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shards", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--shard", type=int, help="run this shard only (used by the parent process)")
    args = p.parse_args(argv)
    if args.shard is not None:
        return run_shard(args.shard, args.shards)
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-m", "bench.gpu_warm", "--shards", str(args.shards), "--shard", str(i)])
        for i in range(args.shards)
    ]
    codes = [proc.wait() for proc in procs]
    print(f"warmed CuPy's kernel cache with {args.shards} shards in {time.perf_counter() - t0:.0f}s; "
          f"shard exit codes {codes}")
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
