"""The GPU's tree-ensemble kernel: one thread per document, walking the canonical forest's node
table (tensor_ir/trees/forest.py) tree by tree and summing the leaves in tree order in the
forest's accumulation type, so that scores equal the numpy backend's bit for bit. The node
tables are uploaded once and read through the read-only cache (they fit in L2: 500 trees of
depth 8 are under 5 MB). Rendered as a string without CuPy, compiled by NVRTC in the tests
(tests/trees/test_gpu_kernel.py) with the options CuPy uses, `--fmad=false` among them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from gpu_engine.render import NVRTC_OPTIONS
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.trees import Forest
from tensor_ir.trees.walk import evaluate as tree_scores

C_NAMES = {CellType.FLOAT32: "float", CellType.FLOAT64: "double"}
THREADS = 128

_TEMPLATE = r"""
extern "C" __global__ void NAME(
    const XT* __restrict__ x, const long long n, const int width,
    const int* __restrict__ feature, const XT* __restrict__ threshold, const unsigned char* __restrict__ kind,
    const unsigned char* __restrict__ missing_true, const int* __restrict__ true_child,
    const int* __restrict__ false_child, const int* __restrict__ set_start, const int* __restrict__ set_stop,
    const XT* __restrict__ members, const int* __restrict__ leaf_row, const int* __restrict__ roots,
    const AT* __restrict__ leaf_values, const unsigned char* __restrict__ leaf_touch,
    const AT* __restrict__ base, AT* __restrict__ out)
{
    const long long doc = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (doc >= n) return;
    const XT* row = x + doc * width;
    AT* score = out + doc * TARGETS;
    bool has[TARGETS];
    for (int k = 0; k < TARGETS; ++k) { score[k] = (AT)0; has[k] = false; }
    for (int t = 0; t < TREES; ++t) {
        int i = roots[t];
        for (int s = 0; s < DEPTH; ++s) {
            const unsigned char c = kind[i];
            if (c == 0) break;  // a leaf
            const XT v = row[feature[i]];
            bool go;
            if (isnan(v)) {
                go = missing_true[i] != 0;
            } else if (c == 1) {
                go = v <= threshold[i];
            } else {  // MEMBER, or CATEGORY: the value truncated toward zero
                const XT key = c == 3 ? trunc(v) : v;
                int lo = set_start[i], hi = set_stop[i];
                const int stop = hi;
                while (lo < hi) {
                    const int mid = (lo + hi) >> 1;
                    if (members[mid] < key) lo = mid + 1; else hi = mid;
                }
                go = lo < stop && members[lo] == key;
            }
            i = go ? true_child[i] : false_child[i];
        }
        const int r = leaf_row[i];
        for (int k = 0; k < TARGETS; ++k) {
            const AT w = leaf_values[r * TARGETS + k];
            UPDATE
        }
    }
    for (int k = 0; k < TARGETS; ++k) {
        FINISH
    }
}
"""

_UPDATE = {
    "sum": "score[k] = score[k] + w;",
    "average": "score[k] = score[k] + w;",
    "min": "if (leaf_touch[r * TARGETS + k] && (!has[k] || w < score[k])) score[k] = w;\n"
           "            has[k] = has[k] || leaf_touch[r * TARGETS + k];",
    "max": "if (leaf_touch[r * TARGETS + k] && (!has[k] || w > score[k])) score[k] = w;\n"
           "            has[k] = has[k] || leaf_touch[r * TARGETS + k];",
}
_FINISH = {
    "sum": "score[k] = score[k] + base[k];",
    "average": "score[k] = score[k] / (AT)TREES + base[k];",
    "min": "score[k] = (has[k] ? score[k] : (AT)0) + base[k];",
    "max": "score[k] = (has[k] ? score[k] : (AT)0) + base[k];",
}


@dataclass(frozen=True)
class ForestSource:
    name: str
    code: str
    options: tuple[str, ...] = NVRTC_OPTIONS


def render_forest(forest: Forest) -> ForestSource:
    """The kernel for `forest`: its sizes and aggregation are compiled in, its tables are arguments."""
    body = (_TEMPLATE.replace("UPDATE", _UPDATE[forest.aggregate]).replace("FINISH", _FINISH[forest.aggregate])
            .replace("XT", C_NAMES[forest.input_type]).replace("AT", C_NAMES[forest.accumulate_type])
            .replace("TARGETS", str(forest.n_targets)).replace("TREES", str(forest.n_trees))
            .replace("DEPTH", str(max(forest.max_depth, 1))))
    name = "tr_forest_" + hashlib.blake2b(body.encode(), digest_size=8).hexdigest()
    return ForestSource(name, body.replace("NAME", name))


def forest_tables(forest: Forest) -> list[np.ndarray[Any, Any]]:
    """The kernel's table arguments, in its order."""
    members = forest.members if forest.members.size else np.zeros(1, forest.input_type.np_dtype)
    return [forest.feature, forest.threshold, forest.kind, forest.missing_true.astype(np.uint8),
            forest.true_child, forest.false_child, forest.set_start, forest.set_stop, members, forest.leaf_row,
            forest.roots, forest.leaf_values, forest.leaf_touch.astype(np.uint8), forest.base_values]


class ForestKernel:
    """A portable kernel (node, args, n, xp) for one forest: the rendered kernel on CuPy arrays,
    the numpy reference on host arrays (the GPU backend's emulation)."""

    def __init__(self, forest: Forest) -> None:
        self.forest = forest
        self.source = render_forest(forest)
        self._tables: list[Any] | None = None
        self._kernel: Any = None

    def __call__(self, node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
        (x,) = args
        forest = self.forest
        lead = tuple(x.shape[:-1])
        if xp is np:
            return tree_scores(forest, np.asarray(x).reshape(-1, x.shape[-1])).reshape((*lead, forest.n_targets))
        if self._kernel is None:
            self._tables = [xp.asarray(t) for t in forest_tables(forest)]
            self._kernel = xp.RawKernel(self.source.code, self.source.name, options=self.source.options)
        rows = xp.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        count = int(rows.shape[0])
        out = xp.empty((count, forest.n_targets), dtype=forest.accumulate_type.np_dtype)
        if count:
            blocks = (count + THREADS - 1) // THREADS
            tables: list[Any] = self._tables or []
            self._kernel((blocks,), (THREADS,), (rows, np.int64(count), np.int32(rows.shape[1]), *tables, out))
        return out.reshape((*lead, forest.n_targets))
