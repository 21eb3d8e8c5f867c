"""ONNX inputs bound as Vespa binds them, by rank and sizes (the value's dimensions in name
order are the model's axes, whatever their names), checked against onnxruntime: small
models made here, and the real custom_similarity.onnx of the custom-embeddings sample app
(`batch[1],x[384]`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from cpu_fallback import NumpyBackend
from server.application.package import Application
from server.ranking import Ranker
from server.store.view import ShardView
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import FieldDef, FunctionDef, OnnxModelDef, ProfileDef, QueryInput, compile_profile
from tensor_ir.expr.types import parse_type

from ..shared_data import shared


def _model(inputs: list[tuple[str, list[int | str]]]) -> onnx.ModelProto:
    """out = sum over the inputs of (input @ W_i), W_i fixed [last axis, 2]: every cell matters."""
    rng = np.random.default_rng(3)
    nodes, inits, partial = [], [], []
    for i, (name, dims) in enumerate(inputs):
        last = dims[-1]
        assert isinstance(last, int)
        w = rng.standard_normal((last, 2)).astype(np.float32)
        inits.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, w.shape, w.ravel()))
        nodes.append(helper.make_node("MatMul", [name, f"w{i}"], [f"p{i}"]))
        partial.append(f"p{i}")
    out = partial[0]
    for i, p in enumerate(partial[1:]):
        nodes.append(helper.make_node("Add", [out, p], [f"s{i}"]))
        out = f"s{i}"
    nodes.append(helper.make_node("Identity", [out], ["out"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in inputs],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _profile(functions: dict[str, str], block_inputs: dict[str, str] | None = None) -> ProfileDef:
    p = ProfileDef("p", Location("t.sd", 1, 1))
    p.inputs["q"] = QueryInput("q", parse_type("tensor<float>(x[3])"), None, Location())
    for name, body in functions.items():
        p.functions[name] = FunctionDef(name, (), parse_expression(body), Location("t.sd", 2, 1))
    ref = "m.onnx"
    if block_inputs is not None:
        p.onnx_models["m"] = OnnxModelDef("m", "m.onnx", {k: (v, Location("t.sd", 3, 1)) for k, v in
                                                          block_inputs.items()}, {}, Location("t.sd", 3, 1))
        ref = "m"
    p.first_phase = parse_expression(f'sum(onnx("{ref}"))' if block_inputs is None else f"sum(onnx({ref}))")
    return p


FIELDS = {"v": FieldDef("v", parse_type("tensor<float>(x[3])"), True, Location()),
          "m": FieldDef("m", parse_type("tensor<float>(r[2],x[3])"), True, Location())}


def _scores(model: onnx.ModelProto, p: ProfileDef, docs: dict[str, np.ndarray], q: np.ndarray) -> np.ndarray:
    cp = compile_profile(p, FIELDS, lambda ref, loc: ("m.onnx", model))
    n = len(next(iter(docs.values())))
    shard = ShardView([f"id:t:t::{i:03d}" for i in range(n)], docs)
    hits = Ranker(cp, NumpyBackend()).rank(shard, {"q": q}, hits=n).hits
    return np.array([h.score for h in sorted(hits, key=lambda h: h.row)])


def _onnxruntime(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.array([float(sess.run(None, f)[0].astype(np.float64).sum()) for f in feeds])


def test_dimensions_bind_by_position_whatever_their_names() -> None:
    rng = np.random.default_rng(1)
    model = _model([("a", [1, 3]), ("b", [2, 3])])
    v = rng.standard_normal((6, 3)).astype(np.float32)
    m = rng.standard_normal((6, 2, 3)).astype(np.float32)
    q = rng.standard_normal(3).astype(np.float32)
    p = _profile({"a": "attribute(v) * tensor<float>(batch[1]):[1]", "b": "attribute(m)"})
    want = _onnxruntime(model, [{"a": v[i][None], "b": m[i]} for i in range(6)])
    np.testing.assert_allclose(_scores(model, p, {"v": v, "m": m}, q), want, rtol=1e-5)


def test_a_block_maps_inputs_and_sizes_must_match_axis_by_axis() -> None:
    rng = np.random.default_rng(2)
    model = _model([("in", ["n", 3])])
    v = rng.standard_normal((4, 3)).astype(np.float32)
    q = rng.standard_normal(3).astype(np.float32)
    p = _profile({"qb": "query(q) * tensor<float>(a[1]):[1]"}, {"in": "qb"})
    want = _onnxruntime(model, [{"in": q[None]}] * 4)
    np.testing.assert_allclose(_scores(model, p, {"v": v, "m": np.zeros((4, 2, 3), np.float32)}, q), want,
                               rtol=1e-5)
    # axis 1 is fixed at 3: a value whose second dimension (by name) has another size is refused
    bad = _profile({"qb": "attribute(m)"}, {"in": "qb"})
    bad.functions["qb"] = FunctionDef("qb", (), parse_expression("tensor<float>(a[3],b[2])(a+b)"), Location())
    with pytest.raises(RankingError, match=r"dimension 'b' has size 2 where axis 1 has size 3"):
        compile_profile(bad, FIELDS, lambda ref, loc: ("m.onnx", model))
    with pytest.raises(RankingError, match=r"2 dimensions for the model's 2 axes|3 dimensions for the model's 2"):
        bad.functions["qb"] = FunctionDef("qb", (), parse_expression("tensor<float>(a[1],b[1],c[3])(1)"), Location())
        compile_profile(bad, FIELDS, lambda ref, loc: ("m.onnx", model))


def test_a_symbolic_axis_takes_one_size_for_every_input() -> None:
    model = _model([("a", ["n", 3]), ("b", ["n", 3])])
    p = _profile({"a": "attribute(m)", "b": "attribute(v) * tensor<float>(one[1]):[1]"})
    with pytest.raises(RankingError, match=r"axis 0 is 'n', already 2 from input 'a'"):
        compile_profile(p, FIELDS, lambda ref, loc: ("m.onnx", model))


def test_an_input_named_with_a_port_takes_the_function_without_it() -> None:
    rng = np.random.default_rng(4)
    model = _model([("second/input:0", [1, 3])])
    v = rng.standard_normal((3, 3)).astype(np.float32)
    p = _profile({"second_input": "attribute(v) * tensor<float>(b[1]):[1]"})
    want = _onnxruntime(model, [{"second/input:0": v[i][None]} for i in range(3)])
    got = _scores(model, p, {"v": v, "m": np.zeros((3, 2, 3), np.float32)}, np.zeros(3, np.float32))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    p = _profile({"unrelated": "attribute(v)"})
    with pytest.raises(RankingError, match=r"Model refers input 'second/input:0'.*define function second_input_0"):
        compile_profile(p, FIELDS, lambda ref, loc: ("m.onnx", model))


def test_custom_similarity_onnx_is_bound_by_rank_and_scored_as_onnxruntime_scores_it() -> None:
    root = shared("vespa-apps/sa-custom-embeddings")
    app = Application.load(root)
    profile = app.schemas["doc"].profiles["custom-similarity"]
    rng = np.random.default_rng(5)
    n = 12
    emb = rng.standard_normal((n, 384)).astype(np.float32)
    q = rng.standard_normal(384).astype(np.float32)
    columns: dict[str, Any] = {"embedding": emb, "id": np.arange(n, dtype=np.int32)}
    shard = ShardView([f"id:doc:doc::{i:02d}" for i in range(n)], columns)
    hits = Ranker(profile, NumpyBackend()).rank(shard, {"q": q}, hits=n).hits
    sess = ort.InferenceSession(str(root / "models" / "custom_similarity.onnx"), providers=["CPUExecutionProvider"])
    want = {f"id:doc:doc::{i:02d}": float(sess.run(None, {"query": q[None], "document": emb[i][None]})[0].sum())
            for i in range(n)}
    assert len(hits) == n  # all are reranked by the second phase (rerank-count 100)
    for h in hits:
        assert h.score == pytest.approx(want[h.id], rel=1e-4, abs=1e-6)
    assert [h.id for h in hits] == sorted(want, key=lambda k: -want[k])


def test_a_mapped_tensor_given_to_a_model_is_refused_at_deploy() -> None:
    fields = {**FIELDS, "tags": FieldDef("tags", parse_type("tensor<float>(t{},x[3])", allow_mapped=True), True,
                                         Location())}
    p = _profile({"v_in": "attribute(tags)"})
    model = _model([("v_in", [1, 3])])
    with pytest.raises(RankingError) as err:
        compile_profile(p, fields, lambda ref, loc: ("m.onnx", model))
    assert "input 'v_in'" in err.value.message and "mapped dimensions" in err.value.message
    assert "tensor<float>(t{},x[3])" in err.value.message
