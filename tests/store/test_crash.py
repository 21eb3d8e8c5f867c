"""Kill a feeding process with SIGKILL at random moments; every acknowledged document must survive whole.

The child (crash_child.py) prints each acknowledged id after its batch's commit returned.
After each kill the store is reopened (which rebuilds the shard) and checked: SQLite's
integrity check passes, every acknowledged document is present with exactly the fed
values, every stored document is whole (nothing unacknowledged is half there), and the
shard holds exactly what the database holds.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cpu_fallback.backend import NumpyBackend
from server.store import DocumentStore
from server.store.store import DATABASE
from tests.conftest import SEED

from .crash_child import DIM, TYPES, doc_id, expected

TOTAL = 100_000
KILLS = 4
CHILD = Path(__file__).with_name("crash_child.py")


def _acknowledged(path: Path) -> set[str]:
    if not path.exists():
        return set()
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line cut by the kill was never fully acknowledged
    return set(complete.split())


def _wait_for_acks(path: Path, child: subprocess.Popen[bytes], count: int, timeout: float = 120.0) -> None:
    """Until `count` ids are acknowledged in all (or the child ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.02)


def _keys(ids: list[str]) -> np.ndarray:
    prefix = doc_id(0)[:-1]
    assert all(i.startswith(prefix) for i in ids)
    return np.array([int(i[len(prefix):]) for i in ids], dtype=np.int64)


def _verify(data: Path, acked: set[str]) -> int:
    """Reopen, check everything; returns the number of stored documents."""
    with DocumentStore.open(data, TYPES, NumpyBackend()) as store:
        assert store.integrity_check() == "ok"
        conn = sqlite3.connect(data / DATABASE)
        rows = conn.execute('SELECT id, "f_embedding", "f_number", "f_title" FROM "docs_crash"').fetchall()
        conn.close()
        ids = [r[0] for r in rows]
        assert acked <= set(ids), f"{len(acked - set(ids))} acknowledged documents are missing"
        keys = _keys(ids)
        # every stored document is whole and exactly as fed
        assert {len(r[1]) for r in rows} <= {4 * DIM} and {len(r[2]) for r in rows} <= {8}
        emb = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), DIM)
        np.testing.assert_array_equal(emb, expected(keys))
        np.testing.assert_array_equal(np.frombuffer(b"".join(r[2] for r in rows), dtype=np.int64), keys)
        assert [r[3] for r in rows] == [f"document {k}" for k in keys.tolist()]
        # the rebuilt shard holds exactly the stored documents
        snap = store.shard("crash").snapshot()
        live = np.flatnonzero(snap.live)
        assert store.restart.documents == {"crash": len(rows)} and len(live) == len(rows)
        shard_keys = _keys(snap.ids[live].tolist())
        np.testing.assert_array_equal(np.sort(shard_keys), np.sort(keys))
        np.testing.assert_array_equal(snap.columns["embedding"][live], expected(shard_keys))
        np.testing.assert_array_equal(snap.columns["number"][live], shard_keys)
        return len(rows)


def test_acknowledged_documents_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data, ack = tmp_path / "data", tmp_path / "acks.txt"
    print(f"crash test seed {SEED}")
    acked: set[str] = set()
    stored = 0
    # kill points spread over the whole feed: after this many acknowledgements, plus a random delay
    kill_after = sorted(rng.sample(range(2_000, TOTAL - 10_000), KILLS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                         os.environ.get("PYTHONPATH", "")])}
    for round_ in range(KILLS + 1):
        t0 = time.monotonic()
        # resume a little before the end of what was acknowledged (a prefix of the feed), so that every document
        # is acknowledged in the end and some are replaced, committed-but-unacknowledged ones among them
        start = max(0, len(acked) - 300)
        child = subprocess.Popen([sys.executable, str(CHILD), str(data), str(start), str(TOTAL),
                                  str(rng.randrange(2**31)), str(ack)], env=env, stderr=subprocess.PIPE)
        try:
            if round_ < KILLS:
                _wait_for_acks(ack, child, kill_after[round_])
                time.sleep(rng.uniform(0.0, 0.3))
                child.send_signal(signal.SIGKILL)
            _, err = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if round_ < KILLS:
            assert child.returncode in (-signal.SIGKILL, 0), err.decode()
        else:
            assert child.returncode == 0, err.decode()
        acked |= _acknowledged(ack)
        t1 = time.monotonic()
        stored = _verify(data, acked)
        print(f"round {round_}: exit {child.returncode}, {len(acked)} acknowledged, {stored} stored "
              f"(child {t1 - t0:.1f} s, check {time.monotonic() - t1:.1f} s)")
    assert stored == TOTAL and len(acked) == TOTAL
