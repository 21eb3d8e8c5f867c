"""The service's domain: one application package, its document store and the rankers of
its rank profiles, with the operations the gRPC service offers (rank, feed, get,
describe). Nothing here knows gRPC; the refusals are the RequestError kinds below, which
server/status.py maps to status codes, beside the errors of the layers underneath.

Methods that score or write block; the service runs them off the event loop. Ranking
reads a shard snapshot and never waits for feeding.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from server.application.package import Application
from server.metrics import Metrics
from server.nearest_neighbor import keep_norms
from server.query_inputs import query_names
from server.ranking import Ranker, RankResult
from server.store import DocType, Document, DocumentStore, FeedError, FeedResult, parse_document_id
from server.store.values import FieldSpec
from server.wire import WireError, decode_tensor, type_string
from tensor_ir import cancel
from tensor_ir.backend import Backend
from tensor_ir.errors import TensorRankError
from tensor_ir.expr.profile import CompiledProfile
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.mapped import MappedTensor

log = logging.getLogger(__name__)


class RequestError(TensorRankError):
    """A request the engine refuses; the subclass says which kind of refusal."""


class BadRequest(RequestError):
    """The request itself is wrong (a value out of range, a malformed id ...)."""


class NotFound(RequestError):
    """The request names a schema, rank profile or document that does not exist."""


class NotReady(RequestError):
    """The server is starting or shutting down: try again (elsewhere, or later)."""


class TooLarge(RequestError):
    """The request or its answer would exceed a configured limit."""


class Unsupported(RequestError):
    """The request names something that exists but cannot serve it in this state."""


class RawTensor(Protocol):
    """A tensor as the wire carries it (pb.Tensor is one)."""

    type: str
    values: bytes


@dataclass(frozen=True)
class DeviceInfo:
    name: str  # "cpu" or "gpu"
    reason: str


@dataclass(frozen=True)
class ProfileRef:
    schema: str
    doctype: str
    profile: CompiledProfile

    @property
    def name(self) -> str:
        return self.profile.name


@dataclass
class RankQuery:
    ref: ProfileRef
    query: dict[str, npt.NDArray[Any] | MappedTensor]
    hits: int
    offset: int = 0
    doc_ids: Sequence[str] = ()
    all_scores: bool = False
    nearest_neighbor: Mapping[str, str] = field(default_factory=dict)  # field or label -> query input


@dataclass
class RankOutcome:
    result: RankResult
    documents: int  # live documents of the schema when the query ran
    scoring_seconds: float
    features: dict[str, TensorType] = field(default_factory=dict)


@dataclass(frozen=True)
class ProfileSummary:
    name: str
    inputs: list[tuple[str, str, bool]]  # query(name), type, has a default
    match_features: list[str]
    rerank_count: int
    has_second_phase: bool
    models: list[str]


@dataclass(frozen=True)
class SchemaSummary:
    name: str
    fields: list[tuple[str, str, bool]]  # name, type ("string" for strings), attribute
    profiles: list[ProfileSummary]
    documents: int


class Engine:
    """Use `Engine.open(...)`; close it when done."""

    def __init__(self, app: Application, store: DocumentStore, backend: Backend, device: DeviceInfo,
                 metrics: Metrics, max_hits: int) -> None:
        self.app = app
        self.store = store
        self.backend = backend
        self.device = device
        self.metrics = metrics
        self.max_hits = max_hits
        self._rankers: dict[tuple[str, str], Ranker] = {}
        self._lock = threading.Lock()
        # schema -> its document type (a schema's document may be named differently)
        self.doctypes = {name: s.definition.document or name for name, s in app.schemas.items()}

    @classmethod
    def open(cls, app_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str], backend: Backend,
             device: DeviceInfo, metrics: Metrics, max_hits: int = 1000, warm: bool = True) -> Engine:
        """Load and compile the application package, rebuild the shards from the data directory
        and (with `warm`) compile every rank profile for the backend, so no query pays for it."""
        start = time.perf_counter()
        app = Application.load(app_dir)
        store = DocumentStore.open(Path(data_dir), app, backend)
        engine = cls(app, store, backend, device, metrics, max_hits)
        try:
            if warm:
                for schema, s in app.schemas.items():
                    for profile in s.profiles:
                        engine.ranker(ProfileRef(schema, engine.doctypes[schema], s.profiles[profile]))
                        # the vector norms distance features read, so the first query does not pay them
                        keep_norms(s.profiles[profile], store.shard(engine.doctypes[schema]).view().columns)
            metrics.watch_store(engine.resident)
        except BaseException:
            store.close()
            raise
        log.info("application %s: %d schemas, %d documents, ready in %.2f s", app_dir, len(app.schemas),
                 store.restart.total, time.perf_counter() - start)
        return engine

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ names

    def schema(self, requested: str) -> str:
        """The schema a request means: the one named, or the only one when none is named."""
        names = sorted(self.app.schemas)
        if requested:
            if requested not in self.app.schemas:
                raise NotFound(f"unknown schema '{requested}' (schemas: {', '.join(names) or 'none'})")
            return requested
        if len(names) == 1:
            return names[0]
        raise BadRequest(f"the application has {len(names)} schemas ({', '.join(names) or 'none'}): "
                         "name one in the request's 'schema'")

    def profile(self, schema: str, profile: str) -> ProfileRef:
        name = self.schema(schema)
        s = self.app.schemas[name]
        if not profile:
            raise BadRequest(f"the request names no rank profile (profiles of schema '{name}': "
                             f"{', '.join(sorted(s.profiles)) or 'none'})")
        compiled = s.profiles.get(profile)
        if compiled is None:
            if profile in s.definition.profiles:
                raise Unsupported(f"rank profile '{profile}' of schema '{name}' has no first-phase expression: "
                                  "it exists only for other profiles to inherit; rank with one of "
                                  f"{', '.join(sorted(s.profiles)) or 'none'}")
            raise NotFound(f"schema '{name}' has no rank profile '{profile}' "
                           f"(profiles: {', '.join(sorted(s.profiles)) or 'none'})")
        return ProfileRef(name, self.doctypes[name], compiled)

    def ranker(self, ref: ProfileRef) -> Ranker:
        key = (ref.schema, ref.name)
        r = self._rankers.get(key)
        if r is None:
            with self._lock:
                r = self._rankers.get(key)
                if r is None:
                    r = self._rankers[key] = Ranker(ref.profile, self.backend)
        return r

    def decode_query(self, ref: ProfileRef, given: Mapping[str, RawTensor]
                     ) -> dict[str, npt.NDArray[Any] | MappedTensor]:
        """The query's tensors as arrays of the profile's input types (a MappedTensor for a
        type with mapped dimensions); keys `query(q)` or `q` (server.query_inputs checks the
        names here, and the values when the ranker takes them)."""
        inputs = ref.profile.query_inputs
        return {name: decode_tensor(given[key], inputs[name].type, f"query({name})")  # type: ignore[arg-type]
                for name, key in query_names(ref.profile, given).items()}

    # ------------------------------------------------------------------ ranking

    def rank(self, q: RankQuery, deadline: float | None = None) -> RankOutcome:
        """Score under `deadline` (time.monotonic() seconds); DeadlineExceeded when it passes."""
        if q.hits < 1:
            raise BadRequest(f"hits must be at least 1 (got {q.hits}); at most {self.max_hits}")
        if q.hits > self.max_hits:
            raise BadRequest(f"hits {q.hits} is over the server's limit of {self.max_hits} (--max-hits); "
                             "page with 'offset' instead")
        ranker = self.ranker(q.ref)
        snapshot = self.store.shard(q.ref.doctype).snapshot()
        rows = self._rows(snapshot, q.ref, q.doc_ids).tolist() if q.doc_ids else None
        start = time.perf_counter()
        try:
            with cancel.deadline(deadline):
                cancel.check()
                result = ranker.rank(snapshot.view(), q.query, hits=q.hits, offset=q.offset, rows=rows,
                                     all_scores=q.all_scores, nearest_neighbor=q.nearest_neighbor)
        except cancel.DeadlineExceeded:
            self.metrics.deadline_stops.labels(q.ref.schema, q.ref.name).inc()
            log.info("rank %s/%s stopped at the client's deadline after %.1f ms", q.ref.schema, q.ref.name,
                     1000 * (time.perf_counter() - start))
            raise
        except MemoryError as e:
            n = len(rows) if rows is not None else snapshot.documents
            raise TooLarge(f"out of {self.device.name} memory scoring {n} documents with rank profile "
                           f"'{q.ref.name}' ({e or 'allocation failed'}): score fewer documents at a time "
                           "(doc_ids), or run the server with more memory") from None
        elapsed = time.perf_counter() - start
        self.metrics.rank_latency.labels(q.ref.schema, q.ref.name).observe(elapsed)
        self.metrics.documents_scored.labels(q.ref.schema, q.ref.name).inc(result.scored)
        features = {f.name: f.type for f in q.ref.profile.match_features}
        return RankOutcome(result, snapshot.documents, elapsed, features)

    def _rows(self, snapshot: Any, ref: ProfileRef, doc_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        rows = np.empty(len(doc_ids), dtype=np.int64)
        missing: list[str] = []
        seen: set[str] = set()
        for i, doc_id in enumerate(doc_ids):
            try:
                did = parse_document_id(doc_id)
            except FeedError as e:
                raise BadRequest(f"doc_ids[{i}]: {e}") from None
            if did.doctype != ref.doctype:
                raise BadRequest(f"doc_ids[{i}] '{doc_id}' is a document of type '{did.doctype}'; schema "
                                 f"'{ref.schema}' holds documents of type '{ref.doctype}'")
            if doc_id in seen:
                raise BadRequest(f"doc_ids[{i}] '{doc_id}' is listed twice")
            seen.add(doc_id)
            row = snapshot.row_of(doc_id)
            if row is None:
                missing.append(doc_id)
            else:
                rows[i] = row
        if missing:
            shown = ", ".join(f"'{m}'" for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                                                 else "")
            raise NotFound(f"{len(missing)} of the {len(doc_ids)} doc_ids are not in schema '{ref.schema}': {shown}")
        return rows

    # ------------------------------------------------------------------ feeding

    def put_operation(self, doc_id: str, fields: Mapping[str, RawTensor]) -> dict[str, Any] | FeedError:
        """A put with wire tensors as the store's operation: raw cells pass through when the
        type matches the field's; another cell type of the same dimensions is converted."""
        try:
            did = parse_document_id(doc_id)
        except FeedError as e:
            return e
        dt = self.store.types.get(did.doctype)
        values: dict[str, Any] = {}
        for name, t in fields.items():
            spec = dt.fields.get(name) if dt is not None else None
            if spec is None:
                values[name] = t.values  # the store names the unknown type or field
                continue
            try:
                values[name] = _field_value(spec, t)
            except WireError as e:
                return FeedError(str(e), doc_id, name)
        return {"put": doc_id, "fields": values}

    @staticmethod
    def json_operation(text: str) -> Any:
        """One operation of Vespa's feed JSON, parsed (a FeedError when it is not JSON)."""
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            return FeedError(f"the operation is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
        except RecursionError:
            return FeedError("the operation is not valid JSON: nested too deeply")

    def feed(self, ops: Sequence[Any], request_ids: Sequence[str], start: int = 0) -> list[FeedResult]:
        """Apply and commit a batch; each result's operation is durable when this returns."""
        results = self.store.feed_batch(ops, request_ids, start)
        counter = self.metrics.feed_operations
        for r in results:
            counter.labels(r.operation or "unreadable", "ok" if r.ok else "error").inc()
        return results

    # ------------------------------------------------------------------ reading

    def get(self, doc_id: str) -> tuple[Document, DocType] | None:
        try:
            doc = self.store.get(doc_id)
        except FeedError as e:
            raise BadRequest(str(e)) from None
        return None if doc is None else (doc, self.store.types[doc.doctype])

    def resident(self) -> dict[str, tuple[int, int]]:
        """schema -> (live documents, bytes of its resident columns)."""
        out = {}
        for schema, doctype in self.doctypes.items():
            shard = self.store.shard(doctype)
            out[schema] = (shard.documents, shard.capacity * sum(f.nbytes for f in shard.fields))
        return out

    def describe(self) -> list[SchemaSummary]:
        out = []
        for name in sorted(self.app.schemas):
            s = self.app.schemas[name]
            dt = self.store.types[self.doctypes[name]]
            profiles = [
                ProfileSummary(
                    p.name,
                    [(f"query({q.name})", type_string(q.type), q.default is not None)
                     for q in p.query_inputs.values()],
                    [f.name for f in p.match_features],
                    p.rerank_count if p.second_phase is not None else 0,
                    p.second_phase is not None,
                    list(p.models),
                )
                for p in s.profiles.values()
            ]
            fields = [(f.name, f.type_text, f.attribute) for f in dt.fields.values()]
            out.append(SchemaSummary(name, fields, profiles, self.store.shard(dt.name).documents))
        return out


def _field_value(spec: FieldSpec, t: RawTensor) -> Any:
    if spec.is_string:
        if t.type not in ("", "string"):
            raise WireError(f"a string field takes type 'string' with UTF-8 bytes, got type '{t.type}'")
        try:
            return t.values.decode("utf-8")
        except UnicodeDecodeError as e:
            raise WireError(f"the string is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    assert spec.type is not None
    labels = getattr(t, "labels", ())
    if len(labels) and not spec.type.is_mapped:
        raise WireError(f"the field is {spec.type_text}, which has no mapped dimensions, but the value has "
                        f"{len(labels)} labels")
    if not t.type and not spec.type.is_mapped:
        return t.values
    try:
        given = parse_type(t.type, allow_mapped=True) if t.type else spec.type
    except TypeSyntaxError as e:
        raise WireError(f"bad tensor type '{t.type}': {e}") from None
    if given.dims != spec.type.dims or given.mapped != spec.type.mapped:
        raise WireError(f"the field is {spec.type_text}, got a value of type '{t.type}'")
    if given.cell is spec.type.cell and not spec.type.is_mapped:
        return t.values  # the store checks the byte count and the cells
    if given.cell is not spec.type.cell and not (given.cell.is_float and spec.type.cell.is_float):
        # float to int would round, int to float could lose digits: the sender must say what it means
        own = spec.type.cell.vespa_name or spec.type_text
        raise WireError(f"the field is {spec.type_text}: send its cells as {own}, not as '{t.type}'")
    # a mapped field's value: a MappedTensor, which the store takes as it is
    return decode_tensor(t, spec.type, f"a value of type '{t.type or spec.type_text}'")  # type: ignore[arg-type]
