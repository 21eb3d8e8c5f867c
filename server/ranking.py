"""Ranking a shard with a compiled rank profile.

First phase over every live document (or the requested subset), second phase over the
best rerank-count by first-phase score, match features for the returned hits only.
Ties are broken by document id, so results are deterministic.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from server.global_phase import normalize, rescale_rest
from server.mapped_ranking import capacities, mapped_feature, mapped_feeds
from server.nearest_neighbor import kept_norm_column, nearest_neighbor_values
from server.per_query import fill_per_query, made_values
from server.query_inputs import query_values
from server.store.view import ShardView
from tensor_ir.backend import Backend, CompiledProgram, run_tail
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.profile import FIRST_PHASE, GLOBAL_PHASE_OUTPUT, SECOND_PHASE, CompiledProfile
from tensor_ir.ir import Role
from tensor_ir.passes.monotone_tail import split_monotone_tail
from tensor_ir.program import Program


@dataclass
class Hit:
    id: str
    score: float
    row: int
    match_features: dict[str, Any] = field(default_factory=dict)  # arrays, or MappedTensor


@dataclass
class RankResult:
    hits: list[Hit]
    scored: int
    documents: int
    scored_ids: list[str] = field(default_factory=list)
    scores: npt.NDArray[np.float64] | None = None


class Ranker:
    """A profile's programs compiled for one backend."""

    def __init__(self, profile: CompiledProfile, backend: Backend) -> None:
        self.profile = profile
        self.backend = backend
        self.first: CompiledProgram = backend.compile(profile.first_phase)
        self.second = backend.compile(profile.second_phase) if profile.second_phase else None
        self.features = backend.compile(profile.features) if profile.features else None
        self.global_phase = backend.compile(profile.global_phase) if profile.global_phase else None
        self.normalizer_inputs = backend.compile(profile.normalizer_inputs) if profile.normalizer_inputs else None
        # score = f(g) with f non-decreasing: where the backend can select through f, g runs
        # over every document and f over the few that can win
        split = split_monotone_tail(self.first.program, FIRST_PHASE) if backend.selects_through_tail else None
        self.head_tail = (backend.compile(split[0]), backend.compile(split[1])) if split is not None else None
        self.needed = {name for p in (self.first, self.second, self.features, self.global_phase,
                                      self.normalizer_inputs) if p is not None
                       for name in p.program.inputs}
        self.needed |= set(profile.mapped_inputs)
        # a profile over mapped values, compiled for other slot counts (server/mapped_ranking.py)
        self._variants: dict[tuple[tuple[str, int], ...], Ranker] = {}
        self._variants_lock = threading.Lock()

    def _variant(self, caps: dict[str, int]) -> Ranker:
        key = tuple(sorted(caps.items()))
        if key == tuple(sorted((n, c) for n, (_, c) in self.profile.mapped_inputs.items())):
            return self
        with self._variants_lock:  # queries rank concurrently: one compilation per signature
            r = self._variants.get(key)
            if r is None:
                assert self.profile.recompile is not None
                if len(self._variants) >= 8:
                    self._variants.pop(next(iter(self._variants)))
                r = self._variants[key] = Ranker(self.profile.recompile(caps), self.backend)
            return r

    def _feeds(self, program: Program, shard: ShardView, rows: npt.NDArray[np.int64] | None,
               query: dict[str, Any]) -> dict[str, Any]:
        feeds: dict[str, Any] = {}
        if self.profile.mapped_inputs:
            feeds = {k: v for k, v in mapped_feeds(self.profile, shard, rows, query).items() if k in program.inputs}
        for name, spec in program.inputs.items():
            if name in feeds:
                continue
            if name in self.profile.generated:  # random numbers, made for these rows (server/per_query.py)
                feeds[name] = made_values(self.profile.generated[name], query, shard.size, rows)
            elif spec.role is Role.ATTRIBUTE and name in query:  # made for these rows: global normalizers
                feeds[name] = query[name]
            elif spec.role is Role.ATTRIBUTE:
                field_name = name[len("attribute("):-1]
                norms = kept_norm_column(shard.columns, name)  # squaredNorm(f), inverseNorm(f): kept beside f
                col = norms if norms is not None else shard.columns.get(field_name)
                if col is None:
                    raise RankingError(f"rank profile '{self.profile.name}' reads attribute({field_name}), "
                                       "which the shard has no column for")
                feeds[name] = col if rows is None else col[rows]
            elif spec.role is Role.QUERY:
                feeds[name] = query[name]
        return feeds

    def _scores(self, compiled: CompiledProgram, output: str, shard: ShardView,
                rows: npt.NDArray[np.int64] | None, query: dict[str, Any]) -> Any:
        """Scores as the backend holds them (on the GPU for the GPU backend), one per row."""
        n = shard.size if rows is None else len(rows)
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        out = compiled.run(self._feeds(compiled.program, shard, rows, query), n)
        return out[output].reshape(n)

    def _host_scores(self, compiled: CompiledProgram, output: str, shard: ShardView,
                     rows: npt.NDArray[np.int64], query: dict[str, Any]) -> npt.NDArray[np.float64]:
        scores = self._scores(compiled, output, shard, rows, query)
        return np.asarray(self.backend.to_host(scores), dtype=np.float64).reshape(len(rows))

    def rank(
        self,
        shard: ShardView,
        query: Mapping[str, Any],
        hits: int = 10,
        offset: int = 0,
        rows: Sequence[int] | None = None,
        all_scores: bool = False,
        nearest_neighbor: Mapping[str, str] | None = None,
    ) -> RankResult:
        qv = query_values(self.profile, query, self.needed)
        # a profile over mapped values runs as compiled for these slot counts (its variants
        # read the same inputs, so the values decoded here serve them)
        ranker = self._variant(capacities(self.profile, shard, qv)) if self.profile.mapped_inputs else self
        return ranker._rank(shard, qv, hits, offset, rows, all_scores, nearest_neighbor)

    def _rank(self, shard: ShardView, qv: dict[str, Any], hits: int, offset: int, rows: Sequence[int] | None,
              all_scores: bool, nearest_neighbor: Mapping[str, str] | None) -> RankResult:
        fill_per_query(self.profile, qv)  # now, seeds left to the clock
        if self.profile.nearest_neighbor or nearest_neighbor:
            # the query vector of each distance/closeness feature (nearest_neighbor: field or label -> input)
            qv.update(nearest_neighbor_values(self.profile, qv, nearest_neighbor or {}))
        if rows is not None:
            subset: npt.NDArray[np.int64] | None = np.asarray(rows, dtype=np.int64)
            live = None
        else:
            subset = None
            # removed documents are scored with the rest (no copy of every column per query)
            # and then left out: compaction keeps them a small fraction of the rows
            live = shard.live if shard.live is not None and not bool(np.all(shard.live)) else None
        row_ids: Any = _Identity(shard.size) if subset is None else subset
        ids = _LazyIds(shard.ids, row_ids)
        scored = (shard.size if subset is None else len(subset)) if live is None else int(np.count_nonzero(live))
        want = offset + hits
        need = max(want, self.profile.rerank_count if self.second is not None else 0,
                   self.profile.global_rerank_count if self.global_phase is not None else 0)
        scores: Any = None
        if self.head_tail is not None:
            head, tail = self.head_tail
            feeds = {name: qv[name] for name, spec in tail.program.inputs.items() if spec.role is Role.QUERY}
            g = self._scores(head, FIRST_PHASE, shard, subset, qv)
            if all_scores:
                # tail(head) for every document, not the whole program: the evaluator may
                # round the two differently (their blocks differ in size, and BLAS rounds a
                # row differently in different blocks), and every score this ranker reports
                # must be the same number
                scores = run_tail(tail, feeds, g)
                cand, cand_scores = self.backend.candidates(scores, need, live)
            else:
                cand, cand_scores = self.backend.candidates_after(g, tail, feeds, need, live)
        else:
            scores = self._scores(self.first, FIRST_PHASE, shard, subset, qv)
            cand, cand_scores = self.backend.candidates(scores, need, live)
        order = _top(cand_scores, ids[cand], min(need, len(cand)))
        best, best_scores = cand[order], cand_scores[order]
        if self.second is not None and len(best):
            k = min(self.profile.rerank_count, len(best))
            top = best[:k]
            second = self._host_scores(self.second, SECOND_PHASE, shard, row_ids[top], qv)
            by_second = _top(second, ids[top], k)
            # re-ranked documents come first (by second phase), then the rest by first phase,
            # rescaled below them as Vespa's hit collector does when the second phase scores lower
            best = np.concatenate([top[by_second], best[k:]])
            best_scores = np.concatenate([second[by_second], rescale_rest(best_scores[:k], second, best_scores[k:])])
        if self.global_phase is not None and len(best):
            best, best_scores = self._global(shard, row_ids, ids, best, best_scores, qv)
        picked, picked_scores = best[offset:want], best_scores[offset:want]
        result_hits = [
            Hit(str(ids[int(i)]), float(v), int(row_ids[i])) for i, v in zip(picked, picked_scores, strict=True)
        ]
        if self.features is not None and result_hits:
            hit_rows = np.asarray([h.row for h in result_hits], dtype=np.int64)
            out = self.features.run(self._feeds(self.features.program, shard, hit_rows, qv), len(hit_rows))
            for f in self.profile.match_features:
                if f.sparse is not None:
                    for j, h in enumerate(result_hits):
                        h.match_features[f.name] = mapped_feature(f, out, j, self.backend.to_host)
                    continue
                values = np.asarray(self.backend.to_host(out[f.program_output]))
                for j, h in enumerate(result_hits):
                    h.match_features[f.name] = values[j]
        res = RankResult(result_hits, scored, int(shard.size))
        if all_scores:
            host = np.asarray(self.backend.to_host(scores), dtype=np.float64).reshape(-1)
            all_rows = np.arange(shard.size, dtype=np.int64) if subset is None else subset
            keep = all_rows if live is None else all_rows[live]
            res.scored_ids = [str(shard.ids[int(r)]) for r in keep]
            res.scores = host if live is None else host[live]
        return res


    def _global(self, shard: ShardView, row_ids: Any, ids: _LazyIds, ordered: npt.NDArray[np.int64],
                scores: npt.NDArray[np.float64], qv: dict[str, Any]
                ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The global phase over the best global rerank-count, normalizers across them
        (server/global_phase.py); the rest rescaled after them, all in the new order."""
        assert self.global_phase is not None
        g = min(self.profile.global_rerank_count, len(ordered))
        rows = np.asarray(row_ids[ordered[:g]], dtype=np.int64)
        values = dict(qv)
        if self.normalizer_inputs is not None:
            out = self.normalizer_inputs.run(self._feeds(self.normalizer_inputs.program, shard, rows, qv), g)
            for n in self.profile.normalizers:
                raw = np.asarray(self.backend.to_host(out[n.source]), dtype=np.float64).reshape(g)
                values[n.target] = normalize(n, raw)
        final = self._host_scores(self.global_phase, GLOBAL_PHASE_OUTPUT, shard, rows, values)
        rescored = np.concatenate([final, rescale_rest(scores[:g], final, scores[g:])])
        order = _top(rescored, ids[ordered], len(ordered))
        return ordered[order], rescored[order]


class _Identity:
    """Row numbers 0..n-1 without an array of them: indexing returns its index."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: Any) -> Any:
        return idx if isinstance(idx, int | np.integer) else np.asarray(idx, dtype=np.int64)


class _LazyIds:
    """Document ids of the scored rows, looked up only for the few rows that need them
    (tie-breaks and hits), so a query over a million documents builds no million-id array."""

    def __init__(self, ids: Sequence[str], rows: Any) -> None:
        self.ids = ids
        self.rows = rows

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, int | np.integer):
            return self.ids[int(self.rows[idx])]
        return np.array([self.ids[int(r)] for r in self.rows[np.asarray(idx)]], dtype=object)


def _top(scores: npt.NDArray[np.float64], ids: _LazyIds | npt.NDArray[Any], k: int) -> npt.NDArray[np.int64]:
    """Indices of the k best scores, best first, ties broken by ascending id; NaN last."""
    if k <= 0 or scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    key = np.where(np.isnan(scores), -np.inf, scores)
    if k < key.size:
        kth = np.partition(-key, k - 1)[k - 1]
        cand = np.flatnonzero(-key <= kth)
    else:
        cand = np.arange(key.size)
    order = np.lexsort((ids[cand].astype(str), -key[cand]))
    return cand[order[:k]].astype(np.int64)
