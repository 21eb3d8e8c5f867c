"""`tensorrank serve APP_DIR`: the gRPC server, and the composition root that picks a backend.

Start-up: pick the device (`--device gpu` without a usable GPU stops here, saying why),
bind and start the gRPC server with its health reporting NOT_SERVING (RPCs answer
UNAVAILABLE), print `listening on HOST:PORT`, then load the application package and
rebuild the shards from the data directory, compile every rank profile, and report
SERVING. SIGTERM or SIGINT: health NOT_SERVING, new RPCs UNAVAILABLE, in-flight ones get
--drain-seconds to finish, the store closes and the process exits 0.

Every flag has an environment variable (TENSORRANK_PORT for --port ...); a flag given on
the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.engine import DeviceInfo
    from server.metrics import Metrics
    from tensor_ir.backend import Backend

log = logging.getLogger("server.serve")

SERVICE_NAME = "tensorrank.v1.Ranking"


def _env(name: str, default: Any, kind: Callable[[str], Any] = str) -> Any:
    raw = os.environ.get(f"TENSORRANK_{name}")
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"tensorrank serve: TENSORRANK_{name}={raw!r} is not a valid {kind.__name__}") from None


def register(sub: Any) -> None:
    """Add the `serve` command to the CLI's subparsers."""
    s = sub.add_parser("serve", help="serve an application package over gRPC",
                       description="Serve an application package over gRPC (tensorrank.v1.Ranking, grpc.health.v1, "
                                   "server reflection) with Prometheus metrics. Each flag has an environment "
                                   "variable: TENSORRANK_<FLAG> (e.g. TENSORRANK_PORT).")
    s.add_argument("app", nargs="?" if os.environ.get("TENSORRANK_APP") else None, default=_env("APP", None),
                   metavar="APP_DIR", help="application package directory [TENSORRANK_APP]")
    s.add_argument("--data", default=_env("DATA", "tensorrank-data"),
                   help="data directory of the document store, created if missing (default: ./tensorrank-data) "
                        "[TENSORRANK_DATA]")
    s.add_argument("--host", default=_env("HOST", "127.0.0.1"),
                   help="address to bind; 0.0.0.0 or :: to accept connections from other machines "
                        "(default: 127.0.0.1) [TENSORRANK_HOST]")
    s.add_argument("--port", type=int, default=_env("PORT", 50051, int),
                   help="gRPC port; 0 picks a free one (default: 50051) [TENSORRANK_PORT]")
    s.add_argument("--device", choices=["auto", "cpu", "gpu"], default=_env("DEVICE", "auto"),
                   help="auto: the GPU when CuPy sees one, else the CPU (logged, and counted in "
                        "tensorrank_device_fallbacks_total) (default: auto) [TENSORRANK_DEVICE]")
    s.add_argument("--metrics-port", type=int, default=_env("METRICS_PORT", 9464, int),
                   help="Prometheus /metrics port on the same host; 0 turns metrics off (default: 9464) "
                        "[TENSORRANK_METRICS_PORT]")
    s.add_argument("--max-message-mb", type=float, default=_env("MAX_MESSAGE_MB", 64.0, float),
                   help="largest gRPC message received or sent, in MiB (default: 64) [TENSORRANK_MAX_MESSAGE_MB]")
    s.add_argument("--max-hits", type=int, default=_env("MAX_HITS", 1000, int),
                   help="largest `hits` a Rank request may ask for (default: 1000) [TENSORRANK_MAX_HITS]")
    s.add_argument("--max-concurrent-scoring", type=int, default=_env("MAX_CONCURRENT_SCORING", 0, int),
                   help="Rank requests scored at once; the others wait their turn in arrival order (default 0: "
                        "2 on the CPU, 1 on the GPU) ""[TENSORRANK_MAX_CONCURRENT_SCORING]")
    s.add_argument("--drain-seconds", type=float, default=_env("DRAIN_SECONDS", 30.0, float),
                   help="on SIGTERM, how long in-flight requests may take to finish (default: 30) "
                        "[TENSORRANK_DRAIN_SECONDS]")
    s.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    problems = []
    if args.app is None:
        problems.append("APP_DIR is required (or set TENSORRANK_APP)")
    if not 0 <= args.port <= 65535:
        problems.append(f"--port {args.port} is not a port number (0 picks a free one)")
    if not 0 <= args.metrics_port <= 65535:
        problems.append(f"--metrics-port {args.metrics_port} is not a port number (0 turns metrics off)")
    if not args.max_message_mb > 0:
        problems.append(f"--max-message-mb must be positive, got {args.max_message_mb}")
    if args.max_hits < 1:
        problems.append(f"--max-hits must be at least 1, got {args.max_hits}")
    if args.max_concurrent_scoring < 0:
        problems.append(f"--max-concurrent-scoring must be 0 (automatic) or more, got {args.max_concurrent_scoring}")
    if not args.drain_seconds >= 0:
        problems.append(f"--drain-seconds must be 0 or more, got {args.drain_seconds}")
    if problems:
        for p in problems:
            print(f"tensorrank serve: {p}", file=sys.stderr)
        return 2
    # the serve command's own progress lines are worth seeing at the default log level
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
        if not log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            log.addHandler(handler)
            log.propagate = False
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:  # a second Ctrl-C while draining
        return 130


