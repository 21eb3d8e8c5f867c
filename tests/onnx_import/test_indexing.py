"""Indexing converters against onnxruntime, three documents with different values.

Each gather and scatter runs with every operand per document, and with the data or the
indices a deploy-time constant (an initializer) while the rest varies per document: the
reference kernels handle each combination of document axes differently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import helper

from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of

ROLES = ["both", "data_const", "idx_const"]


def _split_roles(docs: list[dict[str, np.ndarray]], const: list[str]) -> tuple[list[dict[str, np.ndarray]],
                                                                              dict[str, np.ndarray]]:
    """Move the named inputs to initializers (document 0's value)."""
    inits = {k: docs[0][k] for k in const}
    return [{k: v for k, v in d.items() if k not in const} for d in docs], inits


def _run(rng: np.random.Generator, make: Any, node: Any, opset: int, role: str,
         data: tuple[str, ...] = ("x",), idx: tuple[str, ...] = ("i",)) -> None:
    docs = docs_of(rng, make)
    const = {"both": [], "data_const": list(data), "idx_const": list(idx)}[role]
    docs, inits = _split_roles(docs, const)
    check(model_of(node, docs[0], opset, inits), docs)


# ---------------------------------------------------------------- gathers


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("axis", "idx_shape"), [(0, (2,)), (1, (2, 3)), (-1, ()), (2, (4,))])
def test_gather(rng: np.random.Generator, role: str, axis: int, idx_shape: tuple[int, ...]) -> None:
    dims = (3, 4, 5)

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        d = dims[axis]
        return {"x": r.normal(size=dims).astype(np.float32),
                "i": r.integers(-d, d, size=idx_shape).astype(np.int64)}

    _run(rng, make, helper.make_node("Gather", ["x", "i"], ["y"], axis=axis), 13, role)


def test_gather_embedding_lookup_with_int32_ids(rng: np.random.Generator) -> None:
    # the embedding table is a constant, token ids vary per document
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"ids": r.integers(0, 10, size=(1, 6)).astype(np.int32)}

    docs = docs_of(rng, make)
    table = rng.normal(size=(10, 4)).astype(np.float32)
    check(model_of(helper.make_node("Gather", ["table", "ids"], ["y"]), docs[0], 13, {"table": table}), docs)


def test_gather_constant_index_out_of_range_fails_at_import() -> None:
    model = model_of(helper.make_node("Gather", ["x", "i"], ["y"]), {"x": np.zeros((3, 2), np.float32)}, 13,
                     {"i": np.array([0, 3], np.int64)})
    with pytest.raises(ModelImportError, match="index 3 is out of range"):
        import_model(model)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("axis", "idx_shape"), [(0, (2, 4)), (1, (3, 2)), (-1, (2, 6)), (0, (5, 1))])
def test_gather_elements(rng: np.random.Generator, role: str, axis: int, idx_shape: tuple[int, ...]) -> None:
    # index shapes smaller than the data off the axis are allowed
    dims = (3, 4)

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        d = dims[axis]
        return {"x": r.normal(size=dims).astype(np.float32),
                "i": r.integers(-d, d, size=idx_shape).astype(np.int64)}

    _run(rng, make, helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis), 13, role)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("batch_dims", "idx_shape"), [(0, (2, 2)), (0, (3, 1)), (1, (2, 1)), (1, (2, 3, 2))])
def test_gather_nd(rng: np.random.Generator, role: str, batch_dims: int, idx_shape: tuple[int, ...]) -> None:
    dims = (2, 3, 4)

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        k = idx_shape[-1]
        bound = np.array(dims[batch_dims:batch_dims + k])
        idx = r.integers(0, 1 << 20, size=idx_shape) % bound - (bound if i == 1 else 0)
        return {"x": r.normal(size=dims).astype(np.float32), "i": idx.astype(np.int64)}

    _run(rng, make, helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=batch_dims), 13, role)


# ---------------------------------------------------------------- scatters


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements(rng: np.random.Generator, role: str, reduction: str) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        # a permutation per row keeps "none" free of duplicate targets; reductions get duplicates
        idx = (np.stack([r.permutation(4)[:3] for _ in range(2)]) if reduction == "none"
               else r.integers(-4, 4, size=(2, 3)))
        return {"x": r.normal(size=(3, 4)).astype(np.float32), "i": idx.astype(np.int64),
                "u": r.normal(size=(2, 3)).astype(np.float32)}

    node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=1, reduction=reduction)
    _run(rng, make, node, 18, role, data=("x", "u"))


