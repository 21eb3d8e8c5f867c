"""Print the since_versions onnx.defs knows for the given ops, for writing `@converter` lines.

Usage: python scripts/op_versions.py Relu Gemm ...  (no arguments: every ai.onnx op)
"""

from __future__ import annotations

import sys
from collections import defaultdict

import onnx.defs


def main(names: list[str]) -> None:
    versions: dict[tuple[str, str], set[int]] = defaultdict(set)
    for s in onnx.defs.get_all_schemas_with_history():
        versions[(s.domain, s.name)].add(int(s.since_version))
    for (domain, name), vs in sorted(versions.items()):
        if (names and name not in names) or (not names and domain not in ("", "ai.onnx")):
            continue
        print(f'{name}: {", ".join(str(v) for v in sorted(vs))}{"  domain=" + domain if domain else ""}')


if __name__ == "__main__":
    main(sys.argv[1:])
