"""Rank latency over gRPC: a real `tensorrank serve` process, clients in another process.

The mlp_rank package of bench/models.py (concat(query[64], doc[64]) -> 128x256 -> 64 -> 1,
about 49 k multiply-adds per document). For each document count: the documents are written
into a fresh data directory through DocumentStore (the feed path, minus gRPC, to save time),
the server starts on it and rebuilds its shard, and K client threads, each with its own
channel, send the same Rank request (hits 10, first phase over every document) back to back.
Latency is the client's wall-clock time per request. Beside it: the in-process scoring time
of the same query (Ranker.rank over the same documents in this process, on the same kind of
backend, before the server starts), and the server's own `scoring_ms` from the responses.

Usage: python -m bench.rank_latency [--docs 10000,100000] [--clients 1,8] [--device cpu]
       [--seconds 30] [--min-requests 200] [--json FILE]

Each configuration runs until it has --min-requests latencies or --seconds have passed
(whichever comes first, after 2 warm-up requests per client); the sample count is printed,
and a p99 of fewer than 100 samples is close to the maximum.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe
from bench.models import MODELS, SEED, write_package

DIM = 64
HITS = 10


def _backend(device: str) -> Any:
    if device == "gpu":
        from gpu_engine.backend import CupyBackend

        return CupyBackend()
    from cpu_fallback import NumpyBackend

    return NumpyBackend()


def _documents(n: int) -> np.ndarray:
    return np.random.default_rng(SEED).standard_normal((n, DIM)).astype(np.float32)


def _query() -> np.ndarray:
    return np.random.default_rng(SEED + 7).standard_normal(DIM).astype(np.float32)


def populate(app: Path, data: Path, emb: np.ndarray) -> None:
    from cpu_fallback import NumpyBackend
    from server.application.package import Application
    from server.store import DocumentStore

    with DocumentStore.open(data, Application.load(app), NumpyBackend()) as store:
        step = 8192
        for start in range(0, len(emb), step):
            ops = [{"put": f"id:bench:mlp_rank::{i}", "fields": {"embedding": emb[i].tobytes()}}
                   for i in range(start, min(start + step, len(emb)))]
            results = store.feed_batch(ops)
            assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]


def in_process(app: Path, emb: np.ndarray, device: str, repeats: int) -> list[float]:
    """Seconds per Ranker.rank of the query over `emb`, after one warm-up."""
    from server.application.package import Application
    from server.ranking import Ranker
    from server.store.view import ShardView

    backend = _backend(device)
    ranker = Ranker(Application.load(app).profile("mlp_rank", "bench"), backend)
    view = ShardView([f"id:bench:mlp_rank::{i}" for i in range(len(emb))], {"embedding": backend.asarray(emb)})
    q = {"q": _query()}
    ranker.rank(view, q, hits=HITS)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        ranker.rank(view, q, hits=HITS)
        times.append(time.perf_counter() - t)
    return times


class Server:
    def __init__(self, app: Path, data: Path, device: str, metrics_port: int = 0,
                 extra: list[str] | None = None) -> None:
        cmd = [sys.executable, "-m", "server.cli", "serve", str(app), "--data", str(data), "--port", "0",
               "--metrics-port", str(metrics_port), "--device", device, *(extra or [])]
        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.output: list[str] = []
        self.address = ""
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip())
                if line.startswith("listening on "):
                    self.address = line.split()[-1]
                if line.startswith("serving "):
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(600) or self.proc.poll() is not None:
            raise SystemExit("the server did not start:\n" + "\n".join(self.output))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def run_clients(address: str, clients: int, seconds: float,
                min_requests: int) -> tuple[list[float], list[float], float]:
    """(client latencies, server scoring_ms, wall seconds) of `clients` threads sending back to back."""
    import grpc

    from proto.tensorrank.v1 import ranking_pb2 as pb
    from proto.tensorrank.v1 import ranking_pb2_grpc as pb_grpc

    request = pb.RankRequest(schema="mlp_rank", rank_profile="bench", hits=HITS, query={
        "q": pb.Tensor(type=f"tensor<float>(x[{DIM}])", values=_query().astype("<f4").tobytes())})
    latencies: list[float] = []
    scoring: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def client() -> None:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.RankingStub(channel)
            for _ in range(2):
                stub.Rank(request, timeout=600)
            start.wait()
            while not stop.is_set():
                t = time.perf_counter()
                response = stub.Rank(request, timeout=600)
                elapsed = time.perf_counter() - t
                assert len(response.hits) == HITS
                with lock:
                    latencies.append(elapsed)
                    scoring.append(response.scoring_ms)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.monotonic()
    while time.monotonic() - began < seconds and len(latencies) < min_requests:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    return latencies, scoring, time.monotonic() - began


def _print_device_metrics(port: int) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(("tensorrank_gpu_", "tensorrank_device", "tensorrank_resident")):
            print(f"# metric: {line}", flush=True)


def _ms(values: list[float], q: float, scale: float = 1000.0) -> float:
    return float(np.percentile(np.asarray(values) * scale, q))


def _environment(device: str) -> dict[str, Any]:
    import grpc

    env: dict[str, Any] = {
        **describe(), "load_average": os.getloadavg()[0], "grpcio": grpc.__version__, "device": device,
    }
    if device == "gpu":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        env["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        env["cupy"] = cupy.__version__
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", default="10000,100000")
    p.add_argument("--clients", default="1,8")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--seconds", type=float, default=30.0, help="at most this long per configuration")
    p.add_argument("--min-requests", type=int, default=200, help="stop a configuration once it has this many")
    p.add_argument("--repeats", type=int, default=20, help="in-process scorings per document count")
    p.add_argument("--dir", help="work directory (default: a temporary one, removed afterwards)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--server-args", default="", help="more flags for `tensorrank serve`, e.g. "
                   "'--max-concurrent-scoring 4'; several sets separated by ';' each get their own server")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="serve metrics here and print the device gauges after each document count")
    args = p.parse_args(argv)
    docs = [int(x) for x in args.docs.split(",")]
    clients = [int(x) for x in args.clients.split(",")]

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tensorrank-rank-latency-"))
    env = _environment(args.device)
    print(f"# {env}", flush=True)
    rows: list[dict[str, Any]] = []
    try:
        app = write_package(MODELS["mlp_rank"], work / "packages")
        for n in docs:
            emb = _documents(n)
            data = work / f"data-{n}"
            shutil.rmtree(data, ignore_errors=True)
            t = time.perf_counter()
            populate(app, data, emb)
            print(f"# {n} documents stored in {time.perf_counter() - t:.1f} s", flush=True)
            inproc = in_process(app, emb, args.device, args.repeats)
            for extra in args.server_args.split(";"):
                rows += _serve_and_measure(app, data, args, n, clients, inproc, extra.split())
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    _report(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "results": rows}, f, indent=1)
    return 0


def _serve_and_measure(app: Path, data: Path, args: argparse.Namespace, n: int, clients: list[int],
                       inproc: list[float], extra: list[str]) -> list[dict[str, Any]]:
    rows = []
    server = Server(app, data, args.device, args.metrics_port, extra)
    print("# server: " + " | ".join(server.output), flush=True)
    try:
        for k in clients:
            lat, scoring, wall = run_clients(server.address, k, args.seconds, args.min_requests)
            row = {
                "documents": n, "clients": k, "server_args": " ".join(extra), "requests": len(lat),
                "p50_ms": _ms(lat, 50), "p99_ms": _ms(lat, 99), "mean_ms": 1000 * float(np.mean(lat)),
                "throughput_rps": len(lat) / wall,
                "server_scoring_p50_ms": _ms(scoring, 50, 1.0),
                "in_process_p50_ms": _ms(inproc, 50), "in_process_min_ms": 1000 * min(inproc),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.metrics_port:
            _print_device_metrics(args.metrics_port)
    finally:
        rc = server.stop()
        if rc != 0:
            print(f"# the server exited {rc}:\n" + "\n".join(server.output[-20:]), flush=True)
    return rows


def _report(rows: list[dict[str, Any]]) -> None:
    print()
    print("| documents | clients | server flags | requests | p50 ms | p99 ms | requests/s | server scoring p50 ms | "
          "in-process scoring p50 ms |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['documents']:,} | {r['clients']} | {r['server_args'] or '-'} | {r['requests']} | "
              f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['throughput_rps']:.1f} | {r['server_scoring_p50_ms']:.1f} | "
              f"{r['in_process_p50_ms']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
