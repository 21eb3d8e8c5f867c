"""The verifier accepts every program build.py makes and rejects hand-made malformed nodes."""

from __future__ import annotations

import numpy as np
import pytest

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
from tensor_ir.ir import Attrs, ConstValue, Node, Op, Role, Variance
from tensor_ir.program import Program, ProgramInput
from tensor_ir.trees import Forest, ForestSpec, NodeSpec, TreeSpec, canonical_forest
from tensor_ir.trees import spec as S
from tensor_ir.verify import verify

F32 = CellType.FLOAT32
I64 = CellType.INT64
DOC = Variance.DOCUMENT


def x() -> Node:
    return build.input_("x", Role.ATTRIBUTE, (2, 3), F32)


def q() -> Node:
    return build.input_("q", Role.QUERY, (3,), F32)


def _one_split_forest() -> Forest:
    leaf = (NodeSpec(S.LEAF, weights=((0, 1.0),)), NodeSpec(S.LEAF, weights=((1, 2.0),)))
    return canonical_forest(ForestSpec((TreeSpec((NodeSpec(S.BRANCH_LT, 2, 0.5, 1, 2), *leaf)),), 3, 2))


def every_primitive() -> Program:
    a, b = x(), q()
    idx = build.input_("i", Role.QUERY, (2,), I64)
    cond = build.join("gt", a, b)
    outs = {
        "map": build.map_("tanh", a),
        "join": build.join("add", a, b),
        "select": build.select(cond, a, b),
        "cast": build.cast(a, I64),
        "reduce": build.reduce(a, "sum", [-1], True),
        "arg": build.arg_reduce(a, "argmax", 1, False, True),
        "scan": build.scan(a, "sum", 1, True, True),
        "matmul": build.matmul(a, build.reshape(b, (3, 1))),
        "reshape": build.reshape(a, (3, 2)),
        "transpose": build.transpose(a, (1, 0)),
        "broadcast": build.broadcast(b, (4, 3)),
        "concat": build.concat([a, build.reshape(b, (1, 3))], 0),
        "slice": build.slice_(a, [-1, -1], [-100, -100], [-1, -1]),
        "empty_slice": build.slice_(a, [-100, 0], [0, 3], [-1, 1]),
        "pad": build.pad(a, [(1, -1), (0, 2)], "edge"),
        "gather": build.gather(a, idx, -1),
        "gather_elements": build.gather_elements(a, build.reshape(idx, (2, 1)), 1),
        "gather_nd": build.gather_nd(a, build.reshape(idx, (1, 2)), 0),
        "scatter_elements": build.scatter_elements(
            a, build.reshape(idx, (1, 2)), build.slice_(a, [0, 0], [1, 2], [1, 1]), 1, "add"
        ),
        "scatter_nd": build.scatter_nd(
            a,
            build.reshape(build.slice_(idx, [0], [1], [1]), (1, 1)),
            build.slice_(a, [0, 0], [1, 3], [1, 1]),
            "none",
        ),
        "topk": build.topk(a, 2, 1, False),
        "tree_ensemble": build.tree_ensemble(a, _one_split_forest()),
        "lookup": build.lookup(build.input_("keys", Role.QUERY, (4,), CellType.INT32),
                               build.input_("labels", Role.ATTRIBUTE, (5,), CellType.INT32)),
        "constant": build.join("mul", a, build.constant(np.float32(2))),
    }
    return Program(outs)


def test_every_constructor_output_verifies() -> None:
    p = every_primitive()
    labels = {n.op.label for n in p.nodes()}
    assert labels >= {op.label for op in Op}
    verify(p)


