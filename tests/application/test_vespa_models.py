"""Every model of Vespa's own test suite, used from a rank profile that binds its inputs
the ways Vespa users do (functions over attribute/query/constant values, onnx-model
blocks, quoted names), with scores checked against onnxruntime document by document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import numpy.typing as npt
import onnx
import pytest

from server.application.errors import SchemaError
from server.application.package import Application

from .helpers import VESPA_MODELS, OrtModel, rank, write_app

N_DOCS = 5
Arr = npt.NDArray[Any]


@dataclass
class Case:
    model: str
    fields: str  # the document's field lines
    profile: str  # the body of rank-profile p
    columns: dict[str, Arr]  # attribute values, [N_DOCS, *shape]
    query: dict[str, Arr]
    feeds: Callable[[int], dict[str, Arr]]  # the ONNX inputs of document i
    score: Callable[[dict[str, Arr], int], float]  # the first-phase score from the ONNX outputs of document i
    features: dict[str, Callable[[dict[str, Arr]], Arr]] = field(default_factory=dict)  # match-feature checks
    ort_model: Callable[[onnx.ModelProto], onnx.ModelProto] | None = None  # a copy onnxruntime accepts
    rtol: float = 1e-5


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(20261126 + seed)


def _f32(a: Any) -> Arr:
    return np.asarray(a, dtype=np.float32)


def case_add_double() -> Case:
    r = _rng(1)
    a, b = r.standard_normal((N_DOCS, 1)), r.standard_normal(1)
    return Case(
        "add_double.onnx",
        "field a type tensor(d0[1]) { indexing: attribute }",
        """inputs { query(b) tensor(d0[1]) }
           function input1() { expression: attribute(a) }
           function input2() { expression: query(b) }
           first-phase { expression: sum(onnx("add_double.onnx")) }""",
        {"a": a}, {"b": b},
        lambda i: {"input1": a[i], "input2": b},
        lambda o, i: float(o["output"].sum()),
        rtol=1e-12,
    )


def case_add_float() -> Case:
    r = _rng(2)
    a, b = _f32(r.standard_normal((N_DOCS, 1))), _f32(r.standard_normal(1))
    return Case(
        "add_float.onnx",
        "field a type tensor<float>(d0[1]) { indexing: attribute }",
        """inputs { query(b) tensor<float>(d0[1]) }
           onnx-model adder {
             file: models/add_float.onnx
             input input1: attribute(a)
             input input2: query_side
             output output: total
           }
           function query_side() { expression: query(b) }
           first-phase { expression: sum(onnx(adder).total) }""",
        {"a": a}, {"b": b},
        lambda i: {"input1": a[i], "input2": b},
        lambda o, i: float(o["output"].sum()),
    )


def case_add_float16() -> Case:
    r = _rng(3)
    a, b = _f32(r.standard_normal((N_DOCS, 1))), _f32(r.standard_normal(1))
    return Case(
        "add_float16.onnx",
        "field a type tensor<float>(d0[1]) { indexing: attribute }",
        """inputs { query(b) tensor<float>(d0[1]) }
           function input1() { expression: attribute(a) }
           function input2() { expression: query(b) }
           first-phase { expression: sum(onnx("add_float16.onnx")) }""",
        {"a": a}, {"b": b},
        lambda i: {"input1": a[i].astype(np.float16), "input2": b.astype(np.float16)},
        lambda o, i: float(o["output"].astype(np.float64).sum()),
        rtol=1e-3,
    )


def case_add_int64() -> Case:
    r = _rng(4)
    a, b = _f32(r.integers(-1000, 1000, (N_DOCS, 1))), _f32(r.integers(-1000, 1000, 1))
    return Case(
        "add_int64.onnx",
        "field a type tensor<float>(d0[1]) { indexing: attribute }",
        """inputs { query(b) tensor<float>(d0[1]) }
           function input1() { expression: attribute(a) }
           function input2() { expression: query(b) }
           first-phase { expression: sum(onnx("add_int64.onnx")) }""",
        {"a": a}, {"b": b},
        lambda i: {"input1": a[i].astype(np.int64), "input2": b.astype(np.int64)},
        lambda o, i: float(o["output"].sum()),
        rtol=0,
    )


def case_ax_plus_b() -> Case:
    r = _rng(5)
    va, vb = r.standard_normal((N_DOCS, 3)), r.standard_normal(2)
    x = np.array([[1.5, -2.0, 0.25], [3.0, 0.5, -1.0]])
    return Case(
        "ax_plus_b.onnx",
        "field va type tensor(d0[3]) { indexing: attribute }",
        """inputs { query(vb) tensor(d0[2]) }
           constants { X tensor(d0[2],d1[3]): [[1.5, -2.0, 0.25], [3.0, 0.5, -1.0]] }
           function matrix_X() { expression: constant(X) }
           function vector_A() { expression: attribute(va) }
           function vector_B() { expression: query(vb) }
           first-phase { expression: sum(onnx(ax_plus_b) * tensor(d0[2]):[1, 10]) }""",
        {"va": va}, {"vb": vb},
        lambda i: {"matrix_X": x, "vector_A": va[i], "vector_B": vb},
        lambda o, i: float(o["vector_Y"] @ np.array([1.0, 10.0])),
        rtol=1e-12,
    )


def _three_inputs(seed: int) -> tuple[Arr, Arr, Arr]:
    r = _rng(seed)
    return _f32(r.standard_normal((N_DOCS, 2))), _f32(r.standard_normal((N_DOCS, 2))), _f32(r.standard_normal(2))


def case_badnames() -> Case:
    f1, f3, q2 = _three_inputs(6)
    return Case(
        "badnames.onnx",
        """field f1 type tensor<float>(d0[2]) { indexing: attribute }
           field f3 type tensor<float>(d0[2]) { indexing: attribute }""",
        """inputs { query(q2) tensor<float>(d0[2]) }
           onnx-model badnames {
             file: models/badnames.onnx
             input "second/input:0": query(q2)
           }
           function first_input() { expression: attribute(f1) }
           function third_input() { expression: attribute(f3) }
           first-phase { expression: sum(onnx(badnames).path_to_output_2 * tensor<float>(d0[2]):[1, 3]) }
           match-features { onnx(badnames).path_to_output_0 onnx(badnames).path_to_output_1 }""",
        {"f1": f1, "f3": f3}, {"q2": q2},
        lambda i: {"first_input": f1[i], "second/input:0": q2, "third_input": f3[i]},
        lambda o, i: float(o["path/to/output:2"] @ np.array([1.0, 3.0])),
        features={"onnx(badnames).path_to_output_0": lambda o: o["path/to/output:0"],
                  "onnx(badnames).path_to_output_1": lambda o: o["path/to/output:1"]},
    )


def case_onnx_model_block_model() -> Case:
    f1, f2, q3 = _three_inputs(7)
    return Case(
        "onnx_model_block_model.onnx",
        """field f1 type tensor<float>(d0[2]) { indexing: attribute }
           field f2 type tensor<float>(d0[2]) { indexing: attribute }""",
        """inputs { query(q3) tensor<float>(d0[2]) }
           onnx-model my_block {
             file: models/onnx_model_block_model.onnx
             input first_input: attribute(f1)
             input "second/input:0": my_function
             input third_input: query(q3)
             output "path/to/output:0": out0
             output "path/to/output:1": out1
             output "path/to/output:2": out2
           }
           function my_function() { expression: attribute(f2) * 2 }
           first-phase { expression: sum(onnx(my_block).out2) + sum(onnx(my_block).out0) }
           match-features { onnx(my_block).out1 }""",
        {"f1": f1, "f2": f2}, {"q3": q3},
        lambda i: {"first_input": f1[i], "second/input:0": f2[i] * 2, "third_input": q3},
        lambda o, i: float(o["path/to/output:2"].sum() + o["path/to/output:0"].sum()),
        features={"onnx(my_block).out1": lambda o: o["path/to/output:1"]},
    )


def case_strange_names() -> Case:
    r = _rng(8)
    a, q = _f32(r.standard_normal((N_DOCS, 2))), _f32(r.standard_normal(2))
    return Case(
        "strange_names.onnx",
        "field a type tensor<float>(d0[2]) { indexing: attribute }",
        """inputs { query(q) tensor<float>(d0[2]) }
           function input_0() { expression: attribute(a) }
           function input_1() { expression: query(q) }
           first-phase { expression: sum(onnx(strange_names).foo_bar) - 2 * sum(onnx("strange_names.onnx", "-baz:0")) }
           match-features { onnx(strange_names)._baz_0 }""",
        {"a": a}, {"q": q},
        lambda i: {"input:0": a[i], "input/1": q},
        lambda o, i: float(o["foo/bar"].sum() - 2 * o["-baz:0"].sum()),
        features={"onnx(strange_names)._baz_0": lambda o: o["-baz:0"]},
    )


def case_cast_bfloat16_float() -> Case:
    r = _rng(9)
    b = r.standard_normal((N_DOCS, 1)).astype(ml_dtypes.bfloat16)
    return Case(
        "cast_bfloat16_float.onnx",
        "field b type tensor<bfloat16>(d0[1]) { indexing: attribute }",
        """function input1() { expression: attribute(b) }
           first-phase { expression: sum(onnx(cast_bfloat16_float)) }""",
        {"b": b}, {},
        lambda i: {"input1": b[i]},
        lambda o, i: float(o["output"].sum()),
        rtol=0,
    )


def case_cast_float_int8() -> Case:
    r = _rng(10)
    f = _f32(r.uniform(-100, 100, (N_DOCS, 1)))
    return Case(
        "cast_float_int8.onnx",
        "field f type tensor<float>(d0[1]) { indexing: attribute }",
        """function input1() { expression: attribute(f) }
           first-phase { expression: sum(onnx(cast_float_int8)) }""",
        {"f": f}, {},
        lambda i: {"input1": f[i]},
        lambda o, i: float(o["output"].astype(np.float64).sum()),
        rtol=0,
    )


def case_cast_int8_float() -> Case:
    r = _rng(11)
    v = r.integers(-128, 128, (N_DOCS, 1)).astype(np.int8)
    return Case(
        "cast_int8_float.onnx",
        "field v type tensor<int8>(d0[1]) { indexing: attribute }",
        """function input1() { expression: attribute(v) }
           first-phase { expression: sum(onnx(cast_int8_float)) }""",
        {"v": v}, {},
        lambda i: {"input1": v[i]},
        lambda o, i: float(o["output"].sum()),
        rtol=0,
    )


def case_sign_bfloat16() -> Case:
    r = _rng(12)
    b = r.standard_normal((N_DOCS, 1)).astype(ml_dtypes.bfloat16)
    return Case(
        "sign_bfloat16.onnx",
        "field b type tensor<bfloat16>(d0[1]) { indexing: attribute }",
        """function input1() { expression: attribute(b) }
           first-phase { expression: sum(onnx(sign_bfloat16)) + attribute(b){d0:0} }""",
        {"b": b}, {},
        lambda i: {"input1": b[i]},
        lambda o, i: float(o["output"].sum()) + float(b[i, 0]),
        rtol=0,
    )


def case_concat() -> Case:
    r = _rng(13)
    i_, j = _f32(r.standard_normal((N_DOCS, 1))), _f32(r.standard_normal(1))
    return Case(
        "concat.onnx",
        "field i type tensor<float>(d0[1]) { indexing: attribute }",
        """inputs { query(j) tensor<float>(d0[1]) }
           constants { k tensor<float>(d0[1]): [7] }
           function i() { expression: attribute(i) }
           function j() { expression: query(j) }
           function k() { expression: constant(k) }
           first-phase { expression: sum(onnx(concat) * tensor<float>(d0[3]):[1, 10, 100]) }""",
        {"i": i_}, {"j": j},
        lambda d: {"i": i_[d], "j": j, "k": _f32([7])},
        lambda o, d: float(o["y"].astype(np.float64) @ np.array([1.0, 10.0, 100.0])),
    )


def _tokens(seed: int, vocab: int, length: int) -> Arr:
    r = _rng(seed)
    t = r.integers(1, vocab, (N_DOCS, length)).astype(np.float32)
    for d in range(N_DOCS):  # padding: trailing zeros of varying length
        t[d, length - d % 3:] = 0
    return t


def _transformer(model: str, seed: int, vocab: int, type_ids: bool, output: str, hidden: int, pooled: str) -> Case:
    """A BERT-like encoder: token ids from an attribute, padding masked, mean pooled and
    weighted by hidden unit (an unweighted sum of a layer-normalised output is ~0)."""
    length = 6
    weights = np.arange(hidden) - (hidden - 1) / 2
    tok = _tokens(seed, vocab, length)
    functions = f"""
           function input_ids() {{ expression: tensor<float>(d0[1],d1[{length}])(attribute(tokens){{x:d1}}) }}
           function attention_mask() {{
             expression: tensor<float>(d0[1],d1[{length}])(attribute(tokens){{x:d1}} > 0)
           }}"""
    if type_ids:
        functions += f"""
           function token_type_ids() {{ expression: tensor<float>(d0[1],d1[{length}])(0) }}"""

    def feeds(i: int) -> dict[str, Arr]:
        ids = tok[i:i + 1].astype(np.int64)
        f = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}
        if type_ids:
            f["token_type_ids"] = np.zeros_like(ids)
        return f

    return Case(
        model,
        f"field tokens type tensor<float>(x[{length}]) {{ indexing: attribute }}",
        functions + f"""
           first-phase {{ expression: {pooled} }}
           match-features {{ onnx({model[:-5]}).{output} }}""",
        {"tokens": tok}, {},
        feeds,
        lambda o, i: float(o[output][0].astype(np.float64).mean(axis=0) @ weights),
        features={f"onnx({model[:-5]}).{output}": lambda o: o[output]},
        rtol=1e-4,
    )


def case_dummy_transformer() -> Case:
    return _transformer("dummy_transformer.onnx", 14, 20, True, "output_0", 16,
                        "sum(reduce(onnx(dummy_transformer).output_0, avg, d1) * tensor(d2[16])(d2 - 7.5))")


def case_dummy_transformer_without_type_ids() -> Case:
    return _transformer("dummy_transformer_without_type_ids.onnx", 15, 20, False, "output_0", 16,
                        "sum(reduce(onnx(dummy_transformer_without_type_ids), avg, d0, d1) * "
                        "rename(range(16) - 7.5, i, d2))")


def case_random_encoder() -> Case:
    return _transformer("random_encoder.onnx", 16, 10000, False, "last_hidden_state", 8,
                        "matmul(reduce(onnx(random_encoder).last_hidden_state{d0:0}, avg, d1), "
                        "tensor<float>(d2[8])(d2 - 3.5), d2)")


def case_fragile() -> Case:
    r = _rng(17)
    a, q = _f32(r.standard_normal((N_DOCS, 2))), _f32(r.standard_normal(2))
    return Case(
        "fragile.onnx",
        "field a type tensor<float>(d0[2]) { indexing: attribute }",
        """inputs { query(q) tensor<float>(d0[2]) }
           function in1() { expression: attribute(a) }
           function in2() { expression: query(q) }
           first-phase { expression: sum(onnx(fragile) * tensor<float>(d0[2]):[1, -1]) }""",
        {"a": a}, {"q": q},
        lambda i: {"in1": a[i], "in2": q},
        lambda o, i: float(o["out"] @ np.array([1.0, -1.0])),
    )


def case_guess_batch() -> Case:
    r = _rng(18)
    a, q = _f32(r.standard_normal((N_DOCS, 3))), _f32(r.standard_normal(3))
    return Case(
        "guess_batch.onnx",
        "field a type tensor<float>(d0[3]) { indexing: attribute }",
        """inputs { query(q) tensor<float>(d0[3]) }
           function in1() { expression: attribute(a) }
           function in2() { expression: query(q) }
           first-phase { expression: sum(onnx(guess_batch) ^ 2) }""",
        {"a": a}, {"q": q},
        lambda i: {"in1": a[i], "in2": q},
        lambda o, i: float((o["out"].astype(np.float64) ** 2).sum()),
    )


def case_int_types() -> Case:
    r = _rng(19)
    at = _f32(r.integers(-9, 10, (N_DOCS, 4, 1)))
    qt = _f32(r.integers(-9, 10, (1, 4)))
    return Case(
        "int_types.onnx",
        "field at type tensor<float>(d0[4],d1[1]) { indexing: attribute }",
        """inputs { query(qt) tensor<float>(d0[1],d1[4]) }
           constants { bias tensor<float>(d0[1],d1[1]): [[5]] }
           function query_tensor() { expression: query(qt) }
           function attribute_tensor() { expression: attribute(at) }
           function bias_tensor() { expression: constant(bias) }
           first-phase { expression: sum(onnx(int_types)) }""",
        {"at": at}, {"qt": qt},
        lambda i: {"query_tensor": qt.astype(np.int32), "attribute_tensor": at[i].astype(np.int32),
                   "bias_tensor": np.array([[5]], dtype=np.int32)},
        lambda o, i: float(o["output"].sum()),
        rtol=0,
    )


def case_simple() -> Case:
    r = _rng(20)
    at = _f32(r.standard_normal((N_DOCS, 4, 1)))
    qt = _f32(r.standard_normal((1, 4)))
    return Case(
        "simple.onnx",
        "field at type tensor<float>(d0[4],d1[1]) { indexing: attribute }",
        """inputs { query(qt) tensor<float>(d0[1],d1[4]) }
           constants { bias tensor<float>(d0[1],d1[1]): [[0.5]] }
           function query_tensor() { expression: query(qt) }
           function attribute_tensor() { expression: attribute(at) }
           function bias_tensor() { expression: constant(bias) }
           first-phase { expression: sum(onnx("simple.onnx")) }""",
        {"at": at}, {"qt": qt},
        lambda i: {"query_tensor": qt, "attribute_tensor": at[i], "bias_tensor": _f32([[0.5]])},
        lambda o, i: float(o["output"].sum()),
    )


def case_wrapper_dynamic() -> Case:
    r = _rng(21)
    at = _f32(r.standard_normal((N_DOCS, 4, 1)))
    b = _f32(r.standard_normal((N_DOCS, 3)))
    q = _f32(r.standard_normal(4))
    return Case(
        "wrapper_dynamic.onnx",
        """field at type tensor<float>(d0[4],d1[1]) { indexing: attribute }
           field b type tensor<float>(x[3]) { indexing: attribute }""",
        """inputs { query(q) tensor<float>(x[4]) }
           function query_tensor() { expression: rename(query(q), x, d1) }
           function attribute_tensor() { expression: attribute(at) }
           function bias_tensor() { expression: rename(attribute(b), x, d1) }
           first-phase { expression: sum(onnx(wrapper_dynamic)) }""",
        {"at": at, "b": b}, {"q": q},
        lambda i: {"query_tensor": q[None], "attribute_tensor": at[i], "bias_tensor": b[i:i + 1]},
        lambda o, i: float(o["output"].sum()),
    )


def case_matmul() -> Case:
    r = _rng(22)
    a, q = _f32(r.standard_normal((N_DOCS, 2, 3))), _f32(r.standard_normal((3, 4)))
    return Case(
        "matmul.onnx",
        "field a type tensor<float>(d0[2],d1[3]) { indexing: attribute }",
        """inputs { query(q) tensor<float>(d0[3],d1[4]) }
           function input1() { expression: attribute(a) }
           function input2() { expression: query(q) }
           first-phase { expression: sum(onnx(matmul){d0:1}) + max(onnx(matmul)) }""",
        {"a": a}, {"q": q},
        lambda i: {"input1": a[i], "input2": q},
        lambda o, i: float(o["output"][1].astype(np.float64).sum() + o["output"].max()),
    )


def _opset7(model: onnx.ModelProto) -> onnx.ModelProto:
    """mnist_softmax.onnx is opset 4, which onnxruntime refuses. The same graph at opset 7:
    Add's legacy broadcast=1 (trailing axes) is what opset 7's numpy broadcasting does."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.opset_import[0].version = 7
    for node in m.graph.node:
        kept = [a for a in node.attribute if a.name != "broadcast"]
        del node.attribute[:]
        node.attribute.extend(kept)
    return m


