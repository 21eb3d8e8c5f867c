"""tensor_ir.passes.fusion: how programs are cut into CuPy-shaped groups and single steps."""

from __future__ import annotations

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node, Op, Role
from tensor_ir.passes.fusion import FusedGroup, SingleStep, default_can_fuse, fuse
from tensor_ir.program import Program

F32 = CellType.FLOAT32


def doc(shape: tuple[int, ...], name: str = "x", ct: CellType = F32) -> Node:
    return build.input_(name, Role.ATTRIBUTE, shape, ct)


def query(shape: tuple[int, ...], name: str = "q", ct: CellType = F32) -> Node:
    return build.input_(name, Role.QUERY, shape, ct)


def s(v: float) -> Node:
    return build.scalar(v, F32)


def test_an_elementwise_chain_is_one_group_and_scalars_are_immediates() -> None:
    x, q = doc((8,)), query((8,))
    y = build.map_("sigmoid", build.join("add", build.join("mul", x, q), s(1.5)))
    plan = fuse(Program({"y": y}))
    assert len(plan.steps) == 1
    g = plan.steps[0]
    assert isinstance(g, FusedGroup) and g.reduce is None
    assert [n.op for n in g.pre] == [Op.JOIN, Op.JOIN, Op.MAP]
    assert g.leaves == (x, q)  # the scalar 1.5 is not read from memory
    assert g.root is y and g.per_document and g.space == (8,)


def test_a_value_with_two_users_is_materialised_once() -> None:
    x = doc((4,))
    e = build.map_("exp", x)
    a, b = build.join("add", e, s(1.0)), build.join("mul", e, s(2.0))
    plan = fuse(Program({"a": a, "b": b}))
    groups = plan.groups
    assert len(groups) == 3
    assert groups[0].root is e
    assert {g.root for g in groups[1:]} == {a, b}
    assert all(g.leaves == (e,) for g in groups[1:])


def test_program_outputs_are_group_roots() -> None:
    x = doc((4,))
    e = build.map_("exp", x)
    y = build.map_("log", e)
    plan = fuse(Program({"e": e, "y": y}))
    assert [g.root for g in plan.groups] == [e, y]


def test_query_work_is_not_repeated_per_document() -> None:
    x, q = doc((8,)), query((8,))
    qn = build.map_("exp", q)  # query-only
    y = build.join("mul", x, qn)
    plan = fuse(Program({"y": y}))
    assert [g.root for g in plan.groups] == [qn, y]
    assert not plan.groups[0].per_document and plan.groups[1].leaves == (x, qn)


def test_reduction_with_pre_and_post_chains() -> None:
    x = doc((4, 6))
    e = build.map_("exp", build.join("sub", x, s(1.0)))
    r = build.reduce(e, "sum", [1], True)
    y = build.map_("log", build.join("mul", r, s(0.5)))
    plan = fuse(Program({"y": y}))
    assert len(plan.steps) == 1
    g = plan.groups[0]
    assert g.reduce is r and [n.op for n in g.pre] == [Op.JOIN, Op.MAP]
    assert [n.op for n in g.post] == [Op.JOIN, Op.MAP] and g.root is y
    assert g.space == (4, 6) and g.leaves == (x,)


def test_post_chain_stops_at_an_operand_read_from_memory() -> None:
    x, w = doc((4, 6)), doc((4, 1), "w")
    r = build.reduce(x, "max", [1], True)
    a = build.join("mul", r, s(2.0))
    y = build.join("add", a, w)  # w is not an immediate: a ReductionKernel cannot read it
    plan = fuse(Program({"y": y}))
    g0, g1 = plan.groups
    # the scaling then runs in the elementwise kernel that reads w, not after the reduce
    assert g0.reduce is r and g0.post == () and g0.root is r
    assert g1.reduce is None and g1.root is y and g1.pre == (a, y) and g1.leaves == (r, w)


def test_softmax_cuts_at_the_shared_input_and_the_reductions() -> None:
    x = doc((3, 5))
    m = build.reduce(x, "max", [1], True)
    e = build.map_("exp", build.join("sub", x, m))
    z = build.reduce(e, "sum", [1], True)
    y = build.join("div", e, z)
    plan = fuse(Program({"y": y}))
    kinds = [(g.reduce.attrs["agg"] if g.reduce is not None else None, g.root) for g in plan.groups]
    assert kinds == [("max", m), (None, e), ("sum", z), (None, y)]


def test_matmul_and_structural_ops_are_single_steps() -> None:
    x = doc((4, 8))
    w = build.constant(np.ones((8, 3), np.float32))
    h = build.matmul(x, w)
    t = build.transpose(build.map_("relu", h), [1, 0])
    plan = fuse(Program({"t": t}))
    ops = [(type(st).__name__, st.root.op) for st in plan.steps]
    assert ops == [("SingleStep", Op.MATMUL), ("FusedGroup", Op.MAP), ("SingleStep", Op.TRANSPOSE)]


def test_a_broadcast_is_fused_inside_a_group_but_a_step_of_its_own_as_a_root() -> None:
    x = doc((1, 4))
    b = build.broadcast(x, (3, 4))
    inner = build.map_("exp", b)
    plan = fuse(Program({"y": inner}))
    assert len(plan.steps) == 1 and plan.groups[0].space == (3, 4) and plan.groups[0].leaves == (x,)
    plan = fuse(Program({"b": b}))
    assert isinstance(plan.steps[0], SingleStep)


def test_can_fuse_keeps_nodes_out_of_kernels() -> None:
    x = doc((4,))
    y = build.map_("exp", build.map_("neg", x))

    def no_exp(n: Node) -> bool:
        return default_can_fuse(n) and not (n.op is Op.MAP and n.attrs["fn"] == "exp")

    plan = fuse(Program({"y": y}), no_exp)
    assert [type(st).__name__ for st in plan.steps] == ["FusedGroup", "SingleStep"]


def test_leaves_and_constants_need_no_steps() -> None:
    x = doc((4,))
    plan = fuse(Program({"x": x, "c": build.constant(np.ones(3, np.float32))}))
    assert plan.steps == []
