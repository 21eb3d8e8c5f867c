"""Feed, update and remove while ranking, for about 20 seconds: no error, no torn read, and in the end the shard,
the database and the model of what was acknowledged agree.

Every write gives a document one version v in all of its fields (v in every embedding cell,
in `version` and in `weight`), by a put, by an update that assigns all three, or by an
update that increments them together (modify-add on the tensor, increment on the numbers).
A reader that ever sees a document whose fields disagree has seen a half-written document.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cpu_fallback.backend import NumpyBackend
from server.application.package import Application
from server.ranking import Ranker
from server.store import DocumentStore
from server.store.view import ShardView
from tests.conftest import SEED

from .conftest import write_app

SECONDS = float(os.environ.get("TENSORRANK_STORE_STRESS_SECONDS", "20"))
DIM = 16
KEYS = 3000
SD = f"""
schema conc {{
  document conc {{
    field embedding type tensor<float>(x[{DIM}]) {{ indexing: attribute }}
    field version type long {{ indexing: attribute }}
    field weight type float {{ indexing: attribute }}
  }}
  rank-profile r {{
    inputs {{ query(q) tensor<float>(x[{DIM}]) }}
    first-phase {{ expression: sum(attribute(embedding) * query(q)) }}
    match-features {{ attribute(version) attribute(weight) }}
  }}
}}
"""


def _doc_id(k: int) -> str:
    return f"id:c:conc::{k}"


def _check_view(view: ShardView) -> int:
    """The invariants of one snapshot; returns its number of live documents."""
    assert view.live is not None and len(view.live) == view.size
    live = np.flatnonzero(view.live)
    ids = [str(i) for i in np.asarray(view.ids)[live]]
    assert len(set(ids)) == len(ids), "a document is live twice in one snapshot"
    emb = np.asarray(view.columns["embedding"])[live]
    version = np.asarray(view.columns["version"])[live]
    weight = np.asarray(view.columns["weight"])[live]
    torn = (emb.min(axis=1) != emb.max(axis=1)) | (emb[:, 0] != version) | (weight != version)
    assert not torn.any(), f"torn documents: {[ids[i] for i in np.flatnonzero(torn)[:5]]}"
    return len(ids)


@pytest.mark.slow
def test_feed_while_ranking(tmp_path: Path) -> None:
    app = Application.load(write_app(tmp_path / "app", {"conc": SD}))
    ranker = Ranker(app.profile("conc", "r"), NumpyBackend())
    errors: list[BaseException] = []
    stop = threading.Event()
    model: dict[str, int] = {}  # id -> version, as acknowledged
    counts = {"ops": 0, "failed": 0, "views": 0, "ranks": 0, "gets": 0}

    with DocumentStore.open(tmp_path / "data", app, NumpyBackend(), initial_capacity=64) as store:

        def feeder() -> None:
            rng = random.Random(SEED)
            version = 0
            try:
                while not stop.is_set():
                    ops: list[dict[str, Any]] = []
                    planned: list[tuple[str, int | None]] = []
                    for _ in range(rng.randint(1, 300)):
                        key = _doc_id(rng.randrange(KEYS))
                        version += 1
                        r = rng.random()
                        if r < 0.45:
                            ops.append({"put": key, "fields": {"embedding": [version] * DIM, "version": version,
                                                               "weight": version}})
                            planned.append((key, version))
                        elif r < 0.65:
                            ops.append({"update": key, "create": True, "fields": {
                                "embedding": {"assign": np.full(DIM, version, np.float32).tobytes()},
                                "version": {"assign": version}, "weight": {"assign": version}}})
                            planned.append((key, version))
                        elif r < 0.85:
                            ops.append({"update": key, "fields": {
                                "embedding": {"modify": {"operation": "add", "cells": [
                                    {"address": {"x": str(c)}, "value": 1} for c in range(DIM)]}},
                                "version": {"increment": 1}, "weight": {"increment": 1}}})
                            planned.append((key, -1))  # one more than it was, when it exists
                        else:
                            ops.append({"remove": key})
                            planned.append((key, None))
                    batch_model = dict(model)
                    for (key, v), result in zip(planned, store.feed_batch(ops)):
                        counts["ops"] += 1
                        if v == -1:
                            if key in batch_model:
                                assert result.ok, result.error
                                batch_model[key] += 1
                            else:
                                assert not result.ok and result.error is not None and "not found" in result.error
                                counts["failed"] += 1
                            continue
                        assert result.ok, result.error
                        if v is None:
                            batch_model.pop(key, None)
                        else:
                            batch_model[key] = v
                    model.clear()
                    model.update(batch_model)
            except BaseException as e:
                errors.append(e)
                stop.set()

        def ranking(seed: int) -> None:
            rng = np.random.default_rng(seed)
            try:
                while not stop.is_set():
                    view = store.view("conc")
                    n = _check_view(view)
                    counts["views"] += 1
                    q = rng.standard_normal(DIM).astype(np.float32)
                    res = ranker.rank(view, {"q": q}, hits=20)
                    counts["ranks"] += 1
                    assert res.scored == n
                    for h in res.hits:
                        v = float(h.match_features["attribute(version)"])
                        assert float(h.match_features["attribute(weight)"]) == v
                        # float32 products and sums: off by at most a few ulps of the sum of magnitudes
                        bound = 1e-5 * v * float(np.abs(q).sum()) + 1e-3
                        assert abs(h.score - v * float(q.sum())) <= bound, (h.id, h.score, v)
                        assert view.live is not None and view.live[h.row] and view.ids[h.row] == h.id
            except BaseException as e:
                errors.append(e)
                stop.set()

        def getter() -> None:
            rng = random.Random(SEED + 1)
            try:
                while not stop.is_set():
                    doc = store.get(_doc_id(rng.randrange(KEYS)))
                    counts["gets"] += 1
                    if doc is not None:
                        v = int(doc.fields["version"])
                        assert float(doc.fields["weight"]) == v and np.all(doc.fields["embedding"] == v)
                    time.sleep(0.001)
            except BaseException as e:
                errors.append(e)
                stop.set()

        threads = [threading.Thread(target=feeder), threading.Thread(target=ranking, args=(SEED,)),
                   threading.Thread(target=ranking, args=(SEED + 2,)), threading.Thread(target=getter)]
        for t in threads:
            t.start()
        stop.wait(SECONDS)
        stop.set()
        for t in threads:
            t.join(60)
        if errors:
            raise errors[0]
        print(f"concurrency: {counts}, {len(model)} documents, shard capacity {store.shard('conc').capacity}")
        assert counts["ops"] > 1000 and counts["ranks"] > 20 and counts["failed"] > 0

        final = store.shard("conc").snapshot()
        _check_view(final.view())
        live = np.flatnonzero(final.live)
        in_shard = {str(final.ids[r]): int(final.columns["version"][r]) for r in live}
        assert in_shard == model
        assert store.count("conc") == len(model)
        for key, v in model.items():
            doc = store.get(key)
            assert doc is not None and int(doc.fields["version"]) == v
            assert np.all(doc.fields["embedding"] == v) and float(doc.fields["weight"]) == v

    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:  # and after a restart
        snap = store.shard("conc").snapshot()
        _check_view(snap.view())
        assert {str(snap.ids[r]): int(snap.columns["version"][r]) for r in np.flatnonzero(snap.live)} == model
        assert store.integrity_check() == "ok"
