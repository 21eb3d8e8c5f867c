"""The real models of Vespa's own test suite (../shared/vespa-models): each imports and
matches onnxruntime, document by document, when several documents are evaluated in one
call; or fails at import with a ModelImportError that says where.

Inputs are per-document attributes unless a test says otherwise. A leading symbolic or
-1 axis is the batch axis: left unbound it has size 1 per document (the document axis of
the program fills it). Other symbolic and -1 dims are sized by the bindings below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from cpu_fallback import NumpyBackend
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.onnx_import import InputBinding, ModelImportError, import_model
from tensor_ir.verify import verify
from tests.conftest import SEED
from tests.shared_data import VESPA_MODELS, model_params, vespa_model, vespa_model_names

ort = pytest.importorskip("onnxruntime")
ort.set_default_logger_severity(3)

N_DOCS = 3
MODELS = vespa_model_names()

# Per-document shapes bound for inputs whose dims the model leaves open (beyond the batch
# axis). A shape one shorter than the model's rank leaves out the batch axis.
BINDINGS: dict[str, dict[str, tuple[int, ...]]] = {
    "dummy_transformer.onnx": {"input_ids": (5,), "attention_mask": (5,), "token_type_ids": (5,)},
    "dummy_transformer_without_type_ids.onnx": {"input_ids": (6,), "attention_mask": (6,)},
    "random_encoder.onnx": {"input_ids": (7,), "attention_mask": (7,)},
    "mock_sentence_embedder.onnx": {"input_ids": (6,), "attention_mask": (6,)},
    # [-1, inner] and [outer, -1]: every open dim from the binding, rank for rank
    "probe_model.onnx": {"in1": (2, 3), "in2": (2, 3)},
    # [batch, -1]: the batch axis left out, the -1 axis bound
    "wrapper_dynamic.onnx": {"bias_tensor": (3,)},
}

# How each input's cells are drawn, where the cell type alone does not say
VALUES: dict[tuple[str, str], Callable[[np.random.Generator, tuple[int, ...]], Any]] = {}
for _m in ("dummy_transformer.onnx", "dummy_transformer_without_type_ids.onnx", "random_encoder.onnx"):
    # a vocabulary of 20; dummy_transformer adds token_type_ids to the ids
    VALUES[(_m, "input_ids")] = lambda r, s: r.integers(0, 19, s).astype(np.int64)
    VALUES[(_m, "attention_mask")] = lambda r, s: (r.random(s) < 0.8).astype(np.int64)
    VALUES[(_m, "token_type_ids")] = lambda r, s: r.integers(0, 2, s).astype(np.int64)
VALUES[("cast_float_int8.onnx", "input1")] = lambda r, s: r.uniform(-120, 120, s).astype(np.float32)

# Models that must fail at import, with what the message says besides the location
MUST_FAIL: dict[str, tuple[str, str]] = {
    # float indices: onnxruntime rejects the graph; we must refuse it too, at deploy
    "gather.onnx": ("Gather", "indices must be int"),
}

# Models onnxruntime cannot run: checked against another oracle in their own tests
NOT_BY_ONNXRUNTIME = {"mnist_softmax.onnx", "gather.onnx"}

TOLERANCE: dict[str, tuple[float, float]] = {
    "dummy_transformer.onnx": (1e-4, 1e-5),
    "dummy_transformer_without_type_ids.onnx": (1e-4, 1e-5),
    "random_encoder.onnx": (1e-4, 1e-5),
}


def _load(name: str) -> onnx.ModelProto:
    return onnx.load(str(VESPA_MODELS / name))


def _model_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def _dims(vi: onnx.ValueInfoProto) -> list[int | str | None]:
    out: list[int | str | None] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            out.append(int(d.dim_value))
        elif d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def expected_shape(vi: onnx.ValueInfoProto, bound: tuple[int, ...] | None) -> tuple[int, ...]:
    """The per-document shape worked out from the model's dims and the binding, independently of
    the importer: what an input must look like to onnxruntime for one document."""
    dims = _dims(vi)
    if bound is not None and len(bound) == len(dims) - 1:
        bound = (1, *bound)
    shape = []
    for axis, d in enumerate(dims):
        if isinstance(d, int):
            shape.append(d)
        elif bound is not None:
            shape.append(bound[axis])
        else:
            assert axis == 0, f"{vi.name}: dim {axis} needs a binding"
            shape.append(1)
    return tuple(shape)


def _cells(model: str, vi: onnx.ValueInfoProto, rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    make = VALUES.get((model, vi.name))
    if make is not None:
        return make(rng, shape)
    ct = CellType.from_onnx(vi.type.tensor_type.elem_type)
    if ct.is_float:
        return rng.normal(size=shape).astype(np.float32).astype(ct.np_dtype)
    if ct.is_bool:
        return rng.random(shape) < 0.5
    lo = -100 if ct is CellType.INT8 else -5
    return rng.integers(lo, -lo, shape).astype(ct.np_dtype)


def run_oracle(path: Path, feeds: dict[str, Any]) -> dict[str, Any]:
    """One document through onnxruntime; bfloat16 goes in as raw OrtValues, and models with
    bfloat16 outputs (which onnxruntime cannot hand back to numpy) go through onnx's reference."""
    model = onnx.load(str(path))
    bf16 = onnx.TensorProto.BFLOAT16
    if any(vi.type.tensor_type.elem_type == bf16 for vi in model.graph.output):
        from onnx.reference import ReferenceEvaluator

        names = [vi.name for vi in model.graph.output]
        return dict(zip(names, ReferenceEvaluator(model).run(None, feeds), strict=True))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    if any(np.asarray(v).dtype == ml_dtypes.bfloat16 for v in feeds.values()):
        values = {
            k: ort.OrtValue.ortvalue_from_numpy_with_onnx_type(np.asarray(v).view(np.uint16), bf16)
            if np.asarray(v).dtype == ml_dtypes.bfloat16
            else ort.OrtValue.ortvalue_from_numpy(np.asarray(v))
            for k, v in feeds.items()
        }
        outs = sess.run_with_ort_values(names, values)
        return {n: o.numpy() for n, o in zip(names, outs, strict=True)}
    return dict(zip(names, sess.run(names, feeds), strict=True))