def test_scatter_before_opset_11(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        idx = np.stack([r.permutation(3)[:2] for _ in range(4)], axis=1)
        return {"x": r.normal(size=(3, 4)).astype(np.float32), "i": idx.astype(np.int64),
                "u": r.normal(size=(2, 4)).astype(np.float32)}

    docs = docs_of(rng, make)
    check(model_of(helper.make_node("Scatter", ["x", "i", "u"], ["y"], axis=0), docs[0], 10), docs)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd(rng: np.random.Generator, role: str, reduction: str) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        if reduction == "none":
            flat = r.permutation(12)[:3]
            idx = np.stack([flat // 4, flat % 4], axis=1)
        else:
            idx = np.stack([r.integers(-3, 3, size=3), r.integers(0, 4, size=3)], axis=1)
        return {"x": r.normal(size=(3, 4, 2)).astype(np.float32), "i": idx.astype(np.int64),
                "u": r.normal(size=(3, 2)).astype(np.float32)}

    node = helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=reduction)
    _run(rng, make, node, 18, role, data=("x", "u"))


def test_scatter_reduction_needs_its_opset() -> None:
    x = np.zeros((3,), np.float32)
    model = model_of(helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], reduction="add"),
                     {"x": x, "u": np.zeros((1,), np.float32)}, 16, {"i": np.array([0], np.int64)})
    model.graph.node[0].attribute[0].s = b"max"
    with pytest.raises(ModelImportError, match="unsupported reduction 'max'"):
        import_model(model)


# ---------------------------------------------------------------- TopK


@pytest.mark.parametrize(("largest", "axis", "k"), [(1, -1, 3), (0, -1, 2), (1, 0, 2), (0, 1, 5), (1, 1, 0)])
def test_topk(rng: np.random.Generator, largest: int, axis: int, k: int) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        # few distinct values: ties must keep the lower index first
        return {"x": r.integers(0, 4, size=(3, 5)).astype(np.float32)}

    docs = docs_of(rng, make)
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)
    check(model_of(node, docs[0], 11, {"k": np.array([k], np.int64)}, outputs=["v", "i"]), docs)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.int32])
def test_topk_of_large_integers_is_exact(rng: np.random.Generator, dtype: Any) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        # neighbours just below the type's maximum, which float64 cannot tell apart
        base = np.array(np.iinfo(dtype).max - 8, dtype=dtype)
        return {"x": (base + r.permutation(8).astype(dtype)).reshape(2, 4)}

    docs = docs_of(rng, make)
    for largest in (0, 1):
        node = helper.make_node("TopK", ["x", "k"], ["v", "i"], largest=largest)
        # onnxruntime has no uint64 TopK kernel
        check(model_of(node, docs[0], 11, {"k": np.array([3], np.int64)}, outputs=["v", "i"]), docs,
              use_reference=dtype == np.uint64)


def test_topk_nan_ranks_above_every_number(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        x = r.normal(size=(2, 5)).astype(np.float32)
        x[0, i] = np.nan
        x[1, :2] = [np.inf, -np.inf]
        return {"x": x}

    docs = docs_of(rng, make)
    for largest in (0, 1):
        node = helper.make_node("TopK", ["x", "k"], ["v", "i"], largest=largest)
        check(model_of(node, docs[0], 11, {"k": np.array([4], np.int64)}, outputs=["v", "i"]), docs)


def test_topk_attribute_form_before_opset_10(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.normal(size=(2, 6)).astype(np.float32)})
    check(model_of(helper.make_node("TopK", ["x"], ["v", "i"], k=2), docs[0], 9, outputs=["v", "i"]), docs)


def test_topk_k_that_varies_per_document_is_refused() -> None:
    model = model_of(helper.make_node("TopK", ["x", "k"], ["v", "i"]),
                     {"x": np.zeros((4,), np.float32), "k": np.array([2], np.int64)}, 11, outputs=["v", "i"])
    with pytest.raises(ModelImportError, match="K must be a constant known at deploy time"):
        import_model(model)


