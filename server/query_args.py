"""Query arguments and answers of `tensorrank query`: typed query values in, Rank answers out as JSON.

A query's values are plain JSON numbers, and their tensor type comes from the deployed
application (GetApplication); the client adds only that typing, the server checks the rest.
An input of a mapped type also takes Vespa's tensor literals (`q={a:1.0,b:2.0}`,
`q={{cat:a}:1.0}`, mixed `q={a:[1,2]}`), besides its JSON forms (server.wire_mapped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from proto.tensorrank.v1 import ranking_pb2 as pb
from server.client import ClientError
from server.wire import WireError, decode_tensor, encode_tensor
from server.wire_mapped import mapped_from_literal, mapped_from_value
from tensor_ir.expr.tensor_json import TensorValueError, tensor_from_json
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.mapped import MappedTensor


def parse_query_args(items: Sequence[str], base: Path | None = None) -> dict[str, Any]:
    """`NAME=JSON` or `NAME=@file.json` → {NAME: parsed JSON}; NAME as `q` or `query(q)`."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ClientError(f"--query '{item:.60}': expected NAME=VALUE, e.g. 'q=[0.1, 0.2]' or 'q=@q.json'")
        name = _bare(name)
        if name in out:
            raise ClientError(f"--query gives query({name}) twice")
        text = text.strip()
        source = f"--query {name}"
        if text.startswith("@"):
            path = Path(text[1:])
            if base is not None and not path.is_absolute():
                path = base / path
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ClientError(f"{source}: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
            source = f"{source} ({path})"
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError as e:
            message = (f"{source}: not valid JSON ({e.msg} at column {e.colno}); write numbers as JSON, "
                       "e.g. q=[0.1, 0.2] or q={\"values\": [0.1, 0.2]}")
            if not text.startswith(("{", "tensor")):
                raise ClientError(message) from None
            # maybe a Vespa tensor literal ({a:1.0}): only the declared type says (query_tensors)
            out[name] = TensorLiteral(text, source, message)
    return out


@dataclass(frozen=True)
class TensorLiteral:
    """A query value in Vespa's literal form (`{a:1.0, b:2.0}`, `{{cat:a}:1.0}`), read for
    an input of a mapped type; for any other type `not_json` is the answer."""

    text: str
    source: str
    not_json: str


def find_profile(app: pb.ApplicationInfo, profile: str, schema: str | None) -> tuple[pb.SchemaInfo,
                                                                                      pb.RankProfileInfo]:
    schemas = list(app.schemas)
    if schema is not None:
        chosen = [s for s in schemas if s.name == schema]
        if not chosen:
            raise ClientError(f"the server has no schema '{schema}' (schemas: "
                              f"{', '.join(s.name for s in schemas) or 'none'})")
    else:
        if not schemas:
            raise ClientError("the server has no schemas")
        having = [s for s in schemas if any(p.name == profile for p in s.rank_profiles)]
        chosen = having or schemas
        if len(chosen) > 1:
            raise ClientError(f"several schemas {f'have rank profile {profile!r}' if having else 'are deployed'}"
                              f" ({', '.join(s.name for s in chosen)}): choose one with --schema")
    s = chosen[0]
    for p in s.rank_profiles:
        if p.name == profile:
            return s, p
    raise ClientError(f"schema '{s.name}' has no rank profile '{profile}' (profiles: "
                      f"{', '.join(p.name for p in s.rank_profiles) or 'none'})")


def query_tensors(prof: pb.RankProfileInfo, values: Mapping[str, Any]) -> dict[str, pb.Tensor]:
    """Query values as tensors of the types the profile declares."""
    inputs = {_bare(i.name): i for i in prof.inputs}
    out: dict[str, pb.Tensor] = {}
    for name, value in values.items():
        spec = inputs.get(name)
        if spec is None:
            known = ", ".join(f"query({n})" for n in inputs) or "none"
            raise ClientError(f"rank profile '{prof.name}' has no input query({name}) (inputs: {known})")
        try:
            t = parse_type(spec.type, allow_mapped=True)
        except TypeSyntaxError as e:
            raise ClientError(f"the server declares query({name}) with a type the client cannot read "
                              f"('{spec.type}'): {e}") from None
        out[f"query({name})"] = _query_tensor(name, t, value)
    missing = [(name, i) for name, i in inputs.items() if name not in values and not i.has_default]
    if missing:
        name, i = missing[0]
        raise ClientError(f"rank profile '{prof.name}' needs query({name}) {i.type}: give it with "
                          f"--query '{name}=[...]' (or {name}=@file.json)")
    return out


def _query_tensor(name: str, t: TensorType, value: Any) -> pb.Tensor:
    try:
        if t.is_mapped:
            if isinstance(value, TensorLiteral):
                return encode_tensor(mapped_from_literal(value.text, t, f"query({name})"), t)
            return encode_tensor(mapped_from_value(value, t, f"query({name})"), t)
        if isinstance(value, TensorLiteral):
            raise ClientError(value.not_json)
        if isinstance(value, MappedTensor):
            raise ClientError(f"query({name}) is {t}, which has no mapped dimensions; got a value of {value.type}")
        if isinstance(value, np.ndarray):
            value = value.tolist()
        return encode_tensor(tensor_from_json(value, t), t)
    except TensorValueError as e:
        raise ClientError(f"query({name}) {t}: {e}") from None
    except WireError as e:
        raise ClientError(str(e)) from None


def _bare(name: str) -> str:
    """`q` of `query(q)`: inputs are named either way."""
    return name[len("query("):-1] if name.startswith("query(") and name.endswith(")") else name


def _plain(t: pb.Tensor) -> Any:
    """A match feature as JSON: (nested) lists of numbers, Vespa's JSON form for a mapped one."""
    try:
        value = decode_tensor(t, None, "match feature")
        return value.to_json() if isinstance(value, MappedTensor) else value.tolist()
    except WireError as e:
        return {"type": t.type, "error": str(e)}


def response_json(resp: pb.RankResponse, round_trip_ms: float) -> dict[str, Any]:
    """A Rank answer as plain JSON: match features as (nested) lists of numbers."""
    hits = [{"id": h.id, "relevance": h.relevance,
             "match_features": {k: _plain(v) for k, v in sorted(h.match_features.items())}}
            for h in resp.hits]
    out: dict[str, Any] = {
        "hits": hits,
        "coverage": {"documents": resp.coverage.documents, "scored": resp.coverage.scored,
                     "full": resp.coverage.full},
        "latency_ms": {"round_trip": round(round_trip_ms, 3), "scoring": round(resp.scoring_ms, 3)},
    }
    if resp.scored_ids:
        out["scores"] = dict(zip(resp.scored_ids, (float(s) for s in resp.scores)))
    return out


def format_json(out: Mapping[str, Any]) -> str:
    """An answer as indented JSON with one line per hit, so that a hit's match features
    stay together and a screen shows several hits."""
    parts = []
    for key, value in out.items():
        if key == "hits" and value:
            inner = ",\n".join(f"    {json.dumps(h)}" for h in value)
            parts.append(f'  "hits": [\n{inner}\n  ]')
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}"


@dataclass
class Query:
    profile: str
    values: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None
    hits: int = 10
    offset: int = 0
    nearest_neighbor: dict[str, str] = field(default_factory=dict)  # field or label -> query input

    def request(self, app: pb.ApplicationInfo) -> pb.RankRequest:
        s, p = find_profile(app, self.profile, self.schema)
        return pb.RankRequest(schema=s.name, rank_profile=p.name, query=query_tensors(p, self.values),
                              hits=self.hits, offset=self.offset, nearest_neighbor=self.nearest_neighbor)