def case_mnist_softmax() -> Case:
    r = _rng(23)
    img = _f32(r.random((N_DOCS, 784)))
    return Case(
        "mnist_softmax.onnx",
        "field img type tensor<float>(d1[784]) { indexing: attribute }",
        """function Placeholder_0() { expression: attribute(img) }
           first-phase { expression: sum(onnx("mnist_softmax.onnx") * tensor(d1[10])(d1 + 1)) }
           match-features { onnx(mnist_softmax).add_0 argmax(onnx(mnist_softmax), d1) }""",
        {"img": img}, {},
        lambda i: {"Placeholder:0": img[i:i + 1]},
        lambda o, i: float(o["add:0"][0].astype(np.float64) @ np.arange(1, 11)),
        features={"onnx(mnist_softmax).add_0": lambda o: o["add:0"],
                  "argmax(onnx(mnist_softmax), d1)": lambda o: (o["add:0"] == o["add:0"].max()).astype(np.float32)},
        ort_model=_opset7,
        rtol=1e-4,
    )


def case_multiply_add() -> Case:
    r = _rng(24)
    m1, m2 = r.standard_normal((N_DOCS, 2, 2)), r.standard_normal(2)
    return Case(
        "multiply_add.onnx",
        "field m1 type tensor(d0[2],d1[2]) { indexing: attribute }",
        """inputs { query(m2) tensor(d0[2]) }
           onnx-model multiply_add {
             file: models/multiply_add.onnx
             input model_input_1: attribute(m1)
             input model_input_2: query(m2)
             input model_input_3: tensor(d0[2]):[0.5, -0.5]
           }
           first-phase { expression: sum(onnx(multiply_add).model_output_1 * tensor(d0[2]):[2, 3]) }""",
        {"m1": m1}, {"m2": m2},
        lambda i: {"model_input_1": m1[i], "model_input_2": m2, "model_input_3": np.array([0.5, -0.5])},
        lambda o, i: float(o["model_output_1"] @ np.array([2.0, 3.0])),
        rtol=1e-12,
    )


