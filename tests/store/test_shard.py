"""Resident shards: growth by doubling, tombstones and compaction, and snapshots that never change.

Each test runs with numpy columns and, where CuPy finds a GPU, with columns in GPU memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from cpu_fallback.backend import NumpyBackend
from server.store import Shard
from server.store.values import FieldSpec
from tensor_ir.backend import Backend, CompiledProgram
from tensor_ir.expr.types import parse_type
from tensor_ir.program import Program


class CupyColumns(Backend):
    """Only what a shard uses of a backend: arrays on the GPU and back."""

    name = "cupy-columns"

    def __init__(self) -> None:
        import cupy

        self.xp = cupy

    def compile(self, program: Program) -> CompiledProgram:
        raise NotImplementedError("a shard never compiles programs")

    def asarray(self, value: npt.ArrayLike) -> Any:
        return self.xp.asarray(value)

    def to_host(self, value: Any) -> npt.NDArray[Any]:
        return np.asarray(self.xp.asnumpy(value))


def _gpu() -> bool:
    try:
        import cupy

        return bool(cupy.cuda.runtime.getDeviceCount() > 0)
    except Exception:  # no cupy, no driver or no device: the GPU cases skip
        return False


@pytest.fixture(params=["numpy", "cupy"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "numpy":
        return NumpyBackend()
    if not _gpu():
        pytest.skip("no GPU for CuPy")
    return CupyColumns()

FIELDS = [FieldSpec("v", parse_type("tensor<float>(x[3])"), True), FieldSpec("n", parse_type("long"), True),
          FieldSpec("title", None, False)]


def _put(shard: Shard, keys: list[int], version: int = 0) -> None:
    ids = [f"id:ns:t::{k}" for k in keys]
    v = np.array([[k, k + 1, version] for k in keys], np.float32).reshape(len(keys), 3)
    shard.apply(ids, {"v": v, "n": np.array(keys, np.int64) * 10 + version})


def _contents(shard: Shard) -> dict[str, tuple[list[float], int]]:
    snap = shard.snapshot()
    rows = np.flatnonzero(snap.live)
    v, n = (shard.backend.to_host(snap.columns[k]) for k in ("v", "n"))
    return {str(snap.ids[r]): (v[r].tolist(), int(n[r])) for r in rows}


def test_growth_doubles_and_keeps_values(backend: Backend) -> None:
    shard = Shard("t", FIELDS, backend, initial_capacity=4)
    assert shard.capacity == 4 and "title" not in shard.snapshot().columns
    for k in range(10):
        _put(shard, [k])
    assert shard.capacity == 16  # 4 -> 8 -> 16 (at most three quarters full after growing)
    assert _contents(shard) == {f"id:ns:t::{k}": ([k, k + 1, 0], k * 10) for k in range(10)}
    assert shard.documents == 10


def test_replacement_appends_and_tombstones(backend: Backend) -> None:
    shard = Shard("t", FIELDS, backend, initial_capacity=8)
    _put(shard, [1, 2])
    _put(shard, [1], version=1)
    snap = shard.snapshot()
    assert snap.rows == 3 and snap.live.tolist() == [False, True, True] and shard.dead == 1
    assert _contents(shard)["id:ns:t::1"] == ([1, 2, 1], 11)
    assert snap.row_of("id:ns:t::1") == 2 and snap.row_of("id:ns:t::9") is None


def test_compaction_after_many_removals(backend: Backend) -> None:
    shard = Shard("t", FIELDS, backend, initial_capacity=16)
    _put(shard, list(range(4000)))
    cap = shard.capacity
    for start in range(0, 1500, 100):
        shard.apply([], {}, [f"id:ns:t::{k}" for k in range(start, start + 100)])
    # 1024 dead of 4000 rows triggered one compaction; the rest are tombstones still
    assert shard.snapshot().rows < 4000 and shard.dead < 1024
    assert shard.capacity == cap
    assert _contents(shard) == {f"id:ns:t::{k}": ([k, k + 1, 0], k * 10) for k in range(1500, 4000)}
    shard.compact()
    assert shard.dead == 0 and shard.snapshot().rows == 2500
    assert _contents(shard) == {f"id:ns:t::{k}": ([k, k + 1, 0], k * 10) for k in range(1500, 4000)}


def test_snapshots_never_change(backend: Backend) -> None:
    shard = Shard("t", FIELDS, backend, initial_capacity=4)
    _put(shard, [1, 2, 3])
    old = shard.snapshot()
    frozen = (old.ids.copy(), {k: backend.to_host(v).copy() for k, v in old.columns.items()}, old.live.copy())
    _put(shard, [2], version=5)  # an update appends a new row
    shard.apply([], {}, ["id:ns:t::3"])  # a removal flips the writer's mask only
    _put(shard, list(range(10, 20)))  # growth moves everything to new columns
    shard.compact()
    assert old.ids.tolist() == frozen[0].tolist() and old.live.tolist() == frozen[2].tolist()
    for k, v in frozen[1].items():
        np.testing.assert_array_equal(backend.to_host(old.columns[k]), v)
    new = _contents(shard)
    assert new["id:ns:t::2"] == ([2, 3, 5], 25) and "id:ns:t::3" not in new and len(new) == 12
    view = old.view()
    assert view.size == 3 and view.live is not None and view.live.all()


def test_repeated_ids_in_one_apply_are_refused(backend: Backend) -> None:
    shard = Shard("t", FIELDS, backend)
    with pytest.raises(ValueError, match="repeat"):
        shard.apply(["id:ns:t::1", "id:ns:t::1"], {"v": np.zeros((2, 3), np.float32), "n": np.zeros(2, np.int64)})
    assert shard.documents == 0
