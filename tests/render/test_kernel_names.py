"""Kernels that differ only in their aggregation must not share a name.

Kernels are cached by name; on the first GPU run, min, max, sum and prod over the same
elementwise chain shared one name (the digest covered the body only), so a program with
a softmax reused its max kernel for the sum. This pins the fix without a GPU.
"""

from __future__ import annotations

from gpu_engine.render import render_group
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.passes.fusion import fuse
from tensor_ir.program import Program


def test_reductions_differing_only_in_aggregation_get_distinct_names() -> None:
    x = build.input_("x", Role.ATTRIBUTE, (4, 8), CellType.FLOAT32)
    outs = {agg: build.reduce(build.map_("exp", x), agg, [1], False) for agg in ("sum", "max", "min", "prod")}
    names = set()
    for agg, node in outs.items():
        plan = fuse(Program({agg: node}))
        sources = [render_group(g) for g in plan.groups if g.reduce is not None]
        assert len(sources) == 1, agg
        names.add(sources[0].name)
    assert len(names) == 4
