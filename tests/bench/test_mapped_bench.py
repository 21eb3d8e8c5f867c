"""bench.mapped_bench: its onnxruntime baselines give values worked out by hand, its documents are
what it says, and at a small size (--quick) tensorrank's scores equal onnxruntime's, which equal a
per-document numpy computation. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import mapped_bench as mb
from tensor_ir.mapped import LABELS

ort = pytest.importorskip("onnxruntime")


def _session(model: bytes) -> Any:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def test_maxsim_graph_takes_the_best_unmasked_token_per_query_token() -> None:
    # doc 0 has tokens (1,0) and (0,1); doc 1 has (2,2) and a masked (9,9)
    docs = np.array([[[1, 0], [0, 1]], [[2, 2], [9, 9]]], dtype=np.float32)
    mask = np.array([[True, True], [True, False]])
    query = np.array([[1, 0], [0, 3]], dtype=np.float32).T  # query tokens (1,0) and (0,3), as [dim, Q]
    (score,) = _session(mb.maxsim_graph(2, query_tokens=2, dim=2)).run(None, {"docs": docs, "mask": mask,
                                                                               "query": query})
    # doc 0: max(1, 0) + max(0, 3) = 4; doc 1: (2,2).(1,0) + (2,2).(0,3) = 2 + 6 = 8, the masked token ignored
    assert score.tolist() == [4.0, 8.0]


def test_user_profile_graph_sums_the_shared_categories_only() -> None:
    query = np.array([0.5, 0.0, 2.0, 0.0], dtype=np.float32)  # categories 0 and 2
    ids = np.array([[0, 2, 0], [1, 3, 0]], dtype=np.int64)  # doc 0: {0: 1, 2: 3}; doc 1: {1: 4, 3: 5}
    weights = np.array([[1, 3, 7], [4, 5, 7]], dtype=np.float32)  # the 7s are padding
    mask = np.array([[True, True, False], [True, True, False]])
    (score,) = _session(mb.user_profile_graph(3, categories=4)).run(
        None, {"query": query, "ids": ids, "weights": weights, "mask": mask})
    assert score.tolist() == [0.5 * 1 + 2.0 * 3, 0.0]


def test_documents_are_as_described() -> None:
    rng = np.random.default_rng(3)
    counts = mb.token_counts(rng, 20_000)
    assert counts.min() >= 1 and counts.max() == mb.MAX_TOKENS
    assert 60 < counts.mean() < 80
    case = mb.user_profile_case(300, 1, rng)
    (_, padded) = case.variants["float"]
    sizes = padded.mask.sum(axis=1)
    assert sizes.min() >= 5 and sizes.max() <= 50
    for row, m in zip(padded.labels["cat"], padded.mask, strict=True):
        assert len(set(row[m].tolist())) == int(m.sum())  # no label twice in a document
    assert len(case.queries[0]) == mb.PROFILE_LABELS


@pytest.mark.parametrize("workload", ["maxsim", "user_profile"])
def test_tensorrank_scores_equal_a_per_document_computation(workload: str) -> None:
    rng = np.random.default_rng(11)
    case = (mb.maxsim_case if workload == "maxsim" else mb.user_profile_case)(60, 1, rng)
    (query,) = case.queries
    for variant, (_, padded) in case.variants.items():
        got = mb._tensorrank(case, variant, mb.compile_first_phase(case, variant))(query)
        want = []
        for d in range(case.n):
            present = padded.mask[d]
            cells = padded.cells[d][present].astype(np.float64)
            if workload == "maxsim":
                want.append(float((cells @ query.cells.astype(np.float64).T).max(axis=0).sum()))
            else:
                q = dict(zip((a[0] for a in query.addresses), query.cells.tolist(), strict=True))
                labels = [LABELS.decode(int(i)) for i in padded.labels["cat"][d][present]]
                want.append(sum(q.get(label, 0.0) * w for label, w in zip(labels, cells.tolist(), strict=True)))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{workload} {variant}")


def test_quick_run_checks_every_score_and_reports_memory(tmp_path: Path) -> None:
    out = tmp_path / "mapped.json"
    assert mb.main(["--quick", "--docs", "400", "--json", str(out)]) == 0
    rows = {r["workload"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"maxsim", "user_profile"}
    assert set(rows["maxsim"]["variants"]) == {"bfloat16", "float"}
    for name, row in rows.items():
        assert row["checks_ok"] and not row.get("refused"), name
        assert row["onnxruntime_vs_numpy_max_abs"] <= 1e-4, name
        for variant, v in row["variants"].items():
            assert v["tensorrank_vs_onnxruntime_max_abs"] <= 1e-4, (name, variant)
            assert v["padded_bytes"] > v["present_bytes"] > 0, (name, variant)
            assert v["docs_per_s"] > 0 and v["ratio"] > 0, (name, variant)
