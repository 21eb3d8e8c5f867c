"""The committed gRPC stubs are exactly what the codegen script makes from the .proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_are_current() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]


def test_contract_names_and_numbers() -> None:
    from proto.tensorrank.v1 import ranking_pb2 as pb

    fields = {f.name: f.number for f in pb.RankRequest.DESCRIPTOR.fields}
    assert fields == {"schema": 1, "rank_profile": 2, "query": 3, "hits": 4, "offset": 5, "doc_ids": 6,
                      "all_scores": 7, "nearest_neighbor": 8}
    assert {f.name: f.number for f in pb.Tensor.DESCRIPTOR.fields} == {"type": 1, "values": 2, "labels": 3}
    assert {f.name: f.number for f in pb.FeedResult.DESCRIPTOR.fields} == {"request_id": 1, "ok": 2, "error": 3}
    service = pb.DESCRIPTOR.services_by_name["Ranking"]
    assert [m.name for m in service.methods][:4] == ["Rank", "Feed", "Get", "GetApplication"]
    assert pb.DESCRIPTOR.package == "tensorrank.v1"
