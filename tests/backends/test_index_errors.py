"""Out-of-range indices raise EvaluationError (DocumentValueError when documents alone hold
them) naming the node (its op and label), the bad
index and the size of the axis it indexes, on every backend. The expected messages are
worked out by hand from the data shapes and index values."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tensor_ir import build
from tensor_ir.backend import Backend
from tensor_ir.dtypes import CellType
from tensor_ir.errors import DocumentValueError, EvaluationError
from tensor_ir.ir import Node, Role
from tensor_ir.program import Program

F32, I64 = CellType.FLOAT32, CellType.INT64


def ids(shape: tuple[int, ...]) -> Node:
    return build.input_("i", Role.ATTRIBUTE, shape, I64)


def table(shape: tuple[int, ...]) -> Node:
    return build.constant(np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape))


def per_doc_table(shape: tuple[int, ...]) -> Node:
    return build.input_("x", Role.ATTRIBUTE, shape, F32)


# (program, per-document index values for 2 documents, the message's expected tail)
CASES: dict[str, tuple[Callable[[], Node], list[object], str]] = {
    "gather past the end": (
        lambda: build.gather(table((4,)), ids((2,)), 0, label="Gather_7"),
        [[1, 4], [0, 0]], "gather node 'Gather_7': index 4 is out of range for an axis of size 4"),
    "gather before the start": (
        lambda: build.gather(table((4, 3)), ids((2,)), 0, label="Gather_7"),
        [[0, 0], [-5, 2]], "gather node 'Gather_7': index -5 is out of range for an axis of size 4"),
    "gather from per-document data, axis 1": (
        lambda: build.gather(per_doc_table((2, 3)), ids((2,)), 1, label="emb"),
        [[0, 2], [3, 1]], "gather node 'emb': index 3 is out of range for an axis of size 3"),
    "gather without a label": (
        lambda: build.gather(table((4,)), ids((1,)), 0),
        [[6], [0]], "gather node: index 6 is out of range for an axis of size 4"),
    "gather_elements": (
        lambda: build.gather_elements(table((3, 4)), ids((3, 2)), 1, label="GE"),
        [[[0, 1], [2, 3], [3, 3]], [[0, 0], [0, 7], [1, 1]]],
        "gather_elements node 'GE': index 7 is out of range for an axis of size 4"),
    "gather_nd, second index column": (
        lambda: build.gather_nd(table((3, 4)), ids((2, 2)), 0, label="GND"),
        [[[0, 1], [2, 3]], [[1, 4], [0, 0]]],
        "gather_nd node 'GND': index 4 is out of range for an axis of size 4"),
    "gather_nd, first index column": (
        lambda: build.gather_nd(table((3, 4)), ids((2, 2)), 0, label="GND"),
        [[[3, 0], [0, 0]], [[0, 0], [0, 0]]],
        "gather_nd node 'GND': index 3 is out of range for an axis of size 3"),
    "gather_nd with a batch axis": (
        lambda: build.gather_nd(table((2, 5)), ids((2, 1)), 1, label="GND"),
        [[[4], [-6]], [[0], [0]]],
        "gather_nd node 'GND': index -6 is out of range for an axis of size 5"),
    "scatter_elements": (
        lambda: build.scatter_elements(table((4,)), ids((2,)), build.constant(np.ones(2, np.float32)), 0, "none",
                                       label="SE"),
        [[0, 1], [9, 2]], "scatter_elements node 'SE': index 9 is out of range for an axis of size 4"),
    "scatter_nd": (
        lambda: build.scatter_nd(table((3, 4)), ids((1, 2)), build.constant(np.ones(1, np.float32)), "add",
                                 label="SND"),
        [[[2, -5]], [[0, 0]]], "scatter_nd node 'SND': index -5 is out of range for an axis of size 4"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_out_of_range_index_names_node_index_and_axis(backend: Backend, case: str) -> None:
    make, index_values, message = CASES[case]
    program = Program({"y": make()})
    feeds: dict[str, object] = {"i": np.array(index_values, dtype=np.int64)}
    if "x" in program.inputs:
        feeds["x"] = np.zeros((2, *program.inputs["x"].shape), np.float32)
    with pytest.raises(DocumentValueError) as info:
        backend.run(program, feeds, 2)
    # every index here is a document's attribute: no query could have avoided the error
    assert str(info.value) == message + " (the indices come from the documents' attributes)"


def test_an_index_from_the_query_is_the_query_s_error(backend: Backend) -> None:
    q = build.input_("q", Role.QUERY, (2,), I64)
    program = Program({"y": build.gather(per_doc_table((4,)), q, 0, label="by_query")})
    with pytest.raises(EvaluationError) as info:
        backend.run(program, {"q": np.array([1, 8], np.int64), "x": np.zeros((2, 4), np.float32)}, 2)
    assert not isinstance(info.value, DocumentValueError)
    assert str(info.value) == ("gather node 'by_query': index 8 is out of range for an axis of size 4 "
                               "(the indices depend on the query's values)")


def test_in_range_negative_indices_count_from_the_end(backend: Backend) -> None:
    # gather_nd over [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]: (-1, -4) is (2, 0), 8
    program = Program({"y": build.gather_nd(table((3, 4)), ids((1, 2)), 0)})
    out = backend.run(program, {"i": np.array([[[-1, -4]], [[0, 3]]], np.int64)}, 2)["y"]
    np.testing.assert_array_equal(out, [[8.0], [3.0]])