def case_one_layer() -> Case:
    r = _rng(25)
    f = _f32(r.standard_normal((N_DOCS, 3)))
    return Case(
        "one_layer.onnx",
        "field f type tensor<float>(x[3]) { indexing: attribute }",
        """function input() { expression: rename(attribute(f), x, d1) }
           first-phase { expression: sum(onnx(one_layer)) }""",
        {"f": f}, {},
        lambda i: {"input": f[i:i + 1]},
        lambda o, i: float(o["output"].sum()),
    )


def case_pytorch_mlp() -> Case:
    r = _rng(26)
    f = _f32(r.standard_normal((N_DOCS, 10)))
    return Case(
        "pytorch_mlp.onnx",
        "field f type tensor<float>(x[10]) { indexing: attribute }",
        """function input() { expression: rename(attribute(f), x, d1) }
           first-phase { expression: onnx(pytorch_mlp){d0:0, d1:1} - onnx(pytorch_mlp){d0:0, d1:0} }""",
        {"f": f}, {},
        lambda i: {"input": f[i:i + 1]},
        lambda o, i: float(o["output"][0, 1]) - float(o["output"][0, 0]),
    )


def case_probe_dynamic_model() -> Case:
    r = _rng(27)
    a, q = _f32(r.standard_normal((N_DOCS, 2))), _f32(r.standard_normal(2))
    return Case(
        "probe_dynamic_model.onnx",
        "field a type tensor<float>(x[2]) { indexing: attribute }",
        """inputs { query(q) tensor<float>(x[2]) }
           function input1() { expression: rename(attribute(a), x, d1) }
           function input2() { expression: rename(query(q), x, d1) }
           first-phase { expression: sum(onnx(probe_dynamic_model) * tensor(d0[1],d1[2],d2[2]):[[[1, 2], [3, 4]]]) }""",
        {"a": a}, {"q": q},
        lambda i: {"input1": a[i:i + 1], "input2": q[None]},
        lambda o, i: float((o["out"].astype(np.float64) * np.array([[[1, 2], [3, 4]]])).sum()),
    )


