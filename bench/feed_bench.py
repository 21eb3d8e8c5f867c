"""Feed throughput into a resident shard, and the restart time of a large store.

Documents have one attribute field `embedding tensor<float>(x[64])` and are fed through
`DocumentStore.feed` (batches of --batch operations, each committed with synchronous=FULL
before its results come back) into the numpy backend's shard. Modes:

  wire       puts whose 64 cells are raw little-endian bytes, as the Feed RPC hands them over
             (building each operation, an f-string and a bytes copy, is inside the timing)
  jsonl-hex  JSONL text in Vespa's hex form of the cells, read by read_feed: JSON decoding included
  jsonl      JSONL text with the cells as JSON numbers: JSON decoding of 64 floats included
  replace    wire puts of documents already stored: new versions, tombstones and compaction
  update     updates assigning the embedding of stored documents (read-modify-write in SQLite)

Restart: a store of --restart-docs documents is closed and opened again; the time is the
store's own restart statistic (reading the database and rebuilding the shard).

Usage: python -m bench.feed_bench [--docs 200000] [--restart-docs 1000000] [--batch 4096]
       [--modes wire,jsonl-hex,jsonl,replace,update] [--dir DIR] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe, summary
from cpu_fallback.backend import NumpyBackend
from server.store import DocumentStore, read_feed
from tensor_ir.expr.errors import Location
from tensor_ir.expr.profile import FieldDef
from tensor_ir.expr.types import parse_type

DIM = 64
SEED = 20261126
TYPES = {"bench": {"embedding": FieldDef("embedding", parse_type(f"tensor<float>(x[{DIM}])"), True, Location())}}
MODES = ("wire", "jsonl-hex", "jsonl", "replace", "update")


def _doc_id(i: int) -> str:
    return f"id:bench:bench::{i}"


def _wire(cells: np.ndarray, n: int) -> Iterator[dict[str, Any]]:
    m = len(cells)
    for i in range(n):
        yield {"put": _doc_id(i), "fields": {"embedding": cells[i % m].tobytes()}}


def _updates(cells: np.ndarray, n: int) -> Iterator[dict[str, Any]]:
    m = len(cells)
    for i in range(n):
        yield {"update": _doc_id(i), "fields": {"embedding": {"assign": cells[(i + 1) % m].tobytes()}}}


def _jsonl(cells: np.ndarray, n: int, hex_form: bool) -> str:
    m = len(cells)
    big = cells.astype(">f4")
    lines = []
    for i in range(n):
        value: Any = {"values": big[i % m].tobytes().hex()} if hex_form else cells[i % m].tolist()
        lines.append(json.dumps({"put": _doc_id(i), "fields": {"embedding": value}}))
    return "\n".join(lines) + "\n"


def _timed(store: DocumentStore, ops: Any, batch: int) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    bad = sum(1 for r in store.feed(ops, batch_size=batch) if not r.ok)
    return time.perf_counter() - wall, time.process_time() - cpu, bad


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.feed_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=200_000, help="documents per throughput mode")
    ap.add_argument("--json-docs", type=int, default=50_000, help="documents for the two JSONL modes")
    ap.add_argument("--restart-docs", type=int, default=1_000_000, help="documents in the restart test (0: skip)")
    ap.add_argument("--reopen", type=int, default=3, help="times the restart store is opened (median reported)")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--dir", help="where the stores go (default: a temporary directory, removed afterwards)")
    ap.add_argument("--markdown", help="also write the results table to this file")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode '{m}' (modes: {', '.join(MODES)})")
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="feed_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    cells = np.random.default_rng(SEED).standard_normal((4096, DIM)).astype(np.float32)
    backend = NumpyBackend()
    rows: list[tuple[str, int, float, float, int]] = []
    load_before = _load()

    def report(mode: str, n: int, wall: float, cpu: float, bad: int) -> None:
        rows.append((mode, n, wall, cpu, bad))
        print(f"{mode:10s} {n:>9,d} docs  {n / wall:>9,.0f} docs/s  (wall {wall:.2f} s, process CPU {cpu:.2f} s"
              f"{f', {bad} refused' if bad else ''})", flush=True)

    try:
        main_dir = root / "throughput"
        shutil.rmtree(main_dir, ignore_errors=True)
        with DocumentStore.open(main_dir, TYPES, backend) as store:
            if {"wire", "replace", "update"} & set(modes):
                report("wire", args.docs, *_timed(store, _wire(cells, args.docs), args.batch))
            if "replace" in modes:
                report("replace", args.docs, *_timed(store, _wire(cells[::-1].copy(), args.docs), args.batch))
            if "update" in modes:
                report("update", args.docs, *_timed(store, _updates(cells, args.docs), args.batch))
        for mode in ("jsonl-hex", "jsonl"):
            if mode not in modes:
                continue
            text = _jsonl(cells, args.json_docs, mode == "jsonl-hex")
            d = root / mode
            shutil.rmtree(d, ignore_errors=True)
            with DocumentStore.open(d, TYPES, backend) as store:
                report(mode, args.json_docs, *_timed(store, read_feed(text), args.batch))
        restart: tuple[int, float, float, float] | None = None
        if args.restart_docs:
            d = root / "restart"
            shutil.rmtree(d, ignore_errors=True)
            with DocumentStore.open(d, TYPES, backend) as store:
                wall, _, bad = _timed(store, _wire(cells, args.restart_docs), 16384)
                assert bad == 0
            size = sum(f.stat().st_size for f in d.iterdir()) / 2**20
            times: list[tuple[float, float]] = []
            for _ in range(max(1, args.reopen)):
                t0 = time.perf_counter()
                with DocumentStore.open(d, TYPES, backend) as store:
                    times.append((store.restart.seconds, time.perf_counter() - t0))
                    assert store.restart.total == args.restart_docs
                print(f"restart    {args.restart_docs:>9,d} docs  rebuilt in {times[-1][0]:.2f} s "
                      f"(open {times[-1][1]:.2f} s; database {size:,.0f} MiB; fed at {args.restart_docs / wall:,.0f} "
                      "docs/s)", flush=True)
            secs, opened = sorted(times)[len(times) // 2]
            restart = (args.restart_docs, secs, opened, size)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)

    env = (f"{summary(describe())}; SQLite {sqlite3.sqlite_version}; "
           f"load average before {load_before}, after {_load()}")
    md = ["| mode | documents | docs/s | wall s | process CPU s |", "| --- | ---: | ---: | ---: | ---: |"]
    md += [f"| {m} | {n:,} | {n / w:,.0f} | {w:.2f} | {c:.2f} |" for m, n, w, c, _ in rows]
    if restart:
        n, secs, opened, size = restart
        md.append(f"\nRestart with {n:,} documents ({size:,.0f} MiB database): shards rebuilt in {secs:.2f} s "
                  f"(whole open {opened:.2f} s; median of {max(1, args.reopen)} opens).")
    md.append(f"\nMachine: {env}. Command: `python -m bench.feed_bench {' '.join(argv or sys.argv[1:])}`.")
    text = "\n".join(md)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