def malformed() -> dict[str, Node]:
    a = x()
    good = build.map_("exp", a)
    return {
        "wrong shape": Node(Op.MAP, (a,), good.attrs, (3, 2), F32, DOC),
        "wrong cell type": Node(Op.JOIN, (a, a), Attrs({"fn": "add"}), (2, 3), CellType.INT32, DOC),
        "comparison recorded as float": Node(Op.JOIN, (a, a), Attrs({"fn": "lt"}), (2, 3), F32, DOC),
        "wrong variance": Node(Op.MAP, (a,), good.attrs, (2, 3), F32, Variance.QUERY),
        "unknown function": Node(Op.MAP, (a,), Attrs({"fn": "frob"}), (2, 3), F32, DOC),
        "missing attribute": Node(Op.MAP, (a,), Attrs({}), (2, 3), F32, DOC),
        "attribute of the wrong type": Node(
            Op.REDUCE, (a,), Attrs({"agg": "sum", "axes": "rows", "keepdims": False}), (3,), F32, DOC
        ),
        "too few operands": Node(Op.JOIN, (a,), Attrs({"fn": "add"}), (2, 3), F32, DOC),
        "too many operands": Node(Op.MAP, (a, a), good.attrs, (2, 3), F32, DOC),
        "no operands": Node(Op.CONCAT, (), Attrs({"axis": 0}), (2, 3), F32, DOC),
        "negative axis": Node(
            Op.REDUCE, (a,), Attrs({"agg": "sum", "axes": (-1,), "keepdims": False}), (2,), F32, DOC
        ),
        "axis out of range": Node(
            Op.REDUCE, (a,), Attrs({"agg": "sum", "axes": (2,), "keepdims": False}), (2,), F32, DOC
        ),
        "unclamped slice": Node(
            Op.SLICE, (a,), Attrs({"starts": (0, 0), "stops": (1, 99), "steps": (1, 1)}), (1, 3), F32, DOC
        ),
        "float gather indices": Node(
            Op.GATHER,
            (a, build.input_("f", Role.QUERY, (2,), F32)),
            Attrs({"axis": 0}),
            (2, 3),
            F32,
            Variance.QUERY_DOCUMENT,
        ),
        "join of mixed types": Node(
            Op.JOIN,
            (a, build.input_("i", Role.QUERY, (3,), I64)),
            Attrs({"fn": "add"}),
            (2, 3),
            F32,
            Variance.QUERY_DOCUMENT,
        ),
        "constant of the wrong shape": Node(
            Op.CONSTANT,
            (),
            Attrs({"value": ConstValue(np.zeros(3, np.float32))}),
            (2,),
            F32,
            Variance.CONSTANT,
        ),
        "constant of the wrong type": Node(
            Op.CONSTANT,
            (),
            Attrs({"value": ConstValue(np.zeros(2, np.float64))}),
            (2,),
            F32,
            Variance.CONSTANT,
        ),
        "varying constant": Node(
            Op.CONSTANT, (), Attrs({"value": ConstValue(np.zeros(2, np.float32))}), (2,), F32, DOC
        ),
        "constant without a value": Node(Op.CONSTANT, (), Attrs({}), (2,), F32, Variance.CONSTANT),
        "input with operands": Node(Op.INPUT, (a,), a.attrs, (2, 3), F32, DOC),
    }


@pytest.mark.parametrize("case", sorted(malformed()))
def test_malformed_node_is_rejected(case: str) -> None:
    node = malformed()[case]
    a = x()
    # declared inputs as a well-formed program would have them
    specs = {
        "x": ProgramInput("x", Role.ATTRIBUTE, (2, 3), F32),
        "f": ProgramInput("f", Role.QUERY, (2,), F32),
        "i": ProgramInput("i", Role.QUERY, (3,), I64),
    }
    program = Program(
        {"bad": build.join("add", a, a), "out": node}
        if node.dtype is F32 and node.shape == (2, 3)
        else {"out": node},
        specs,
    )
    with pytest.raises(IRError) as info:
        verify(program)
    # the message names the offending node
    assert node.op.label in str(info.value)


def test_malformed_node_deep_inside_is_found() -> None:
    a = x()
    bad = Node(Op.MAP, (a,), Attrs({"fn": "exp"}), (3, 2), F32, DOC)
    out = build.reduce(build.map_("neg", bad), "sum", None, False)
    with pytest.raises(IRError, match=r"records float32\[3, 2\] but its operands give float32\[2, 3\]"):
        verify(Program({"out": out}))


def test_inputs_must_match_the_declaration() -> None:
    a = x()
    out = build.map_("exp", a)
    with pytest.raises(IRError, match="does not match the program's declared inputs"):
        verify(Program({"out": out}, {}))
    with pytest.raises(IRError, match="does not match the program's declared inputs"):
        verify(Program({"out": out}, {"x": ProgramInput("x", Role.ATTRIBUTE, (3, 2), F32)}))
    with pytest.raises(IRError, match="wrong role or variance for role query"):
        verify(Program({"out": out}, {"x": ProgramInput("x", Role.QUERY, (2, 3), F32)}))


def test_output_must_be_a_node() -> None:
    p = Program({"out": x()})
    p.outputs["junk"] = np.zeros(2)  # type: ignore[assignment]
    with pytest.raises(IRError, match="output 'junk' is not a node"):
        verify(p)
