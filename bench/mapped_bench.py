"""Mapped tensors (issue #13): tensorrank against onnxruntime over a padded dense matrix, in one run.

Two workloads over N resident documents (default 100,000), scored whole (every document, no top-k):

1. ColBERT MaxSim, `sum(reduce(sum(query(qt) * attribute(dt), x), max, dt), qt)`: the query a
   `tensor<float>(qt{},x[128])` of 32 tokens, the documents `tensor<bfloat16>(dt{},x[128])` (and a
   `tensor<float>` variant holding the same values) of 1..128 tokens each. Token counts are
   log-normal, median 64, sigma 0.5, rounded and clipped to 1..128 (mean about 70: the shape of
   passage lengths under a BERT tokenizer with ColBERT's 128-token cap, about 8% at the cap);
   every token vector L2-normalised, as ColBERT's are.
2. User profile, `sum(query(user_profile) * attribute(category_scores))` over `cat{}`: the query 50
   labels of 10,000 categories, each document 5..50 (uniform) labels; category popularity is Zipf
   (s = 1; without skew a query and a document would share a label once in seven documents), labels
   drawn without replacement (Gumbel top-k), weights uniform in [0, 1).

tensorrank: the expression compiled as a rank profile's first phase (tensor_ir.expr.profile.
compile_profile, capacities = the largest document and the query's size), the documents padded by
tensor_ir.mapped.pad_many (cells, one int32 label id per slot, a mask), run by the numpy backend's
compiled program; a query's time includes padding its tensor.
onnxruntime, what a user writes instead (graphs made with onnx.helper, the same documents):
MaxSim over the documents padded to [N, T, 128] float32 with a [N, T] mask: MatMul with the query as
[128, 32], Where(mask, ., -inf), ReduceMax over T, ReduceSum. onnxruntime has no bfloat16 MatMul on
the CPU, so the bfloat16 documents are given to it widened to float32 (the same values). User
profile: the documents' category ids [N, 50] int64, weights [N, 50] float32 and a mask; the query
as a dense float32 vector over the 10,000 categories (its time includes making it): Gather, Mul,
Where(mask, ., 0), ReduceSum. At 1 and 2 intra-op threads (the ratio is against the faster median),
in calls of ORT_BATCH documents (one call over all would keep gigabytes in its arena).

Checked before timing, every query: onnxruntime's scores against a per-document numpy computation
over the cells present (float64), and tensorrank's against onnxruntime's, within FLOAT_TOLERANCE of
the largest score. Timing: medians of interleaved runs (bench.compare). Memory: bytes of the padded
form (cells, label ids, mask) against the bytes of the cells present; and what one query allocates
beyond the resident documents: tensorrank's numpy allocations (tracemalloc, over two runs of a fresh
program, as bench.peak_memory) and, for both, the growth of the process's peak resident set over a
first run (VmHWM after /proc/self/clear_refs; onnxruntime without its memory arena).

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.mapped_bench [--docs 100000]
       [--queries 2] [--repeats 3] [--budget 300] [--workloads maxsim,user_profile] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.compare import TIMED_RUNS, WARM_S
from bench.machine import describe, summary
from tensor_ir.errors import TensorRankError
from tensor_ir.mapped import NO_LABEL, MappedTensor, Padded, pad, pad_many

SEED = 20261203
DIM, QUERY_TOKENS, MAX_TOKENS = 128, 32, 128
MEDIAN_TOKENS, TOKEN_SIGMA = 64, 0.5
CATEGORIES, PROFILE_LABELS, DOC_LABELS, ZIPF = 10_000, 50, (5, 50), 1.0
MAXSIM = "sum(reduce(sum(query(qt) * attribute(dt), x), max, dt), qt)"
USER_PROFILE = "sum(query(user_profile) * attribute(category_scores))"
WORKLOADS = ("maxsim", "user_profile")
# scores agree when within this fraction of the largest |score|: float32 sums in different orders
FLOAT_TOLERANCE = 1e-5
CHUNK = 4096  # documents generated, padded and checked at a time: bounded temporaries
QUICK_DOCS, SLOW_S = 1500, 1.0  # SLOW_S: see interleaved_medians
# onnxruntime's calls cover this many documents: its arena keeps 5x the MatMul output (10,000
# MaxSim documents: 814 MiB), so one call over 100,000 and a session per thread setting would not fit 23 GB
ORT_BATCH = 8192
F32 = np.float32


@dataclass
class Case:
    """One workload's documents and queries, in both layouts, with the reference scores."""

    workload: str
    expression: str
    n: int
    query_input: tuple[str, str, int]  # name, type, capacity
    field: str
    variants: dict[str, tuple[str, Padded]]  # variant -> (field type, padded documents)
    queries: list[MappedTensor]
    oracle: npt.NDArray[np.float64]  # [queries, n]
    present_bytes: dict[str, int]  # variant -> bytes of the cells present
    ort_model: bytes
    ort_docs: dict[str, npt.NDArray[Any]]
    ort_query: Callable[[MappedTensor], dict[str, npt.NDArray[Any]]]
    layout: str


