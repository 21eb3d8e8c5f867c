"""Program: describe, histogram, input checks, and deep graphs without recursion."""

from __future__ import annotations

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import EvaluationError
from tensor_ir.ir import Node, Op, Role, topological_order
from tensor_ir.passes import eliminate_common_subexpressions, fold_constants
from tensor_ir.program import Program
from tensor_ir.verify import verify

F32 = CellType.FLOAT32


def small() -> Program:
    d = build.input_("emb", Role.ATTRIBUTE, (1, 4), F32)
    q = build.input_("q", Role.QUERY, (4,), F32)
    w = build.constant(np.ones((4, 2), dtype=np.float32))
    score = build.reduce(build.join("mul", d, q), "sum", [-1], False)
    proj = build.matmul(d, w)
    return Program(
        {"score": score, "proj": proj, "qnorm": build.reduce(build.join("mul", q, q), "sum", None, False)}
    )


def test_describe() -> None:
    text = small().describe()
    assert text.splitlines() == [
        "program: 5 nodes, 32 constant bytes",
        "  input  attribute(emb) float32[1, 4]",
        "  input  query(q) float32[4]",
        "  output score: float32[1] query x document",
        "  output proj: float32[1, 2] document",
        "  output qnorm: float32[] query",
    ]


def test_histogram_and_sizes() -> None:
    p = small()
    assert dict(p.op_histogram()) == {"join": 2, "reduce": 2, "matmul": 1}
    assert p.size() == 5 and p.constant_bytes() == 32
    assert set(p.input_nodes()) == {"emb", "q"}


def test_topological_order_visits_shared_nodes_once() -> None:
    x = build.input_("x", Role.ATTRIBUTE, (2,), F32)
    a = build.map_("exp", x)
    b = build.join("add", a, a)
    c = build.join("mul", b, a)
    order = topological_order([c, b])
    assert order == [x, a, b, c]


def _deep_chain(n: int) -> tuple[Node, Node]:
    x = build.input_("x", Role.ATTRIBUTE, (3,), F32)
    node = x
    one = build.scalar(1.0, F32)
    for i in range(n):
        # alternate, so that no two consecutive nodes are alike
        node = build.join("add", node, one) if i % 2 else build.map_("neg", node)
    return x, node


def test_deep_chain_has_no_recursion_limit() -> None:
    n = 10_000
    x, out = _deep_chain(n)
    p = Program({"out": out})
    order = p.nodes()
    assert len(order) == n + 2  # the chain, its input and the shared constant
    pos = {id(node): i for i, node in enumerate(order)}
    assert all(pos[id(i)] < pos[id(node)] for node in order for i in node.inputs)
    assert order[0] is x and order[-1] is out
    # every pass and the backend walk it iteratively too
    verify(p)
    p2 = eliminate_common_subexpressions(fold_constants(p))
    assert p2.size() == n
    assert repr(out).startswith("<join")
    xs = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = NumpyBackend().run(p2, {"x": xs}, 2)["out"]
    # n/2 negations (even: identity) and n/2 additions of 1 with alternating signs
    want = xs.copy()
    for i in range(n):
        want = want + 1 if i % 2 else -want
    np.testing.assert_allclose(got, want)


def test_check_inputs() -> None:
    p = small()
    be = NumpyBackend()
    with pytest.raises(EvaluationError, match=r"missing value for query\(q\) float32\[4\]"):
        be.run(p, {"emb": np.zeros((2, 1, 4))}, 2)
    with pytest.raises(
        EvaluationError,
        match=r"attribute\(emb\) float32\[1, 4\]: got a value of shape \[2, 4\], "
        r"want \[2, 1, 4\]",
    ):
        be.run(p, {"emb": np.zeros((2, 4)), "q": np.zeros(4)}, 2)
    out = be.run(p, {"emb": np.ones((3, 1, 4), dtype=np.float64), "q": np.full(4, 2, dtype=np.int64)}, 3)
    # values are converted to the declared cell types; document-independent outputs get the doc axis too
    assert out["score"].dtype == np.float32 and out["score"].shape == (3, 1)
    assert out["qnorm"].shape == (3,) and out["qnorm"].tolist() == [16.0] * 3
    assert out["proj"].shape == (3, 1, 2)


def test_unused_inputs_need_no_value() -> None:
    x = build.input_("x", Role.ATTRIBUTE, (2,), F32)
    y = build.input_("y", Role.ATTRIBUTE, (2,), F32)
    p = Program({"out": build.map_("neg", x)})
    p = Program(p.outputs, {**p.inputs, "y": Program({"o": y}).inputs["y"]})
    out = NumpyBackend().run(p, {"x": np.ones((1, 2))}, 1)["out"]
    assert out.tolist() == [[-1.0, -1.0]]
    assert Op.INPUT in [n.op for n in p.nodes()]