# ---------------------------------------------------------------- OneHot, Trilu, EyeLike


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("idx_type", [np.int64, np.float32, np.uint8])
def test_one_hot(rng: np.random.Generator, axis: int, idx_type: Any) -> None:
    signed = np.dtype(idx_type).kind != "u"

    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        # out-of-range indices (both ends) give all off_value
        idx = r.integers(-6 if signed else 0, 7, size=(2, 3)).astype(idx_type)
        return {"i": idx, "vals": np.array([-i, 3 + i], np.float32)}

    docs = docs_of(rng, make)
    node = helper.make_node("OneHot", ["i", "depth", "vals"], ["y"], axis=axis)
    # onnxruntime has kernels for int64 and float indices (with a depth of the same type) only
    depth = np.array(5, np.float32 if idx_type == np.float32 else np.int64)
    check(model_of(node, docs[0], 11, {"depth": depth}), docs, use_reference=idx_type == np.uint8)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k_role", ["absent", "const", "per_doc"])
def test_trilu(rng: np.random.Generator, upper: int, k_role: str) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.normal(size=(2, 3, 5)).astype(np.float32), "k": np.array(i - 1, np.int64)}

    docs = docs_of(rng, make)
    if k_role == "absent":
        docs = [{"x": d["x"]} for d in docs]
    docs, inits = _split_roles(docs, ["k"] if k_role == "const" else [])
    names = ["x"] if k_role == "absent" else ["x", "k"]
    check(model_of(helper.make_node("Trilu", names, ["y"], upper=upper), docs[0], 14, inits), docs)


@pytest.mark.parametrize(("k", "dtype"), [(0, None), (2, 7), (-1, 1)])
def test_eye_like(rng: np.random.Generator, k: int, dtype: int | None) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.normal(size=(3, 4)).astype(np.float32)})
    attrs: dict[str, Any] = {"k": k} if dtype is None else {"k": k, "dtype": dtype}
    check(model_of(helper.make_node("EyeLike", ["x"], ["y"], **attrs), docs[0], 9), docs)


# ---------------------------------------------------------------- value-dependent shapes


def _with_marker(node: Any, const: dict[str, np.ndarray], rng: np.random.Generator, opset: int,
                 outputs: tuple[str, ...] = ("y",)) -> None:
    """Check an op on constant operands, with a per-document input added beside it so the
    documents differ."""
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"m": r.normal(size=(2,)).astype(np.float32)}

    docs = docs_of(rng, make)
    marker = helper.make_node("Identity", ["m"], ["m_out"])
    check(model_of([node, marker], docs[0], opset, const, outputs=[*outputs, "m_out"]), docs)


def test_non_zero_of_a_constant(rng: np.random.Generator) -> None:
    x = np.array([[1, 0, 3], [0, 0, 2]], np.int32)
    _with_marker(helper.make_node("NonZero", ["x"], ["y"]), {"x": x}, rng, 13)


def test_non_zero_of_document_data_is_refused() -> None:
    model = model_of(helper.make_node("NonZero", ["x"], ["y"]), {"x": np.zeros((3,), np.float32)}, 13)
    with pytest.raises(ModelImportError, match="NonZero's output shape depends on its values"):
        import_model(model)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress_with_a_constant_condition(rng: np.random.Generator, axis: int | None) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.normal(size=(3, 4)).astype(np.float32)})
    cond = np.array([True, False, True], bool) if axis == 0 else np.array([False, True, True, False, True])
    if axis in (1, -1):
        cond = cond[:3]
    attrs = {} if axis is None else {"axis": axis}
    check(model_of(helper.make_node("Compress", ["x", "c"], ["y"], **attrs), docs[0], 11, {"c": cond}), docs)


@pytest.mark.parametrize(("axis", "sorted_"), [(None, 1), (None, 0), (0, 1), (1, 0)])
def test_unique_of_a_constant(rng: np.random.Generator, axis: int | None, sorted_: int) -> None:
    x = np.array([[3, 1, 3], [2, 1, 2], [3, 1, 3]], np.float32)
    attrs: dict[str, Any] = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    outs = ("y", "first", "inverse", "counts")
    _with_marker(helper.make_node("Unique", ["x"], list(outs), **attrs), {"x": x}, rng, 11, outs)


def test_unique_of_document_data_is_refused() -> None:
    model = model_of(helper.make_node("Unique", ["x"], ["y"]), {"x": np.zeros((3,), np.float32)}, 11)
    with pytest.raises(ModelImportError, match="Unique's output shape depends on its values"):
        import_model(model)
