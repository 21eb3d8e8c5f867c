"""The global phase: Vespa's cross-hit normalizers and the rescaling of the hits after the
reranked ones, by hand; then a real `tensorrank serve` subprocess with first, second and
global phases (normalize_linear, reciprocal_rank_fusion), fed and queried over gRPC, order
and scores checked against the phases written out here in numpy."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from cpu_fallback import NumpyBackend
from proto.tensorrank.v1 import ranking_pb2 as pb
from server.application.package import Application
from server.global_phase import normalize, rescale_rest
from server.ranking import Ranker
from server.store.view import ShardView
from tensor_ir.expr.features.phase_features import Normalizer

from ..shared_data import shared
from .serving import Server, doc_id, feed, tensor

LINEAR = Normalizer("linear", 0.0, "in", "out")


def test_linear_normalizer_maps_min_to_0_and_max_to_1() -> None:
    np.testing.assert_allclose(normalize(LINEAR, np.array([2.0, 4.0, 3.0, 12.0])), [0.0, 0.2, 0.1, 1.0])
    # infinities and NaN are left out of min and max, as LinearNormalizer's bounds leave them
    got = normalize(LINEAR, np.array([1.0, np.inf, 3.0, np.nan]))
    assert got[0] == 0.0 and got[2] == 1.0 and got[1] == np.inf and np.isnan(got[3])
    # all equal: every hit 0.5
    np.testing.assert_array_equal(normalize(LINEAR, np.array([7.0, 7.0])), [0.5, 0.5])


def test_reciprocal_rank_ranks_from_the_highest_ties_in_hit_order_nan_last() -> None:
    rr = Normalizer("reciprocal_rank", 60.0, "in", "out")
    got = normalize(rr, np.array([0.3, 0.9, np.nan, 0.3, 0.5]))
    # ranks: 0.9 -> 1, 0.5 -> 2, the first 0.3 -> 3, the second 0.3 -> 4, NaN -> 5
    np.testing.assert_allclose(got, [1 / 63, 1 / 61, 1 / 65, 1 / 64, 1 / 62])
    np.testing.assert_allclose(normalize(Normalizer("reciprocal_rank", 2.0, "", ""), np.array([1.0, 5.0])),
                               [1 / 4, 1 / 3])


def test_the_rest_are_rescaled_only_when_the_reranked_fall_below_where_they_started() -> None:
    rest = np.array([5.0, 1.0])
    # new scores 20..30 above the old 8..10: nothing to do
    np.testing.assert_array_equal(rescale_rest(np.array([10.0, 8.0]), np.array([30.0, 20.0]), rest), rest)
    # new 0.2..0.9 below the old 8..10: ranges floored at 1, scale 1/2, bias 0.2 - 8 * 1/2
    np.testing.assert_allclose(rescale_rest(np.array([10.0, 8.0]), np.array([0.9, 0.2]), rest),
                               [5 * 0.5 - 3.8, 1 * 0.5 - 3.8])


# ------------------------------------------------------------------ served over gRPC

SCHEMA = """schema gp {
  document gp {
    field x type double { indexing: attribute }
    field y type float { indexing: attribute }
    field v type tensor<float>(d[3]) { indexing: attribute }
  }
  rank-profile hybrid {
    inputs { query(q) tensor<float>(d[3]) }
    function dot() { expression: sum(attribute(v) * query(q)) }
    first-phase { expression: attribute(x) }
    second-phase {
      rerank-count: 40
      expression: attribute(x) + attribute(y)
    }
    global-phase {
      rerank-count: 15
      expression: normalize_linear(dot) + reciprocal_rank_fusion(dot, attribute(y)) + 0.1 * secondPhase
    }
    match-features { dot secondPhase }
  }
}
"""
N = 200


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[str], dict[str, np.ndarray]]]:
    root = tmp_path_factory.mktemp("gp")
    (root / "app" / "schemas").mkdir(parents=True)
    (root / "app" / "schemas" / "gp.sd").write_text(SCHEMA)
    server = Server(Path(root / "app"), root / "data")
    try:
        rng = np.random.default_rng(20261203)
        cols = {"x": rng.standard_normal(N) * 3, "y": rng.standard_normal(N).astype(np.float32),
                "v": rng.standard_normal((N, 3)).astype(np.float32)}
        ids = [doc_id(f"d{i:04d}", "gp") for i in range(N)]
        ops = [pb.FeedOperation(put=pb.Put(id=ids[i], fields={
            "x": tensor([cols["x"][i]], "double", "<f8"), "y": tensor([cols["y"][i]], "float"),
            "v": tensor(cols["v"][i], "tensor<float>(d[3])")})) for i in range(N)]
        results = feed(server.stub, ops)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        yield server, ids, cols
    finally:
        server.kill()


def _expected(ids: list[str], cols: dict[str, np.ndarray], q: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The three phases and the rescaling, written out: every hit the query returns."""
    x, y = cols["x"], cols["y"].astype(np.float64)
    dot = (cols["v"].astype(np.float32) * q.astype(np.float32)).sum(axis=1, dtype=np.float32).astype(np.float64)
    by_first = sorted(range(N), key=lambda i: (-x[i], ids[i]))
    second = x + y
    top40 = sorted(by_first[:40], key=lambda i: (-second[i], ids[i]))
    order = top40 + by_first[40:]
    score = {i: second[i] for i in top40} | {i: x[i] for i in by_first[40:]}
    top15 = order[:15]
    d = np.array([dot[i] for i in top15])
    lin = (d - d.min()) / (d.max() - d.min())
    rank_dot = {top15[j]: r + 1 for r, j in enumerate(sorted(range(15), key=lambda j: -d[j]))}
    yy = np.array([y[i] for i in top15])
    rank_y = {top15[j]: r + 1 for r, j in enumerate(sorted(range(15), key=lambda j: -yy[j]))}
    final = {i: lin[j] + 1 / (60 + rank_dot[i]) + 1 / (60 + rank_y[i]) + 0.1 * second[i]
             for j, i in enumerate(top15)}
    old = np.array([score[i] for i in top15])
    new = np.array(list(final.values()))
    rest = order[15:]
    if old.min() > new.min():
        scale = max(new.max() - new.min(), 1.0) / max(old.max() - old.min(), 1.0)
        bias = new.min() - old.min() * scale
        final |= {i: score[i] * scale + bias for i in rest}
    else:
        final |= {i: score[i] for i in rest}
    ranked = sorted(final, key=lambda i: (-final[i], ids[i]))
    return [ids[i] for i in ranked], np.array([final[i] for i in ranked])


