"""A rank profile combining a LightGBM model, an ONNX MLP and attributes, served by a real
`tensorrank serve` over gRPC: fed, queried, and checked against LightGBM's own predict and
onnxruntime's MLP on the same documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from proto.tensorrank.v1 import ranking_pb2 as pb
from tests.server.serving import Server, doc_id, feed, tensor

lgb = pytest.importorskip("lightgbm")
ort = pytest.importorskip("onnxruntime")

N = 300
SCHEMA = """schema shop {
  document shop {
    field f0 type double { indexing: attribute }
    field f1 type double { indexing: attribute }
    field f2 type float { indexing: attribute }
    field v type tensor<float>(d0[1],d1[4]) { indexing: attribute }
  }
  rank-profile gbdt_mlp {
    function input() { expression: attribute(v) }
    function mlp_score() { expression: sum(onnx(mlp)) }
    first-phase { expression: lightgbm("ranker.json") + 0.5 * mlp_score + attribute(f0) }
    match-features { mlp_score }
  }
}
"""


def mlp(rng: np.random.Generator) -> onnx.ModelProto:
    w1 = numpy_helper.from_array(rng.normal(size=(4, 8)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(size=(8, 1)).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["out"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1])], [w1, b1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def mlp_scores(model: onnx.ModelProto, v: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.array([sess.run(None, {"input": row[None]})[0][0, 0] for row in v], np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[str], np.ndarray[Any, Any]]]:
    rng = np.random.default_rng(1203)
    root = tmp_path_factory.mktemp("gbdt")
    app = root / "app"
    (app / "schemas").mkdir(parents=True)
    (app / "models").mkdir()
    (app / "schemas" / "shop.sd").write_text(SCHEMA)
    model = mlp(rng)
    onnx.save(model, app / "models" / "mlp.onnx")
    cols = {"f0": rng.normal(size=N), "f1": rng.normal(size=N), "f2": rng.normal(size=N).astype(np.float32),
            "v": rng.normal(size=(N, 4)).astype(np.float32)}
    m = mlp_scores(model, cols["v"])
    features = np.column_stack([cols["f0"], cols["f1"], cols["f2"].astype(np.float64), m])
    label = features[:, 0] * features[:, 3] + np.sin(features[:, 1]) + (features[:, 2] > 0.3)
    booster = lgb.train({"num_leaves": 15, "verbose": -1, "seed": 3}, lgb.Dataset(features, label), 50)
    dump = booster.dump_model()
    dump["feature_names"] = ["attribute(f0)", "attribute(f1)", "attribute(f2)", "mlp_score"]
    (app / "models" / "ranker.json").write_text(json.dumps(dump))
    want = booster.predict(features, raw_score=True) + 0.5 * m + cols["f0"]
    server = Server(app, root / "data")
    try:
        ids = [doc_id(f"p{i:04d}", "shop") for i in range(N)]
        ops = [pb.FeedOperation(put=pb.Put(id=ids[i], fields={
            "f0": tensor([cols["f0"][i]], "double", "<f8"), "f1": tensor([cols["f1"][i]], "double", "<f8"),
            "f2": tensor([cols["f2"][i]], "float"), "v": tensor(cols["v"][i], "tensor<float>(d0[1],d1[4])")}))
            for i in range(N)]
        results = feed(server.stub, ops)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        yield server, ids, want
    finally:
        server.kill()


def test_served_scores_equal_lightgbm_plus_mlp(served: tuple[Server, list[str], np.ndarray[Any, Any]]) -> None:
    server, ids, want = served
    response = server.stub.Rank(pb.RankRequest(schema="shop", rank_profile="gbdt_mlp", hits=25), timeout=60)
    order = sorted(range(N), key=lambda i: (-want[i], ids[i]))
    assert [h.id for h in response.hits] == [ids[i] for i in order[:25]]
    np.testing.assert_allclose([h.relevance for h in response.hits], want[order[:25]], rtol=1e-6, atol=1e-6)
    assert "mlp_score" in response.hits[0].match_features
