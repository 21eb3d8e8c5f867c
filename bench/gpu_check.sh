#!/usr/bin/env bash
# The GPU check: one command for a machine with a CUDA GPU and no network.
#
#   bash bench/gpu_check.sh            (from anywhere; OUT=dir keeps the logs there)
#
# Needs Python (python3, or $PYTHON) with cupy-cuda13x, numpy, onnx and pytest, and torch
# for the benchmark's baseline; the repository runs from source (PYTHONPATH=.), nothing is
# installed. Stages:
#   env          versions, the device, the cell types CuPy computes with here
#   render       tests/render: golden kernel sources, NVRTC compilation of every kernel of
#                the conformance programs, the kernels' arithmetic run on the host (CPU only:
#                runs in the background while the GPU stages run)
#   warm         bench/gpu_warm.py: the conformance suite in 8 processes at once, so CuPy's
#                kernel cache holds its kernels (background, beside `backends`)
#   backends     tests/backends on numpy, the host emulation and CuPy (the GPU), with the
#                forest kernel's, the nearest-neighbour features' and Vespa's functions' tests
#   conformance  `python -m server.cli conformance --backend gpu --json $OUT/conformance_gpu.json`
#   bench        bench/gpu_bench.py: CupyBackend vs PyTorch eager at 1,000,000 documents
# A failing stage does not stop the others; the summary table comes last, in summary.txt
# too. Exactly 8 files are written under $OUT (the most the device tool returns).
# Budget: about 4 minutes, under 6 with every stage at its limit.
set -u -o pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TENSORRANK_NVRTC_CACHE=0
LOGDIR=${OUT:-$(mktemp -d -t tensorrank-gpu-check.XXXXXX)}
SCRATCH=$(mktemp -d -t tensorrank-gpu-scratch.XXXXXX)
mkdir -p "$LOGDIR"
T0=$(date +%s)

declare -a NAMES=()
declare -A RC=() SECS=()

finish_stage() {  # name rc seconds
    NAMES+=("$1")
    RC[$1]=$2
    SECS[$1]=$3
}

run_stage() {  # name timeout_seconds logfile command...
    local name=$1 limit=$2 log=$3
    shift 3
    local start rc
    start=$(date +%s)
    echo
    echo "=== [$name] $* (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    finish_stage "$name" "$rc" $(( $(date +%s) - start ))
}

start_background() {  # name timeout_seconds logfile command...
    local name=$1 limit=$2 log=$3
    shift 3
    echo
    echo "=== [$name] $* (background, limit ${limit}s, log $log)"
    date +%s >"$SCRATCH/$name.start"
    ( timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1; echo $? >"$SCRATCH/$name.rc" ) &
    echo $! >"$SCRATCH/$name.pid"
}

wait_background() {  # name logfile
    local name=$1 log=$2 rc
    wait "$(cat "$SCRATCH/$name.pid")"
    rc=$(cat "$SCRATCH/$name.rc" 2>/dev/null || echo 125)
    finish_stage "$name" "$rc" $(( $(date +%s) - $(cat "$SCRATCH/$name.start") ))
    echo
    echo "=== [$name] finished: rc=$rc"
    tail -n 15 "$log"
}

# --- env (its log goes into summary.txt)
run_stage env 30 "$SCRATCH/env.log" bash -c "
    nvidia-smi -L || true
    \"$PY\" - <<'EOF'
import platform, shutil
import numpy, onnx
print('python', platform.python_version(), 'numpy', numpy.__version__, 'onnx', onnx.__version__)
import cupy
from cupy.cuda import nvrtc
print('cupy', cupy.__version__, 'nvrtc', nvrtc.getVersion(), 'cuda runtime', cupy.cuda.runtime.runtimeGetVersion())
try:
    n = cupy.cuda.runtime.getDeviceCount()
except Exception as e:
    n = 0
    print('no CUDA device:', type(e).__name__, e)
print('devices', n)
for i in range(n):
    p = cupy.cuda.runtime.getDeviceProperties(i)
    name = p['name'].decode() if isinstance(p['name'], bytes) else p['name']
    print(' ', i, name, 'sm_%d%d' % (p['major'], p['minor']))
try:
    import torch
    print('torch', torch.__version__, 'cuda', torch.cuda.is_available())
except ImportError:
    print('torch: not installed')
print('g++:', shutil.which('g++'))
if n:
    from gpu_engine.backend import CupyBackend
    print('gpu cell types:', sorted(t.np_name for t in CupyBackend()._device.cell_types))
EOF"

# --- CPU-side and cache-filling stages in the background
start_background render 250 "$LOGDIR/render.log" \
    "$PY" -m pytest tests/render -p no:cacheprovider -s
start_background warm 150 "$LOGDIR/warm.log" "$PY" -m bench.gpu_warm --shards 8

# --- GPU stages
run_stage backends 150 "$LOGDIR/backends.log" "$PY" -m pytest tests/backends tests/trees/test_gpu_kernel.py \
    tests/expr/test_nearest_neighbor.py tests/expr/test_vespa_functions.py tests/expr/test_mapped_joins.py \
    tests/expr/test_mapped_nearest_neighbor.py -p no:cacheprovider
wait_background warm "$LOGDIR/warm.log"
run_stage conformance 110 "$LOGDIR/conformance.log" \
    "$PY" -m server.cli conformance --backend gpu --json "$LOGDIR/conformance_gpu.json" -v
wait_background render "$LOGDIR/render.log"
run_stage bench 90 "$LOGDIR/bench.log" "$PY" -m bench.gpu_bench --json "$LOGDIR/gpu_bench.json"

# --- summary
{
    echo "================ environment"
    cat "$SCRATCH/env.log"
    echo
    echo "================ GPU check summary ($(( $(date +%s) - T0 ))s in all; logs in $LOGDIR)"
    printf '%-12s %-10s %6s  %s\n' stage status secs "last words"
    for name in "${NAMES[@]}"; do
        rc=${RC[$name]}
        case $rc in
            0) status=ok ;;
            124|137) status=TIMEOUT ;;
            *) status="FAIL($rc)" ;;
        esac
        log="$LOGDIR/$name.log"
        [ "$name" = env ] && log="$SCRATCH/env.log"
        last=""
        if [ -f "$log" ]; then
            case $name in
                backends|render) last=$(grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -n 1) ;;
                conformance) last=$(grep -E '^conformance:' "$log" | tail -n 1) ;;
                *) last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1) ;;
            esac
        fi
        printf '%-12s %-10s %6s  %s\n' "$name" "$status" "${SECS[$name]}" "${last:0:110}"
    done
    if [ -f "$LOGDIR/bench.log" ]; then
        echo
        grep -A 6 '^device:' "$LOGDIR/bench.log" || true
    fi
} | tee "$LOGDIR/summary.txt"
rm -rf "$SCRATCH"

for name in "${NAMES[@]}"; do
    [ "${RC[$name]}" = 0 ] || exit 1
done
exit 0
