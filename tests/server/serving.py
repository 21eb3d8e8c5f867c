"""Starting `tensorrank serve` as a real subprocess, and the test application package it serves.

The package: schema `news` (an ONNX model in a profile with both phases and match features,
a plain dot product, a heavy model for deadlines, and a profile that only exists to be
inherited) and schema `other`, so that requests must name their schema (with a profile whose
model gathers at an index the query gives).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import grpc
import numpy as np
import onnx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from onnx import TensorProto, helper, numpy_helper

from proto.tensorrank.v1 import ranking_pb2 as pb
from proto.tensorrank.v1 import ranking_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
DIM = 16
HEAVY = 2048  # hidden width of the heavy model: about 4.2 M multiply-adds per document (4,000 of them take
# about 0.25 s here, well past the deadline test's 50 ms: at 1024 that was a coin toss)
RERANK = 50

NEWS_SD = f"""schema news {{
  document news {{
    field embedding type tensor<float>(x[{DIM}]) {{ indexing: attribute }}
    field popularity type float {{ indexing: attribute | summary }}
    field views type long {{ indexing: attribute }}
    field title type string {{ indexing: summary }}
  }}
  rank-profile base {{
    inputs {{ query(q) tensor<float>(x[{DIM}]) }}
  }}
  rank-profile ml inherits base {{
    function doc_input() {{ expression: rename(attribute(embedding), x, d1) }}
    function query_input() {{ expression: rename(query(q), x, d1) }}
    first-phase {{ expression: sum(onnx("my_model.onnx")) + 0.1 * attribute(popularity) }}
    second-phase {{ rerank-count: {RERANK}  expression: sum(onnx(my_model).score) - 3 * attribute(popularity) }}
    match-features {{ onnx(my_model).score attribute(popularity) }}
  }}
  rank-profile dot inherits base {{
    first-phase {{ expression: sum(attribute(embedding) * query(q)) }}
  }}
  rank-profile heavy {{
    function doc() {{ expression: rename(attribute(embedding), x, d1) }}
    first-phase {{ expression: sum(onnx("heavy.onnx")) }}
  }}
}}
"""

OTHER_SD = """schema other {
  document other {
    field v type tensor<float>(x[2]) { indexing: attribute }
  }
  rank-profile plain {
    first-phase { expression: sum(attribute(v)) }
  }
  rank-profile pick {
    inputs { query(i) tensor<float>(d0[1]) }
    function idx() { expression: query(i) }
    first-phase { expression: sum(onnx("pick.onnx")) + sum(attribute(v)) }
  }
}
"""


def my_model(rng: np.random.Generator) -> onnx.ModelProto:
    """doc_input * query_input -> MatMul W -> Relu -> MatMul W2 = score[batch, 1]."""
    w = rng.standard_normal((DIM, 8)).astype(np.float32)
    w2 = rng.standard_normal((8, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["doc_input", "query_input"], ["m"]),
         helper.make_node("MatMul", ["m", "W"], ["h"]),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "W2"], ["score"])],
        "my_model",
        [helper.make_tensor_value_info("doc_input", TensorProto.FLOAT, ["batch", DIM]),
         helper.make_tensor_value_info("query_input", TensorProto.FLOAT, ["batch", DIM])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(w2, "W2")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def heavy_model(rng: np.random.Generator) -> onnx.ModelProto:
    """doc -> MatMul [DIM, HEAVY] -> Relu -> MatMul [HEAVY, HEAVY] -> Relu -> MatMul [HEAVY, 1]."""
    w1 = (rng.standard_normal((DIM, HEAVY)) / 4).astype(np.float32)
    w2 = (rng.standard_normal((HEAVY, HEAVY)) / 32).astype(np.float32)
    w3 = (rng.standard_normal((HEAVY, 1)) / 32).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["doc", "W1"], ["h1"]),
         helper.make_node("Relu", ["h1"], ["r1"]),
         helper.make_node("MatMul", ["r1", "W2"], ["h2"]),
         helper.make_node("Relu", ["h2"], ["r2"]),
         helper.make_node("MatMul", ["r2", "W3"], ["score"])],
        "heavy",
        [helper.make_tensor_value_info("doc", TensorProto.FLOAT, ["batch", DIM])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"), numpy_helper.from_array(w3, "W3")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def pick_model() -> onnx.ModelProto:
    """out[1] = table[int(idx)] with table = [10, 20, 30, 40]: an index the query chooses."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["idx"], ["i"], to=TensorProto.INT64),
         helper.make_node("Gather", ["table", "i"], ["out"], name="pick_gather")],
        "pick",
        [helper.make_tensor_value_info("idx", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array([10, 20, 30, 40], np.float32), "table")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def write_package(root: Path, rng: np.random.Generator) -> tuple[Path, onnx.ModelProto]:
    (root / "schemas").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "schemas" / "news.sd").write_text(NEWS_SD)
    (root / "schemas" / "other.sd").write_text(OTHER_SD)
    model = my_model(rng)
    onnx.save(model, root / "models" / "my_model.onnx")
    onnx.save(heavy_model(rng), root / "models" / "heavy.onnx")
    onnx.save(pick_model(), root / "models" / "pick.onnx")
    return root, model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tensor(values: Any, type_: str, dtype: str = "<f4") -> pb.Tensor:
    return pb.Tensor(type=type_, values=np.asarray(values, dtype=dtype).tobytes())


