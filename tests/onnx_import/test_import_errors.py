"""Every way a model can fail to import says where: the model file and, for a node, the
node's name, op type, domain and opset."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cpu_fallback import NumpyBackend
from tensor_ir.dtypes import CellType
from tensor_ir.onnx_import import InputBinding, ModelImportError, import_model, load_model, registry
from tensor_ir.onnx_import.loading import parse_model
from tests.shared_data import VESPA_MODELS, model_params, vespa_model, vespa_model_names

MODELS = vespa_model_names()


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    opset: int = 17,
    initializers: list[onnx.TensorProto] | None = None,
    extra_opsets: dict[str, int] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers or [])
    opsets = [helper.make_opsetid("", opset)] + [
        helper.make_opsetid(d, v) for d, v in (extra_opsets or {}).items()
    ]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _vec(name: str, dims: list[int | str | None], t: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, t, dims)


def _add_model() -> onnx.ModelProto:
    return _model(
        [helper.make_node("Add", ["a", "b"], ["y"], name="the_add")],
        [_vec("a", [2]), _vec("b", [2])],
        [_vec("y", [2])],
    )


def _located(
    e: ModelImportError,
    model: str,
    node: str | None = None,
    op: str | None = None,
    domain: str | None = None,
    opset: int | None = None,
) -> None:
    text = str(e)
    assert model in text, text
    if node is not None:
        assert f"node '{node}'" in text, text
    if op is not None:
        assert f"op {op} " in text, text
    if domain is not None:
        assert f"domain {domain}" in text, text
    if opset is not None:
        assert f"opset {opset}" in text, text


# ---------------------------------------------------------------- files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.onnx"
    with pytest.raises(ModelImportError, match="file not found") as info:
        import_model(path)
    _located(info.value, str(path))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelImportError, match="file is empty") as info:
        import_model(path)
    _located(info.value, "empty.onnx")


@pytest.mark.parametrize(
    "content", [b"\xff\xff\xff\xff garbage", b"<html>not a model</html>", b"hello world"]
)
def test_malformed_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelImportError, match="not a valid ONNX") as info:
        import_model(path)
    _located(info.value, "junk.onnx")


@pytest.mark.parametrize("name", ["random_encoder.onnx", "dummy_transformer.onnx", "mnist_softmax.onnx"])
def test_model_cut_in_half(tmp_path: Path, name: str) -> None:
    vespa_model(name)
    data = (VESPA_MODELS / name).read_bytes()
    path = tmp_path / f"half_{name}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelImportError, match="truncated") as info:
        import_model(path)
    _located(info.value, f"half_{name}")


@pytest.mark.parametrize("name", model_params([m for m in MODELS if (VESPA_MODELS / m).stat().st_size < 1000]))
def test_every_cut_of_a_small_model_is_refused(name: str) -> None:
    """A cut between top-level fields parses as a smaller model: the cut after the graph, before
    opset_import, would read as an opset-1 model. Every prefix must be refused."""
    data = (VESPA_MODELS / name).read_bytes()
    for cut in range(1, len(data)):
        with pytest.raises(ModelImportError) as info:
            parse_model(data[:cut], name)
        assert "truncated" in str(info.value), f"cut at {cut}: {info.value}"


@pytest.mark.parametrize("name", model_params(MODELS))
def test_vespa_models_load(name: str) -> None:
    """Loading (format checks, no conversion) accepts every real model."""
    model = load_model(VESPA_MODELS / name)
    assert model.graph.output


def test_concatenated_messages_load(tmp_path: Path) -> None:
    """Protobuf merges concatenated messages (a later scalar field wins): a valid file whose
    re-encoding is shorter than the file itself."""
    model = _add_model()
    model.producer_name = "first"
    extra = onnx.ModelProto(producer_name="second").SerializeToString()
    path = tmp_path / "merged.onnx"
    path.write_bytes(model.SerializeToString() + extra)
    assert onnx.load(str(path)).producer_name == "second"
    imported = import_model(path)
    out = NumpyBackend().run(imported.program, {"a": np.ones((1, 2)), "b": np.ones((1, 2))}, 1)["y"]
    assert out.tolist() == [[2.0, 2.0]]


# ---------------------------------------------------------------- external data


def _external_model(tmp_path: Path, location: str) -> Path:
    """y = x + w, with w stored as external data at `location`."""
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in {"location": location, "offset": "0", "length": "16"}.items():
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    model = _model(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
        [_vec("x", [4])],
        [_vec("y", [4])],
        initializers=[w],
    )
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    return _save(model, folder / "ext.onnx")


def test_external_data_inside_the_folder(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    imported = import_model(path)
    out = NumpyBackend().run(imported.program, {"x": np.ones((2, 4), dtype=np.float32)}, 2)["y"]
    np.testing.assert_array_equal(out, np.ones((2, 4)) + np.arange(4))


@pytest.mark.parametrize("where", ["absolute", "parent", "nested parent"])
def test_external_data_outside_the_folder(tmp_path: Path, where: str) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    location = {"absolute": str(secret), "parent": "../secret.bin", "nested parent": "sub/../../secret.bin"}[
        where
    ]
    path = _external_model(tmp_path, location)
    with pytest.raises(
        ModelImportError,
        match=r"initializer 'w' points at external data .* outside the model's "
        r"folder",
    ) as info:
        import_model(path)
    _located(info.value, "ext.onnx")


def test_external_data_through_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    path = _external_model(tmp_path, "link.bin")
    (path.parent / "link.bin").symlink_to(secret)
    with pytest.raises(ModelImportError, match="outside the model's folder"):
        import_model(path)


def test_external_data_file_missing(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "weights.bin")
    with pytest.raises(ModelImportError, match=r"external data file 'weights\.bin' not found") as info:
        import_model(path)
    _located(info.value, "ext.onnx")


def test_external_data_file_too_short(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(b"\x00" * 8)
    with pytest.raises(ModelImportError) as info:
        import_model(path)
    _located(info.value, "ext.onnx")
    assert "'w'" in str(info.value)


# ---------------------------------------------------------------- ops


def test_custom_domain_op(tmp_path: Path) -> None:
    model = _model(
        [helper.make_node("Frobnicate", ["a"], ["y"], name="frob_1", domain="com.example")],
        [_vec("a", [2])],
        [_vec("y", [2])],
        extra_opsets={"com.example": 3},
    )
    path = _save(model, tmp_path / "custom.onnx")
    with pytest.raises(ModelImportError, match="unsupported op") as info:
        import_model(path)
    _located(info.value, "custom.onnx", node="frob_1", op="Frobnicate", domain="com.example", opset=3)
    e = info.value
    assert (e.node, e.op_type, e.domain, e.opset) == ("frob_1", "Frobnicate", "com.example", 3)


def test_op_of_a_domain_the_model_does_not_import(tmp_path: Path) -> None:
    model = _model(
        [helper.make_node("Frobnicate", ["a"], ["y"], name="frob_2", domain="com.example")],
        [_vec("a", [2])],
        [_vec("y", [2])],
    )
    path = _save(model, tmp_path / "noimport.onnx")
    with pytest.raises(ModelImportError, match=r"does not import the op's domain 'com\.example'") as info:
        import_model(path)
    _located(info.value, "noimport.onnx", node="frob_2", op="Frobnicate", domain="com.example")


def test_unnamed_node_is_named_by_its_outputs(tmp_path: Path) -> None:
    model = _model(
        [helper.make_node("Frobnicate", ["a"], ["frob_out"], domain="com.example")],
        [_vec("a", [2])],
        [_vec("frob_out", [2])],
        extra_opsets={"com.example": 1},
    )
    path = _save(model, tmp_path / "unnamed.onnx")
    with pytest.raises(ModelImportError) as info:
        import_model(path)
    assert "frob_out" in (info.value.node or ""), str(info.value)


def test_opset_newer_than_our_converter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Abs changed at opset 13 (bfloat16): with converters only for versions 1 and 6, a model at
    opset 13 must be refused rather than converted with version 6's semantics."""
    table = registry._REGISTRY[("", "Abs")]
    monkeypatch.setitem(registry._REGISTRY, ("", "Abs"), {v: fn for v, fn in table.items() if v < 13})
    found = registry.lookup("", "Abs", 13)
    assert found.fn is None and "version 13" in found.reason and "version 6" in found.reason
    assert registry.lookup("", "Abs", 12).fn is table[6]
    model = _model(
        [helper.make_node("Abs", ["a"], ["y"], name="abs_1")], [_vec("a", [2])], [_vec("y", [2])], opset=13
    )
    path = _save(model, tmp_path / "abs13.onnx")
    with pytest.raises(ModelImportError, match="newer than our converter") as info:
        import_model(path)
    _located(info.value, "abs13.onnx", node="abs_1", op="Abs", domain="ai.onnx", opset=13)


