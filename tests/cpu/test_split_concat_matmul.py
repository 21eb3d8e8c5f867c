"""concat(query, doc) @ W becomes query @ W[:k] + doc @ W[k:], and the query half runs once."""

from __future__ import annotations

import numpy as np

from cpu_fallback import NumpyBackend
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Op, Role, Variance
from tensor_ir.passes.split_concat_matmul import split_concat_matmul
from tensor_ir.program import Program
from tensor_ir.verify import verify

F32 = CellType.FLOAT32


def _program(doc_role: Role = Role.ATTRIBUTE) -> Program:
    rng = np.random.default_rng(3)
    q = build.input_("q", Role.QUERY, (1, 4), F32)
    d = build.input_("d", doc_role, (1, 6), F32)
    w = build.constant(rng.standard_normal((10, 5)).astype(np.float32))
    return Program({"y": build.matmul(build.concat([q, d], 1), w)})


def test_split_removes_the_concat_and_hoists_the_query_half() -> None:
    split = split_concat_matmul(_program())
    verify(split)
    ops = [n.op for n in split.nodes()]
    assert Op.CONCAT not in ops
    matmuls = [n for n in split.nodes() if n.op is Op.MATMUL]
    assert sorted(m.variance for m in matmuls) == [Variance.QUERY, Variance.DOCUMENT]


def test_split_keeps_the_values() -> None:
    prog = _program()
    rng = np.random.default_rng(4)
    n = 37
    feeds = {"q": rng.standard_normal((1, 4)).astype(np.float32),
             "d": rng.standard_normal((n, 1, 6)).astype(np.float32)}
    w = next(x for x in prog.nodes() if x.op is Op.CONSTANT).value
    want = np.concatenate([np.broadcast_to(feeds["q"], (n, 1, 4)), feeds["d"]], axis=2) @ w
    got = NumpyBackend().run(split_concat_matmul(prog), feeds, n)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_no_split_when_parts_share_variance() -> None:
    split = split_concat_matmul(_program(Role.QUERY))
    assert any(n.op is Op.CONCAT for n in split.nodes())
    assert sum(n.op is Op.MATMUL for n in split.nodes()) == 1


def test_query_scale_folds_into_weights_only_past_break_even() -> None:
    from tensor_ir.passes.fold_query_scale import fold_query_scale, thresholds

    rng = np.random.default_rng(5)
    d = build.input_("d", Role.ATTRIBUTE, (1, 6), F32)
    q = build.input_("q", Role.QUERY, (6,), F32)
    w = build.constant(rng.standard_normal((6, 40)).astype(np.float32))
    prog = Program({"y": build.matmul(build.join("mul", d, q), w)})
    assert thresholds(prog) == [40]
    small = fold_query_scale(prog, 39)
    big = fold_query_scale(prog, 40)
    assert any(n.op is Op.JOIN and n.per_document for n in small.nodes())
    assert not any(n.op is Op.JOIN and n.per_document for n in big.nodes())
    n = 50
    feeds = {"d": rng.standard_normal((n, 1, 6)).astype(np.float32), "q": rng.standard_normal(6).astype(np.float32)}
    want = (feeds["d"] * feeds["q"]) @ w.value
    for variant in (small, big):
        np.testing.assert_allclose(NumpyBackend().run(variant, feeds, n)["y"], want, rtol=1e-5, atol=1e-5)


def test_invariant_addends_are_grouped_out_of_the_per_document_chain() -> None:
    from tensor_ir.passes.reassociate import reassociate_invariants

    rng = np.random.default_rng(6)
    d = build.input_("d", Role.ATTRIBUTE, (3,), F32)
    q = build.input_("q", Role.QUERY, (3,), F32)
    b = build.constant(rng.standard_normal(3).astype(np.float32))
    prog = Program({"y": build.join("add", build.join("add", d, q), b)})
    out = reassociate_invariants(prog)
    per_doc_joins = [n for n in out.nodes() if n.op is Op.JOIN and n.per_document]
    assert len(per_doc_joins) == 1
    feeds = {"d": rng.standard_normal((4, 3)).astype(np.float32), "q": rng.standard_normal(3).astype(np.float32)}
    np.testing.assert_allclose(NumpyBackend().run(out, feeds, 4)["y"], feeds["d"] + feeds["q"] + b.value, rtol=1e-6)


def test_a_shared_inner_sum_is_not_regrouped() -> None:
    from tensor_ir.passes.reassociate import reassociate_invariants

    d = build.input_("d", Role.ATTRIBUTE, (3,), F32)
    q = build.input_("q", Role.QUERY, (3,), F32)
    inner = build.join("add", d, q)
    prog = Program({"y": build.join("add", inner, build.scalar(1.0, F32)), "z": build.map_("exp", inner)})
    out = reassociate_invariants(prog)
    assert sum(1 for n in out.nodes() if n.op is Op.JOIN and n.per_document) == 2
