"""Producers that write straight into the buffer of the concatenation that reads them, against
the reference evaluation of the same program."""

from __future__ import annotations

import numpy as np

from cpu_fallback.backend import NumpyProgram
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.program import Program
from tests.cpu.test_blocked_evaluation import _reference

F32 = CellType.FLOAT32
RNG = np.random.default_rng(11)


def _check(program: Program, feeds: dict[str, np.ndarray], n: int, workers: int = 1) -> None:
    got = NumpyProgram(program, block_bytes=16 << 10, workers=workers).run(feeds, n)
    want = _reference(program, feeds, n)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=2e-5, err_msg=k)


def test_computed_parts_are_written_in_place_and_inputs_copied() -> None:
    n = 3000
    doc = build.input_("doc", Role.ATTRIBUTE, (2, 8), F32)
    q = build.input_("q", Role.QUERY, (2, 3), F32)
    w = build.constant(RNG.standard_normal((8, 5)).astype(np.float32))
    features = build.concat([build.map_("relu", build.matmul(doc, w)), doc, q, build.map_("exp", doc)], 1)
    program = Program({"s": build.reduce(build.map_("tanh", features), "sum", [0, 1], False)})
    plan = NumpyProgram(program, workers=1).plan(n)
    assert [step.node.attrs.get("fn") for step in plan._steps if step.placed is not None] == ["relu", "exp"]
    feeds = {"doc": RNG.standard_normal((n, 2, 8)).astype(np.float32),
             "q": RNG.standard_normal((2, 3)).astype(np.float32)}
    _check(program, feeds, n)
    _check(program, feeds, n, workers=2)


def test_a_part_read_twice_is_copied_not_placed() -> None:
    n = 400
    doc = build.input_("doc", Role.ATTRIBUTE, (3,), F32)
    e = build.map_("exp", doc)
    both = build.concat([e, build.map_("neg", doc), e], 0)  # e twice: it must keep its own buffer
    program = Program({"c": both, "s": build.reduce(build.join("mul", both, both), "sum", [0], False)})
    plan = NumpyProgram(program, workers=1).plan(n)
    assert [step.node.attrs.get("fn") for step in plan._steps if step.placed is not None] == ["neg"]
    _check(program, {"doc": RNG.standard_normal((n, 3)).astype(np.float32)}, n)