def compare(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, what: str) -> None:
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, onnxruntime {want.shape}"
    assert got.dtype == want.dtype, f"{what}: cell type {got.dtype}, onnxruntime {want.dtype}"
    if want.dtype.kind == "f" or want.dtype == ml_dtypes.bfloat16:
        np.testing.assert_allclose(
            got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol, err_msg=what
        )
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def check_against_onnxruntime(
    name: str,
    bound: dict[str, tuple[int, ...]],
    roles: dict[str, Role] | None = None,
    seed_offset: int = 0,
) -> None:
    """Import with `bound` shapes, evaluate N_DOCS documents in one call, and compare each
    document with its own onnxruntime run."""
    print(f"{name}: seed {SEED + seed_offset}, bindings {bound}, roles {roles}")
    rng = np.random.default_rng(SEED + seed_offset)
    roles = roles or {}
    model = _load(name)
    bindings = {k: InputBinding(roles.get(k, Role.ATTRIBUTE), shape=v) for k, v in bound.items()}
    bindings.update({k: InputBinding(r) for k, r in roles.items() if k not in bound})
    imported = import_model(VESPA_MODELS / name, bindings)
    verify(imported.program)
    inputs = _model_inputs(model)
    per_doc: dict[str, tuple[int, ...]] = {vi.name: expected_shape(vi, bound.get(vi.name)) for vi in inputs}
    for vi in inputs:
        spec = imported.program.inputs.get(vi.name)
        if spec is not None:
            assert spec.shape == per_doc[vi.name], f"input {vi.name}: importer chose {spec.shape}"
            assert spec.role is roles.get(vi.name, Role.ATTRIBUTE)
    docs = [{vi.name: _cells(name, vi, rng, per_doc[vi.name]) for vi in inputs} for _ in range(N_DOCS)]
    # document-independent inputs have one value for all documents
    for vi in inputs:
        if roles.get(vi.name, Role.ATTRIBUTE) is not Role.ATTRIBUTE:
            for d in docs[1:]:
                d[vi.name] = docs[0][vi.name]
    feeds: dict[str, Any] = {}
    for vi in inputs:
        spec = imported.program.inputs.get(vi.name)
        if spec is None:
            continue
        feeds[vi.name] = (
            np.stack([d[vi.name] for d in docs]) if spec.role is Role.ATTRIBUTE else docs[0][vi.name]
        )
    result = NumpyBackend().run(imported.program, feeds, N_DOCS)
    assert set(result) == {vi.name for vi in model.graph.output}
    rtol, atol = TOLERANCE.get(name, (1e-5, 1e-6))
    for i, d in enumerate(docs):
        want = run_oracle(VESPA_MODELS / name, d)
        for out, value in want.items():
            compare(np.asarray(result[out][i]), value, rtol, atol, f"{name} output '{out}' document {i}")