# ---------------------------------------------------------------------- the device


def choose_backend(device: str, metrics: Metrics) -> tuple[Backend, DeviceInfo]:
    """The backend for `--device`; raises SystemExit for `gpu` without a usable GPU."""
    from server.engine import DeviceInfo

    if device == "cpu":
        from cpu_fallback import NumpyBackend

        metrics.device.labels("cpu", "--device cpu").set(1)
        return NumpyBackend(), DeviceInfo("cpu", "--device cpu")
    gpu, why, label = _gpu_backend()
    if gpu is not None:
        metrics.device.labels("gpu", why).set(1)
        log.info("scoring on the GPU: %s", why)
        return gpu, DeviceInfo("gpu", why)
    if device == "gpu":
        raise SystemExit(f"tensorrank serve: --device gpu, but no GPU is usable: {why}. "
                         "Use --device auto to fall back to the CPU, or --device cpu.")
    from cpu_fallback import NumpyBackend

    reason = f"--device auto found no usable GPU: {why}"
    log.warning("scoring on the CPU: %s", reason)
    metrics.device_fallbacks.labels(label).inc()
    metrics.device.labels("cpu", reason).set(1)
    return NumpyBackend(), DeviceInfo("cpu", reason)


def _gpu_backend() -> tuple[Backend | None, str, str]:
    """(the GPU backend or None, why, a short label of the reason for the metrics)."""
    try:
        import cupy
    except ImportError as e:
        return None, f"CuPy is not installed ({e}); pip install 'tensorrank[gpu]'", "cupy_missing"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CuPy raises its own CUDA error types; any of them means no GPU
        return None, f"CUDA reports no usable device ({type(e).__name__}: {e})", "cuda_error"
    if count == 0:
        return None, "CUDA sees no device", "no_device"
    try:
        from gpu_engine.backend import CupyBackend

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        backend = CupyBackend()
        backend.to_host(backend.asarray([1.0]))  # a first allocation and copy, so a broken device shows now
    except Exception as e:  # as above: a device CuPy cannot use is a reason to fall back, given as the reason
        return None, f"the CUDA device could not be used ({type(e).__name__}: {e})", "cuda_error"
    return backend, f"CuPy sees {count} CUDA device(s); scoring on device 0, {name}", ""


# ---------------------------------------------------------------------- the server


