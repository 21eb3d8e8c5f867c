"""A feed that would grow a shard past the device's free memory is refused before it is
stored: every operation of the batch reports it with the numbers, nothing is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpu_fallback import NumpyBackend
from server.store import DocumentStore
from tensor_ir.expr.profile import FieldDef
from tensor_ir.expr.types import parse_type


class _TinyDevice(NumpyBackend):
    """The numpy backend pretending to sit on a device with 1 MiB free."""

    def memory_available(self) -> int | None:
        return 1 << 20


def test_growth_beyond_free_device_memory_is_refused(tmp_path: Path) -> None:
    fields = {"v": FieldDef("v", parse_type("tensor<float>(x[256])"), True, None)}  # type: ignore[arg-type]
    store = DocumentStore.open(tmp_path, {"doc": fields}, _TinyDevice(), initial_capacity=16)
    try:
        small = [{"put": f"id:ns:doc::{i}", "fields": {"v": {"values": [1.0] * 256}}} for i in range(16)]
        assert all(r.ok for r in store.feed_batch(small))
        big = [{"put": f"id:ns:doc::b{i}", "fields": {"v": {"values": [2.0] * 256}}} for i in range(2000)]
        results = store.feed_batch(big)
        assert not any(r.ok for r in results)
        assert "MiB of device memory but 1 MiB are free" in (results[0].error or "")
        assert store.count("doc") == 16
        assert store.get("id:ns:doc::b0") is None
        np.testing.assert_array_equal(store.view("doc").columns["v"][:16], np.ones((16, 256), np.float32))
    finally:
        store.close()
