"""`tensorrank query`'s values: plain JSON numbers typed by the profile's declared inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from proto.tensorrank.v1 import ranking_pb2 as pb
from server.client import ClientError, unavailable_message
from server.query_args import Query, find_profile, format_json, parse_query_args, query_tensors, response_json

PROFILE = pb.RankProfileInfo(name="mlp", inputs=[
    pb.QueryInputInfo(name="q", type="tensor<float>(x[4])"),
    pb.QueryInputInfo(name="query(m)", type="tensor<double>(a[2],b[2])"),  # either form of name
    pb.QueryInputInfo(name="w", type="float", has_default=True),
])
APP = pb.ApplicationInfo(schemas=[
    pb.SchemaInfo(name="news", rank_profiles=[PROFILE, pb.RankProfileInfo(name="plain")]),
    pb.SchemaInfo(name="blog", rank_profiles=[pb.RankProfileInfo(name="plain")]),
])


def test_parse_plain_and_query_forms(tmp_path: Path) -> None:
    (tmp_path / "q.json").write_text(json.dumps({"values": [1, 2, 3, 4]}))
    got = parse_query_args(["q=[0.5, 1, 2, 3]", "query(m)=[[1,2],[3,4]]", "w = 2.5"])
    assert got == {"q": [0.5, 1, 2, 3], "m": [[1, 2], [3, 4]], "w": 2.5}
    assert parse_query_args(["q=@q.json"], base=tmp_path) == {"q": {"values": [1, 2, 3, 4]}}
    assert parse_query_args([f"q=@{tmp_path / 'q.json'}"]) == {"q": {"values": [1, 2, 3, 4]}}


@pytest.mark.parametrize("arg, message", [
    ("q", "expected NAME=VALUE"),
    ("=[1]", "expected NAME=VALUE"),
    ("q=[1, 2", "not valid JSON"),
    ("q=@/nonexistent/q.json", "cannot read /nonexistent/q.json"),
])
def test_parse_errors(arg: str, message: str) -> None:
    with pytest.raises(ClientError, match=message.replace("[", r"\[")):
        parse_query_args([arg])


def test_same_input_twice() -> None:
    with pytest.raises(ClientError, match=r"query\(q\) twice"):
        parse_query_args(["q=[1]", "query(q)=[2]"])


def test_tensors_take_the_declared_types() -> None:
    out = query_tensors(PROFILE, {"q": [0.5, 1, 2, 3], "m": {"cells": [{"address": {"a": 1, "b": 0}, "value": 7}]}})
    assert set(out) == {"query(q)", "query(m)"}
    assert out["query(q)"].type == "tensor<float>(x[4])"
    assert out["query(q)"].values == np.array([0.5, 1, 2, 3], dtype="<f4").tobytes()
    assert out["query(m)"].type == "tensor(a[2],b[2])"  # Vespa's spelling of double cells
    assert out["query(m)"].values == np.array([0, 0, 7, 0], dtype="<f8").tobytes()
    # a scalar input with a default may be given, as a plain number
    assert query_tensors(PROFILE, {"q": [0, 0, 0, 0], "m": [0, 0, 0, 0], "w": 3})["query(w)"].values == \
        np.float32(3).tobytes()


@pytest.mark.parametrize("values, message", [
    ({"q": [1, 2, 3], "m": [0, 0, 0, 0]}, r"query\(q\) tensor<float>\(x\[4\]\): .*4 cells"),
    ({"q": "abc", "m": [0, 0, 0, 0]}, r"query\(q\)"),
    ({"q": [1, 2, 3, float("nan")], "m": [0, 0, 0, 0]}, "NaN"),
    ({"q": [0, 0, 0, 0]}, r"needs query\(m\) tensor<double>\(a\[2\],b\[2\]\): give it with --query 'm=\[...\]'"),
    ({"q": [0, 0, 0, 0], "m": [0, 0, 0, 0], "z": 1}, r"no input query\(z\) \(inputs: query\(q\), query\(m\)"),
])
def test_tensor_errors(values: dict[str, object], message: str) -> None:
    with pytest.raises(ClientError, match=message):
        query_tensors(PROFILE, values)


def test_schema_choice() -> None:
    s, p = find_profile(APP, "mlp", None)
    assert (s.name, p.name) == ("news", "mlp")
    with pytest.raises(ClientError, match=r"several schemas have rank profile 'plain' \(news, blog\): choose"):
        find_profile(APP, "plain", None)
    assert find_profile(APP, "plain", "blog")[0].name == "blog"
    with pytest.raises(ClientError, match=r"no schema 'x' \(schemas: news, blog\)"):
        find_profile(APP, "plain", "x")
    with pytest.raises(ClientError, match=r"schema 'blog' has no rank profile 'mlp' \(profiles: plain\)"):
        find_profile(APP, "mlp", "blog")
    req = Query("mlp", {"q": [1, 2, 3, 4], "m": [1, 2, 3, 4]}, hits=3, offset=1).request(APP)
    assert (req.schema, req.rank_profile, req.hits, req.offset) == ("news", "mlp", 3, 1)


def test_response_as_json() -> None:
    resp = pb.RankResponse(
        hits=[pb.Hit(id="id:news:news::1", relevance=0.5, match_features={
            "onnx(m).score": pb.Tensor(type="tensor<float>(d0[1],d1[1])", values=np.float32(0.25).tobytes()),
            "closeness": pb.Tensor(type="double", values=np.float64(0.75).tobytes()),
        })],
        coverage=pb.Coverage(documents=10, scored=9, full=True), scoring_ms=1.25)
    out = response_json(resp, 3.5)
    assert out == {
        "hits": [{"id": "id:news:news::1", "relevance": 0.5,
                  "match_features": {"closeness": 0.75, "onnx(m).score": [[0.25]]}}],
        "coverage": {"documents": 10, "scored": 9, "full": True},
        "latency_ms": {"round_trip": 3.5, "scoring": 1.25},
    }
    json.dumps(out)


def test_unavailable_message() -> None:
    assert unavailable_message("127.0.0.1:50051").startswith(
        "no tensorrank server at 127.0.0.1:50051; start one with: tensorrank serve APP_DIR --port 50051")
    assert "--host 10.0.0.2 --port 7000" in unavailable_message("10.0.0.2:7000")
    with pytest.raises(ClientError, match="HOST:PORT"):
        unavailable_message("nonsense")


def test_printed_json_has_a_line_per_hit() -> None:
    out = {"hits": [{"id": "a", "relevance": 1.0, "match_features": {"f": [[0.5]]}},
                    {"id": "b", "relevance": 0.5, "match_features": {}}],
           "coverage": {"documents": 2, "scored": 2, "full": True}, "latency_ms": {"round_trip": 1.0}}
    text = format_json(out)
    assert json.loads(text) == out
    assert '    {"id": "a", "relevance": 1.0, "match_features": {"f": [[0.5]]}},' in text.splitlines()
    assert json.loads(format_json({"hits": [], "coverage": {}})) == {"hits": [], "coverage": {}}
