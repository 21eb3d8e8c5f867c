#!/usr/bin/env bash
# The server on a GPU: `--device auto` picks it, NVML gauges appear in the metrics, and the
# Rank latency benchmark (bench/rank_latency.py) over gRPC with the CuPy backend.
#
#   bash bench/gpu_serve_check.sh      (OUT=dir keeps gpu_serve.json and gpu_serve.log there)
#
# Needs Python with cupy, numpy, onnx, grpcio, grpcio-health-checking, grpcio-reflection,
# protobuf, prometheus-client and nvidia-ml-py; the repository runs from source (PYTHONPATH=.).
# About 2 minutes.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
LOGDIR=${OUT:-$(mktemp -d -t tensorrank-gpu-serve.XXXXXX)}
mkdir -p "$LOGDIR"
{
    nvidia-smi -L || true
    timeout 60 "$PY" - <<'EOF'
import grpc, google.protobuf, numpy, cupy
print("grpcio", grpc.__version__, "protobuf", google.protobuf.__version__, "numpy", numpy.__version__,
      "cupy", cupy.__version__)
from prometheus_client import generate_latest
from server.cli_serve import choose_backend
from server.metrics import Metrics
m = Metrics()
backend, device = choose_backend("auto", m)
print("--device auto:", device.name, "|", device.reason)
print("NVML gauges:", m.watch_gpu(0))
for line in generate_latest(m.registry).decode().splitlines():
    if line.startswith(("tensorrank_gpu_", "tensorrank_device")):
        print("  ", line)
EOF
    timeout 180 "$PY" -m bench.rank_latency --device gpu --docs 10000,100000 --clients 1,8 --seconds 6 \
        --min-requests 500 --repeats 30 --metrics-port 9464 --json "$LOGDIR/gpu_serve.json"
} 2>&1 | tee "$LOGDIR/gpu_serve.log"
