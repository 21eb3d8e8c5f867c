"""Application.load: inheritance, constants, macros, model names; ranking a shard with
second-phase re-ranking, match-features and query inputs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from server.application.errors import SchemaError
from server.application.package import Application
from tensor_ir.expr.errors import RankingError

from .helpers import OrtModel, rank, write_app

DOC = """schema s {
  document s {
    field a type float { indexing: attribute }
    field b type double { indexing: attribute }
    field v type tensor<float>(x[3]) { indexing: attribute }
    field title type string { indexing: summary }
  }
"""
COLUMNS = {
    "a": np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0], dtype=np.float32),
    "b": np.array([0.5, 0.25, -1.0, 2.0, 0.0, 1.0, 3.0, -2.0]),
    "v": np.arange(24, dtype=np.float32).reshape(8, 3),
}


def load(tmp_path: Path, profiles: str, **kwargs: object) -> Application:
    return Application.load(write_app(tmp_path, {"s": DOC + profiles + "\n}\n"}, **kwargs))  # type: ignore[arg-type]


def test_inheritance(tmp_path: Path) -> None:
    app = load(tmp_path, """
  rank-profile base {
    inputs { query(w) double: 2 }
    function scaled() { expression: attribute(a) * query(w) }
    first-phase { expression: scaled }
    match-features { attribute(a) }
  }
  rank-profile child inherits base {
    function scaled() { expression: attribute(a) * query(w) * 10 }
    match-features { attribute(b) }
  }
  rank-profile abstract {
    function bonus() { expression: attribute(b) }
  }
  rank-profile both inherits child, abstract {
    first-phase { expression: scaled + bonus }
    second-phase { rerank-count: 2  expression: -attribute(a) }
  }
  rank-profile grandchild inherits both { }
  rank-profile from_default inherits default { first-phase { expression: 1 } }""")
    # a profile without a first phase exists only to be inherited
    assert set(app.schemas["s"].profiles) == {"base", "child", "both", "grandchild", "from_default"}
    a, b = COLUMNS["a"].astype(np.float64), COLUMNS["b"]
    np.testing.assert_allclose(rank(app, COLUMNS, profile="base").scores, a * 2)
    # the child's function replaces the parent's, also where the parent's first phase calls it
    np.testing.assert_allclose(rank(app, COLUMNS, profile="child").scores, a * 20)
    np.testing.assert_allclose(rank(app, COLUMNS, {"w": 1}, profile="both").scores, a * 10 + b)
    top = rank(app, COLUMNS, profile="grandchild", hits=3).hits
    # first phase 20a + b: a=9 (row 5) and a=6 (row 7) are best; re-ranked by -a: row 7 first
    assert [h.row for h in top] == [7, 5, 4]
    # first phase 181 and 118 re-ranked to -9 and -6: the rest (row 4, 100) moves below them as in
    # Vespa, by the ranges' ratio 3 / 63: (100 - 118) * 3 / 63 - 9
    assert [h.score for h in top] == pytest.approx([-6.0, -9.0, (100 - 118) * 3 / 63 - 9])
    assert set(top[0].match_features) == {"attribute(a)", "attribute(b)"}


def test_inheritance_errors(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="inherits unknown profile 'nope'"):
        load(tmp_path / "1", "rank-profile p inherits nope { first-phase { expression: 1 } }")
    with pytest.raises(SchemaError, match="inheritance cycle: p -> q -> p"):
        load(tmp_path / "2", "rank-profile p inherits q { }\n"
                             "rank-profile q inherits p { first-phase { expression: 1 } }")


def test_constants(tmp_path: Path) -> None:
    files = {
        "constants/w.json": json.dumps({"type": "tensor<float>(x[3])", "values": [1, 10, 100]}),
        "constants/m.json": json.dumps({"cells": [{"address": {"x": "0", "y": "1"}, "value": 2.0},
                                                  {"address": {"x": "2", "y": "0"}, "value": -1.0}]}),
        "constants/h.json": json.dumps({"values": struct.pack(">3f", 0.5, 0.25, 2.0).hex()}),
    }
    app = load(tmp_path, """
  constant w { file: constants/w.json
    type: tensor<float>(x[3]) }
  constant m {
    file: "constants/m.json"
    type: tensor(x[3],y[2])
  }
  rank-profile p {
    constants {
      k tensor<float>(x[3]): [1, 2, 3]
      constant(s) double: 0.5
      h tensor<float>(x[3]): file: constants/h.json
    }
    first-phase {
      expression: sum(attribute(v) * constant(w)) + sum(constant(m)) * constant(s) + sum(constant(k) * constant(h))
    }
  }""", files=files)
    v = COLUMNS["v"].astype(np.float64)
    want = v @ [1, 10, 100] + (2.0 - 1.0) * 0.5 + (0.5 + 0.5 + 6.0)
    np.testing.assert_allclose(rank(app, COLUMNS).scores, want)


@pytest.mark.parametrize(("content", "message"), [
    ("{", "constants/w.json is not valid JSON"),
    (json.dumps({"values": [1, 2]}), "tensor<float>(x[3]) has 3 cells (shape [3]) but the value has shape [2]"),
    (json.dumps({"type": "tensor(y[3])", "values": [1, 2, 3]}), "value has type tensor(y[3]), expected"),
    (None, "file 'constants/w.json' not found"),
])
def test_bad_constant_files(tmp_path: Path, content: str | None, message: str) -> None:
    files = {} if content is None else {"constants/w.json": content}
    with pytest.raises(SchemaError) as err:
        load(tmp_path, """
  constant w {
    file: constants/w.json
    type: tensor<float>(x[3])
  }
  rank-profile p { first-phase { expression: sum(constant(w)) } }""", files=files)
    assert message in err.value.message
    assert err.value.location is not None and (err.value.location.line, err.value.location.column) == (9, 12)


def test_constant_file_may_not_leave_the_package(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"may not leave the application package \('\.\.'\)"):
        load(tmp_path, """
  constant w { file: ../w.json
    type: tensor(x[1]) }
  rank-profile p { first-phase { expression: 1 } }""")


def test_macro_is_a_function(tmp_path: Path) -> None:
    app = load(tmp_path, """
  rank-profile p {
    macro half(x) { expression: x / 2 }
    macro inline twice() { expression: attribute(b) * 2 }
    first-phase { expression: half(twice) }
  }""")
    np.testing.assert_allclose(rank(app, COLUMNS).scores, COLUMNS["b"])


def test_multi_line_expressions_and_comments(tmp_path: Path) -> None:
    app = load(tmp_path, """
  rank-profile p {
    # a comment with a quote ' and a brace {
    first-phase {
      expression {
        # the weight of a
        2 * attribute(a) +   # trailing comment
        attribute(b)
      }
    }
    match-features {
      attribute(a)   # a comment between features
      attribute(b)
    }
  }""")
    result = rank(app, COLUMNS)
    np.testing.assert_allclose(result.scores, 2 * COLUMNS["a"] + COLUMNS["b"])
    assert set(result.hits[0].match_features) == {"attribute(a)", "attribute(b)"}


def test_second_phase_reranks_the_best_rerank_count(tmp_path: Path) -> None:
    app = load(tmp_path, """
  rank-profile p {
    first-phase { expression: attribute(a) }
    second-phase {
      rerank-count: 3
      expression: firstPhase * 100 + attribute(b)
    }
    match-features: firstPhase attribute(b)
  }""")
    result = rank(app, COLUMNS, hits=5)
    # first phase a: rows 5 (9), 7 (6), 4 (5) are the best three, then row 2 (4), then row 0 (3)
    assert [h.row for h in result.hits] == [5, 7, 4, 2, 0]
    assert [h.score for h in result.hits] == [901.0, 598.0, 500.0, 4.0, 3.0]
    assert float(result.hits[0].match_features["firstPhase"]) == 9.0
    assert float(result.hits[3].match_features["attribute(b)"]) == -1.0
    # paging past the re-ranked hits continues in first-phase order
    assert [h.row for h in rank(app, COLUMNS, hits=3, offset=2).hits] == [4, 2, 0]


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_ties_by_id_nan_last_live_mask_and_rows(tmp_path: Path) -> None:
    app = load(tmp_path, "rank-profile p { first-phase { expression: attribute(b) / attribute(b) } }")
    # 0/0 is NaN for row 4; every other score is 1: ties come in id order, NaN last
    result = rank(app, COLUMNS, hits=8)
    assert [h.row for h in result.hits] == [0, 1, 2, 3, 5, 6, 7, 4]
    app = load(tmp_path / "2", "rank-profile p { first-phase { expression: attribute(a) } }")
    from cpu_fallback import NumpyBackend
    from server.ranking import Ranker
    from server.store.view import ShardView

    ids = [f"d{i}" for i in range(8)]
    live = np.array([True, True, True, True, True, False, True, True])  # row 5 (a=9) is removed
    ranker = Ranker(app.profile("s", "p"), NumpyBackend())
    result = ranker.rank(ShardView(ids, COLUMNS, live), {}, hits=2)
    assert [h.id for h in result.hits] == ["d7", "d4"] and result.scored == 7
    result = ranker.rank(ShardView(ids, COLUMNS), {}, hits=10, rows=[0, 1, 3])
    assert [h.id for h in result.hits] == ["d0", "d1", "d3"]


def test_query_inputs(tmp_path: Path) -> None:
    app = load(tmp_path, """
  rank-profile p {
    inputs {
      query(qv) tensor<float>(x[3])
      query(w) double: 0.5
      unused tensor(x[2])
    }
    first-phase { expression: sum(attribute(v) * query(qv)) * query(w) + query(other) }
  }""")
    profile = app.profile("s", "p")
    assert set(profile.query_inputs) == {"qv", "w", "other", "unused"}
    v = COLUMNS["v"].astype(np.float64)
    np.testing.assert_allclose(rank(app, COLUMNS, {"qv": [1, 0, -1]}).scores, (v[:, 0] - v[:, 2]) * 0.5)
    np.testing.assert_allclose(rank(app, COLUMNS, {"query(qv)": [1, 1, 1], "w": 2, "other": 1}).scores,
                               v.sum(axis=1) * 2 + 1)
    # left out and declared without a default: zero in every cell, as in Vespa
    np.testing.assert_allclose(rank(app, COLUMNS, {}).scores, np.zeros(len(v)))
    with pytest.raises(RankingError, match=r"has no input query\(nope\)"):
        rank(app, COLUMNS, {"qv": [1, 2, 3], "nope": 1})
    with pytest.raises(RankingError, match=r"shape \[3\] or 3 cells flat, got shape \[1, 3\]"):
        rank(app, COLUMNS, {"qv": [[1, 2, 3]]})


def test_missing_column_is_a_ranking_error(tmp_path: Path) -> None:
    app = load(tmp_path, "rank-profile p { first-phase { expression: attribute(a) + attribute(b) } }")
    with pytest.raises(RankingError, match=r"reads attribute\(b\), which the shard has no column for"):
        rank(app, {"a": COLUMNS["a"]})


def _scale_model(k: float) -> object:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["in", "k"], ["out"])], "scale",
        [helper.make_tensor_value_info("in", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [3])],
        [helper.make_tensor("k", TensorProto.FLOAT, [], [k])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_model_names(tmp_path: Path) -> None:
    """onnx(name) finds models/name.onnx, and models/sub/my-model.onnx as sub_my_model, as Vespa names it."""
    models = {"sub/my-model.onnx": _scale_model(2.0), "plain.onnx": _scale_model(3.0)}
    app = load(tmp_path, """
  rank-profile p {
    function in() { expression: rename(attribute(v), x, d0) }
    first-phase { expression: sum(onnx(sub_my_model)) + sum(onnx(plain)) + sum(onnx("models/plain.onnx")) }
  }""", models=models)
    v = COLUMNS["v"].astype(np.float64).sum(axis=1)
    np.testing.assert_allclose(rank(app, COLUMNS).scores, v * 2 + v * 3 * 2)
    assert app.profile("s", "p").models == ["models/sub/my-model.onnx", "models/plain.onnx"]
    ort = OrtModel(_scale_model(2.0))  # type: ignore[arg-type]
    np.testing.assert_allclose(ort.run({"in": COLUMNS["v"][1]})["out"], COLUMNS["v"][1] * 2)


def test_one_model_two_blocks(tmp_path: Path) -> None:
    """The same file under two onnx-model blocks with different inputs: two bindings."""
    app = load(tmp_path, """
  onnx-model from_doc {
    file: models/plain.onnx
    input in: rename(attribute(v), x, d0)
  }
  rank-profile p {
    onnx-model from_query {
      file: models/plain.onnx
      input "in": tensor<float>(d0[3]):[1, 2, 3]
      output out: tripled
    }
    first-phase { expression: sum(onnx(from_doc)) - sum(onnx(from_query).tripled) }
  }""", models={"plain.onnx": _scale_model(3.0)})
    np.testing.assert_allclose(rank(app, COLUMNS).scores, COLUMNS["v"].astype(np.float64).sum(axis=1) * 3 - 18)


def test_application_lookup_errors(tmp_path: Path) -> None:
    app = load(tmp_path, "rank-profile p { first-phase { expression: 1 } }")
    with pytest.raises(SchemaError, match=r"unknown schema 'x' \(schemas: s\)"):
        app.profile("x", "p")
    with pytest.raises(SchemaError, match=r"schema 's' has no rank profile 'q' \(profiles: p\)"):
        app.profile("s", "q")


def test_several_schemas_and_search_keyword(tmp_path: Path) -> None:
    other = """search t {
  document t {
    field z type tensor(x[2]) { indexing: attribute | summary }
  }
  rank-profile p { first-phase { expression: sum(attribute(z)) } }
}
"""
    app = Application.load(write_app(tmp_path, {"s": DOC + "rank-profile p { first-phase { expression: 1 } }\n}\n",
                                                "t": other}))
    assert sorted(app.schemas) == ["s", "t"]
    np.testing.assert_allclose(rank(app, {"z": np.array([[1.0, 2.0]])}, schema="t").scores, [3.0])
