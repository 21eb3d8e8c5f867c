"""tokenInputIds, customTokenInputIds, tokenTypeIds and tokenAttentionMask, per document,
against Vespa's layout written out here in plain Python (TokenTransformer's generator:
CLS a SEP b SEP 0..., an input's length its count of tokens > 0, cut at the length)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from gpu_engine.backend import CupyBackend
from tensor_ir.backend import Backend
from tensor_ir.expr.errors import Location, RankingError
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.profile import FieldDef, ProfileDef, QueryInput, compile_profile
from tensor_ir.expr.types import parse_type

QUERY = [2023.0, 2003.0, 0.0, 0.0, 0.0]  # query(q) tensor(d0[5]): two tokens
DOCS = np.array([
    [7, 8, 9, 0, 0, 0],
    [5, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
    [1, 2, 3, 4, 5, 6],  # long: the sequence is cut
    [4, 0, 6, 0, 0, 0],  # a zero inside: the length counts 2 tokens, the first 2 cells are taken
], dtype=np.float32)


def _vespa_layout(length: int, inputs: list[list[float]], cls: float = 101, sep: float = 102
                  ) -> tuple[list[float], list[float], list[float]]:
    ids: list[float] = [cls]
    types: list[float] = [0]
    for i, tokens in enumerate(inputs):
        n = sum(1 for t in tokens if t > 0)
        ids += [*tokens[:n], sep]
        types += [0 if i == 0 else 1] * (n + 1)
    mask = [1.0] * len(ids)
    pad = max(length - len(ids), 0)
    return ((ids + [0.0] * pad)[:length], (types + [0.0] * pad)[:length], (mask + [0.0] * pad)[:length])


def _evaluate(features: list[str], backend: Backend | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    p = ProfileDef("p", Location("t.sd", 1, 1))
    p.inputs["q"] = QueryInput("q", parse_type("tensor(d0[5])"), None, Location())
    p.first_phase = parse_expression("0")
    p.match_features = [(f, parse_expression(f)) for f in features]
    fields = {"tokens": FieldDef("tokens", parse_type("tensor<float>(d0[6])"), True, Location())}
    cp = compile_profile(p, fields, _no_models)
    assert cp.features is not None
    feeds = {"attribute(tokens)": DOCS, "query(q)": np.asarray(QUERY)}
    given = {k: v for k, v in feeds.items() if k in cp.features.inputs}
    out = (backend or NumpyBackend()).run(cp.features, given, len(DOCS))
    return ({f.name: out[f.program_output] for f in cp.match_features},
            {f.name: f.type for f in cp.match_features})


def _no_models(ref: str, loc: Location) -> Any:
    raise AssertionError(f"no model is loaded in these tests ({ref})")


@pytest.mark.parametrize("backend", ["numpy", "gpu-emulated"])
@pytest.mark.parametrize("length", [12, 7, 3])
def test_query_and_document_tokens_as_vespa_lays_them_out(length: int, backend: str) -> None:
    names = [f"tokenInputIds({length}, query(q), attribute(tokens))",
             f"tokenTypeIds({length}, query(q), attribute(tokens))",
             f"tokenAttentionMask({length}, query(q), attribute(tokens))"]
    values, types = _evaluate(names, NumpyBackend() if backend == "numpy" else CupyBackend.emulated())
    for name in names:
        assert str(types[name]) == f"tensor<float>(d0[1],d1[{length}])"
        assert values[name].shape == (len(DOCS), 1, length)
        assert values[name].dtype == np.float32
    for doc, row in enumerate(DOCS):
        ids, type_ids, mask = _vespa_layout(length, [QUERY, list(row)])
        assert values[names[0]][doc, 0].tolist() == ids, doc
        assert values[names[1]][doc, 0].tolist() == type_ids, doc
        assert values[names[2]][doc, 0].tolist() == mask, doc


def test_one_input_and_three_inputs() -> None:
    names = ["tokenInputIds(10, attribute(tokens))", "tokenTypeIds(10, attribute(tokens))",
             "tokenInputIds(16, query(q), attribute(tokens), query(q))",
             "tokenTypeIds(16, query(q), attribute(tokens), query(q))",
             "customTokenInputIds(1, 2, 16, query(q), attribute(tokens))"]
    values, _ = _evaluate(names)
    for doc, row in enumerate(DOCS):
        ids, types, _ = _vespa_layout(10, [list(row)])
        assert values[names[0]][doc, 0].tolist() == ids
        assert values[names[1]][doc, 0].tolist() == types  # one input: all zeros
        ids3, types3, _ = _vespa_layout(16, [QUERY, list(row), QUERY])
        assert values[names[2]][doc, 0].tolist() == ids3
        assert values[names[3]][doc, 0].tolist() == types3
        custom, _, _ = _vespa_layout(16, [QUERY, list(row)], cls=1, sep=2)
        assert values[names[4]][doc, 0].tolist() == custom
    # spelled out once by hand: CLS 101, query 2023 2003, SEP, document 7 8 9, SEP, padding
    assert values[names[2]][0, 0, :10].tolist() == [101, 2023, 2003, 102, 7, 8, 9, 102, 2023, 2003]


@pytest.mark.parametrize(("expr", "message"), [
    ("tokenInputIds(q, attribute(tokens))", "the length must be a whole number"),
    ("tokenInputIds(2.5, attribute(tokens))", "the length must be a whole number"),
    ("tokenInputIds(8, attribute(tokens) * 2)", "the argument must be a reference"),
    ("tokenTypeIds(8, tensor(x[2]):[1,2] )", "the argument must be a reference"),
    ("tokenAttentionMask(8)", "takes length and at least one token input"),
])
def test_bad_arguments_are_refused_as_vespa_refuses_them(expr: str, message: str) -> None:
    with pytest.raises(RankingError, match=message):
        _evaluate([expr])