def assert_located(e: ModelImportError, name: str) -> None:
    """The message names the model file and, for a node's failure, the node, op type, domain and opset."""
    text = str(e)
    assert name in text, text
    if e.op_type is not None:
        assert e.node, f"no node named in: {text}"
        assert f"node '{e.node}'" in text and f"op {e.op_type} " in text, text
        assert f"opset {e.opset}" in text and e.opset is not None, text
        assert "domain " in text, text


@pytest.mark.parametrize("name", model_params([m for m in MODELS if m not in NOT_BY_ONNXRUNTIME]))
def test_model_matches_onnxruntime(name: str) -> None:
    check_against_onnxruntime(name, BINDINGS.get(name, {}))


@pytest.mark.parametrize("name", model_params(MODELS))
def test_import_outcome_is_a_program_or_a_located_error(name: str) -> None:
    try:
        imported = import_model(
            VESPA_MODELS / name, {k: InputBinding(shape=v) for k, v in BINDINGS.get(name, {}).items()}
        )
    except ModelImportError as e:
        assert_located(e, name)
        if name in MUST_FAIL:
            op, says = MUST_FAIL[name]
            assert e.op_type == op and says in e.message, str(e)
            return
        pytest.fail(f"{name} does not import: {e}")
    assert name not in MUST_FAIL, f"{name} imported but must be refused"
    verify(imported.program)
    assert imported.program.outputs and imported.path.endswith(name)


# ---------------------------------------------------------------- query-role inputs


@pytest.mark.parametrize("name", ["simple.onnx", "int_types.onnx", "wrapper_dynamic.onnx"])
def test_query_tensor_as_query_input(name: str) -> None:
    vespa_model(name)
    check_against_onnxruntime(name, BINDINGS.get(name, {}), {"query_tensor": Role.QUERY}, seed_offset=1)


def test_bias_as_constant_input() -> None:
    """A constant-role input bound to its value is folded into the program."""
    name = "simple.onnx"
    vespa_model(name)
    bias = np.array([[0.25]], dtype=np.float32)
    imported = import_model(
        VESPA_MODELS / name,
        {"bias_tensor": InputBinding.constant(bias), "query_tensor": InputBinding(Role.QUERY)},
    )
    assert set(imported.program.inputs) == {"query_tensor", "attribute_tensor"}
    rng = np.random.default_rng(SEED)
    q = rng.normal(size=(1, 4)).astype(np.float32)
    docs = rng.normal(size=(N_DOCS, 4, 1)).astype(np.float32)
    out = NumpyBackend().run(imported.program, {"query_tensor": q, "attribute_tensor": docs}, N_DOCS)[
        "output"
    ]
    for i in range(N_DOCS):
        want = run_oracle(
            VESPA_MODELS / name, {"query_tensor": q, "attribute_tensor": docs[i], "bias_tensor": bias}
        )["output"]
        compare(out[i], want, 1e-5, 1e-6, f"document {i}")


# ---------------------------------------------------------------- symbolic and -1 dims