def doc_id(i: int | str, doctype: str = "news") -> str:
    return f"id:test:{doctype}::{i}"


class Server:
    """`python -m server.cli serve ...` on port 0; `address` is what it printed."""

    def __init__(self, app: Path, data: Path, *extra: str, metrics: bool = False, timeout: float = 60.0) -> None:
        self.metrics_port = free_port() if metrics else 0
        cmd = [sys.executable, "-m", "server.cli", "serve", str(app), "--data", str(data), "--port", "0",
               "--device", "cpu", "--metrics-port", str(self.metrics_port), *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("TENSORRANK_PORT", None)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [self._drain(self.proc.stdout, self.lines), self._drain(self.proc.stderr, self.errors)]
        self.address = self._wait_for("listening on ", timeout).split("listening on ", 1)[1].strip()
        self.channel = grpc.insecure_channel(self.address)
        self.stub = pb_grpc.RankingStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.wait_serving(timeout)

    @staticmethod
    def _drain(stream: IO[str] | None, into: list[str]) -> threading.Thread:
        def run() -> None:
            assert stream is not None
            for line in stream:
                into.append(line.rstrip("\n"))

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def _wait_for(self, text: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers catch the last words
                raise AssertionError(f"the server exited ({self.proc.returncode}) before printing {text!r}:\n"
                                     + "\n".join(self.lines + self.errors))
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} from the server in {timeout} s:\n" + "\n".join(self.lines + self.errors))

    def status(self, timeout: float = 5.0) -> str:
        res = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(res.status))

    def wait_serving(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited ({self.proc.returncode}):\n"
                                     + "\n".join(self.lines + self.errors))
            try:
                last = self.status(timeout=2.0)
                if last == "SERVING":
                    return
            except grpc.RpcError as e:
                last = str(e.code())
            time.sleep(0.05)
        raise AssertionError(f"not SERVING after {timeout} s (last: {last}):\n" + "\n".join(self.lines + self.errors))

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        finally:
            self.channel.close()
        for t in self._readers:
            t.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.channel.close()


def metric(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of one sample in Prometheus' text format, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{", 1)[0] != name:
            continue
        if labels and not all(f'{k}="{v}"' in head for k, v in labels.items()):
            continue
        return float(value)
    return None


def feed(stub: pb_grpc.RankingStub, ops: Sequence[pb.FeedOperation], timeout: float = 60.0) -> list[pb.FeedResult]:
    return list(stub.Feed(iter(ops), timeout=timeout))
