"""Rendered kernel sources of small programs, compared with reviewed text under golden/.

A change to the renderer that alters these shows up as a diff to read. After checking it,
regenerate with TENSORRANK_UPDATE_GOLDEN=1 pytest tests/render/test_golden.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_engine.expressions import can_fuse
from gpu_engine.render import HELPERS, KernelSource, render_group
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node, Role
from tensor_ir.passes.fusion import fuse
from tensor_ir.program import Program

GOLDEN = Path(__file__).with_name("golden")
F32, F16, I32 = CellType.FLOAT32, CellType.FLOAT16, CellType.INT32


def doc(shape: tuple[int, ...], name: str = "x", ct: CellType = F32) -> Node:
    return build.input_(name, Role.ATTRIBUTE, shape, ct)


def scaled_sigmoid() -> Program:
    x, q = doc((8,)), build.input_("q", Role.QUERY, (8,), F32)
    return Program({"y": build.map_("sigmoid", build.join("add", build.join("mul", x, q), build.scalar(1.5, F32)))})


def log_mean_exp() -> Program:
    x = doc((4, 6))
    e = build.map_("exp", build.join("sub", x, build.scalar(1.0, F32)))
    r = build.reduce(e, "sum", [1], True)
    return Program({"y": build.map_("log", build.join("mul", r, build.scalar(1 / 6, F32)))})


def half_chain() -> Program:
    x = doc((4,), "x", F16)
    h = build.join("max", build.map_("tanh", x), build.scalar(-0.5, F16))
    return Program({"y": build.cast(h, F32)})


def int_ops() -> Program:
    a, b = doc((4,), "a", I32), doc((4,), "b", I32)
    m = build.join("mod", build.join("div", a, b), build.scalar(7, I32))
    return Program({"y": build.join("shift_left", m, build.scalar(2, I32))})


def max_over_documents_rows() -> Program:
    x = doc((5, 3), "x", F16)
    return Program({"y": build.reduce(x, "max", [0, 1], False)})


PROGRAMS: dict[str, Callable[[], Program]] = {
    "scaled_sigmoid": scaled_sigmoid,
    "log_mean_exp": log_mean_exp,
    "half_chain": half_chain,
    "int_ops": int_ops,
    "max_f16": max_over_documents_rows,
}


def render(src: KernelSource) -> str:
    fields = ["kind", "name", "in_params", "out_params"]
    fields += ["operation"] if src.kind == "elementwise" else [
        "map_expr", "reduce_expr", "post_map_expr", "identity", "reduce_type"]
    head = "".join(f"{f}: {getattr(src, f)}\n" for f in fields)
    assert src.preamble == HELPERS + src.body
    return head + "--- body\n" + src.body


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_golden_source(name: str) -> None:
    plan = fuse(PROGRAMS[name](), can_fuse)
    text = "\n".join(render(render_group(g)) for g in plan.groups)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("TENSORRANK_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with TENSORRANK_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text()