async def _serve(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_health.v1._async import HealthServicer
    from grpc_reflection.v1alpha import reflection

    from proto.tensorrank.v1 import ranking_pb2_grpc
    from server.application.errors import SchemaError
    from server.engine import Engine
    from server.metrics import Metrics
    from server.service import RankingService, ServerState
    from server.store import StoreError
    from tensor_ir.expr.errors import RankingError
    from tensor_ir.onnx_import import ModelImportError

    metrics = Metrics()
    backend, device = choose_backend(args.device, metrics)
    limit = int(args.max_message_mb * 2**20)
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.so_reuseport", 0),  # a port in use is an error, never shared with another server
    ])
    # numpy's BLAS already spreads one scoring over the cores, and the rest of it holds the GIL, so
    # more at once only thrash caches: on 2 cores, 8 at once gave 56 requests/s and a p99 of 242 ms
    # at 10,000 documents, against 66 and 152 ms with 2 and 68 and 138 ms with 1. Two rather than one
    # keeps a slow query from holding up every other. On the GPU a request's Python dispatch is the
    # bottleneck: 438 requests/s with 1 at once, 404 with 2 (BENCHMARKS.md, "Rank latency over gRPC").
    scoring = args.max_concurrent_scoring or (1 if device.name == "gpu" else min(2, len(os.sched_getaffinity(0))))
    state = ServerState(metrics, limit, max_scoring=scoring)
    ranking_pb2_grpc.add_RankingServicer_to_server(RankingService(state), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    not_serving, serving = health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.SERVING
    for name in ("", SERVICE_NAME):
        await health.set(name, not_serving)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server)
    address = f"[{args.host}]" if ":" in args.host else args.host
    try:
        port = server.add_insecure_port(f"{address}:{args.port}")
    except RuntimeError as e:
        print(f"tensorrank serve: cannot listen on {address}:{args.port}: {e} (is the port in use? --port 0 picks a "
              "free one)", file=sys.stderr)
        return 1
    if port == 0:
        print(f"tensorrank serve: cannot listen on {address}:{args.port} (is the port in use?)", file=sys.stderr)
        return 1
    await server.start()
    print(f"listening on {address}:{port}", flush=True)
    log.info("gRPC on %s:%d (device %s); loading %s", address, port, device.name, args.app)
    if args.metrics_port:
        try:
            mport = metrics.serve_http(args.host, args.metrics_port)
        except OSError as e:
            print(f"tensorrank serve: cannot serve metrics on {address}:{args.metrics_port}: {e} "
                  "(--metrics-port 0 turns them off)", file=sys.stderr)
            await server.stop(None)
            return 1
        print(f"metrics on http://{address}:{mport}/metrics", flush=True)
    if device.name == "gpu":
        metrics.watch_gpu(0)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    load = asyncio.ensure_future(asyncio.to_thread(
        Engine.open, args.app, args.data, backend, device, metrics, args.max_hits))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({load, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not load.done():
        log.info("stopping before the application finished loading")
        state.draining = True
        await server.stop(None)
        try:
            (await load).close()
        except Exception as e:  # it was going to stop anyway; what went wrong is still worth saying
            log.warning("the application was still loading when asked to stop, and then failed: %s", e)
        return 0
    stopping.cancel()
    try:
        engine = load.result()
    except (SchemaError, RankingError, ModelImportError) as e:
        where = getattr(e, "location", None)
        shown = f"{os.path.join(args.app, where.file)}:{where.line}:{where.column}: {e.message}" \
            if where is not None and not os.path.isabs(where.file) else str(e)
        print(f"tensorrank serve: the application package cannot be deployed: {shown}", file=sys.stderr)
        await server.stop(None)
        return 1
    except StoreError as e:
        print(f"tensorrank serve: the document store cannot be opened: {e}", file=sys.stderr)
        await server.stop(None)
        return 1
    state.engine = engine
    for name in ("", SERVICE_NAME):
        await health.set(name, serving)
    metrics.serving.set(1)
    print(f"serving {engine.store.restart.total} documents of {len(engine.app.schemas)} schema(s) from {args.data} "
          f"on {device.name}", flush=True)

    await stop.wait()
    # new requests get UNAVAILABLE from the servicer (with a reason) while those in flight finish;
    # only then does the gRPC server stop, which would answer new calls with a bare CANCELLED
    log.info("draining: %d requests in flight, up to %.0f s for them to finish", state.in_flight,
             args.drain_seconds)
    state.draining = True
    metrics.serving.set(0)
    await health.enter_graceful_shutdown()
    if not await state.drained(args.drain_seconds):
        log.warning("%d requests still in flight after %.0f s; they are cancelled", state.in_flight,
                    args.drain_seconds)
    await server.stop(1.0)
    await asyncio.to_thread(engine.close)
    print("stopped", flush=True)
    return 0