def _unit(rng: np.random.Generator, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    x = rng.standard_normal(shape, dtype=F32)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


def _onnx(nodes: list[Any], name: str, inputs: list[Any], output: Any, inits: list[Any]) -> bytes:
    import onnx
    from onnx import helper

    model = helper.make_model(helper.make_graph(nodes, name, inputs, [output], inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9  # what onnxruntime releases of the last two years all read
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def maxsim_graph(tokens: int, query_tokens: int = QUERY_TOKENS, dim: int = DIM) -> bytes:
    """docs [N, T, dim] float, mask [N, T] bool, query [dim, Q] float -> score [N]."""
    from onnx import TensorProto as P
    from onnx import helper as h

    nodes = [h.make_node("MatMul", ["docs", "query"], ["sims"]),
             h.make_node("Unsqueeze", ["mask", "last_axis"], ["mask3"]),
             h.make_node("Where", ["mask3", "sims", "minus_inf"], ["masked"]),
             h.make_node("ReduceMax", ["masked", "token_axis"], ["best"], keepdims=0),
             h.make_node("ReduceSum", ["best", "token_axis"], ["score"], keepdims=0)]
    inits = [h.make_tensor("last_axis", P.INT64, [1], [2]), h.make_tensor("token_axis", P.INT64, [1], [1]),
             h.make_tensor("minus_inf", P.FLOAT, [], [-np.inf])]
    inputs = [h.make_tensor_value_info("docs", P.FLOAT, ["N", tokens, dim]),
              h.make_tensor_value_info("mask", P.BOOL, ["N", tokens]),
              h.make_tensor_value_info("query", P.FLOAT, [dim, query_tokens])]
    return _onnx(nodes, "maxsim", inputs, h.make_tensor_value_info("score", P.FLOAT, ["N"]), inits)


def user_profile_graph(slots: int, categories: int = CATEGORIES) -> bytes:
    """query [C] float, ids [N, L] int64, weights [N, L] float, mask [N, L] bool -> score [N]."""
    from onnx import TensorProto as P
    from onnx import helper as h

    nodes = [h.make_node("Gather", ["query", "ids"], ["picked"], axis=0),
             h.make_node("Mul", ["picked", "weights"], ["products"]),
             h.make_node("Where", ["mask", "products", "zero"], ["masked"]),
             h.make_node("ReduceSum", ["masked", "label_axis"], ["score"], keepdims=0)]
    inits = [h.make_tensor("label_axis", P.INT64, [1], [1]), h.make_tensor("zero", P.FLOAT, [], [0.0])]
    inputs = [h.make_tensor_value_info("query", P.FLOAT, [categories]),
              h.make_tensor_value_info("ids", P.INT64, ["N", slots]),
              h.make_tensor_value_info("weights", P.FLOAT, ["N", slots]),
              h.make_tensor_value_info("mask", P.BOOL, ["N", slots])]
    return _onnx(nodes, "user_profile", inputs, h.make_tensor_value_info("score", P.FLOAT, ["N"]), inits)


def token_counts(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
    raw = rng.lognormal(np.log(MEDIAN_TOKENS), TOKEN_SIGMA, n)
    return np.clip(np.rint(raw), 1, MAX_TOKENS).astype(np.int64)


def maxsim_case(n: int, queries: int, rng: np.random.Generator) -> Case:
    from tensor_ir.expr.types import parse_type

    qtype = parse_type(f"tensor<float>(qt{{}},x[{DIM}])", allow_mapped=True)
    bf16_text = f"tensor<bfloat16>(dt{{}},x[{DIM}])"
    dtype = parse_type(bf16_text, allow_mapped=True)
    lengths = token_counts(rng, n)
    t = int(lengths.max())
    qs = [_unit(rng, (QUERY_TOKENS, DIM)) for _ in range(queries)]
    query_values = [MappedTensor(qtype, tuple((str(i),) for i in range(QUERY_TOKENS)), q) for q in qs]
    all_queries = np.concatenate(qs).astype(np.float64).T  # [DIM, queries * QUERY_TOKENS]
    addresses = [tuple((str(j),) for j in range(k)) for k in range(t + 1)]
    cells = np.zeros((n, t, DIM), dtype=dtype.cell.np_dtype)
    labels = np.full((n, t), NO_LABEL, dtype=np.int32)
    mask = np.zeros((n, t), dtype=bool)
    oracle = np.empty((queries, n))
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        counts = lengths[start:stop]
        tokens = _unit(rng, (int(counts.sum()), DIM)).astype(dtype.cell.np_dtype)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        values = [MappedTensor(dtype, addresses[k], tokens[o:o + k]) for k, o in zip(counts, offsets, strict=False)]
        block = pad_many(values, t)
        cells[start:stop], labels[start:stop], mask[start:stop] = block.cells, block.labels["dt"], block.mask
        for i, v in enumerate(values):  # the reference: each document's own tokens, nothing padded
            best = (v.cells.astype(np.float64) @ all_queries).max(axis=0)
            oracle[:, start + i] = best.reshape(queries, QUERY_TOKENS).sum(axis=1)
    cells_f32 = cells.astype(F32)  # the float variant and onnxruntime's input: the same values
    present = int(lengths.sum()) * DIM
    return Case(
        "maxsim", MAXSIM, n, ("qt", str(qtype), QUERY_TOKENS), "dt",
        {"bfloat16": (bf16_text, Padded(cells, {"dt": labels}, mask)),
         "float": (bf16_text.replace("bfloat16", "float"), Padded(cells_f32, {"dt": labels}, mask))},
        query_values, oracle, {"bfloat16": present * 2, "float": present * 4},
        maxsim_graph(t), {"docs": cells_f32, "mask": mask},
        lambda q: {"query": np.ascontiguousarray(q.cells.T)},
        f"token counts log-normal (median {MEDIAN_TOKENS}, sigma {TOKEN_SIGMA}) in 1..{MAX_TOKENS}: "
        f"mean {lengths.mean():.1f}, max {t}, {np.mean(lengths == MAX_TOKENS):.1%} at {MAX_TOKENS}")


def _zipf_sample(rng: np.random.Generator, rows: int, k: int) -> npt.NDArray[np.int64]:
    """`rows` samples of k distinct categories each, in draw order (Gumbel top-k over Zipf weights)."""
    log_p = -ZIPF * np.log(np.arange(1, CATEGORIES + 1, dtype=F32))
    keys = log_p - np.log(-np.log(rng.random((rows, CATEGORIES), dtype=F32) + F32(1e-30)))
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1).astype(np.int64)


def user_profile_case(n: int, queries: int, rng: np.random.Generator) -> Case:
    from tensor_ir.expr.types import parse_type

    type_text = "tensor<float>(cat{})"
    ctype = parse_type(type_text, allow_mapped=True)
    names = [f"c{i}" for i in range(CATEGORIES)]
    index = {name: i for i, name in enumerate(names)}
    slots = DOC_LABELS[1]
    counts = rng.integers(DOC_LABELS[0], DOC_LABELS[1] + 1, n)
    ids = np.zeros((n, slots), dtype=np.int64)
    for start in range(0, n, CHUNK // 2):
        ids[start:start + CHUNK // 2] = _zipf_sample(rng, min(CHUNK // 2, n - start), slots)
    weights = rng.random((n, slots), dtype=F32)
    mask = np.arange(slots) < counts[:, None]
    ids[~mask], weights[~mask] = 0, 0.0
    values = [MappedTensor(ctype, tuple((names[j],) for j in ids[i, :k]), weights[i, :k])
              for i, k in enumerate(counts)]
    query_values = [MappedTensor(ctype, tuple((names[j],) for j in row), rng.random(PROFILE_LABELS, dtype=F32))
                    for row in _zipf_sample(rng, queries, PROFILE_LABELS)]
    oracle = np.zeros((queries, n))
    for qi, q in enumerate(query_values):  # the reference: Vespa's inner join on the labels, per document
        wanted = {a[0]: float(w) for a, w in zip(q.addresses, q.cells, strict=True)}
        for i, v in enumerate(values):
            oracle[qi, i] = sum(wanted.get(a[0], 0.0) * float(w) for a, w in zip(v.addresses, v.cells, strict=True))
    padded = pad_many(values, slots)
    del values

    def dense_query(q: MappedTensor) -> dict[str, npt.NDArray[Any]]:
        dense = np.zeros(CATEGORIES, dtype=F32)
        dense[[index[a[0]] for a in q.addresses]] = q.cells
        return {"query": dense}

    return Case("user_profile", USER_PROFILE, n, ("user_profile", type_text, PROFILE_LABELS), "category_scores",
                {"float": (type_text, padded)}, query_values, oracle, {"float": int(counts.sum()) * 4},
                user_profile_graph(slots), {"ids": ids, "weights": weights, "mask": mask}, dense_query,
                f"labels per document uniform in {DOC_LABELS[0]}..{DOC_LABELS[1]} (mean {counts.mean():.1f}) of "
                f"{CATEGORIES:,} categories, Zipf popularity (s = {ZIPF})")


def compile_first_phase(case: Case, variant: str) -> Any:
    """The expression as a rank profile's first phase, for the variant's field type; raises
    TensorRankError where it is refused."""
    from cpu_fallback import NumpyBackend
    from tensor_ir.expr.errors import Location
    from tensor_ir.expr.parser import parse_expression
    from tensor_ir.expr.profile import FieldDef, ProfileDef, QueryInput, compile_profile
    from tensor_ir.expr.types import parse_type

    here = Location("<bench.mapped_bench>")
    qname, qtype, qcap = case.query_input
    profile = ProfileDef(case.workload, here, first_phase=parse_expression(case.expression))
    profile.inputs[qname] = QueryInput(qname, parse_type(qtype, allow_mapped=True), None, here)
    fields = {case.field: FieldDef(case.field, parse_type(case.variants[variant][0], allow_mapped=True), True, here)}
    capacities = {f"attribute({case.field})": case.variants[variant][1].capacity, f"query({qname})": qcap}

    def no_models(ref: str, loc: Location) -> Any:
        raise ValueError(f"no models here ({ref})")

    compiled = compile_profile(profile, fields, no_models, capacities=capacities)
    return NumpyBackend().compile(compiled.first_phase)


def mapped_feeds(name: str, value: Padded) -> dict[str, npt.NDArray[Any]]:
    """A padded value as the three program inputs of a mapped value NAME."""
    return {name: value.cells, **{f"{name}#label:{d}": x for d, x in value.labels.items()}, f"{name}#mask": value.mask}


def _tensorrank(case: Case, variant: str, program: Any) -> Callable[[MappedTensor], npt.NDArray[np.float64]]:
    from tensor_ir.expr.profile import FIRST_PHASE

    doc_feeds = mapped_feeds(f"attribute({case.field})", case.variants[variant][1])
    qname, _, qcap = case.query_input
    missing = set(program.program.inputs) - set(doc_feeds) - set(mapped_feeds(f"query({qname})", pad(case.queries[0],
                                                                                                         qcap)))
    if missing:
        raise ValueError(f"{case.workload}: the program wants inputs the bench does not make: {sorted(missing)}")

    def score(q: MappedTensor) -> npt.NDArray[np.float64]:
        out = program.run({**doc_feeds, **mapped_feeds(f"query({qname})", pad(q, qcap))}, case.n)
        return np.asarray(out[FIRST_PHASE], dtype=np.float64).reshape(case.n)

    return score


def _ort(case: Case, threads: int, arena: bool = True) -> Callable[[MappedTensor], npt.NDArray[np.float64]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_cpu_mem_arena = arena
    session = ort.InferenceSession(case.ort_model, opts, providers=["CPUExecutionProvider"])

    def score(q: MappedTensor) -> npt.NDArray[np.float64]:
        query = case.ort_query(q)
        return np.concatenate([session.run(None, {**{k: x[i:i + ORT_BATCH] for k, x in case.ort_docs.items()},
                                                  **query})[0] for i in range(0, case.n, ORT_BATCH)]).astype(np.float64)
    return score


def interleaved_medians(fns: dict[str, Callable[[], Any]], repeats: int, budget_s: float
                        ) -> tuple[dict[str, float], int]:
    """bench.compare's turns (untimed runs for WARM_S, then TIMED_RUNS timed), except that a
    contender whose run takes SLOW_S or more has one run per turn, after a 0.1 s pause and
    timed: untimed runs would double the cost of a run lasting seconds, and what they absorb
    (the previous contender's spinning threads) is gone within the pause."""
    times: dict[str, list[float]] = {label: [] for label in fns}
    start = time.perf_counter()
    while min(len(ts) for ts in times.values()) < repeats:
        for label, fn in fns.items():
            time.sleep(0.1)
            warm_until = time.perf_counter() + WARM_S
            first = _seconds(fn)
            if first >= SLOW_S:
                times[label].append(first)
                continue
            while time.perf_counter() < warm_until:
                fn()
            times[label] += [_seconds(fn) for _ in range(TIMED_RUNS)]
        if time.perf_counter() - start > budget_s:
            break
    return {label: statistics.median(ts) for label, ts in times.items()}, min(len(ts) for ts in times.values())


def _seconds(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_rss_growth(fn: Callable[[], Any]) -> int | None:
    """How far the process's peak resident set rises above its current one while fn runs
    (None where Linux's clear_refs, which resets the peak, is not available)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_bytes("VmRSS")
    except (OSError, KeyError):
        return None
    fn()
    return max(0, _status_bytes("VmHWM") - before)


def _agreement(got: npt.NDArray[np.float64], want: npt.NDArray[np.float64]) -> tuple[float, bool]:
    err = float(np.max(np.abs(got - want)))
    return err, err <= FLOAT_TOLERANCE * max(1.0, float(np.max(np.abs(want))))


def run_case(case: Case, repeats: int, budget: float) -> dict[str, Any]:
    qs = case.queries
    row: dict[str, Any] = {"workload": case.workload, "docs": case.n, "queries": len(qs), "layout": case.layout,
                           "expression": case.expression, "checks_ok": True}
    ort_by_threads = {t: _ort(case, t) for t in (1, 2)}
    ort_scores = [ort_by_threads[1](q) for q in qs]
    errs = [_agreement(s, case.oracle[i]) for i, s in enumerate(ort_scores)]
    row["onnxruntime_vs_numpy_max_abs"] = max(e for e, _ in errs)
    row["checks_ok"] &= all(ok for _, ok in errs)
    ort_padded = sum(x.nbytes for x in case.ort_docs.values())
    row["onnxruntime_padded_bytes"] = ort_padded
    row["onnxruntime_peak_rss_growth_bytes"] = peak_rss_growth(lambda: _ort(case, 1, arena=False)(qs[0]))
    turn = [0]

    def rotating(score: Callable[[MappedTensor], Any]) -> Callable[[], Any]:
        def one() -> Any:  # the queries in turn, so that no one query's data stays in cache
            turn[0] += 1
            return score(qs[turn[0] % len(qs)])
        return one

    contenders = {f"onnxruntime {t}t": rotating(fn) for t, fn in ort_by_threads.items()}
    row["variants"] = {}
    for variant, (field_type, padded) in case.variants.items():
        v: dict[str, Any] = {"field_type": field_type, "present_bytes": case.present_bytes[variant],
                             "padded_bytes": padded.cells.nbytes + padded.mask.nbytes
                             + sum(x.nbytes for x in padded.labels.values())}
        v["padded_over_present"] = v["padded_bytes"] / v["present_bytes"]
        row["variants"][variant] = v
        try:
            program = compile_first_phase(case, variant)
            score = _tensorrank(case, variant, program)
        except TensorRankError as e:
            v["refused"] = f"{type(e).__name__}: {e}"
            row["refused"] = True
            print(f"  {case.workload} {variant}: tensorrank did not compile it: {v['refused']}", flush=True)
            continue
        errs = [_agreement(score(q), ort_scores[i]) for i, q in enumerate(qs)]
        v["tensorrank_vs_onnxruntime_max_abs"] = max(e for e, _ in errs)
        row["checks_ok"] &= all(ok for _, ok in errs)
        fresh = _tensorrank(case, variant, compile_first_phase(case, variant))
        tracemalloc.start()
        v["peak_rss_growth_bytes"] = peak_rss_growth(lambda f=fresh: f(qs[0]))  # type: ignore[misc]
        v["traced_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del fresh
        contenders[f"tensorrank {variant}"] = rotating(score)
    if not row["checks_ok"]:
        print(f"  {case.workload}: scores disagree: not timed ({row})", flush=True)
        return row
    medians, runs = interleaved_medians(contenders, repeats, budget)
    row["runs"] = runs
    row["median_ms"] = {k: 1000 * s for k, s in medians.items()}
    ort_best = min(medians[f"onnxruntime {t}t"] for t in (1, 2))
    row["onnxruntime_ms"] = 1000 * ort_best
    for variant, v in row["variants"].items():
        if "refused" in v:
            continue
        mine = medians[f"tensorrank {variant}"]
        v.update(ms=1000 * mine, docs_per_s=case.n / mine, ratio=ort_best / mine)
    row["onnxruntime_docs_per_s"] = case.n / ort_best
    return row


def _mib(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:,.1f} MiB"


def report(row: dict[str, Any]) -> str:
    lines = [f"{row['workload']} over {row['docs']:,} documents ({row['layout']}); onnxruntime vs numpy max |err| "
             f"{row['onnxruntime_vs_numpy_max_abs']:.1e}; onnxruntime padded input "
             f"{_mib(row['onnxruntime_padded_bytes'])}, peak RSS growth per query "
             f"{_mib(row['onnxruntime_peak_rss_growth_bytes'])}"]
    if "median_ms" in row:
        lines.append("  medians: " + ", ".join(f"{k} {ms:.2f} ms" for k, ms in row["median_ms"].items())
                     + f" ({row['runs']} timed runs each)")
    for variant, v in row["variants"].items():
        head = f"  tensorrank {variant:8}"
        if "refused" in v:
            lines.append(f"{head} refused: {v['refused']}")
            continue
        timing = (f" {v['ms']:.2f} ms/query, {v['docs_per_s']:,.0f} docs/s, {v['ratio']:.2f}x onnxruntime's "
                  f"faster ({row['onnxruntime_ms']:.2f} ms, {row['onnxruntime_docs_per_s']:,.0f} docs/s);"
                  if "ms" in v else "")
        lines.append(f"{head}{timing} vs onnxruntime max |err| {v['tensorrank_vs_onnxruntime_max_abs']:.1e}; padded "
                     f"{_mib(v['padded_bytes'])} vs cells present {_mib(v['present_bytes'])} "
                     f"({v['padded_over_present']:.2f}x); per query: numpy allocations {_mib(v['traced_peak_bytes'])}"
                     f", peak RSS growth {_mib(v['peak_rss_growth_bytes'])}")
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| workload | docs | variant | tensorrank ms | onnxruntime ms (faster) | ratio | tensorrank docs/s | "
           "padded / cells present (bytes) | max abs err |", "| --- | ---: | --- |" + " ---: |" * 6]
    for r in rows:
        for variant, v in r["variants"].items():
            if "ms" not in v:
                continue
            out.append(f"| {r['workload']} | {r['docs']:,} | {variant} | {v['ms']:.2f} | {r['onnxruntime_ms']:.2f} | "
                       f"{v['ratio']:.2f}x | {v['docs_per_s']:,.0f} | {v['padded_bytes']:,} / {v['present_bytes']:,} "
                       f"({v['padded_over_present']:.2f}x) | {v['tensorrank_vs_onnxruntime_max_abs']:.1e} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mapped_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int)
    p.add_argument("--queries", type=int)
    p.add_argument("--repeats", type=int)
    p.add_argument("--budget", type=float, help="seconds of timing per workload before stopping early")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--quick", action="store_true", help=f"{QUICK_DOCS:,} documents, one timed round: for tests")
    p.add_argument("--json")
    args = p.parse_args(argv)
    quick = {"docs": QUICK_DOCS, "queries": 2, "repeats": 1, "budget": 1.0}
    full = {"docs": 100_000, "queries": 2, "repeats": 3, "budget": 300.0}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    workloads = args.workloads.split(",")
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workloads {sorted(unknown)}: expected some of {', '.join(WORKLOADS)}")
    info = describe()
    print(f"machine: {summary(info)}; load average {os.getloadavg()[0]:.2f}", flush=True)
    print("onnxruntime has no bfloat16 MatMul on the CPU: it gets the bfloat16 documents widened to float32",
          flush=True)
    rows = []
    for name in workloads:
        rng = np.random.default_rng([SEED, WORKLOADS.index(name)])
        t0 = time.perf_counter()
        case = (maxsim_case if name == "maxsim" else user_profile_case)(args.docs, args.queries, rng)
        print(f"{name}: {args.docs:,} documents made in {time.perf_counter() - t0:.1f} s", flush=True)
        rows.append(run_case(case, args.repeats, args.budget))
        del case  # before the next workload's documents are made
        print(report(rows[-1]), flush=True)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    return 1 if not all(r["checks_ok"] for r in rows) else 3 if any(r.get("refused") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