def test_served_global_phase_reranks_as_numpy_does(served: tuple[Server, list[str], dict[str, np.ndarray]]) -> None:
    server, ids, cols = served
    for seed in (1, 2):
        q = np.random.default_rng(seed).standard_normal(3).astype(np.float32)
        want_ids, want_scores = _expected(ids, cols, q)
        response = server.stub.Rank(pb.RankRequest(schema="gp", rank_profile="hybrid", hits=30,
                                                   query={"q": tensor(q, "tensor<float>(d[3])")}), timeout=30)
        assert [h.id for h in response.hits] == want_ids[:30]
        # dot sums float cells: rounding in the last float bits
        np.testing.assert_allclose([h.relevance for h in response.hits], want_scores[:30], rtol=1e-6)
        x, y = cols["x"], cols["y"].astype(np.float64)
        for h in response.hits:
            i = ids.index(h.id)
            got = np.frombuffer(h.match_features["secondPhase"].values, dtype="<f8")[0]
            assert got == pytest.approx(x[i] + y[i], rel=1e-12)


def test_served_paging_cuts_the_globally_reranked_list(
        served: tuple[Server, list[str], dict[str, np.ndarray]]) -> None:
    server, ids, cols = served
    q = np.array([1.0, -0.5, 2.0], np.float32)
    want_ids, _ = _expected(ids, cols, q)
    response = server.stub.Rank(pb.RankRequest(schema="gp", rank_profile="hybrid", hits=10, offset=10,
                                               query={"q": tensor(q, "tensor<float>(d[3])")}), timeout=30)
    assert [h.id for h in response.hits] == want_ids[10:20]


# ------------------------------------------------------------------ Vespa's own global-phase package

def _onnx_inside_expected(ids: list[str], aa: np.ndarray, scores_of: Callable[[int], float],
                          rerank: int) -> tuple[list[str], np.ndarray]:
    """First phase sum(aa), the global phase's scores for the best `rerank`, the rest rescaled."""
    first = aa.sum(axis=1)
    order = sorted(range(len(ids)), key=lambda i: (-first[i], ids[i]))
    top = order[:rerank]
    final = {i: float(scores_of(i)) for i in top}
    old, new = np.array([first[i] for i in top]), np.array(list(final.values()))
    rest = order[rerank:]
    if old.min() > new.min():
        scale = max(new.max() - new.min(), 1.0) / max(old.max() - old.min(), 1.0)
        final |= {i: first[i] * scale + new.min() - old.min() * scale for i in rest}
    else:
        final |= {i: first[i] for i in rest}
    ranked = sorted(final, key=lambda i: (-final[i], ids[i]))
    return [ids[i] for i in ranked], np.array([final[i] for i in ranked])


def test_vespas_globalphase_onnx_inside_package_as_onnxruntime_scores_it() -> None:
    root = shared("vespa-apps/vt-globalphase-onnx-inside")
    app = Application.load(root)
    rng = np.random.default_rng(13)
    n = 40
    aa = rng.standard_normal((n, 3))
    extra = rng.integers(0, 2, n).astype(np.float32)
    ids = [doc_id(f"t{i:03d}", "test") for i in range(n)]
    shard = ShardView(ids, {"aa": aa, "extra": extra})
    bb, yy = np.array([0.3, -1.2]), np.array([0.05, 0.4])

    def cells(name: str, shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape)
        for c in json.loads((root / "files" / name).read_text())["cells"]:
            out[tuple(int(c["address"][f"d{k}"]) for k in range(len(shape)))] = c["value"]
        return out

    xx, ww = cells("const_xx.json", (2, 3)), cells("const_ww.json", (2,))
    sess = ort.InferenceSession(str(root / "files" / "ax_plus_b.onnx"), providers=["CPUExecutionProvider"])

    def y(i: int) -> np.ndarray:
        return np.asarray(sess.run(None, {"matrix_X": xx, "vector_A": aa[i], "vector_B": bb})[0], np.float64)

    cases: dict[str, Callable[[int], float]] = {"one": lambda i: float((ww * (y(i) - yy)).sum()),
                                                "simple": lambda i: float(y(i)[int(extra[i])])}
    for profile, score in cases.items():
        ranker = Ranker(app.schemas["test"].profiles[profile], NumpyBackend())
        result = ranker.rank(shard, {"bb": bb, "yy": yy}, hits=n)
        want_ids, want_scores = _onnx_inside_expected(ids, aa, score, 13)
        assert [h.id for h in result.hits] == want_ids, profile
        np.testing.assert_allclose([h.score for h in result.hits], want_scores, rtol=1e-9, err_msg=profile)
