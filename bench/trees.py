"""Tree ensembles: tensorrank against onnxruntime, LightGBM and XGBoost, in one run.

Two LightGBM models are trained here with fixed seeds on generated data with 1% NaN: 500 trees
of depth 8 and 100 trees of depth 6 over 136 float features (the shape of a LambdaMART model
on MSLR-WEB30K). tensorrank scores N resident documents through a rank profile,
`sum(onnx(model))` over the model's ONNX export (onnxmltools) in a tensor attribute (the full
Ranker.rank call: every document scored, the top 10 selected); onnxruntime runs the same ONNX
file over the same rows at 1 and 2 threads; LightGBM's Booster.predict runs the trained model
and XGBoost's Booster.inplace_predict an XGBoost model of the same shape trained on the same
data. Medians of interleaved runs (bench.compare); the ratio is the fastest other's time over
tensorrank's. Scores are checked against onnxruntime's single-threaded ones.

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.trees [--sizes 10000,100000]
       [--repeats 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.compare import _interleaved_medians
from bench.machine import describe, summary

SEED = 20261203
N_FEATURES = 136
TRAIN_ROWS = 20_000
SHAPES = ((500, 8), (100, 6))  # trees, depth
SCHEMA = """schema docs {
  document docs {
    field features type tensor<float>(d0[1],d1[136]) { indexing: attribute }
  }
  rank-profile trees {
    function input() { expression: attribute(features) }
    first-phase { expression: sum(onnx(forest)) }
  }
}
"""


def features(rng: np.random.Generator, n: int) -> np.ndarray[Any, Any]:
    x = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.01] = np.nan
    return x


def relevance(x: np.ndarray[Any, Any], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    v = np.nan_to_num(x[:, :12])
    y: np.ndarray[Any, Any] = (v[:, 0] + np.sin(v[:, 1] * v[:, 2]) + (v[:, 3] > 0.5) * v[:, 4]
                               + np.abs(v[:, 5:12]).sum(axis=1) * 0.1 + rng.normal(size=x.shape[0]) * 0.3)
    return y


def train(trees: int, depth: int, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    """The LightGBM booster, its ONNX export, and an XGBoost booster of the same shape."""
    import lightgbm
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    x = features(rng, TRAIN_ROWS)
    y = relevance(x, rng)
    params = {"num_leaves": 2 ** depth - 1, "max_depth": depth, "min_data_in_leaf": 5, "learning_rate": 0.05,
              "verbose": -1, "seed": SEED, "num_threads": 2}
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), trees)
    model = onnxmltools.convert_lightgbm(booster, initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
                                         target_opset=15)
    xgb = xgboost.train({"max_depth": depth, "eta": 0.05, "tree_method": "hist", "nthread": 2, "seed": SEED},
                        xgboost.DMatrix(x, y), trees)
    return booster, model, xgb


def bench_shape(trees: int, depth: int, sizes: list[int], repeats: int, root: Path, budget: float
                ) -> list[dict[str, Any]]:
    import onnx
    import onnxruntime as ort

    from cpu_fallback import NumpyBackend
    from server.application.package import Application
    from server.ranking import Ranker
    from server.store.view import ShardView

    rng = np.random.default_rng([SEED, trees, depth])
    booster, model, xgb = train(trees, depth, rng)
    app = root / f"trees{trees}_{depth}"
    (app / "schemas").mkdir(parents=True)
    (app / "models").mkdir()
    (app / "schemas" / "docs.sd").write_text(SCHEMA)
    for vi in (*model.graph.input, *model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = 1  # one row per document
    onnx.save(model, app / "models" / "forest.onnx")
    ranker = Ranker(Application.load(app).profile("docs", "trees"), NumpyBackend())
    for vi in (*model.graph.input, *model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    sessions = {}
    for threads in (1, 2):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sessions[f"onnxruntime {threads}t"] = ort.InferenceSession(model.SerializeToString(), opts,
                                                                    providers=["CPUExecutionProvider"])
    rows = []
    for n in sizes:
        x = features(rng, n)
        shard = ShardView([f"id:docs:docs::{i}" for i in range(n)], {"features": x.reshape(n, 1, N_FEATURES)})
        contenders: dict[str, Callable[[], Any]] = {"tensorrank": lambda s=shard: ranker.rank(s, {}, hits=10)}
        for label, sess in sessions.items():
            contenders[label] = lambda s=sess, v=x: s.run(None, {"input": v})
        contenders["lightgbm"] = lambda v=x: booster.predict(v, raw_score=True, num_threads=2)
        contenders["xgboost"] = lambda v=x: xgb.inplace_predict(v)
        medians, runs = _interleaved_medians(contenders, repeats, budget)
        want = sessions["onnxruntime 1t"].run(None, {"input": x})[0].reshape(-1).astype(np.float64)
        got = ranker.rank(shard, {}, hits=1, all_scores=True).scores
        assert got is not None
        err = float(np.max(np.abs(got - want)))
        others = {k: v for k, v in medians.items() if k != "tensorrank"}
        fastest = min(others, key=lambda k: others[k])
        row = {"trees": trees, "depth": depth, "documents": n, "runs": runs, "max_abs_error_vs_onnxruntime": err,
               **{f"{k}_docs_per_s": n / v for k, v in medians.items()}, "fastest_other": fastest,
               "ratio": others[fastest] / medians["tensorrank"]}
        rows.append(row)
        print(f"{trees} trees depth {depth} N={n:>9,d}  " + "  ".join(f"{k} {n / v:,.0f}/s" for k, v in
                                                                       medians.items())
              + f"  ratio {row['ratio']:.2f}x vs {fastest}  max |err| {err:.1e}", flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| trees x depth | N | tensorrank docs/s | onnxruntime 1t | onnxruntime 2t | lightgbm | xgboost | "
           "ratio to the fastest | max abs err |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['trees']} x {r['depth']} | {r['documents']:,} | {r['tensorrank_docs_per_s']:,.0f} | "
                   f"{r['onnxruntime 1t_docs_per_s']:,.0f} | {r['onnxruntime 2t_docs_per_s']:,.0f} | "
                   f"{r['lightgbm_docs_per_s']:,.0f} | {r['xgboost_docs_per_s']:,.0f} | {r['ratio']:.2f}x "
                   f"({r['fastest_other']}) | {r['max_abs_error_vs_onnxruntime']:.1e} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.trees", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=60.0)
    p.add_argument("--shapes", default=",".join(f"{t}x{d}" for t, d in SHAPES))
    p.add_argument("--json")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    info = describe()
    print(f"machine: {summary(info)}", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            t, d = (int(v) for v in shape.split("x"))
            rows += bench_shape(t, d, sizes, args.repeats, Path(tmp), args.budget)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