def case_probe_model() -> Case:
    r = _rng(28)
    a, q = _f32(r.standard_normal((N_DOCS, 2, 3))), _f32(r.standard_normal((2, 3)))
    return Case(
        "probe_model.onnx",
        "field a type tensor<float>(d0[2],d1[3]) { indexing: attribute }",
        """inputs { query(q) tensor<float>(d0[2],d1[3]) }
           function in1() { expression: attribute(a) }
           function in2() { expression: query(q) }
           first-phase {
             expression {
               sum(onnx(probe_model).out1) + 2 * sum(onnx(probe_model).out2)
                 + 3 * sum(onnx(probe_model).out3)
             }
           }
           match-features { onnx(probe_model).out3 }""",
        {"a": a}, {"q": q},
        lambda i: {"in1": a[i], "in2": q},
        lambda o, i: float(o["out1"].sum() + 2 * o["out2"].sum() + 3 * o["out3"].astype(np.float64).sum()),
        features={"onnx(probe_model).out3": lambda o: o["out3"]},
    )


def case_ranking_model() -> Case:
    r = _rng(29)
    ids = r.integers(0, 30000, (N_DOCS, 128)).astype(np.float64)
    mask = (r.random((N_DOCS, 128)) < 0.7).astype(np.float64)
    return Case(
        "ranking_model.onnx",
        """field ids type tensor(d0[128]) { indexing: attribute }
           field mask type tensor(d0[128]) { indexing: attribute }""",
        """function input_ids() { expression: attribute(ids) }
           function attention_mask() { expression: attribute(mask) }
           function token_type_ids() { expression: tensor(d0[128])(d0 % 2) }
           first-phase { expression: onnx(ranking_model).score{d0:0} }""",
        {"ids": ids, "mask": mask}, {},
        lambda i: {"input_ids": ids[i], "attention_mask": mask[i], "token_type_ids": np.arange(128) % 2.0},
        lambda o, i: float(o["score"][0]),
        rtol=1e-12,
    )