@pytest.mark.parametrize(
    "name,bound",
    [
        ("probe_model.onnx", {"in1": (2, 3), "in2": (2, 3)}),
        # broadcasting between the open dims: [1, 3] + [4, 1]
        ("probe_model.onnx", {"in1": (1, 3), "in2": (4, 1)}),
        ("probe_dynamic_model.onnx", {}),
        ("probe_dynamic_model.onnx", {"input1": (2,)}),
        # two batch names: each left unbound is 1 per document
        ("guess_batch.onnx", {}),
        ("guess_batch.onnx", {"in1": (3,), "in2": (3,)}),
        ("guess_batch.onnx", {"in1": (3,)}),
        ("fragile.onnx", {}),
        ("fragile.onnx", {"in2": (2,)}),
        # a binding may leave out a static leading axis of size 1, or a symbolic batch of a rank-1 input
        ("simple.onnx", {"query_tensor": (4,), "attribute_tensor": (4, 1), "bias_tensor": (1,)}),
        ("guess_batch.onnx", {"in1": (), "in2": (1,)}),
        ("wrapper_dynamic.onnx", {"bias_tensor": (1, 5), "query_tensor": (1, 4)}),
        # a symbol known from one input sizes it in another, whatever the inputs' order
        ("dummy_transformer.onnx", {"token_type_ids": (4,)}),
        ("mock_sentence_embedder.onnx", {"attention_mask": (1, 6)}),
    ],
    ids=lambda v: str(v),
)
def test_open_dims_sized_from_bindings(name: str, bound: dict[str, tuple[int, ...]]) -> None:
    vespa_model(name)
    if name == "dummy_transformer.onnx":
        # the unbound inputs take 'tokens' from the bound one
        model = _load(name)
        full = {vi.name: bound.get(vi.name, (4,)) for vi in _model_inputs(model)}
        imported = import_model(VESPA_MODELS / name, {k: InputBinding(shape=v) for k, v in bound.items()})
        assert {k: s.shape for k, s in imported.program.inputs.items()} == {
            k: (1, *v) for k, v in full.items()
        }
        bound = full
    if name == "mock_sentence_embedder.onnx":
        imported = import_model(VESPA_MODELS / name, {k: InputBinding(shape=v) for k, v in bound.items()})
        assert imported.program.inputs["input_ids"].shape == (1, 6)
        bound = {"input_ids": (1, 6), **bound}
    check_against_onnxruntime(name, bound, seed_offset=2)


def test_symbolic_dims_that_disagree_are_refused() -> None:
    vespa_model("probe_dynamic_model.onnx")
    with pytest.raises(
        ModelImportError, match=r"dimension 'batch' is 2 in input 'input1' but 3 in input 'input2'"
    ) as info:
        import_model(
            VESPA_MODELS / "probe_dynamic_model.onnx",
            {"input1": InputBinding(shape=(2, 2)), "input2": InputBinding(shape=(3, 2))},
        )
    assert "probe_dynamic_model.onnx" in str(info.value)


def test_open_dim_without_binding_is_refused() -> None:
    vespa_model("probe_model.onnx")
    with pytest.raises(
        ModelImportError, match=r"probe_model.onnx.*dimension 'inner' of input 'in1' has no size"
    ):
        import_model(VESPA_MODELS / "probe_model.onnx")
    with pytest.raises(ModelImportError, match=r"dimension 1 \(size -1\) of input 'bias_tensor' has no size"):
        import_model(VESPA_MODELS / "wrapper_dynamic.onnx")


# ---------------------------------------------------------------- models onnxruntime refuses


def test_mnist_softmax_opset_4() -> None:
    """onnxruntime has no kernels for opset 4; Vespa imported it, and so do we: x @ W + b."""
    name = "mnist_softmax.onnx"
    vespa_model(name)
    model = _load(name)
    assert model.opset_import[0].version == 4
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w, b = weights["Variable:0"], weights["Variable_1:0"]
    imported = import_model(VESPA_MODELS / name)
    verify(imported.program)
    assert {k: s.shape for k, s in imported.program.inputs.items()} == {"Placeholder:0": (1, 784)}
    rng = np.random.default_rng(SEED)
    x = rng.random((N_DOCS, 1, 784)).astype(np.float32)
    got = NumpyBackend().run(imported.program, {"Placeholder:0": x}, N_DOCS)["add:0"]
    assert got.shape == (N_DOCS, 1, 10) and got.dtype == np.float32
    for i in range(N_DOCS):
        want = x[i].astype(np.float64) @ w.astype(np.float64) + b
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5)


def test_gather_with_float_indices_is_refused() -> None:
    name = "gather.onnx"
    vespa_model(name)
    with pytest.raises(ModelImportError) as info:
        import_model(VESPA_MODELS / name)
    e = info.value
    assert_located(e, name)
    assert e.op_type == "Gather" and e.opset == 11 and "float" in e.message, str(e)
