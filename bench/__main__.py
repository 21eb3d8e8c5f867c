"""`python -m bench`: tensorrank against onnxruntime on the benchmark models (bench.compare).

The other benchmarks run as their own modules: bench.feed_bench, bench.gpu_bench,
bench.rank_latency, bench.peak_memory, bench.mapped_bench.
"""

from __future__ import annotations

import sys

from bench.compare import main

sys.exit(main(sys.argv[1:]))