def test_registry_lookup() -> None:
    # the highest since_version <= the model's opset
    abs_table = registry._REGISTRY[("", "Abs")]
    assert registry.lookup("", "Abs", 12).fn is abs_table[6]
    assert registry.lookup("ai.onnx", "Abs", 13).fn is abs_table[13]
    assert registry.lookup("", "NoSuchOp", 13).reason == "no converter for this op"
    with pytest.raises(registry.RegistryError, match="registered twice"):
        registry.converter("Abs", 13)(abs_table[13])
    with pytest.raises(registry.RegistryError, match="names no since_version"):
        registry.converter("Abs")


def test_value_used_before_it_is_produced(tmp_path: Path) -> None:
    model = _model(
        [
            helper.make_node("Neg", ["t"], ["y"], name="neg_first"),
            helper.make_node("Abs", ["a"], ["t"], name="abs_second"),
        ],
        [_vec("a", [2])],
        [_vec("y", [2])],
    )
    path = _save(model, tmp_path / "order.onnx")
    with pytest.raises(
        ModelImportError, match="uses value 't' that no earlier node or input produces"
    ) as info:
        import_model(path)
    _located(info.value, "order.onnx", node="neg_first", op="Neg", opset=17)


def test_error_inside_a_node_names_it(tmp_path: Path) -> None:
    """A converter's failure (here: operands that cannot broadcast) is located too."""
    model = _model(
        [helper.make_node("Add", ["a", "b"], ["y"], name="bad_add")],
        [_vec("a", [2]), _vec("b", [3])],
        [_vec("y", [2])],
    )
    path = _save(model, tmp_path / "broadcast.onnx")
    with pytest.raises(ModelImportError, match="cannot be broadcast") as info:
        import_model(path)
    _located(info.value, "broadcast.onnx", node="bad_add", op="Add", domain="ai.onnx", opset=17)


