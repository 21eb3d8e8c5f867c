"""The process the crash test kills: feeds documents and reports each acknowledged id after its batch committed.

Usage: python crash_child.py DATA_DIR START END SEED ACK_FILE

Document j of the feed has fully determined values (see `expected`), so the parent can
tell a whole document from a half-written one.
"""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import numpy.typing as npt

from cpu_fallback.backend import NumpyBackend
from server.store import DocumentStore
from tensor_ir.expr.errors import Location
from tensor_ir.expr.profile import FieldDef
from tensor_ir.expr.types import parse_type

DIM = 64
TYPES = {"crash": {
    "embedding": FieldDef("embedding", parse_type(f"tensor<float>(x[{DIM}])"), True, Location()),
    "number": FieldDef("number", parse_type("long"), True, Location()),
    "title": FieldDef("title", None, False, Location()),
}}


def doc_id(j: int) -> str:
    return f"id:crash:crash::{j}"


def expected(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """The embeddings of documents `keys`: distinct per document and per cell, and exact in float32."""
    return keys[:, None].astype(np.float32) + np.arange(DIM, dtype=np.float32) / np.float32(DIM)


def main() -> None:
    data, start, end, seed, ack_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    rng = random.Random(seed)
    ack = os.open(ack_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    with DocumentStore.open(data, TYPES, NumpyBackend()) as store:
        i = start
        while i < end:
            keys = np.arange(i, min(end, i + rng.randint(1, 800)), dtype=np.int64)
            emb = expected(keys)
            ops = [{"put": doc_id(int(j)), "fields": {"embedding": emb[n].tobytes(), "number": int(j),
                                                     "title": f"document {j}"}} for n, j in enumerate(keys)]
            results = store.feed_batch(ops)
            # only now, after the commit returned, are these acknowledged
            os.write(ack, "".join(f"{r.doc_id}\n" for r in results if r.ok).encode())
            i += len(keys)


if __name__ == "__main__":
    main()
