"""Regenerate the committed Python stubs from proto/tensorrank/v1/ranking.proto.

Usage: python scripts/gen_proto.py [--check]   (--check: exit 1 if the committed stubs differ)
"""

from __future__ import annotations

import difflib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
OUT_DIR = PROTO_DIR / "tensorrank" / "v1"
FILES = ("ranking_pb2.py", "ranking_pb2.pyi", "ranking_pb2_grpc.py")


def generate(out_root: Path) -> dict[str, str]:
    from grpc_tools import protoc

    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out_root}", f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}", str(PROTO_DIR / "tensorrank" / "v1" / "ranking.proto")]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    texts = {}
    for name in FILES:
        text = (out_root / "tensorrank" / "v1" / name).read_text()
        # the stubs live in the package proto.tensorrank.v1, not a top-level tensorrank
        text = text.replace("from tensorrank.v1 import ranking_pb2", "from proto.tensorrank.v1 import ranking_pb2")
        texts[name] = text
    return texts


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        texts = generate(Path(tmp))
    if "--check" in argv:
        stale = []
        for name, text in texts.items():
            current = (OUT_DIR / name).read_text() if (OUT_DIR / name).exists() else ""
            if current != text:
                stale.append(name)
                sys.stderr.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                           f"committed/{name}", f"generated/{name}", n=1))
        if stale:
            print(f"stale stubs: {', '.join(stale)}; run python scripts/gen_proto.py", file=sys.stderr)
            return 1
        return 0
    for name, text in texts.items():
        (OUT_DIR / name).write_text(text)
        print(f"wrote {OUT_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