# ---------------------------------------------------------------- bindings


def test_binding_type_mismatch(tmp_path: Path) -> None:
    path = _save(_add_model(), tmp_path / "add.onnx")
    with pytest.raises(
        ModelImportError, match="type mismatch: input 'a' is float32 in the model but is bound to float64"
    ) as info:
        import_model(path, {"a": InputBinding(dtype=CellType.FLOAT64)})
    _located(info.value, "add.onnx")
    with pytest.raises(ModelImportError, match="type mismatch: input 'b'"):
        import_model(path, {"b": InputBinding.constant(np.zeros(2, dtype=np.int64))})


def test_binding_an_unknown_input(tmp_path: Path) -> None:
    path = _save(_add_model(), tmp_path / "add.onnx")
    with pytest.raises(
        ModelImportError, match=r"bindings name unknown inputs \['c'\]; the model's inputs are a, b"
    ):
        import_model(path, {"c": InputBinding()})


def test_binding_shape_against_static_dims(tmp_path: Path) -> None:
    path = _save(_add_model(), tmp_path / "add.onnx")
    with pytest.raises(
        ModelImportError, match="input 'a' axis 0 has size 2 in the model but the binding gives 3"
    ):
        import_model(path, {"a": InputBinding(shape=(3,))})
    with pytest.raises(
        ModelImportError,
        match=r"input 'a' has rank 1 \(\[2\]\) but is bound to a tensor of shape "
        r"\[1, 1, 2\]",
    ):
        import_model(path, {"a": InputBinding(shape=(1, 1, 2))})


def _symbolic_model() -> onnx.ModelProto:
    """a[batch, n] + b[batch, n] -> y, with c[n, m] @ ... left out: only the dims matter."""
    return _model(
        [helper.make_node("Add", ["a", "b"], ["y"], name="sym_add")],
        [_vec("a", ["batch", "n"]), _vec("b", ["batch", "n"])],
        [_vec("y", ["batch", "n"])],
    )


def test_conflicting_symbolic_dims(tmp_path: Path) -> None:
    path = _save(_symbolic_model(), tmp_path / "sym.onnx")
    with pytest.raises(ModelImportError, match="dimension 'n' is 4 in input 'a' but 5 in input 'b'") as info:
        import_model(path, {"a": InputBinding(shape=(4,)), "b": InputBinding(shape=(5,))})
    _located(info.value, "sym.onnx")
    with pytest.raises(ModelImportError, match="dimension 'batch' is 2 in input 'a' but 3 in input 'b'"):
        import_model(path, {"a": InputBinding(shape=(2, 4)), "b": InputBinding(shape=(3, 4))})


def test_unresolvable_symbolic_dim(tmp_path: Path) -> None:
    path = _save(_symbolic_model(), tmp_path / "sym.onnx")
    with pytest.raises(ModelImportError, match="dimension 'n' of input 'a' has no size") as info:
        import_model(path)
    _located(info.value, "sym.onnx")
    minus_one = _model(
        [helper.make_node("Neg", ["a"], ["y"], name="neg")], [_vec("a", [2, None])], [_vec("y", [2, None])]
    )
    path = _save(minus_one, tmp_path / "minus_one.onnx")
    with pytest.raises(ModelImportError, match=r"dimension 1 \(size -1\) of input 'a' has no size"):
        import_model(path)


def test_symbol_sized_by_a_later_input(tmp_path: Path) -> None:
    """Which input gives a symbol its size does not depend on the order of the inputs."""
    path = _save(_symbolic_model(), tmp_path / "sym.onnx")
    imported = import_model(path, {"b": InputBinding(shape=(4,))})
    assert {k: v.shape for k, v in imported.program.inputs.items()} == {"a": (1, 4), "b": (1, 4)}
    imported = import_model(path, {"b": InputBinding(shape=(3, 4))})
    # 'batch' bound explicitly in one input is the same batch in the other
    assert {k: v.shape for k, v in imported.program.inputs.items()} == {"a": (3, 4), "b": (3, 4)}


def test_copied_model_keeps_its_file_name_in_errors(tmp_path: Path) -> None:
    vespa_model("gather.onnx")
    dst = tmp_path / "renamed_gather.onnx"
    shutil.copy(VESPA_MODELS / "gather.onnx", dst)
    with pytest.raises(ModelImportError) as info:
        import_model(dst)
    _located(info.value, "renamed_gather.onnx", op="Gather", domain="ai.onnx", opset=11)