def case_small_constants_and_functions() -> Case:
    r = _rng(30)
    f = _f32(r.standard_normal((N_DOCS, 3)))
    return Case(
        "small_constants_and_functions.onnx",
        "field f type tensor<float>(d0[3]) { indexing: attribute }",
        """macro input() { expression: attribute(f) }
           first-phase { expression: onnx(small_constants_and_functions){d0:2} }""",
        {"f": f}, {},
        lambda i: {"input": f[i]},
        lambda o, i: float(o["output"][2]),
    )


CASES: dict[str, Callable[[], Case]] = {
    name[len("case_"):]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")
}

# Models the importer refuses, each with the located error it must give.
REFUSED = {
    # Gather with float indices: not a valid ONNX graph (onnxruntime refuses it too)
    "gather.onnx": "indices must be int32 or int64, got float32",
}
# Models whose import depends on an op family still being written: checked against
# onnxruntime once the importer accepts them, a located error naming the op until then.
def test_every_vespa_model_is_covered(vespa_models: Path) -> None:
    covered = {CASES[name]().model for name in CASES} | {"mock_sentence_embedder.onnx"}
    every = {p.name for p in vespa_models.glob("*.onnx")}
    assert every == covered | set(REFUSED), every ^ (covered | set(REFUSED))


def check_case(tmp_path: Path, case: Case) -> None:
    sd = f"""schema s {{
  document s {{
    {case.fields}
  }}
  rank-profile p {{
    {case.profile}
  }}
}}
"""
    app = Application.load(write_app(tmp_path, {"s": sd}, {case.model: VESPA_MODELS / case.model}))
    result = rank(app, case.columns, case.query, hits=N_DOCS)
    proto = onnx.load(VESPA_MODELS / case.model)
    model = OrtModel(case.ort_model(proto) if case.ort_model else proto)
    outputs = [model.run(case.feeds(i)) for i in range(N_DOCS)]
    want = np.array([case.score(outputs[i], i) for i in range(N_DOCS)])
    assert result.scores is not None
    np.testing.assert_allclose(result.scores, want, rtol=case.rtol, atol=1e-6 if case.rtol else 0)
    for hit in result.hits:
        for name, expected in case.features.items():
            got = np.asarray(hit.match_features[name], dtype=np.float64)
            want_f = np.asarray(expected(outputs[hit.row]), dtype=np.float64)
            # Vespa leaves out a batch axis the binding left out; values are the same cells
            np.testing.assert_allclose(got.reshape(want_f.shape), want_f, rtol=max(case.rtol, 1e-6), atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_in_a_rank_profile(tmp_path: Path, vespa_models: Path, name: str) -> None:
    check_case(tmp_path, CASES[name]())


@pytest.mark.parametrize(("model", "message"), sorted(REFUSED.items()))
def test_refused_model_gives_a_located_error(tmp_path: Path, vespa_models: Path, model: str, message: str) -> None:
    sd = """schema s {
  document s {
    field d type tensor<float>(d0[3],d1[2]) { indexing: attribute }
  }
  rank-profile p {
    function data() { expression: attribute(d) }
    function indices() { expression: tensor<float>(d0[2],d1[2]):[[0, 1], [1, 2]] }
    first-phase { expression: sum(onnx("gather.onnx")) }
  }
}
"""
    with pytest.raises(SchemaError) as err:
        Application.load(write_app(tmp_path, {"s": sd}, {model: vespa_models / model}))
    assert message in err.value.message
    assert err.value.location is not None and (err.value.location.line, err.value.location.column) == (8, 35)


def test_mock_sentence_embedder(tmp_path: Path, vespa_models: Path) -> None:
    r = _rng(31)
    tok = _f32(r.integers(1, 50, (N_DOCS, 5)))
    case = Case(
        "mock_sentence_embedder.onnx",
        "field tok type tensor<float>(x[5]) { indexing: attribute }",
        """function input_ids() { expression: tensor<float>(d0[1],d1[5])(attribute(tok){x:d1}) }
           function attention_mask() { expression: tensor<float>(d0[1],d1[5])(d1 < 4) }
           first-phase { expression: sum(onnx(mock_sentence_embedder).sentence_embedding) }""",
        {"tok": tok}, {},
        lambda i: {"input_ids": tok[i:i + 1], "attention_mask": (np.arange(5) < 4).astype(np.float32)[None]},
        lambda o, i: float(o["sentence_embedding"].sum()),
        rtol=1e-5,
    )
    check_case(tmp_path, case)
